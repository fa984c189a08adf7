"""Per-date building probability from several image cues and a small model learned on real roofs.

Brightness alone fails on real imagery: roofs are often no brighter than sand, grey roofs sit
in grey towns. So each pixel is described by cues that hold across sensors, measured in units
of the scene's own open ground and in windows sized in metres (so 0.3 m and 0.5 m imagery
give the same cues):

- colour (chroma, blueness, vegetation index) and brightness against the ground;
- texture (local spread) and edges (gradient strength, edge density): roofs are flat inside,
  sharp at their outline;
- a morphological building index (white top-hats at 3-20 m: bright things of building size);
- dark top-hats and shadow adjacency (dark ground within a few metres: a building's shadow is
  evidence of its height, a paved yard has none);
- context (mean brightness over 10 and 30 m).

Two models were fitted by ``benchmarks/train_buildings.py`` on real labelled tiles (SpaceNet Rio
and Atlanta, Inria Austin, xBD Joplin; held-out figures by leave-one-dataset-out in
benchmarks/README.md) and ship in ``data/building_model.json`` (coefficients and node arrays only;
the imagery and labels are not shipped, their licences do not allow it):

- ``fine``: a logistic over those cues and their squares (:func:`probability`). The 0.3-2 m change
  model (:mod:`sitewatch.finechange`) reads its probability as a cue, so it stays as fitted.
- ``map``: boosted trees over those cues, ten more (:data:`MAP_EXTRA`: saturation, one-sided
  shadow, edge coherence, ...) and every cue's rank within its scene (:func:`map_probability`): the
  per-date roof map (:func:`roof_map`, cleaned with :func:`map_settings`). Without it the map is
  cleaned from the logistic's probability, as before.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy import ndimage

#: Names of the cues, in model order (the model file lists them too and is checked against this).
CUES = ("bright", "log_bright", "chroma", "blueness", "redness", "veg", "tex3", "tex8", "grad", "edges5",
        "mbi", "mbi_small", "mbi_large", "dark_tophat", "shadow_near", "shadow_near_large", "ctx10", "ctx30",
        "bright_minus_ctx", "flat_and_bright")


def _win(m: float, res: float) -> int:
    return max(3, int(round(m / res)) | 1)


def cues(rel: Mapping[str, np.ndarray], raw: Mapping[str, np.ndarray], valid: np.ndarray,
         res: float) -> dict[str, np.ndarray]:
    """Per-pixel cues (float32) from bands relative to ground (``rel``) and raw reflectance (``raw``)."""
    r, g, b = (np.nan_to_num(rel[k], nan=1.0).astype(np.float32) for k in ("red", "green", "blue"))
    rr, gg, bb = (np.nan_to_num(raw[k], nan=0.0).astype(np.float32) for k in ("red", "green", "blue"))
    br = (r + g + b) / 3
    br = np.where(valid, br, 1.0).astype(np.float32)
    s = np.maximum(rr + gg + bb, 1e-4)
    out: dict[str, np.ndarray] = {}
    out["bright"] = np.clip(br, 0, 4)
    out["log_bright"] = np.log(np.clip(br, 0.05, 4))
    mx = np.maximum(np.maximum(rr, gg), bb)
    mn = np.minimum(np.minimum(rr, gg), bb)
    out["chroma"] = (mx - mn) / s
    out["blueness"] = (bb - rr) / s
    out["redness"] = (rr - gg) / s
    out["veg"] = (2 * gg - rr - bb) / s  # excess green, even with nir: the model was fitted on RGB tiles
    k3, k8 = _win(3, res), _win(8, res)
    m3 = ndimage.uniform_filter(br, k3)
    out["tex3"] = np.sqrt(np.maximum(ndimage.uniform_filter(br * br, k3) - m3 * m3, 0))
    m8 = ndimage.uniform_filter(br, k8)
    out["tex8"] = np.sqrt(np.maximum(ndimage.uniform_filter(br * br, k8) - m8 * m8, 0))
    sm = ndimage.gaussian_filter(br, max(0.5, 0.5 / res))
    grad = np.hypot(ndimage.sobel(sm, 0), ndimage.sobel(sm, 1)) / 8.0 * (0.5 / res)
    out["grad"] = grad
    out["edges5"] = ndimage.uniform_filter((grad > 0.08).astype(np.float32), _win(5, res))
    tops = []
    for m in (3.0, 6.0, 12.0, 20.0):
        k = _win(m, res)
        tops.append(br - ndimage.grey_opening(ndimage.uniform_filter(br, 3) if res < 0.4 else br, size=(k, k)))
    out["mbi"] = np.clip(np.mean(tops, axis=0), -1, 3)
    out["mbi_small"] = np.clip(tops[0], -1, 3)
    out["mbi_large"] = np.clip(tops[3], -1, 3)
    kd = _win(6, res)
    out["dark_tophat"] = np.clip(ndimage.grey_closing(br, size=(kd, kd)) - br, 0, 2)
    dark = (br < 0.6).astype(np.float32)
    out["shadow_near"] = ndimage.maximum_filter(ndimage.uniform_filter(dark, _win(1.5, res)), _win(5, res))
    out["shadow_near_large"] = ndimage.uniform_filter(dark, _win(12, res))
    out["ctx10"] = ndimage.uniform_filter(br, _win(10, res))
    out["ctx30"] = ndimage.uniform_filter(br, _win(30, res))
    out["bright_minus_ctx"] = br - out["ctx10"]
    out["flat_and_bright"] = np.clip(br, 0, 3) * np.exp(-out["tex3"] / 0.1)
    return {k: np.nan_to_num(v.astype(np.float32)) for k, v in out.items()}


#: Cues only the per-date map's trees read (after :data:`CUES`): saturation over 1.5 and 4.5 m (grey roofs
#: against soil and lawn), texture over 1.5 m, edge strength over 4.5 m, dark ground (under -1 robust unit of
#: the scene's brightness) over 1.5 m, dark ground on one side only 3 and 6 m away (a roof's shadow; a road
#: casts none), edge orientation coherence over 3 m (a roof's straight outline against a tree's crown),
#: brightness in the scene's robust units, and brightness against its 30 m context.
MAP_EXTRA = ("sat_s", "sat_m", "tex1", "grad_m", "dark_s", "shadow_side3", "shadow_side6", "coherence3",
             "bright_robust", "bright_minus_ctx30")
MAP_CUES = CUES + MAP_EXTRA
#: What the trees read: each map cue's value, then its rank within the scene (:func:`scene_quantiles`): the
#: sets differ by sensor (Austin's ground is as grey as Rio's roofs, xBD's texture half of Austin's), and a
#: cue's place in its own scene carries across sensors where its value does not (held out by dataset, pooled
#: pixel F1 0.27 on values alone, 0.41 with the ranks; benchmarks/README.md).
MAP_FEATURES = MAP_CUES + tuple("rank." + k for k in MAP_CUES)
#: Quantiles a cue's rank is read against.
RANK_STEPS = 201


def map_cues(rel: Mapping[str, np.ndarray], raw: Mapping[str, np.ndarray], valid: np.ndarray, res: float,
             base: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """:data:`MAP_CUES` per pixel (float32): :func:`cues` (``base`` when the caller has them) and the extra
    ones; windows in metres, brightness in the scene's robust units (median and spread on ``valid``), so a
    gain or haze and the pixel size move them little."""
    from . import pixelmodel

    out = dict(base) if base is not None else cues(rel, raw, valid, res)
    w = valid.astype(np.float32)
    bands = ("red", "green", "blue")
    units = pixelmodel.robust_units(raw, bands, pixelmodel.unit_sample(valid))
    br = sum((np.nan_to_num(raw[b].astype(np.float32)) - q50) / spread for b, (q50, spread) in zip(bands, units))
    br = (br / 3 * w).astype(np.float32)
    k1, k2 = _win(1.5, res), _win(4.5, res)
    sat = pixelmodel.saturation(raw) * w
    out["sat_s"], out["sat_m"] = pixelmodel.masked_mean(sat, w, k1), pixelmodel.masked_mean(sat, w, k2)
    out["tex1"] = pixelmodel.local_spread(out["bright"], w, k1)
    out["grad_m"] = pixelmodel.masked_mean(out["grad"] * w, w, k2)
    dark = pixelmodel.masked_mean((br < -1.0).astype(np.float32), w, k1)
    out["dark_s"] = dark * w
    out["shadow_side3"] = pixelmodel.shadow_side(dark, res, 3.0) * w
    out["shadow_side6"] = pixelmodel.shadow_side(dark, res, 6.0) * w
    sm = ndimage.gaussian_filter(out["bright"], max(0.5, 0.5 / res))
    gy, gx = ndimage.sobel(sm, 0), ndimage.sobel(sm, 1)
    sig = max(1.0, 1.5 / res)
    jxx, jyy, jxy = (ndimage.gaussian_filter(a, sig) for a in (gx * gx, gy * gy, gx * gy))
    out["coherence3"] = np.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy) / np.maximum(jxx + jyy, 1e-6)
    out["bright_robust"] = np.arcsinh(br)
    out["bright_minus_ctx30"] = out["bright"] - out["ctx30"]
    return {k: np.nan_to_num(np.asarray(out[k], np.float32)) for k in MAP_CUES}


def design(c: Mapping[str, np.ndarray], names: tuple[str, ...] = CUES) -> np.ndarray:
    """(n_pixels, n_features) design matrix: the cues and their squares (a cheap non-linearity)."""
    cols = [c[k].ravel() for k in names]
    cols += [x * x for x in cols]
    return np.stack(cols, axis=1).astype(np.float32)


@lru_cache(maxsize=1)
def model() -> dict:
    """The shipped model (``data/building_model.json``): coefficients, scaling, threshold, provenance."""
    text = resources.files("sitewatch").joinpath("data/building_model.json").read_text()
    m = json.loads(text)
    if tuple(m["cues"]) != CUES:
        raise RuntimeError("building_model.json was fitted on other cues: re-run benchmarks/train_buildings.py")
    if "map" in m:
        try:
            m["map"] = validate_map(m["map"])
        except ValueError as e:
            raise RuntimeError(str(e)) from e
    return m


def validate_map(doc: Mapping) -> dict:
    """Check the per-date map's trees: its cues are :data:`MAP_FEATURES` and each tree's node arrays match them."""
    from . import pixelmodel

    if tuple(doc.get("cues", ())) != MAP_FEATURES or doc.get("kind") != "trees" or "threshold" not in doc:
        raise ValueError("building model: the map's trees were fitted on other cues (re-run train_buildings.py)")
    pixelmodel.check_trees(doc, len(MAP_FEATURES), "building model")
    return dict(doc)


_MAP_OVERRIDE: list[dict | None] = []


def map_model() -> dict | None:
    """The per-date map's trees in use: the shipped ones (None when the file holds none: the map is then
    cleaned from the logistic's probability) unless a benchmark's :func:`use_map` set a held-out one."""
    return _MAP_OVERRIDE[-1] if _MAP_OVERRIDE else model().get("map")


def use_map(doc: Mapping | None) -> None:
    """Use the trees ``doc`` (validated) for the per-date map instead of the shipped ones (None: back to them)."""
    _MAP_OVERRIDE.clear()
    if doc is not None:
        _MAP_OVERRIDE.append(validate_map(doc))


def scene_quantiles(c: Mapping[str, np.ndarray], valid: np.ndarray) -> np.ndarray:
    """(cues, RANK_STEPS) quantiles of each map cue over the scene's seen ground (a regular subsample of a
    large scene): what :func:`map_matrix` reads ranks against."""
    from . import pixelmodel

    sample = pixelmodel.unit_sample(valid)
    if not sample.any():
        sample = np.ones_like(valid)
    steps = np.linspace(0, 1, RANK_STEPS)
    return np.stack([np.quantile(c[k][sample], steps) for k in MAP_CUES]).astype(np.float32)


def map_matrix(c: Mapping[str, np.ndarray], q: np.ndarray, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
    """(pixels, MAP_FEATURES) float32: the cues' values at ``rows`` (a row slice of the scene, or flat pixel
    indices), then their ranks in the scene (0-1; ties take the middle of their run) against ``q``."""
    if isinstance(rows, slice):
        vals = [c[k][rows].ravel() for k in MAP_CUES]
    else:
        vals = [c[k].ravel()[rows] for k in MAP_CUES]
    ranks = [(np.searchsorted(qk, v, "left") + np.searchsorted(qk, v, "right")) / (2.0 * len(qk))
             for qk, v in zip(q, vals)]
    return np.stack(vals + ranks, axis=1).astype(np.float32)


def map_probability(c: Mapping[str, np.ndarray], valid: np.ndarray, m: Mapping | None = None) -> np.ndarray:
    """P(building) per pixel from the map's trees over :func:`map_cues` and their ranks in the scene (ranked
    on ``valid``; float32, the cues' shape), in row blocks (the feature matrix of a 5000 x 5000 px scene at
    once would take 6 GB)."""
    from . import pixelmodel

    doc = m if m is not None else map_model()
    if doc is None:
        raise ValueError("building model: no trees for the per-date map")
    q = scene_quantiles(c, valid)
    shape = c[MAP_CUES[0]].shape
    out = np.zeros(shape, np.float32)
    rows = max(1, 500_000 // max(shape[1], 1))
    for r0 in range(0, shape[0], rows):
        sl = slice(r0, r0 + rows)
        logit = pixelmodel.trees_logit(map_matrix(c, q, sl), doc)
        out[sl] = (1 / (1 + np.exp(-np.clip(logit, -30, 30)))).reshape(-1, shape[1])
    return out


def probability(c: Mapping[str, np.ndarray], m: Mapping | None = None) -> np.ndarray:
    """Logistic model over the design matrix: P(building) per pixel, float32, the cues' shape."""
    m = m if m is not None else model()["fine"]
    x = design(c)
    z = (x - np.asarray(m["mean"], np.float32)) / np.asarray(m["scale"], np.float32)
    logit = z @ np.asarray(m["coef"], np.float32) + np.float32(m["intercept"])
    shape = next(iter(c.values())).shape
    return (1 / (1 + np.exp(-np.clip(logit, -30, 30)))).reshape(shape).astype(np.float32)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 30,
                 weights: np.ndarray | None = None) -> dict:
    """L2-regularised logistic regression by Newton's method (numpy only, for the training script)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    z1 = np.hstack([z, np.ones((z.shape[0], 1), np.float32)]).astype(np.float64)
    w = np.zeros(z1.shape[1])
    sw = np.ones(len(y)) if weights is None else weights
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(z1 @ w, -30, 30)))
        grad = z1.T @ (sw * (p - y)) + l2 * np.r_[w[:-1], 0] * len(y)
        h = (z1 * (sw * p * (1 - p))[:, None]).T @ z1 + l2 * len(y) * np.diag(np.r_[np.ones(len(w) - 1), 0])
        step = np.linalg.solve(h, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-6:
            break
    return {"mean": [round(float(v), 6) for v in mean], "scale": [round(float(v), 6) for v in scale],
            "coef": [round(float(v), 6) for v in w[:-1]], "intercept": round(float(w[-1]), 6)}


#: Cleaning of the per-date roof map (not of the probability, which :mod:`sitewatch.finechange` reads as
#: a cue): the probability smoothed over ``smooth_m``; a roof is a connected region above ``rim`` holding
#: a core above ``core`` (hysteresis), opened over ``open_m``, at least ``min_m2``, its small holes filled,
#: its mean probability at least ``mean_p``. ``MAP_BEFORE``: the settings before 2026-12-03.
MAP_BEFORE = {"smooth_m": 1.0, "rim": 0.2, "core": 0.0, "open_m": 3.0, "min_m2": 60.0, "mean_p": 0.35, "hole_m2": 0.0}


def smoothed(p: np.ndarray, res: float, settings: Mapping[str, float] | None = None) -> np.ndarray:
    """The building probability smoothed over the map settings' ``smooth_m`` (float32)."""
    s = {**MAP_BEFORE, **(settings or {})}
    return ndimage.gaussian_filter(p.astype(np.float32), max(0.5, s["smooth_m"] / res))


def roof_map(p: np.ndarray, seen: np.ndarray, res: float, settings: Mapping[str, float] | None = None,
             smooth: np.ndarray | None = None) -> np.ndarray:
    """A per-date roof map from the building probability ``p`` on ground ``seen`` (see ``MAP_BEFORE``);
    ``smooth``: :func:`smoothed` of ``p`` with these settings, when the caller has it already."""
    from . import components

    s = {**MAP_BEFORE, **(settings or {})}
    ps = np.where(seen, smoothed(p, res, s) if smooth is None else smooth, 0.0)
    roof = ps > s["rim"]
    k = int(round(s["open_m"] / res))
    if k >= 2:
        roof = ndimage.binary_opening(roof, structure=np.ones((k, k), bool))
    if s["hole_m2"] > 0:
        holes = ndimage.binary_fill_holes(roof) & ~roof
        hl, hn = components.label(holes)
        if hn:
            small = ndimage.sum_labels(holes, hl, np.arange(1, hn + 1)) * res * res <= s["hole_m2"]
            roof |= np.concatenate([[False], small])[hl]
    lab, n = components.label(roof)
    if not n:
        return roof
    idx = np.arange(1, n + 1)
    ok = ndimage.sum_labels(roof, lab, idx) >= max(12, math.ceil(s["min_m2"] / res ** 2))
    if s["core"] > 0:
        ok &= np.asarray(ndimage.maximum(ps, lab, idx)) >= s["core"]
    if s["mean_p"] > 0:
        ok &= np.asarray(ndimage.mean(ps, lab, idx)) >= s["mean_p"]
    return np.concatenate([[False], ok])[lab] & seen


#: The settings in use: still ``MAP_BEFORE``. The best held out by dataset (``benchmarks/tune_building_maps.py``,
#: 2026-12-03: smooth 1 m, rim 0.1, no core, open 1.5 m, 20 m², holes <= 100 m² filled) raised the held-out map
#: F1 on all four building sets, but at precision 0.05-0.59, and it cut LEVIR-CD change through monitor (held
#: out by pair) from F1 0.58 to 0.37, or to 0.46 as the reference's roofs only (wide false roofs hide new ones);
#: the best by F0.5 (rim 0.15, core 0.3, open 3 m, 20 m²) to 0.50. Figures: benchmarks/README.md section 2.
MAP_SETTINGS = dict(MAP_BEFORE)


def map_settings(trees: Mapping) -> dict[str, float]:
    """The roof map's cleaning for the trees' probability: :data:`MAP_BEFORE` with the trees' own threshold as
    the rim and no mean-probability floor (the logistic's 0.35 is on its own scale), unless the model file
    names its own (``map_settings``)."""
    return {**MAP_BEFORE, "rim": float(trees["threshold"]), "mean_p": 0.0, **trees.get("map_settings", {})}


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))
