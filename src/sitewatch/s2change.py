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
  NDVI and NDBI of each date and their changes (from reflectance, where the bands exist), and
  3x3 texture of each date's brightness and its change.
- **A small model over them**: a logistic regression on the cues and their squares, fitted by
  ``benchmarks/train_s2change.py`` on the OSCD dev cities (leave-one-city-out figures in
  ``benchmarks/README.md``). Only coefficients ship (``data/s2_change_model.json``, a few kB);
  the forward pass is numpy.
- **Missing bands**: one model per band set, fitted on the same pixels: all of blue, green, red,
  nir, swir16; without swir16 (no NDBI cues); visible only (no NDVI either). The largest set
  both dates have is used and named in the evidence; fewer than blue, green and red: no model
  (:func:`band_set` returns None and the detector falls back to its per-date rule map).

The reference is the first scene the site stored its bands for (``features`` of its maps,
float16 reflectance, kept raw so each later scene is normalised on the ground both saw);
ground the reference did not see is not observed by later change maps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy import ndimage

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


def _robust(x: np.ndarray, sample: np.ndarray) -> np.ndarray:
    q25, q50, q75 = np.percentile(x[sample], [25, 50, 75]) if sample.any() else (0.0, 0.0, 1.0)
    return ((x - q50) / max(float(q75 - q25), 1e-4)).astype(np.float32)


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


def _tex(x: np.ndarray) -> np.ndarray:
    m = ndimage.uniform_filter(x, 3)
    return np.sqrt(np.maximum(ndimage.uniform_filter(x * x, 3) - m * m, 0))


def features(ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], both: np.ndarray,
             bands: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per-pixel cues (float32, clipped) of change from ``ref`` to ``cur`` (reflectance) over ``bands``."""
    r, c = normalise(ref, cur, both, bands)
    out: dict[str, np.ndarray] = {}
    d2 = np.zeros(both.shape, np.float32)
    for b in bands:
        d = c[b] - r[b]
        out[f"ref_{b}"], out[f"cur_{b}"], out[f"d_{b}"] = r[b], c[b], d
        out[f"d3_{b}"] = ndimage.uniform_filter(d, 3)
        out[f"dhp_{b}"] = d - ndimage.uniform_filter(d, HAZE_WIN)
        d2 += d * d
    cva = np.sqrt(d2 / len(bands))
    out["cva"], out["cva3"], out["cva5"] = cva, ndimage.uniform_filter(cva, 3), ndimage.uniform_filter(cva, 5)
    out["cva_hp"] = cva - ndimage.uniform_filter(cva, HAZE_WIN)
    if "nir" in bands:
        nr, nc = _nd(ref["nir"], ref["red"]), _nd(cur["nir"], cur["red"])
        out["ndvi_ref"], out["ndvi_cur"], out["d_ndvi"] = nr, nc, nc - nr
    if "swir16" in bands:
        br, bc = _nd(ref["swir16"], ref["nir"]), _nd(cur["swir16"], cur["nir"])
        out["ndbi_ref"], out["ndbi_cur"], out["d_ndbi"] = br, bc, bc - br
    vis = [b for b in bands if b in ("blue", "green", "red")]
    br_r = np.mean([r[b] for b in vis], axis=0)
    br_c = np.mean([c[b] for b in vis], axis=0)
    out["bright_d"] = br_c - br_r
    out["tex_ref"], out["tex_cur"] = _tex(br_r), _tex(br_c)
    out["tex_d"] = out["tex_cur"] - out["tex_ref"]
    return {k: np.clip(np.nan_to_num(v), -20, 20).astype(np.float32) for k, v in out.items()}


def design(f: Mapping[str, np.ndarray], names: list[str]) -> np.ndarray:
    """(n_pixels, 2 n) matrix: the named cues and their squares (a cheap non-linearity)."""
    cols = [f[k].ravel() for k in names]
    cols += [x * x for x in cols]
    return np.stack(cols, axis=1).astype(np.float32)


@lru_cache(maxsize=1)
def model() -> dict:
    """The shipped model (``data/s2_change_model.json``), validated; ``sha256`` of its bytes added."""
    raw = resources.files("sitewatch").joinpath(MODEL_FILE).read_bytes()
    return validate(json.loads(raw), hashlib.sha256(raw).hexdigest())


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
    f = features(ref, cur, both, bands)
    x = design(f, list(sub["cues"]))
    z = (x - np.asarray(sub["mean"], np.float32)) / np.asarray(sub["scale"], np.float32)
    logit = z @ np.asarray(sub["coef"], np.float32) + np.float32(sub["intercept"])
    p = (1 / (1 + np.exp(-np.clip(logit, -30, 30)))).reshape(both.shape).astype(np.float32)
    return np.where(both, p, 0.0).astype(np.float32), float(sub["threshold"])


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
    presence = (p >= thr) & both
    info = {"change_model": doc["name"], "change_model_version": doc["version"],
            "change_model_sha256": doc.get("sha256", "")[:16], "change_bands": list(bands),
            "change_threshold": round(thr, 4)}
    return presence, p, both, info
