"""The bands a change model reads, kept with a scene's maps: so a later run can pair the next scene
with this one without reading old imagery again (:class:`sitewatch.changemodel.ModelDetector`).

Kept as the source's own integers when the reflectance came from them unchanged (exact, and
compressed far faster than floats), else as float32, with the scaling back to reflectance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: the feature that says where any kept band had no data
NODATA = "model.nodata"


def pack(bands: Mapping[str, np.ndarray], scales: Mapping[str, Sequence[float]],
         names: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
    """The bands a model reads, to keep with a scene's maps: as the source's own integers when the
    reflectance came from them unchanged (exact, and compressed far faster than floats), else
    float32. Returns the arrays (features) and the scaling back to reflectance."""
    out: dict[str, np.ndarray] = {}
    kept: dict[str, list[float]] = {}
    nodata = np.zeros(bands[names[0]].shape, bool)
    for b in names:
        x = bands[b]
        ok = np.isfinite(x)
        nodata |= ~ok
        s, o = (float(v) for v in scales.get(b, (1.0, 0.0)))
        ints = _integers(x, ok, s, o) if s != 1.0 else None
        if ints is not None:
            out[f"model.band.{b}"] = ints
            kept[b] = [s, o]
            continue
        raw = (x[ok].astype(np.float64) - o) / s
        r = np.rint(raw)
        if s != 1.0 and raw.size and np.abs(raw - r).max() < 1e-3 and r.min() >= 0 and r.max() <= 65535:
            arr = np.zeros(x.shape, np.uint8 if r.max() <= 255 else np.uint16)
            arr[ok] = r.astype(arr.dtype)
            out[f"model.band.{b}"] = arr
        else:
            out[f"model.band.{b}"] = np.where(ok, x, 0).astype(np.float32)
            s, o = 1.0, 0.0
        kept[b] = [s, o]
    out[NODATA] = nodata
    return out, kept


def _integers(x: np.ndarray, ok: np.ndarray, s: float, o: float) -> np.ndarray | None:
    """:func:`pack`'s integers without its float64 pass over every pixel: when each pixel is exactly
    its integer scaled in float32 (as the reader made it), the float64 test runs over the distinct
    integers only (the same values, so the same answer); None: not so, or the test fails (``pack``
    then decides pixel by pixel, as before)."""
    s32, o32 = np.float32(s), np.float32(o)
    r = np.subtract(x, o32)  # rint((x - o) / s), in place in one array
    np.divide(r, s32, out=r)
    np.rint(r, out=r)
    everywhere = bool(ok.all())
    if not everywhere:
        r[~ok] = 0
    if not r.size or r.min() < 0 or r.max() > 65535:
        return None
    ints = r.astype(np.uint16)
    back = ints.astype(np.float32)  # ints * s + o, in place
    np.multiply(back, s32, out=back)
    np.add(back, o32, out=back)
    same = back == x
    if not (same.all() if everywhere else (same | ~ok).all()):
        return None
    present = np.flatnonzero(np.bincount((ints if everywhere else ints[ok]).ravel()))
    if not present.size:
        return None
    raw = ((present.astype(np.float32) * s32 + o32).astype(np.float64) - o) / s
    if not np.abs(raw - present).max() < 1e-3:  # pack's own test, on the values the pixels take
        return None
    return ints.astype(np.uint8) if present.max() <= 255 else ints


__all__ = ["NODATA", "pack"]
