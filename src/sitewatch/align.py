"""Co-registration and radiometric normalisation between dates of one site.

Scenes of a site come from different passes and sensors: a pixel or two of shift, a
different gain, haze. Compared naively, each of those is "change". Shifts are found by
phase correlation on brightness (robust to gain: phase ignores amplitude) and undone;
radiometry is normalised to the scene's own open ground, so a structure is judged
against the ground around it on the same date rather than against another date's light.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

#: Shifts larger than this (pixels) are not misregistration but a wrong match: ignored.
MAX_SHIFT_PX = 6.0


def brightness(bands: Mapping[str, np.ndarray]) -> np.ndarray:
    return (bands["red"] + bands["green"] + bands["blue"]) / np.float32(3)


def _filled(a: np.ndarray) -> np.ndarray:
    m = np.isfinite(a)
    fill = float(np.median(a[m])) if m.any() else 0.0
    return np.where(m, a, fill).astype(np.float32)


def phase_shift(reference: np.ndarray, image: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, error) that moves ``image`` onto ``reference``, sub-pixel; NaNs allowed."""
    from skimage.registration import phase_cross_correlation

    ref, img = _filled(reference), _filled(image)
    # edges carry the registration; large smooth gradients (haze, vignetting) do not
    ref = ref - ndimage.uniform_filter(ref, 15)
    img = img - ndimage.uniform_filter(img, 15)
    shift, error, _ = phase_cross_correlation(ref, img, upsample_factor=20, normalization=None)
    dy, dx = float(shift[0]), float(shift[1])
    return dx, dy, float(error)


def apply_shift(a: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Shift an array by (dx, dy) pixels: bilinear for values (NaN-safe), nearest for masks."""
    if dx == 0 and dy == 0:
        return a
    if a.dtype == bool:
        return ndimage.shift(a.astype(np.uint8), (dy, dx), order=0, mode="constant", cval=0).astype(bool)
    m = np.isfinite(a)
    out = ndimage.shift(np.where(m, a, 0).astype(np.float32), (dy, dx), order=1, mode="constant", cval=np.nan)
    mm = ndimage.shift(m.astype(np.float32), (dy, dx), order=1, mode="constant", cval=0) > 0.99
    return np.where(mm, out, np.nan).astype(np.float32)


def ground_levels(bands: Mapping[str, np.ndarray], valid: np.ndarray) -> dict[str, float]:
    """Per band, the median of open ground (valid, not vegetation, not shadow): the scene's own light."""
    r, n = bands["red"], bands.get("nir")
    m = valid & np.isfinite(r)
    if n is not None:
        ndvi = (n - r) / np.maximum(n + r, 1e-4)
        m &= ndvi < 0.25
    b = brightness(bands)
    if m.any():
        lo, hi = np.nanpercentile(b[m], [20, 80])
        m &= (b >= lo) & (b <= hi)
    return {k: float(np.median(v[m])) if m.any() else float(np.nanmedian(v)) for k, v in bands.items()}


def normalise(bands: Mapping[str, np.ndarray], levels: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Bands relative to open ground (1.0 = typical ground of this scene)."""
    return {k: (v / np.float32(max(levels[k], 1e-4))).astype(np.float32) for k, v in bands.items()}


def fit_gain(image: np.ndarray, reference: np.ndarray, mask: np.ndarray, iterations: int = 3) -> tuple[float, float]:
    """Robust linear fit ``reference ≈ gain * image + offset`` on pixels that did not change."""
    x, y = image[mask].astype(np.float64), reference[mask].astype(np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    # robust start: the median ratio, then drop what disagrees with it before any least squares
    ratio = np.median(y[keep] / np.maximum(x[keep], 1e-6)) if keep.any() else 1.0
    res0 = y - ratio * x
    s0 = 1.4826 * np.median(np.abs(res0[keep] - np.median(res0[keep]))) + 1e-9 if keep.any() else 1.0
    keep &= np.abs(res0 - np.median(res0[keep] if keep.any() else res0)) < 3 * s0
    gain, offset = float(ratio), 0.0
    for _ in range(iterations):
        if keep.sum() < 10:
            break
        gain, offset = np.polyfit(x[keep], y[keep], 1)
        res = y - (gain * x + offset)
        s = 1.4826 * np.median(np.abs(res[keep] - np.median(res[keep]))) + 1e-9
        keep &= np.abs(res) < 3 * s
    return float(gain), float(offset)
