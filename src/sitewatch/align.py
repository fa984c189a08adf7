"""Co-registration and radiometric normalisation between dates of one site.

Scenes of a site come from different passes and sensors: a pixel or two of shift, a
different gain, haze. Compared naively, each of those is "change". Shifts are found by
phase correlation on brightness (robust to gain: phase ignores amplitude) and undone;
radiometry is normalised to the scene's own open ground, so a structure is judged
against the ground around it on the same date rather than against another date's light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .indices import NDVI_PLANTS, ndvi
from .registration import phase_cross_correlation

#: Shifts larger than this (pixels) are not misregistration but a wrong match: ignored.
MAX_SHIFT_PX = 6.0


def brightness(bands: Mapping[str, np.ndarray]) -> np.ndarray:
    return (bands["red"] + bands["green"] + bands["blue"]) / np.float32(3)


def _filled(a: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """NaNs and pixels outside ``valid`` set to the median, so they add no detail to correlate."""
    m = np.isfinite(a)
    if valid is not None:
        m &= valid
    fill = float(np.median(a[m])) if m.any() else 0.0
    return np.where(m, a, fill).astype(np.float32)


def phase_shift(reference: np.ndarray, image: np.ndarray,
                valid: np.ndarray | None = None) -> tuple[float, float, float]:
    """(dx, dy, quality) that moves ``image`` onto ``reference``, sub-pixel; NaNs allowed.

    Correlates clipped high-passed brightness (see :func:`_highpass`); gradient magnitude
    was tried and is worse: new structures' edges then outweigh the ground both dates share.
    ``quality`` is the correlation of the two detail images after the shift (0..1).
    """
    return registered(reference, image, valid)[:3]


def registered(reference: np.ndarray, image: np.ndarray,
               valid: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """:func:`phase_shift`'s (dx, dy, quality) and the shift's gain: how much it raises the match of
    the two dates' detail over leaving the scene where it is (see :data:`MIN_SHIFT_GAIN`), from the
    same high-passed images."""
    ref, img = _highpass(_filled(reference)), _highpass(_filled(image, valid))
    shift, _, _ = phase_cross_correlation(ref, img, upsample_factor=20, normalization=None)
    dy, dx = float(shift[0]), float(shift[1])
    quality = _detail_match(ref, img, dx, dy)
    return dx, dy, quality, quality - _detail_match(ref, img, 0.0, 0.0)


def _detail_match(ref: np.ndarray, img: np.ndarray, dx: float, dy: float) -> float:
    moved = ndimage.shift(img, (dy, dx), order=1, mode="nearest") if dx or dy else img
    inner = (slice(8, -8), slice(8, -8)) if min(ref.shape) > 32 else (slice(None), slice(None))
    a, b = ref[inner].ravel(), moved[inner].ravel()
    q = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
    return max(0.0, q if math.isfinite(q) else 0.0)


#: A shift is applied only when it raises the match of the two dates' detail (``phase_shift``'s quality)
#: by at least this much over leaving the scene where it is. On pairs that are already registered and
#: much rebuilt, the new buildings' edges pull the correlation peak 3-4 px off (LEVIR-CD samples: quality
#: 0.07-0.24 after such a shift), and a wrong shift turns every edge into change.
MIN_SHIFT_GAIN = 0.05



def _highpass(a: np.ndarray) -> np.ndarray:
    """Local detail, clipped at three robust sigmas.

    Smooth gradients (haze, vignetting) carry no position; and a new building's or wall's
    edges, far stronger than ground texture, would otherwise outweigh all the ground the two
    dates share and pull the match towards themselves (about a pixel on bare soil).
    """
    h = a - ndimage.uniform_filter(a, 15)
    s = 1.4826 * float(np.median(np.abs(h - np.median(h)))) + 1e-9
    return np.clip(h, -3 * s, 3 * s).astype(np.float32)


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
        m &= ndvi(n, r) < NDVI_PLANTS
    b = brightness(bands)
    if m.any():
        lo, hi = np.nanpercentile(b[m], [20, 80])
        m &= (b >= lo) & (b <= hi)
    return {k: float(np.median(v[m])) if m.any() else float(np.nanmedian(v)) for k, v in bands.items()}


def relative_to_ground(bands: Mapping[str, np.ndarray], levels: Mapping[str, float]) -> dict[str, np.ndarray]:
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


@dataclass(frozen=True)
class Fit:
    """A radiometric fit ``reference ≈ gain * image + offset``, kept so it can be recorded.

    ``used`` is how many pixels the final fit rests on (the rest were judged changed).
    """

    gain: float = 1.0
    offset: float = 0.0
    used: int = 0
    rmse: float = 0.0

    def apply(self, a: np.ndarray) -> np.ndarray:
        return (a * np.float32(self.gain) + np.float32(self.offset)).astype(np.float32)

    def to_dict(self) -> dict[str, float | int]:
        return {"gain": round(self.gain, 4), "offset": round(self.offset, 5), "used": int(self.used),
                "rmse": round(self.rmse, 5)}


def _orthogonal(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Line by orthogonal regression: both dates are noisy, and over open ground of narrow
    range ordinary least squares shrinks the gain towards zero."""
    mx, my = float(x.mean()), float(y.mean())
    sxx, syy = float(((x - mx) ** 2).mean()), float(((y - my) ** 2).mean())
    sxy = float(((x - mx) * (y - my)).mean())
    if abs(sxy) < 1e-15:
        return 1.0, my - mx
    gain = (syy - sxx + math.sqrt((syy - sxx) ** 2 + 4 * sxy ** 2)) / (2 * sxy)
    return gain, my - gain * mx


def fit_linear(image: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None,
               iterations: int = 6) -> Fit:
    """Robust linear fit on pixels that did not change.

    Starts from quantiles (median and interquartile range: unmoved by up to ~25% changed
    pixels, such as new roofs, greening fields, snow), then alternates: keep pixels within
    2.5 robust sigmas of the line, refit them by orthogonal regression.
    """
    keep = np.isfinite(image) & np.isfinite(reference)
    if mask is not None:
        keep &= mask
    x, y = image[keep].astype(np.float64), reference[keep].astype(np.float64)
    if x.size < 10:
        return Fit(1.0, 0.0, int(x.size), 0.0)
    qx, qy = np.percentile(x, [25, 50, 75]), np.percentile(y, [25, 50, 75])
    gain = float((qy[2] - qy[0]) / (qx[2] - qx[0])) if qx[2] > qx[0] else 1.0
    offset = float(qy[1] - gain * qx[1])
    ok = np.ones(x.size, bool)
    for _ in range(iterations):
        res = y - (gain * x + offset)
        centre = float(np.median(res[ok]))
        s = 1.4826 * float(np.median(np.abs(res[ok] - centre))) + 1e-9
        new_ok = np.abs(res - centre) < 2.5 * s
        if new_ok.sum() < 10 or float(np.ptp(x[new_ok])) == 0.0:
            break
        gain, offset = _orthogonal(x[new_ok], y[new_ok])
        if (new_ok == ok).all():
            break
        ok = new_ok
    r = y[ok] - (gain * x[ok] + offset)
    return Fit(gain, offset, int(ok.sum()), float(np.sqrt(np.mean(r ** 2))) if ok.any() else 0.0)


def normalise(image: np.ndarray, reference: np.ndarray,
              mask: np.ndarray | None = None) -> tuple[np.ndarray, Fit]:
    """``image`` in ``reference``'s radiometry (robust fit on unchanged pixels), and the fit."""
    f = fit_linear(image, reference, mask)
    return f.apply(image), f
