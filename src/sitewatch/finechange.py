"""Two-date building change at 0.3-2 m: what changed between a site's reference scene and this one.

Comparing two per-date roof maps fails on real imagery: the per-date building model is weak
(held-out pixel F1 0.16), so each date's map misses most roofs and maps different ones, and
the two maps' disagreement is mostly noise (LEVIR-CD samples: 6 of 105 changed buildings found).
So at fine resolution the detector also asks one question per pixel, learnt from real labelled
pairs: did the ground change since the reference scene? (the same design as
:mod:`sitewatch.s2change` at 10 m).

- **Normalisation.** Each band of each date in robust units of its own scene on the ground
  both dates saw (median and interquartile range): a uniform gain or haze is no change.
- **Cues per pixel** (:func:`features`): both dates' bands and their differences; the change
  vector and the brightness change averaged over windows of 1.5, 4.5 and 12.5 m (3, 9, 25 px at
  0.5 m; sized in metres so 0.3 m and 2 m imagery read the same ground); chromaticity (excess green, red-blue) of
  each date and its change; texture (local spread over 1.5 and 4.5 m) and edge strength of
  each date and their change; the per-date building probability of :mod:`sitewatch.buildings`
  of both dates and its change; shadow adjacency (dark ground within a few metres) of each
  date and its change; colour saturation of each date and its change (grey roofs and concrete
  against soil and lawn); dark ground on one side of a pixel only (:func:`_shadow_side`: a roof's
  shadow falls away from the sun, a road or a graded lot casts none) of each date and its change.
- **A small model over them**: boosted trees (a logistic on the cues and their squares is read too),
  fitted by ``benchmarks/train_finechange.py`` on the LEVIR-CD sample pairs, held out by pair. Only
  the trees' node arrays ship (``data/fine_change_model.json``); the forward pass is numpy.
- **Direction**: a change region whose building probability fell (mean over the region, by more
  than the model's ``gone_margin``) is a building gone; any other is new. A reference roof the model
  kept is also gone where the roof itself shows it (:mod:`sitewatch.gone`: the model misses pale roofs
  coming off pale ground).

RGB only: the labelled fine pairs hold no near-infrared, so a NIR band is not read.
The reference is the first scene that kept its bands (:func:`reference_features`: each band
quantised to uint8 on a square-root scale, plus its building probability as uint8: 4 bytes a
pixel, 100 MB uncompressed for a 2.5 km site at 0.5 m, 5000 x 5000 px).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from . import components, pixelmodel
from . import gone as gone_rule

#: Bands the model reads, in order.
BANDS = ("red", "green", "blue")
#: ``StructureMaps.features`` key prefix of the reference scene's kept arrays.
REF_PREFIX = "fineref."
#: Windows (metres) of the local means: a few pixels, a small building, a large one.
SCALES_M = (1.5, 4.5, 12.5)
MODEL_FILE = "data/fine_change_model.json"


def _win(m: float, res: float) -> int:
    return max(3, int(round(m / res)) | 1)


def _quantise(x: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, float]:
    """uint8 codes of ``x`` on a square-root scale up to its 99.9th percentile (0: not valid)."""
    v = x[valid & np.isfinite(x)]
    hi = float(np.percentile(v, 99.9)) if v.size else 1.0
    hi = max(hi, 1e-6)
    q = np.round(np.sqrt(np.clip(np.nan_to_num(x) / hi, 0, 1)) * 254) + 1
    return np.where(valid & np.isfinite(x), q, 0).astype(np.uint8), hi


def reference_features(bands: Mapping[str, np.ndarray], valid: np.ndarray,
                       pb: np.ndarray) -> dict[str, np.ndarray]:
    """What a reference scene keeps for later dates: its bands and building probability, uint8."""
    out: dict[str, np.ndarray] = {}
    for b in BANDS:
        q, hi = _quantise(bands[b].astype(np.float32), valid)
        out[REF_PREFIX + b] = q
        out[REF_PREFIX + b + ".hi"] = np.array([hi], np.float32)
    out[REF_PREFIX + "pb"] = np.round(np.clip(pb, 0, 1) * 255).astype(np.uint8)
    return out


def reference_of(features: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """The reference bands (float32, NaN where it saw no clear ground) and building probability
    kept in a map's ``features``, or None when it is not a reference."""
    if REF_PREFIX + "pb" not in features:
        return None
    out = {}
    for b in BANDS:
        q = np.asarray(features[REF_PREFIX + b])
        hi = float(np.asarray(features[REF_PREFIX + b + ".hi"])[0])
        x = ((q.astype(np.float32) - 1) / 254) ** 2 * hi
        out[b] = np.where(q > 0, x, np.nan).astype(np.float32)
    return out, np.asarray(features[REF_PREFIX + "pb"]).astype(np.float32) / 255


#: Tile size (pixels) large scenes are worked in: the cues of a 5000 x 5000 px scene at once would
#: take ~4 GB; a tile's, ~0.2 GB.
TILE_PX = 1024


def _tiles(shape: tuple[int, int], halo: int, tile: int = TILE_PX):
    """(padded window, inner window within it, inner window in the scene) covering ``shape``."""
    h, w = shape
    for r0 in range(0, h, tile):
        for c0 in range(0, w, tile):
            r1, c1 = min(r0 + tile, h), min(c0 + tile, w)
            pr0, pc0 = max(0, r0 - halo), max(0, c0 - halo)
            pr1, pc1 = min(h, r1 + halo), min(w, c1 + halo)
            yield ((slice(pr0, pr1), slice(pc0, pc1)), (slice(r0 - pr0, r1 - pr0), slice(c0 - pc0, c1 - pc0)),
                   (slice(r0, r1), slice(c0, c1)))


def building_probability(bands: Mapping[str, np.ndarray], valid: np.ndarray, res: float) -> np.ndarray:
    """One date's per-pixel building probability (:mod:`sitewatch.buildings`), 0 off ``valid``;
    in tiles (its widest window, 30 m, read across the tile's edge)."""
    from . import align, buildings

    raw = {b: np.where(valid, np.nan_to_num(bands[b].astype(np.float32)), np.nan) for b in BANDS}
    rel = align.relative_to_ground(raw, align.ground_levels(raw, valid))
    out = np.zeros(valid.shape, np.float32)
    halo = _win(30.0, res) // 2 + _win(20.0, res) // 2 + 8
    for pad, inner, dst in _tiles(valid.shape, halo):
        c = buildings.cues({k: v[pad] for k, v in rel.items()}, {k: v[pad] for k, v in raw.items()}, valid[pad], res)
        out[dst] = buildings.probability(c)[inner]
    return np.where(valid, out, 0.0).astype(np.float32)


def change_probability(ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], both: np.ndarray, res: float,
                       pb_ref: np.ndarray, pb_cur: np.ndarray, m: Mapping | None = None) -> np.ndarray:
    """P(change) per pixel from ``ref`` to ``cur``, in tiles (each read with a margin as wide as
    its widest window, in the scene's robust units), 0 where ``both`` is False."""
    u = units(ref, cur, both)
    out = np.zeros(both.shape, np.float32)
    halo = _win(SCALES_M[-1], res) // 2 + 2 * _win(4.5, res) + 8
    for pad, inner, dst in _tiles(both.shape, halo):
        f = features({b: ref[b][pad] for b in BANDS}, {b: cur[b][pad] for b in BANDS}, both[pad], res,
                     pb_ref[pad], pb_cur[pad], u)
        out[dst] = probability(f, both[pad], m)[inner]
    return out


def units(ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], both: np.ndarray
          ) -> dict[str, tuple[float, float]]:
    """Robust units (median, spread) of each band of each date (``ref.red``, ``cur.red``, ...) on the
    ground both saw: what makes a uniform gain or haze no change."""
    sample = pixelmodel.unit_sample(both)
    return {f"{tag}.{b}": u for tag, img in (("ref", ref), ("cur", cur))
            for b, u in zip(BANDS, pixelmodel.robust_units(img, BANDS, sample))}


_mean, _tex = pixelmodel.masked_mean, pixelmodel.local_spread


def _grad(x: np.ndarray) -> np.ndarray:
    return np.hypot(ndimage.sobel(x, 0), ndimage.sobel(x, 1)).astype(np.float32) / 8


def _chroma(raw: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    r, g, b = (np.nan_to_num(raw[k].astype(np.float32)) for k in BANDS)
    s = np.maximum(r + g + b, 1e-4)
    return (2 * g - r - b) / s, (r - b) / s


#: How far (metres) either side of a pixel :func:`_shadow_side` compares dark ground.
SHADOW_SIDE_M = 3.0
_saturation = pixelmodel.saturation


def _dark(br: np.ndarray, w: np.ndarray, res: float) -> np.ndarray:
    """Share of dark ground (brightness under -1 robust unit) over the finest scale: shadow's cue."""
    return _mean((br < -1.0).astype(np.float32), w, _win(SCALES_M[0], res))


def _shadow_side(dark: np.ndarray, res: float) -> np.ndarray:
    """:func:`sitewatch.pixelmodel.shadow_side` over SHADOW_SIDE_M."""
    return pixelmodel.shadow_side(dark, res, SHADOW_SIDE_M)


def features(ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], both: np.ndarray, res: float,
             pb_ref: np.ndarray, pb_cur: np.ndarray,
             unit: Mapping[str, tuple[float, float]] | None = None) -> dict[str, np.ndarray]:
    """Per-pixel cues (float32, as signed logs) of change from ``ref`` to ``cur`` (reflectance, RGB).

    ``pb_ref``/``pb_cur``: each date's building probability (:func:`building_probability`);
    ``unit``: the bands' robust units (:func:`units`; computed here when not given, as a tile of a
    larger scene must be given its scene's). Ground either date did not see is left out of every
    local window."""
    w = both.astype(np.float32)
    u = unit if unit is not None else units(ref, cur, both)

    def robust(img: Mapping[str, np.ndarray], tag: str, b: str) -> np.ndarray:
        q50, spread = u[f"{tag}.{b}"]
        return ((np.nan_to_num(img[b].astype(np.float32)) - q50) / spread).astype(np.float32) * w

    r = {b: robust(ref, "ref", b) for b in BANDS}
    c = {b: robust(cur, "cur", b) for b in BANDS}
    out: dict[str, np.ndarray] = {}
    d2 = np.zeros(both.shape, np.float32)
    for b in BANDS:  # the bands themselves are read as brightness and chromaticity: less collinear
        d = c[b] - r[b]
        d2 += d * d
    cva = np.sqrt(d2 / len(BANDS))
    br_r, br_c = sum(r.values()) / 3, sum(c.values()) / 3
    bd = br_c - br_r
    out["bright_ref"], out["bright_cur"] = br_r, br_c
    out["cva"], out["bright_d"] = cva, bd
    k1, k2, k3 = (_win(m, res) for m in SCALES_M)
    for k, tag in ((k1, "s"), (k2, "m"), (k3, "l")):
        out[f"cva_{tag}"] = _mean(cva, w, k)
        out[f"bright_d_{tag}"] = _mean(bd, w, k)
    (exg_r, rb_r), (exg_c, rb_c) = _chroma(ref), _chroma(cur)
    out["exg_ref"], out["exg_cur"] = exg_r * w, exg_c * w
    out["d_exg"] = _mean((exg_c - exg_r) * w, w, k1)
    out["rb_ref"], out["rb_cur"] = rb_r * w, rb_c * w
    out["d_rb"] = _mean((rb_c - rb_r) * w, w, k1)
    sr, sc = _saturation(ref) * w, _saturation(cur) * w  # a grey roof or road against coloured soil or lawn
    out["sat_ref"], out["sat_cur"] = _mean(sr, w, k1), _mean(sc, w, k1)
    out["sat_d"] = out["sat_cur"] - out["sat_ref"]
    for k, tag in ((k1, "s"), (k2, "m")):
        tr, tc = _tex(br_r, w, k), _tex(br_c, w, k)
        out[f"tex_ref_{tag}"], out[f"tex_cur_{tag}"], out[f"tex_d_{tag}"] = tr, tc, tc - tr
    gr, gc = _grad(br_r) * w, _grad(br_c) * w
    out["grad_ref"], out["grad_cur"] = _mean(gr, w, k1), _mean(gc, w, k1)
    out["grad_d"] = out["grad_cur"] - out["grad_ref"]
    out["grad_d_m"] = _mean(gc - gr, w, k2)
    pr, pc = np.nan_to_num(pb_ref) * w, np.nan_to_num(pb_cur) * w
    out["pb_ref"], out["pb_cur"] = _mean(pr, w, k1), _mean(pc, w, k1)
    out["pb_d"] = out["pb_cur"] - out["pb_ref"]
    out["pb_d_m"] = _mean(pc - pr, w, k2)
    ks = _win(4.0, res)
    dr, dc = _dark(br_r, w, res), _dark(br_c, w, res)  # (k1 is the finest scale's window)
    sr, sc = ndimage.maximum_filter(dr, ks) * w, ndimage.maximum_filter(dc, ks) * w
    out["shadow_ref"], out["shadow_cur"], out["shadow_d"] = sr, sc, sc - sr
    ar, ac = _shadow_side(dr, res) * w, _shadow_side(dc, res) * w
    out["shadow_side_ref"], out["shadow_side_cur"], out["shadow_side_d"] = ar, ac, ac - ar
    # signed log (asinh): robust units are heavy-tailed (a bright roof on smooth sand or grass is tens of
    # units out); compressed, the tails still rank as more change, and squares stay in the range learnt
    return {k: np.arcsinh(np.nan_to_num(v)).astype(np.float32) for k, v in out.items()}


design = pixelmodel.design
_slot = pixelmodel.ModelSlot(MODEL_FILE, lambda doc, sha256: validate(doc, sha256))
#: ``model()`` the model in use (the shipped one unless a benchmark's ``use(doc)`` set a held-out
#: one; ``use(None)`` goes back), ``load(raw)`` a validated document with its bytes' SHA-256.
model, load, use, _shipped = _slot.model, _slot.load, _slot.use, _slot.shipped


def validate(doc: dict, sha256: str = "") -> dict:
    """Check a model document's shape: a logistic's coefficients, or each tree's node arrays, match its cues."""
    for key in ("name", "version", "cues", "threshold"):
        if key not in doc:
            raise ValueError(f"fine change model: no {key!r}")
    if doc.get("kind", "logistic") == "trees":
        pixelmodel.check_trees(doc, len(doc["cues"]), "fine change model")
        return {**doc, "sha256": sha256}
    n = 2 * len(doc["cues"])
    if not all(k in doc for k in ("mean", "scale", "coef", "intercept")) or not (
            len(doc["mean"]) == len(doc["scale"]) == len(doc["coef"]) == n):
        raise ValueError(f"fine change model: coefficients do not match its {len(doc['cues'])} cues")
    return {**doc, "sha256": sha256}


_trees_logit = pixelmodel.trees_logit


def probability(f: Mapping[str, np.ndarray], both: np.ndarray, m: Mapping | None = None) -> np.ndarray:
    """P(change) per pixel from the cues ``f`` (0 where ``both`` is False)."""
    doc = m if m is not None else model()
    names = list(doc["cues"])
    shape = both.shape
    p = np.zeros(shape, np.float32)
    trees = doc.get("kind", "logistic") == "trees"
    if not trees:
        mean, scale = np.asarray(doc["mean"], np.float32), np.asarray(doc["scale"], np.float32)
        coef = np.asarray(doc["coef"], np.float32) / scale
        icpt = np.float32(doc["intercept"]) - np.float32(mean @ coef)
    rows = max(1, 1_000_000 // max(shape[1], 1))  # row blocks: the design matrix stays ~0.4 GB or less
    for r0 in range(0, shape[0], rows):
        sl = slice(r0, r0 + rows)
        if trees:
            logit = _trees_logit(np.stack([f[k][sl].ravel() for k in names], axis=1), doc)
        else:
            x = design({k: f[k][sl] for k in names}, names, doc.get("lo"), doc.get("hi"))
            logit = x @ coef + icpt
        p[sl] = (1 / (1 + np.exp(-np.clip(logit, -30, 30)))).reshape(-1, shape[1])
    return np.where(both, p, 0.0).astype(np.float32)


hysteresis = pixelmodel.hysteresis


def regions(p: np.ndarray, both: np.ndarray, doc: Mapping, res: float) -> np.ndarray:
    """Change presence: hysteresis on P(change), smoothed over the model's ``smooth_m`` first (a
    pixel's change is read with its neighbours': a building is several metres wide), holes filled,
    parts narrower than ``open_m`` cut off, specks under the model's ``min_area_m2`` dropped (all
    settings chosen on held-out maps by the training script)."""
    sm = ndimage.gaussian_filter(p, max(0.5, float(doc.get("smooth_m", 0.5)) / res)) if doc.get("smooth_m", 0) else p
    pres = hysteresis(sm, float(doc["threshold"]), float(doc.get("grow_threshold", doc["threshold"]))) & both
    pres = ndimage.binary_fill_holes(pres) & both
    k = int(round(float(doc.get("open_m", 0.0)) / res))
    if k >= 2:  # cut the thin parts (a drive, a kerb, a road's edge) off a change region: buildings are wide
        pres = ndimage.binary_opening(pres, structure=np.ones((k, k), bool))
    min_px = max(4, int(round(float(doc.get("min_area_m2", 20.0)) / res ** 2)))
    lab, n = components.label(pres, corners=True)
    if not n:
        return pres
    sizes = ndimage.sum_labels(pres, lab, np.arange(1, n + 1))
    return np.concatenate([[False], sizes >= min_px])[lab]


def split_direction(pres: np.ndarray, pb_ref: np.ndarray, pb_cur: np.ndarray, margin: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(new, gone): each change region by the mean change of building probability over it."""
    lab, n = components.label(pres, corners=True)
    if not n:
        return pres, np.zeros(pres.shape, bool)
    d = np.asarray(ndimage.mean(pb_cur - pb_ref, lab, np.arange(1, n + 1)))
    gone = np.concatenate([[False], d < -margin])[lab]
    return pres & ~gone, gone


#: No-data specks up to this size (m²) inside seen ground are read as seen, with the change of their
#: surroundings: they cannot hide a building (the smallest is 60 m²), yet a change region touching one
#: would otherwise be "incomplete" and wait for a later scene. 8-bit imagery without a nodata tag is read
#: with 0 as no data (``sitewatch.reader``), so every pixel of deep shadow with a 0 in one band is such a
#: speck (LEVIR-CD samples: 100-600 per 128 m tile).
SPECK_M2 = 10.0


def _specks(unseen: np.ndarray, shape: tuple[int, ...], res: float) -> np.ndarray:
    lab, n = components.label(unseen)
    if not n:
        return np.zeros(shape, bool)
    sizes = ndimage.sum_labels(unseen, lab, np.arange(1, n + 1))
    small = sizes * res * res <= SPECK_M2
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    small[edge[edge > 0] - 1] = False  # at the window's edge it is the edge, not a speck
    return np.concatenate([[False], small])[lab]


#: Share of a reference roof a "gone" change region must cover for the roof to be gone: a building goes
#: whole; a region over part of one is its surroundings changing (a fence or a tower taken down beside it,
#: a shadow), not the roof (the demo compound's desecuritisation read as a 188 m² building_removed).
GONE_SHARE = 0.5


def _whole_gone(roofs: np.ndarray, gone: np.ndarray) -> np.ndarray:
    """The reference's roofs less those mostly covered by change regions where a building went."""
    if not gone.any() or not roofs.any():
        return roofs
    lab, n = components.label(roofs, corners=True)
    share = np.asarray(ndimage.mean(gone, lab, np.arange(1, n + 1)))
    return roofs & ~np.concatenate([[False], share >= GONE_SHARE])[lab]


#: Share of the shared clear ground a scene may show changed before it is not compared at all (as
#: :data:`sitewatch.s2change.MAX_CHANGED_SHARE`: snow, haze or a season the masks missed). Higher than at
#: 10 m: a fine window can be small and mostly built over between two dates (LEVIR-CD's 128 m tiles: up to
#: 25 % labelled change, 25-42 % mapped held out), and the model's units already take out uniform haze.
MAX_CHANGED_SHARE = 0.6


#: Most building probability (mean over the roof) the reference may have had under a roof this scene's
#: own per-date map adds: where the reference's per-date model already half-saw a roof, the change model's
#: "unchanged" is believed, and the roof is the reference's, missed by its map, not a new one. LEVIR-CD samples
#: through monitor, held out (2026-12-03): pixel F1 0.574 joining every own roof, 0.594 with 0.2, 0.595 with
#: 0.1, 0.575 with 0.3, 0.596 joining none; the generated series' bright flat and blue roofs on sand, which
#: only the own map sees, still count with 0.2 (tests/test_accuracy_floor.py).
OWN_REF_MAX = 0.2


def _own_roofs(own: np.ndarray, pb_ref: np.ndarray) -> np.ndarray:
    """The scene's own roofs that stand where the reference's building probability was low."""
    lab, n = components.label(own, corners=True)
    if not n:
        return own
    before = np.asarray(ndimage.mean(pb_ref, lab, np.arange(1, n + 1)))
    return np.concatenate([[False], before < OWN_REF_MAX])[lab]


def for_scene(bands: Mapping[str, np.ndarray], valid: np.ndarray, history: object,
              building: np.ndarray, strength: np.ndarray, res: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], dict]:
    """A fine scene's building maps from change against the site's reference scene.

    ``building``/``strength``: this scene's own per-date building map. The reference scene (the first
    with no earlier reference) keeps its bands and building probability (:func:`reference_features`)
    and its own per-date map, its strength only where it maps a roof (elsewhere it saw none). A later
    scene's map is the reference's roofs, less the change regions where a building went, plus those
    where one came: so the tracker's "new" and "removed" are the change model's, and two dates' per-date
    maps never disagree by noise. Ground the reference did not see is not observed by later maps.

    Returns presence, strength, observed ground, features to keep and info.
    """
    doc = model()
    about = {"change_model": doc["name"], "change_model_version": doc["version"],
             "change_model_sha256": doc.get("sha256", "")[:16]}
    found = next(((h, reference_of(h.features)) for h in history  # type: ignore[attr-defined]
                  if REF_PREFIX + "pb" in h.features), None)
    pb_cur = building_probability(bands, valid, res)
    if found is None or found[1][1].shape != valid.shape:
        keep = reference_features(bands, valid, pb_cur)
        seen = valid | _specks(~valid, valid.shape, res)
        return building, np.where(building, strength, 0.0).astype(np.float32), seen, keep, {**about, "change_reference": True}
    h, (ref, pb_ref) = found
    both = valid & np.all([np.isfinite(ref[b]) for b in BANDS], axis=0)
    empty = np.zeros(valid.shape, bool)
    if both.sum() < 100:
        return empty, empty.astype(np.float32), both, {}, {**about, "too_little_shared_ground": True}
    p = change_probability(ref, bands, both, res, pb_ref, pb_cur, doc)
    both = both | _specks(~both, valid.shape, res)
    pres = regions(p, both, doc, res)
    share = float(pres.sum()) / max(int(both.sum()), 1)
    info = {**about, "change_threshold": doc["threshold"], "grow_threshold": doc.get("grow_threshold", doc["threshold"])}
    if share > MAX_CHANGED_SHARE:  # changed almost everywhere: the scene, not the ground
        return empty, empty.astype(np.float32), empty, {}, {**info, "changed_share": round(share, 3),
                                                           "not_compared": "changed almost everywhere"}
    new, gone = split_direction(pres, pb_ref, pb_cur, float(doc.get("gone_margin", 0.15)))
    ref_roof = _whole_gone(np.asarray(h.presence["building"], bool), gone)
    # a roof the change model kept is still gone where the roof itself shows it (:mod:`sitewatch.gone`: the
    # scene's own map dropped it, the whole roof changed, and its pattern is found nowhere near): pale roofs
    # coming off pale ground, which the model (Texas suburbs, new roofs darker than the soil) reads as no change
    lost = gone_rule.gone_roofs(ref_roof, np.asarray(building, bool), ref, bands, both, res)
    if lost.any():
        ref_roof = ref_roof & ~lost  # a new array: the reference's stored map must not change
        gone = gone | lost
        info["roofs_gone_by_rule"] = int(components.label(lost, corners=True)[1])
    # this scene's own roof map too: roofs unlike any the change model learnt from (a flat roof brighter than
    # pale ground, a blue steel roof) are still seen where the per-date model or the blue-roof rule maps them
    own = _own_roofs(np.asarray(building, bool) & ~gone, pb_ref)  # this scene's own roofs, where no building went
    presence = (ref_roof | new | own) & both
    # strength: the change model's where it maps new, the reference's on its roofs, elsewhere this scene's own
    # per-date response (a faint roof the per-date map turned down is "unknown" to the tracker, not "gone",
    # as before this model), none where a building went
    strength_out = np.where(new, p, np.where(ref_roof & ~own, h.strength["building"], np.where(gone, 0.0, strength)))
    return presence, np.where(both, strength_out, 0.0).astype(np.float32), both, {}, info
