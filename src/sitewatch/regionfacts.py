"""What a change region looks like, beyond its mean response: facts the real-data score may read.

At 10 m the tracker's magnitude is the change model's mean probability over the region, and it
is near 1 for right and wrong detections alike (the region is cut by a high threshold). These
facts describe the region's shape, the ground it stands on before, how much of the whole scene
changed and where it lies in the site, so a score fitted on real labelled detections can tell a
new hall from a road, a field edge or a hazy date (``benchmarks/calibrate_real.py``). They are
stored in the detection's evidence (``region``), so its score is reproducible from the file.
Pure numpy on the arrays the tracker already holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from . import indices

#: Distance to ground no scene saw (the site's edge or no-data), pixels, beyond which it is not counted.
EDGE_CAP_PX = 30


def shape_facts(obj: np.ndarray) -> dict[str, float]:
    """``fill``: share of the region's bounding box it covers; ``elongation``: long over short axis of
    its pixels' spread (1 for a disc or square, large for a road or a field edge)."""
    ys, xs = np.nonzero(obj)
    if ys.size == 0:
        return {"fill": 0.0, "elongation": 1.0}
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    cov = np.cov(np.vstack([ys, xs]).astype(np.float64), bias=True) + np.eye(2) / 12.0  # a pixel's own spread
    ev = np.linalg.eigvalsh(cov)
    return {"fill": round(float(ys.size) / float(box), 3),
            "elongation": round(math.sqrt(float(ev[1]) / max(float(ev[0]), 1e-9)), 3)}


def response_facts(strength: np.ndarray, obj: np.ndarray, threshold: float) -> dict[str, float]:
    """``p_max``: the strongest response in the region; ``core_share``: its share at or above ``threshold``."""
    v = strength[obj]
    if v.size == 0:
        return {"p_max": 0.0, "core_share": 0.0}
    return {"p_max": round(float(v.max()), 3), "core_share": round(float((v >= threshold).mean()), 3)}


def ground_before(reference: Mapping[str, np.ndarray], obj: np.ndarray) -> dict[str, float]:
    """The reference scene's ground under the region: ``ndvi_before`` (fields and lawns are green) and
    ``bright_before``: its brightness over the median of the reference's clear ground (a built-up
    patch already bright before is less likely new). Empty when the reference bands are not there."""
    out: dict[str, float] = {}
    if not reference or not obj.any():
        return out
    if "nir" in reference and "red" in reference:
        nir, red = (np.asarray(reference[b], np.float32)[obj] for b in ("nir", "red"))
        nd = indices.ndvi(nir, red)
        if np.isfinite(nd).any():
            out["ndvi_before"] = round(float(np.nanmean(nd)), 3)
    vis = [np.asarray(reference[b], np.float32) for b in ("blue", "green", "red") if b in reference]
    if vis:
        b = np.mean(vis, axis=0)
        med = float(np.nanmedian(b)) if np.isfinite(b).any() else float("nan")
        here = b[obj]
        if math.isfinite(med) and med > 0 and np.isfinite(here).any():
            out["bright_before"] = round(float(np.nanmean(here)) / med, 3)
    return out


def scene_share(present: np.ndarray, observed: np.ndarray, sl: tuple[slice, ...] | None = None,
                obj: np.ndarray | None = None) -> float:
    """Share of the scene's clear ground its map shows changed (a hazy or wet date changes much of it),
    the region itself (``obj`` over the window ``sl``) left out: a large real construction does not
    count against itself."""
    changed, n = int((present & observed).sum()), int(observed.sum())
    if sl is not None and obj is not None:
        own = obj & observed[sl]
        changed, n = changed - int((own & present[sl]).sum()), n - int(own.sum())
    return round(float(changed) / n, 4) if n > 0 else 0.0


#: Margin (pixels) around a region whose other changed ground ``local_changed_share`` counts: 250 m at 10 m.
LOCAL_PX = 25


def local_share(present: np.ndarray, observed: np.ndarray, sl: tuple[slice, ...], obj: np.ndarray) -> float:
    """Share of the clear ground within :data:`LOCAL_PX` of the region (the region itself left out) that
    the same map shows changed: a new hall stands in quiet ground, a false alarm among others."""
    box = tuple(slice(max(0, s.start - LOCAL_PX), s.stop + LOCAL_PX) for s in sl)
    seen = observed[box].copy()
    inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sl, box))
    seen[inner] &= ~obj
    n = int(seen.sum())
    return round(float((present[box] & seen).sum()) / n, 4) if n else 0.0


def edge_px(edge_distance: np.ndarray, obj: np.ndarray) -> float:
    """Nearest distance (pixels, capped at :data:`EDGE_CAP_PX`) from the region to ground no scene saw."""
    v = edge_distance[obj]
    return float(min(float(v.min()), EDGE_CAP_PX)) if v.size else 0.0
