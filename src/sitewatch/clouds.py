"""Cloud and haze where the imagery brings no mask.

Sentinel-2 L2A has ``scl``; aerial and commercial imagery usually has nothing, and the
contract says clouds must still never become detections. Clouds are bright, nearly white
(flat across the visible bands), large and soft-edged; roofs can be as bright and as white
but are small or sharp-edged. So: find bright, white, low-texture regions, keep those large
enough to be cloud, reject those whose edges are sharp (a roof), then grow the mask a
little to cover the thin halo around each cloud.

On real imagery without NIR or SWIR (8-bit RGB at 0.3-0.5 m) much clear ground passes those
tests: pale soil, dry grass, concrete yards, a white roof joined to its car park, all bright,
grey and soft-edged at a fine pixel. Two things set a cloud apart and are kept as tests: it
is thick (its opacity grows towards the middle, so its core is far brighter than its rim,
where yards and roofs are flat-topped), and it is broad (a core at least
:data:`CLOUD_CORE_M` from its edge). A cloud covering the whole window has no rim; it is
told by having no ground detail at all (:data:`FEATURELESS`). Measured on every clear real
scene in ``../shared/data`` (benchmarks/masks.py): the flattest-topped real ground reached
a dome of 0.35 with a core over 8 m, the smoothest real ground a detail of 0.006.

Haze, a thin veil over part of the scene, lifts blue more than red: it is found with the
haze-optimised transform (HOT, Zhang et al. 2002), the distance of each pixel above the
scene's own "clear line" in blue-red space, smoothed, over a broad area. A veil over the
whole scene moves the clear line with it and is left to the radiometric normalisation.
Cloud shadows are broad, dark and soft-edged (a building's or wall's shadow is sharp); they
are looked for only in a scene where a cloud was found, so naturally dark ground on a clear
day is never masked.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from . import components
from .indices import EXCESS_GREEN_PLANTS, NDVI_PLANTS, excess_green, ndvi

#: Brightness (mean of red, green, blue reflectance) above which a pixel may be cloud.
BRIGHT = 0.33
#: Largest spread between visible bands, relative to brightness, for "white".
WHITE = 0.16
#: Smallest cloud, m².
MIN_AREA_M2 = 800.0
#: Edge sharpness above which a bright region is a roof, not cloud (contrast per pixel / total contrast).
SHARP = 0.35
#: A cloud's core is brighter than its rim by at least this share of the rim ((core - rim) / rim).
DOME = 0.5
#: and lies at least this far inside its edge, metres.
CLOUD_CORE_M = 8.0
#: A bright region with less ground detail than this (median |pixel - 3x3 mean| / brightness) hides the ground.
FEATURELESS = 0.003
#: Snow (no scl to say so): reflectance above this in every visible band, and patches this large (m²).
SNOW_BRIGHT = 0.55
SNOW_MIN_M2 = 25.0
#: Without SWIR, a scene needs this much very bright white ground (m²), and this share of the
#: scene, to be called snowy: white roofs, yards and car roofs are 2-6 % of real clear towns
#: (xBD Joplin, SpaceNet Rio); snow on a snowy day covers most open ground.
SNOWY_SCENE_M2, SNOWY_SCENE_SHARE = 10_000.0, 0.15
#: Normalised difference snow index (green vs swir16) above which bright white is snow.
NDSI_SNOW = 0.4
#: Halo added around each cloud, metres.
HALO_M = 15.0
#: Haze: smoothed HOT (reflectance above the clear line) above this, plus twice the clear line's scatter.
HAZE_HOT = 0.015
#: Haze is broad: at least this much ground (m²), or this share of the scene when the scene is smaller.
HAZE_MIN_M2, HAZE_MIN_SHARE = 250_000.0, 0.3
#: Haze flattens texture: local contrast below this share of the scene's typical (75th percentile).
HAZE_FLAT = 0.8
#: Window over which HOT is averaged, metres.
HAZE_SMOOTH_M = 100.0
#: Cloud shadow: smoothed brightness below this share of the scene's ground, broader than this (metres).
SHADOW_DARK, SHADOW_WIDTH_M = 0.8, 8.0
#: How much brighter a cloud shadow's rim is than its core, as a share of the contrast to the ground outside.
SHADOW_SOFT = 0.35


def detect(bands: Mapping[str, np.ndarray], res_m: float = 10.0) -> np.ndarray:
    """True where cloud, haze or cloud shadow hides the ground."""
    r, g, b = (np.nan_to_num(bands[k], nan=0.0) for k in ("red", "green", "blue"))
    bright = (r + g + b) / 3
    spread = (np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)) / np.maximum(bright, 1e-3)
    darkest = np.minimum(np.minimum(r, g), b)  # high only for white things
    min_px = max(4, int(MIN_AREA_M2 / (res_m * res_m)))
    mask = np.zeros(r.shape, dtype=bool)
    cand = ndimage.binary_opening((bright > BRIGHT) & (spread < WHITE), iterations=1)
    if cand.any():
        mask |= _soft(cand, bright, min_px, res_m)
    # Snow: with swir16, by its index (snow is dark in SWIR, roofs are not); without it, very
    # bright white ground counts as snow only in a scene with a lot of it (a snowy day), so a
    # white roof on a snowless day stays a roof.
    snow = (bright > SNOW_BRIGHT) & (spread < WHITE) & (darkest > SNOW_BRIGHT)
    if snow.any():
        if "swir16" in bands:
            sw = np.nan_to_num(bands["swir16"], nan=0.0)
            snow &= (g - sw) / np.maximum(g + sw, 1e-4) > NDSI_SNOW
        elif snow.sum() * res_m * res_m < SNOWY_SCENE_M2 or snow.mean() < SNOWY_SCENE_SHARE:
            snow[...] = False
        mask |= _components(snow, max(4, int(SNOW_MIN_M2 / (res_m * res_m))))
    plants = vegetation(bands)
    cloudy = mask.any()
    mask |= haze(r, b, bright, plants, res_m)
    if cloudy:
        mask |= _shadows(bright, plants, res_m, min_px)
    halo = max(1, int(round(HALO_M / res_m)))
    return ndimage.binary_dilation(mask, iterations=halo) if mask.any() else mask


def _soft(cand: np.ndarray, bright: np.ndarray, min_px: int, res_m: float = 10.0) -> np.ndarray:
    """Bright components of ``cand`` at least ``min_px`` large, soft-edged for their contrast, and
    either thick in the middle (a dome) or without any ground detail: clouds, not pale ground."""
    lab, n = components.label(cand)
    if not n:
        return np.zeros(cand.shape, dtype=bool)
    sizes = ndimage.sum_labels(cand, lab, np.arange(1, n + 1))
    grad = np.hypot(ndimage.sobel(bright, 0), ndimage.sobel(bright, 1)) / 8.0
    detail = np.abs(bright - ndimage.uniform_filter(bright, 3)) / np.maximum(bright, 1e-3)
    keep = np.zeros(n + 1, dtype=bool)
    ring_src = ndimage.binary_dilation(cand, iterations=3) & ~cand
    for i, sl in enumerate(components.find_objects(lab), start=1):
        if sl is None or sizes[i - 1] < min_px:
            continue
        sl = tuple(slice(max(0, x.start - 4), x.stop + 4) for x in sl)
        part = lab[sl] == i
        inner = bright[sl][part].mean()
        ring = ring_src[sl] & ~part
        outside = bright[sl][ring].mean() if ring.any() else inner * 0.7
        edge = part & ~ndimage.binary_erosion(part)
        contrast = max(inner - outside, 1e-3)
        sharp = float(np.median(grad[sl][edge])) / contrast if edge.any() else 0.0
        if sharp >= SHARP:
            continue
        if float(np.median(detail[sl][part])) < FEATURELESS:
            keep[i] = True
            continue
        keep[i] = _dome(part, bright[sl], sl, cand.shape, res_m)
    return keep[lab]


def _dome(part: np.ndarray, bright: np.ndarray, sl: tuple[slice, ...], shape: tuple[int, ...],
          res_m: float) -> bool:
    """Whether a region is thick in the middle, as a cloud is: a core at least :data:`CLOUD_CORE_M`
    inside its edge, brighter than its rim by :data:`DOME`. The window's own border is not an
    edge (the cloud may go on beyond it)."""
    at_border = (sl[0].start == 0, sl[0].stop >= shape[0], sl[1].start == 0, sl[1].stop >= shape[1])
    pad = [(1, 1), (1, 1)]
    grown = np.pad(part, pad, mode="constant")
    # extend the region across the window's border so the border does not count as its edge
    if at_border[0]:
        grown[0, 1:-1] = part[0]
    if at_border[1]:
        grown[-1, 1:-1] = part[-1]
    if at_border[2]:
        grown[1:-1, 0] = part[:, 0]
    if at_border[3]:
        grown[1:-1, -1] = part[:, -1]
    if grown.all():
        return False  # no edge anywhere: only the featureless test can call it cloud
    dist = ndimage.distance_transform_edt(grown)[1:-1, 1:-1][part]
    deepest = float(dist.max())
    if deepest * res_m < CLOUD_CORE_M:
        return False
    vals = bright[part]
    core = vals[dist >= 0.6 * deepest].mean()
    rim = vals[dist <= max(1.0, 0.2 * deepest)].mean()
    return bool(rim > 0 and (core - rim) / rim >= DOME)


def vegetation(bands: Mapping[str, np.ndarray], *, blue_is_roof: bool = False) -> np.ndarray:
    """Green plants: bright in near infrared (NDVI), from RGB alone by excess green.

    ``blue_is_roof``: blue roofs have a high NDVI too; with it, plants must also be less blue than green.
    """
    r, g, bl = (np.nan_to_num(bands[k], nan=0.0) for k in ("red", "green", "blue"))
    if "nir" in bands:
        n = np.nan_to_num(bands["nir"], nan=0.0)
        green = ndvi(n, r) > NDVI_PLANTS
        return green & (bl < g) if blue_is_roof else green
    return excess_green(r, g, bl) > EXCESS_GREEN_PLANTS


def haze(r: np.ndarray, b: np.ndarray, bright: np.ndarray, plants: np.ndarray, res_m: float) -> np.ndarray:
    """Broad areas lifted above the scene's clear line in blue-red space (HOT)."""
    white = ndimage.binary_dilation(bright >= BRIGHT, iterations=2)  # and not the mixed rim of snow or cloud
    ok = ~plants & (bright > 0.03) & ~white  # not plants, water, cloud or snow
    if ok.sum() < 100:
        return np.zeros(r.shape, dtype=bool)
    step = max(1, int(np.sqrt(ok.sum() / 20_000)))
    rs, bs = r[::step, ::step][ok[::step, ::step]], b[::step, ::step][ok[::step, ::step]]
    if float(np.std(rs)) < 1e-4:  # one colour of ground (a flat test scene): no line to fit, no veil
        return np.zeros(r.shape, dtype=bool)
    keep = np.ones(rs.size, dtype=bool)
    fit: tuple[float, float] | None = None
    for _ in range(4):  # the clear line is the lower envelope: refit on the lower half, a few times
        if keep.sum() < 10 or float(np.std(rs[keep])) < 1e-4:
            break
        fit = tuple(np.polyfit(rs[keep], bs[keep], 1))  # type: ignore[assignment]
        res = bs - (fit[0] * rs + fit[1])
        keep = res <= np.median(res[keep])
    if fit is None:
        return np.zeros(r.shape, dtype=bool)
    slope, icpt = fit
    scatter = 1.4826 * float(np.median(np.abs(res[keep] - np.median(res[keep]))))
    hot = np.where(ok, b - (slope * r + icpt), 0.0).astype(np.float32)
    k = max(3, int(round(HAZE_SMOOTH_M / res_m)))
    w = ndimage.uniform_filter(ok.astype(np.float32), k)
    smooth = ndimage.uniform_filter(hot, k) / np.maximum(w, 1e-3)
    cand = (smooth > HAZE_HOT + 2 * scatter) & (w > 0.5)
    if not cand.any():
        return cand
    # a veil also flattens the ground's texture; the rim of snow or a blue roof is sharper, not flatter
    bo = np.where(ok, bright, 0.0).astype(np.float32)
    mean = ndimage.uniform_filter(bo, k) / np.maximum(w, 1e-3)
    var = ndimage.uniform_filter(bo * bo, k) / np.maximum(w, 1e-3) - mean * mean
    texture = np.sqrt(np.maximum(var, 0)) / np.maximum(mean, 1e-3)
    typical = float(np.percentile(texture[ok & (w > 0.5)], 75)) if (ok & (w > 0.5)).any() else 0.0
    cand &= texture < HAZE_FLAT * typical
    if not cand.any():
        return cand
    min_px = int(min(HAZE_MIN_M2 / (res_m * res_m), HAZE_MIN_SHARE * r.size))
    return _components(cand, max(min_px, 4))


def _shadows(bright: np.ndarray, plants: np.ndarray, res_m: float, min_px: int) -> np.ndarray:
    """Cloud shadows: broad, dark, soft-edged patches of ground."""
    ground = float(np.median(bright[~plants])) if (~plants).any() else float(np.median(bright))
    smooth = ndimage.gaussian_filter(bright, max(1.0, 1.0 / res_m))
    cand = (smooth < SHADOW_DARK * ground) & ~plants
    k = max(2, int(round(SHADOW_WIDTH_M / res_m)))
    cand = ndimage.binary_opening(cand, structure=np.ones((k, k), bool)) if k > 1 else cand
    if not cand.any():
        return cand
    lab, n = components.label(cand)
    sizes = ndimage.sum_labels(cand, lab, np.arange(1, n + 1))
    keep = np.zeros(n + 1, dtype=bool)
    e = max(2, int(round(SHADOW_WIDTH_M / 2 / res_m)))
    for i, sl in enumerate(components.find_objects(lab), start=1):
        if sl is None or sizes[i - 1] < min_px:
            continue
        sl = tuple(slice(max(0, x.start - e - 1), x.stop + e + 1) for x in sl)
        part = lab[sl] == i
        core = ndimage.binary_erosion(part, iterations=2 * e)
        if not core.any():
            continue
        skin = max(1, e // 4)  # the outermost pixels mix shadow and ground, whatever the shadow
        rim = ndimage.binary_erosion(part, iterations=skin) & ~ndimage.binary_erosion(part, iterations=e + skin)
        outside = ndimage.binary_dilation(part, iterations=e) & ~part
        lo, mid, hi = (float(bright[sl][m].mean()) for m in (core, rim, outside))
        # a soft shadow brightens gradually towards its edge; a cast shadow is as dark at its rim as inside
        keep[i] = hi - lo > 1e-3 and (mid - lo) / (hi - lo) > SHADOW_SOFT
    return keep[lab]


def _components(mask: np.ndarray, min_px: int) -> np.ndarray:
    lab, n = components.label(mask)
    if not n:
        return mask
    sizes = ndimage.sum_labels(mask, lab, np.arange(1, n + 1))
    return np.concatenate([[False], sizes >= min_px])[lab]
