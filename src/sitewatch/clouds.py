"""Cloud and haze where the imagery brings no mask.

Sentinel-2 L2A has ``scl``; aerial and commercial imagery usually has nothing, and the
contract says clouds must still never become detections. Clouds are bright, nearly white
(flat across the visible bands), large and soft-edged; roofs can be as bright and as white
but are small or sharp-edged. So: find bright, white, low-texture regions, keep those large
enough to be cloud, reject those whose edges are sharp (a roof), then grow the mask a
little to cover the thin halo around each cloud. Haze (a thin, even veil) raises every
band; it is caught by the same test at a lower brightness when it covers a broad area.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

#: Brightness (mean of red, green, blue reflectance) above which a pixel may be cloud.
BRIGHT = 0.33
#: Largest spread between visible bands, relative to brightness, for "white".
WHITE = 0.16
#: Smallest cloud, m².
MIN_AREA_M2 = 800.0
#: Edge sharpness above which a bright region is a roof, not cloud (contrast per pixel / total contrast).
SHARP = 0.35
#: Snow (no scl to say so): reflectance above this in every visible band, and patches this large (m²).
SNOW_BRIGHT = 0.55
SNOW_MIN_M2 = 25.0
#: Without SWIR, a scene needs this much very bright white ground (m²) to be called snowy.
SNOWY_SCENE_M2 = 10_000.0
#: Normalised difference snow index (green vs swir16) above which bright white is snow.
NDSI_SNOW = 0.4
#: Halo added around each cloud, metres.
HALO_M = 15.0


def detect(bands: Mapping[str, np.ndarray], res_m: float = 10.0) -> np.ndarray:
    """True where cloud or haze hides the ground."""
    r, g, b = (np.nan_to_num(bands[k], nan=0.0) for k in ("red", "green", "blue"))
    bright = (r + g + b) / 3
    spread = (np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)) / np.maximum(bright, 1e-3)
    cand = (bright > BRIGHT) & (spread < WHITE)
    if not cand.any():
        return np.zeros(r.shape, dtype=bool)
    b = np.minimum(np.minimum(r, g), b)  # the darkest visible band: high only for white things

    cand = ndimage.binary_opening(cand, iterations=1)
    lab, n = ndimage.label(cand)
    if not n:
        return np.zeros(r.shape, dtype=bool)
    min_px = max(4, int(MIN_AREA_M2 / (res_m * res_m)))
    sizes = ndimage.sum_labels(cand, lab, np.arange(1, n + 1))
    grad = np.hypot(ndimage.sobel(bright, 0), ndimage.sobel(bright, 1)) / 8.0
    keep = np.zeros(n + 1, dtype=bool)
    ring_src = ndimage.binary_dilation(cand, iterations=3) & ~cand
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
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
        keep[i] = sharp < SHARP
    mask = keep[lab]
    # Snow: with swir16, by its index (snow is dark in SWIR, roofs are not); without it, very
    # bright white ground counts as snow only in a scene with a lot of it (a snowy day), so a
    # white roof on a snowless day stays a roof.
    snow = (bright > SNOW_BRIGHT) & (spread < WHITE) & (b > SNOW_BRIGHT)
    if snow.any():
        if "swir16" in bands:
            sw = np.nan_to_num(bands["swir16"], nan=0.0)
            snow &= (g - sw) / np.maximum(g + sw, 1e-4) > NDSI_SNOW
        elif snow.sum() * res_m * res_m < SNOWY_SCENE_M2:
            snow[...] = False
        mask |= _components(snow, max(4, int(SNOW_MIN_M2 / (res_m * res_m))))
    halo = max(1, int(round(HALO_M / res_m)))
    return ndimage.binary_dilation(mask, iterations=halo) if mask.any() else mask


def _components(mask: np.ndarray, min_px: int) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if not n:
        return mask
    sizes = ndimage.sum_labels(mask, lab, np.arange(1, n + 1))
    return np.concatenate([[False], sizes >= min_px])[lab]
