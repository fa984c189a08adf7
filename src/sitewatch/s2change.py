"""Two-date change at 10 m (Sentinel-2): what changed between a site's reference scene and this one.

At 10 m a building is a pixel or a few: a per-date "is this a roof" rule cannot tell a new
compound from a bright field or a hazy city, and comparing two such maps turns every haze or
gain difference into "new" buildings (OSCD Hong Kong). So at 10 m the detector asks one question
per pixel, learned from real labelled pairs: did the ground change since the reference scene?

- **Normalisation against the reference.** Each band of each date is mapped to robust scene
  units, ``(x - median) / IQR`` over the ground both dates saw clearly (valid in both). A uniform
  gain, a uniform haze (offset and loss of contrast) or a different processing baseline moves
  median and IQR together with the pixels, so it does not read as change.
- **Cues per pixel** (:func:`features`): both dates' normalised bands and their differences,
  the differences' 3x3 means and their departure from a 21x21 local mean (haze that varies
  slowly across the site is not change), the change-vector length and its 3x3 / 5x5 means,
  NDVI and NDBI of each date and their changes (from reflectance, where the bands exist),
  and 3x3 texture of each date's brightness and its change. Optional, for a model that reads them
  (the shipped one does not): whether the outline stood on both dates (:func:`_structure`).
- **A small model over them**: a logistic regression on the cues and their squares, fitted by
  ``benchmarks/train_s2change.py`` on the OSCD dev cities (leave-one-city-out figures in
  ``benchmarks/README.md``). Only coefficients ship (``data/s2_change_model.json``, a few kB);
  the forward pass is numpy.
- **Missing bands**: one model per band set, fitted on the same pixels: all of blue, green, red,
  nir, swir16; without swir16 (no NDBI cues); visible only (no NDVI either). The largest set
  both dates have is used and named in the evidence; fewer than blue, green and red: no model
  (:func:`band_set` returns None and the detector falls back to its per-date rule map).
- **Presence** is hysteresis on P(change): pixels above the model's ``grow_threshold`` connected
  to one above its ``threshold`` (both chosen on held-out cities by the training script), less
  ground gone snowy (:func:`not_new`) and green ground (the detector's rule); a change region in
  which the scene's own roof map resolves several buildings is split into them (:func:`split_by_roofs`).

The reference is the first scene the site stored its bands for (``features`` of its maps,
float16 reflectance, kept raw so each later scene is normalised on the ground both saw);
ground the reference did not see is not observed by later change maps.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from . import pixelmodel

#: Bands the model may read, in order.
BANDS = ("blue", "green", "red", "nir", "swir16")
#: Band sets with a fitted model, largest first (the first both dates hold is used).
BAND_SETS = (BANDS, BANDS[:4], BANDS[:3])
#: ``StructureMaps.features`` key prefix of the reference scene's bands.
REF_PREFIX = "s2ref."
#: Window (pixels) of the local mean a difference is compared with: slowly varying haze.
HAZE_WIN = 21
MODEL_FILE = "data/s2_change_model.json"


def band_set(available: object) -> tuple[str, ...] | None:
    """The largest band set with a model that ``available`` (names) covers, or None."""
    have = set(available)  # type: ignore[call-overload]
    return next((s for s in BAND_SETS if set(s) <= have), None)


def reference_features(bands: Mapping[str, np.ndarray], valid: np.ndarray) -> dict[str, np.ndarray]:
    """What a reference scene keeps for later dates: its bands (NaN where not valid), float16."""
    return {REF_PREFIX + b: np.where(valid, bands[b], np.nan).astype(np.float16) for b in BANDS if b in bands}


def reference_of(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The reference bands kept in a map's ``features`` (empty when it is not a reference)."""
    return {k[len(REF_PREFIX):]: np.asarray(v, np.float32) for k, v in features.items() if k.startswith(REF_PREFIX)}


MIN_SPREAD = pixelmodel.MIN_SPREAD


def _robust(x: np.ndarray, sample: np.ndarray) -> np.ndarray:
    q50, spread = pixelmodel.robust_unit(x, sample)
    return ((x - q50) / spread).astype(np.float32)


def normalise(ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], both: np.ndarray,
              bands: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each band of each date in robust units of its own scene, on the ground ``both`` dates saw."""
    sample = both.copy()
    if sample.sum() > 200_000:  # a regular subsample is enough for quartiles
        keep = np.zeros_like(sample)
        keep[::2, ::2] = True
        sample &= keep
    r = {b: _robust(np.nan_to_num(ref[b].astype(np.float32)), sample) for b in bands}
    c = {b: _robust(np.nan_to_num(cur[b].astype(np.float32)), sample) for b in bands}
    return r, c


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.nan_to_num(a.astype(np.float32)), np.nan_to_num(b.astype(np.float32))
    return np.clip((a - b) / np.maximum(np.abs(a + b), 1e-4), -1, 1)


_mean = pixelmodel.masked_mean


def _tex(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return pixelmodel.local_spread(x, w, 3)


#: Structure-persistence cues (:func:`_structure`), computed only for a model that reads them (the
#: shipped one does not: measured held out by city, not shipped; ``benchmarks/README.md``).
STRUCT_CUES = ("gcorr3", "gcorr5", "gratio", "hcorr3", "hcorr5")
#: Windows (pixels, 30 and 50 m) over which the two dates' outlines are correlated.
STRUCT_WINS = (3, 5)
#: Floor (robust units squared) under a window's variance in the outline correlation: flat ground has
#: no outline to share, and its correlation must read 0, not noise.
STRUCT_EPS = 0.01


def _grad(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (np.hypot(ndimage.sobel(x, 1), ndimage.sobel(x, 0)) / 8 * w).astype(np.float32)


def _corr(a: np.ndarray, b: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Normalised correlation of ``a`` and ``b`` over each k x k window of ``w``'s ground: per window,
    so a contrast lost uniformly (haze) or gained does not read as change, an outline missing does."""
    ma, mb = _mean(a, w, k), _mean(b, w, k)
    va = np.maximum(_mean(a * a, w, k) - ma * ma, 0)
    vb = np.maximum(_mean(b * b, w, k) - mb * mb, 0)
    return ((_mean(a * b, w, k) - ma * mb) / np.sqrt((va + STRUCT_EPS) * (vb + STRUCT_EPS)) * w).astype(np.float32)


def _structure(x_r: np.ndarray, x_c: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """Structure persistence: a standing building keeps its outline on both dates (brighter, hazier or
    not), a new one has none on the reference. Correlation of the dates' gradient magnitude and of their
    high-passed values over 30 and 50 m windows, and the window's contrast change against the site's."""
    out: dict[str, np.ndarray] = {}
    gr, gc = _grad(x_r, w), _grad(x_c, w)
    for k in STRUCT_WINS:
        out[f"gcorr{k}"] = _corr(gr, gc, w, k)
        hr, hc = (x_r - _mean(x_r, w, k + 2)) * w, (x_c - _mean(x_c, w, k + 2)) * w
        out[f"hcorr{k}"] = _corr(hr, hc, w, k)
    lr = np.log((_mean(gr, w, 5) + 0.05) / (_mean(gc, w, 5) + 0.05))
    out["gratio"] = (lr - _mean(lr, w, HAZE_WIN)) * w
    return out


def features(ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], both: np.ndarray,
             bands: tuple[str, ...], structure: bool = False) -> dict[str, np.ndarray]:
    """Per-pixel cues (float32, clipped) of change from ``ref`` to ``cur`` (reflectance) over ``bands``;
    with ``structure``, also :data:`STRUCT_CUES`.

    Ground either date did not see (cloud, snow, no data) is left out of every local window: a
    cloud's brightness must not leak into its clear neighbours' cues as "change"."""
    w = both.astype(np.float32)
    r, c = normalise(ref, cur, both, bands)
    r = {b: v * w for b, v in r.items()}
    c = {b: v * w for b, v in c.items()}
    out: dict[str, np.ndarray] = {}
    d2 = np.zeros(both.shape, np.float32)
    for b in bands:
        d = c[b] - r[b]
        out[f"ref_{b}"], out[f"cur_{b}"], out[f"d_{b}"] = r[b], c[b], d
        out[f"d3_{b}"] = _mean(d, w, 3)
        out[f"dhp_{b}"] = (d - _mean(d, w, HAZE_WIN)) * w
        d2 += d * d
    cva = np.sqrt(d2 / len(bands))
    out["cva"], out["cva3"], out["cva5"] = cva, _mean(cva, w, 3), _mean(cva, w, 5)
    out["cva_hp"] = (cva - _mean(cva, w, HAZE_WIN)) * w
    if "nir" in bands:
        nr, nc = _nd(ref["nir"], ref["red"]) * w, _nd(cur["nir"], cur["red"]) * w
        out["ndvi_ref"], out["ndvi_cur"], out["d_ndvi"] = nr, nc, nc - nr
    if "swir16" in bands:
        br, bc = _nd(ref["swir16"], ref["nir"]) * w, _nd(cur["swir16"], cur["nir"]) * w
        out["ndbi_ref"], out["ndbi_cur"], out["d_ndbi"] = br, bc, bc - br
    vis = [b for b in bands if b in ("blue", "green", "red")]
    br_r = np.mean([r[b] for b in vis], axis=0)
    br_c = np.mean([c[b] for b in vis], axis=0)
    out["bright_d"] = br_c - br_r
    out["tex_ref"], out["tex_cur"] = _tex(br_r, w), _tex(br_c, w)
    out["tex_d"] = out["tex_cur"] - out["tex_ref"]
    if structure:
        out.update(_structure(br_r, br_c, w))
    return {k: np.clip(np.nan_to_num(v), -20, 20).astype(np.float32) for k, v in out.items()}


design = pixelmodel.design
_slot = pixelmodel.ModelSlot(MODEL_FILE, lambda doc, sha256: validate(doc, sha256))
#: ``model()`` the model in use (the shipped one unless a benchmark's ``use(doc)`` set a held-out
#: one; ``use(None)`` goes back), ``load(raw)`` a validated document with its bytes' SHA-256.
model, load, use, _shipped = _slot.model, _slot.load, _slot.use, _slot.shipped


def validate(doc: dict, sha256: str = "") -> dict:
    """Check a model document's shape (every band set's coefficients match its cue list)."""
    for key in ("name", "version", "models"):
        if key not in doc:
            raise ValueError(f"s2 change model: no {key!r}")
    for bs, m in doc["models"].items():
        n = 2 * len(m["cues"])
        if not (len(m["mean"]) == len(m["scale"]) == len(m["coef"]) == n) or "threshold" not in m:
            raise ValueError(f"s2 change model {bs}: coefficients do not match its {len(m['cues'])} cues")
        if tuple(bs.split(",")) not in BAND_SETS:
            raise ValueError(f"s2 change model: unknown band set {bs}")
    return {**doc, "sha256": sha256}


def probability(ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], both: np.ndarray,
                bands: tuple[str, ...], m: Mapping | None = None) -> tuple[np.ndarray, float]:
    """P(change) per pixel (0 where ``both`` is False) and the model's threshold, for ``bands``."""
    sub = (m if m is not None else model())["models"][",".join(bands)]
    f = features(ref, cur, both, bands, structure=bool(set(sub["cues"]) & set(STRUCT_CUES)))
    x = design(f, list(sub["cues"]))
    z = (x - np.asarray(sub["mean"], np.float32)) / np.asarray(sub["scale"], np.float32)
    logit = z @ np.asarray(sub["coef"], np.float32) + np.float32(sub["intercept"])
    p = (1 / (1 + np.exp(-np.clip(logit, -30, 30)))).reshape(both.shape).astype(np.float32)
    return np.where(both, p, 0.0).astype(np.float32), float(sub["threshold"])


hysteresis = pixelmodel.hysteresis


#: Snow index (green - swir16) / (green + swir16) above which, and this much above the reference's,
#: a change is snow the mask missed (mixed snow pixels), not a roof: roofs are bright in swir16.
SNOWY_NDSI = 0.2


def not_new(ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], bands: tuple[str, ...]) -> np.ndarray:
    """Change that is no new structure: ground gone snowy (where swir16 is there to tell)."""
    if "swir16" not in bands:
        return np.zeros(next(iter(cur.values())).shape, bool)
    ns_c, ns_r = _nd(cur["green"], cur["swir16"]), _nd(ref["green"], ref["swir16"])
    return (ns_c > SNOWY_NDSI) & (ns_c - ns_r > SNOWY_NDSI)


def split_by_roofs(presence: np.ndarray, roofs: np.ndarray, min_px: int) -> np.ndarray:
    """A change region holding two or more of the scene's own roofs (each at least ``min_px``, at least
    30 % inside the region) is cut into one part per roof: each pixel goes to its nearest roof, and a
    one-pixel line between parts is dropped. At 10 m the change of neighbouring halls runs together
    across the 20 m between them, their roofs do not; every other pixel of the region is kept."""
    from . import components

    lab, n = components.label(presence, corners=True)
    if not n or not roofs.any():
        return presence
    out = presence.copy()
    for i, sl in enumerate(components.find_objects(lab), start=1):
        if sl is None:
            continue
        region = lab[sl] == i
        rl, k = components.label(roofs[sl])
        if k < 2:
            continue
        sizes = ndimage.sum_labels(roofs[sl], rl, np.arange(1, k + 1))
        share = np.asarray(ndimage.mean(region, rl, np.arange(1, k + 1)))
        ok = np.concatenate([[False], (sizes >= min_px) & (share >= 0.3)])
        if ok.sum() < 2:
            continue
        seeds = np.where(ok[rl], rl, 0)
        near = ndimage.distance_transform_edt(seeds == 0, return_distances=False, return_indices=True)
        zone = np.where(region, seeds[near[0], near[1]], 0)
        cut = region & (ndimage.maximum_filter(zone, size=3) > zone)  # a neighbour in a later part
        out[sl] = np.where(region, region & ~cut, out[sl])
    return out


def change_map(ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], valid: np.ndarray,
               m: Mapping | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict] | None:
    """New-structure presence, strength (P(change)), observed ground and evidence for a later scene.

    ``ref``: the reference bands (NaN where it saw no clear ground); ``cur``: this scene's bands,
    co-registered to it; ``valid``: this scene's clear ground. None when the two dates share no
    band set the model covers.
    """
    bands = band_set(set(ref) & set(cur))
    if bands is None:
        return None
    doc = m if m is not None else model()
    both = valid & np.all([np.isfinite(ref[b]) for b in bands], axis=0)
    if both.sum() < 100:
        z = np.zeros(valid.shape, bool)
        return z, z.astype(np.float32), both, {"change_model": doc["name"], "too_little_shared_ground": True}
    p, thr = probability(ref, cur, both, bands, doc)
    grow = float(doc["models"][",".join(bands)].get("grow_threshold", thr))
    presence = hysteresis(p, thr, grow) & both & ~not_new(ref, cur, bands)
    info = {"change_model": doc["name"], "change_model_version": doc["version"],
            "change_model_sha256": doc.get("sha256", "")[:16], "change_bands": list(bands),
            "change_threshold": round(thr, 4), "grow_threshold": round(grow, 4)}
    return presence, p, both, info


#: Share of the shared clear ground a scene may show changed before it is not compared at all: new
#: construction between two dates covers a few % of a site (OSCD dev cities 2.4-3.8 % over 2-3 years);
#: a scene changed over a quarter of it carries snow, haze or wet ground the masks missed, and its
#: map would say nothing true there, "absent" included. It observes nothing (its dating looks past it).
MAX_CHANGED_SHARE = 0.25


def reference_in(history: object) -> dict[str, np.ndarray] | None:
    """The site's reference bands: those of the first earlier map that kept them, or None."""
    for h in history:  # type: ignore[attr-defined]
        ref = reference_of(h.features)
        if ref:
            return ref
    return None


def for_scene(bands: Mapping[str, np.ndarray], valid: np.ndarray, history: object
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], dict] | None:
    """A 10 m scene's building maps from change against the site's reference scene.

    Returns presence (new structure since the reference), strength (P(change)), observed ground,
    features to keep and info; None when neither this scene nor the reference allows the model
    (the detector then maps by rule). The reference scene itself shows nothing new: it keeps
    its bands (:func:`reference_features`) and maps no building; ground it did not see is never
    observed by later scenes' change maps. A scene lacking the bands the model needs observes nothing.
    """
    ref = reference_in(history)
    doc = model()
    about = {"change_model": doc["name"], "change_model_version": doc["version"],
             "change_model_sha256": doc["sha256"][:16]}
    empty = np.zeros(valid.shape, bool)
    if ref is None or next(iter(ref.values())).shape != valid.shape:
        if band_set(bands) is None:
            return None
        return empty, empty.astype(np.float32), valid, reference_features(bands, valid), {**about, "change_reference": True}
    out = change_map(ref, bands, valid, doc)
    if out is None:
        return empty, empty.astype(np.float32), empty, {}, {**about, "missing_bands": sorted(set(BANDS) - set(bands))}
    presence, p, both, info = out
    # strength: the strongest change within a pixel of here, so a rim pixel the map drops on one date
    # (its outline wavers by a pixel at 10 m) is "unknown" to the tracker, not a structure gone
    p = np.where(both, ndimage.maximum_filter(p, size=3), 0.0).astype(np.float32)
    share = float(presence.sum()) / max(int(both.sum()), 1)
    if share > MAX_CHANGED_SHARE:  # changed almost everywhere: the scene, not the ground (see the constant)
        return empty, empty.astype(np.float32), empty, {}, {**about, **info, "changed_share": round(share, 3),
                                                           "not_compared": "changed almost everywhere"}
    return presence, p, both, {}, {**about, **info}
