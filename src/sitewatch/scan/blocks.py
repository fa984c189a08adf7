"""The scan's block detector: new building blocks between dates on one tile, at 10 m.

What it detects: new building blocks, objects of at least :data:`MIN_AREA_M2` (the
contract's 100 x 30 m blocks are 3000 m²) that appear between a pixel's last clear scene
and the next one, and that the next clear look still shows. Walls, fences and towers
need ~1 m imagery (:func:`sitewatch.structures.kinds_for_gsd`) and are not looked for.

How: for every pixel, its last clear observation is the reference; a pixel changed when its
spectrum jumps by more than :data:`CHANGE_SIGMA` robust deviations of the tile's own
date-to-date noise (after a per-band gain fit, so sensor and sun cancel), it is not vegetation
on either date (:data:`sitewatch.indices.NDVI_SEASONAL`) and it moves away from the tile's
dominant ground spectrum. Changed pixels are grouped into objects
(:func:`sitewatch.components.components`), and an object the next clear scene no longer shows
is dropped (:func:`persists`). The detector is deliberately cheap per pixel (a few array
operations on top of decoding), because the floor is the decode itself.

It sits behind :class:`TileDetector`, the scan's counterpart of
:class:`sitewatch.structures.Detector` (which turns one scene into structure maps for a
watched site): a tile detector turns a tile's stack of scenes into candidate objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from affine import Affine
from shapely.geometry import MultiPolygon
from shapely.ops import unary_union

from ..components import components
from ..detections import as_multipolygon, mask_polygons
from ..indices import NDVI_SEASONAL as NDVI_VEGETATION
from ..indices import ndvi
from ..scenes import BANDS
from .reads import TileScene, reflectance
from .region import TileJob

#: Smallest new building block reported, m² (the contract's 100 x 30 m blocks are 3000 m²).
MIN_AREA_M2 = 1500.0
#: Change magnitude, in robust standard deviations of the tile's date-to-date difference.
CHANGE_SIGMA = 6.0


@dataclass(frozen=True)
class Candidate:
    """A new building block found in a tile, in the tile's CRS."""

    geometry: MultiPolygon
    before: int
    after: int
    area_m2: float
    score: float
    magnitude: float


def _spectral_distance(x: dict[str, np.ndarray], centre: dict[str, float], scale: dict[str, float]) -> np.ndarray:
    d = np.zeros(x["red"].shape, dtype=np.float32)
    for k, c in centre.items():
        d += ((x[k] - np.float32(c)) / np.float32(scale[k])) ** 2
    return np.sqrt(d)


#: A window of the tile (rows, columns).
Window2D = tuple[slice, slice]


@dataclass(frozen=True, eq=False)
class PairChange:
    """Pixels that turned into something built between each pixel's last clear date and ``after``.

    ``objects`` are the changed objects of at least the minimum area, each as its bounding
    window of the tile with its mask there, so nothing downstream has to look at the
    unchanged rest of the tile.
    """

    after: int
    objects: tuple[tuple[Window2D, np.ndarray], ...]
    before: np.ndarray
    #: the change magnitude squared (its square root is taken only where it is looked at)
    magnitude2: np.ndarray

    @property
    def magnitude(self) -> np.ndarray:
        return np.sqrt(self.magnitude2)

    @property
    def mask(self) -> np.ndarray:
        m = np.zeros(self.magnitude2.shape, dtype=bool)
        for win, part in self.objects:
            m[win] |= part
        return m


#: Reference bands: (values, scale, offset), reflectance = values * scale + offset.
_Ref = dict[str, tuple[np.ndarray, np.float32, np.float32]]


def new_blocks(stack: Sequence[TileScene], res: float, min_area_m2: float = MIN_AREA_M2) -> list[PairChange]:
    """New construction, scene by scene.

    For every pixel, its last clear observation is the reference. A pixel is new
    construction when, between that reference and the next clear scene, its spectrum
    jumps by more than :data:`CHANGE_SIGMA` robust deviations of the tile's own
    date-to-date noise (after a per-band gain fit on the whole tile, so sensor and sun
    changes cancel), it is not vegetation on either date (seasons), and it moves *away*
    from the tile's dominant ground spectrum (a roof appears; the reverse is a removal).
    """
    if len(stack) < 2:
        return []
    # a band on a coarser grid (Sentinel-2's 20 m swir16) would smear every edge that changes
    # (a field greening) over a coarse pixel of ground that did not: only the tile's own bands count
    bands = [b for b in BANDS if all(b in s.dn and b not in s.resampled for s in stack)]
    first = stack[0]
    ref: _Ref = {k: (first.dn[k], *first.cal[k]) for k in bands}  # copied before the first update only
    copied = False
    ref_clear = first.clear
    ref_idx: np.ndarray | None = None  # None while every clear reference pixel is from scene 0
    out: list[PairChange] = []
    min_px = max(1, int(math.ceil(min_area_m2 / (res * res))))
    last = len(stack) - 1
    for i in range(1, len(stack)):
        cur = stack[i]
        both = cur.clear & ref_clear
        sub = both[::_STEP, ::_STEP]
        if np.count_nonzero(sub) >= 200:
            pair = _pair_change(ref, cur, both, sub, bands, min_px)
            if pair is not None:
                objects, mag2 = pair
                if ref_idx is None:
                    before = np.broadcast_to(np.int16(0), both.shape)
                else:
                    before = ref_idx.copy() if i < last else ref_idx
                out.append(PairChange(i, objects, before, mag2))
        if i == last:
            break
        if ref_idx is None:
            ref_idx = np.where(ref_clear, 0, -1).astype(np.int16)
        np.copyto(ref_idx, np.int16(i), where=cur.clear)
        ref_clear = ref_clear | cur.clear
        if not copied:
            ref, copied = {k: (v.copy(), s, o) for k, (v, s, o) in ref.items()}, True
        for k in bands:
            v, s, o = ref[k]
            c, (cs, co) = cur.dn[k], cur.cal[k]
            if c.dtype == v.dtype and cs == s and co == o:  # same encoding: stay in stored values
                np.copyto(v, c, where=cur.clear)
            else:  # scenes encoded differently: the reference becomes reflectance
                if not (v.dtype == np.float32 and s == 1 and o == 0):
                    v = reflectance(v, s, o)
                np.copyto(v, reflectance(c, cs, co), where=cur.clear)
                ref[k] = (v, np.float32(1), np.float32(0))
    return out


#: Robust statistics on every 7th pixel in each direction: as good, and 49 times cheaper.
_STEP = 7


def _median(x: np.ndarray) -> float:
    """``np.median`` of a 1-D float array without NaN, the same value, without its checks."""
    n = x.size
    k = n // 2
    if not n:
        return math.nan
    if n % 2:
        return float(np.partition(x, k)[k])
    p = np.partition(x, (k - 1, k))
    return float(np.mean(p[k - 1:k + 1]))


def _median_of(dn: np.ndarray, scale: np.float32, offset: np.float32) -> float:
    """``np.median(reflectance(dn, scale, offset))``, found by counting the stored integers."""
    if dn.dtype not in (np.uint8, np.uint16) or not dn.size:
        return _median(reflectance(dn, scale, offset))
    n = dn.size
    k = n // 2
    below = np.cumsum(np.bincount(dn))
    mid = np.searchsorted(below, (k,) if n % 2 else (k - 1, k), side="right").astype(dn.dtype)
    return float(np.mean(reflectance(mid, scale, offset)))  # the map to reflectance keeps the order


#: Pixels per chunk of the per-pixel change magnitude: a chunk's temporaries stay in cache.
_CHUNK_PX = 64 * 1024


def _pair_change(ref: _Ref, cur: TileScene, both: np.ndarray, sub: np.ndarray, bands: Sequence[str],
                 min_px: int) -> tuple[tuple[tuple[Window2D, np.ndarray], ...], np.ndarray] | None:
    ground: dict[str, float] = {}
    spread: dict[str, float] = {}
    gains: dict[str, np.float32] = {}
    terms: list[tuple[np.ndarray, np.float32, np.ndarray, np.float32, np.float32]] = []
    sr, sc = np.nonzero(sub)
    at = sr * (_STEP * both.shape[1]) + sc * _STEP  # the sample's pixels, as flat indices of the tile
    for k in bands:
        rv, rsc, rof = ref[k]
        cv, (csc, cof) = cur.dn[k], cur.cal[k]
        rsub, csub = rv.reshape(-1)[at], cv.reshape(-1)[at]
        rs, cs = reflectance(rsub, rsc, rof), reflectance(csub, csc, cof)
        mr, mc = _median_of(rsub, rsc, rof), _median_of(csub, csc, cof)
        g = gains[k] = np.float32(mr / mc if mc > 1e-4 else 1.0)
        d = cs * g - rs
        mad = _median(np.abs(d - _median(d))) * 1.4826 + 1e-4
        ground[k], spread[k] = mr, max(3 * mad, 1e-3)
        # (gain * cur - ref) / mad in reflectance, straight from the stored values:
        # cur_dn * (gain * scale_c / mad) - ref_dn * (scale_r / mad) + (gain * offset_c - offset_r) / mad
        inv = 1.0 / mad
        terms.append((cv, np.float32(float(g) * float(csc) * inv), rv, np.float32(float(rsc) * inv),
                      np.float32((float(g) * float(cof) - float(rof)) * inv)))
    # the sum of squared normalised differences, fused chunk by chunk (this is most of the compute):
    # each band's difference into one row of ``dd``, then one pass sums their squares
    h, w = both.shape
    diff2 = np.empty((h, w), dtype=np.float32)
    cand = np.empty((h, w), dtype=bool)
    step = max(1, min(h, _CHUNK_PX // max(w, 1)))
    dd = np.empty((len(terms), step * w), dtype=np.float32)
    u = np.empty(step * w, dtype=np.float32)
    limit = np.float32(CHANGE_SIGMA * CHANGE_SIGMA)
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        n = (r1 - r0) * w
        uu = u[:n].reshape(r1 - r0, w)
        for j, (cv, a, rv, b, c) in enumerate(terms):
            tt = dd[j, :n].reshape(r1 - r0, w)
            np.copyto(tt, cv[r0:r1], casting="unsafe")  # the cast alone, then float32 arithmetic: faster
            tt *= a
            np.copyto(uu, rv[r0:r1], casting="unsafe")
            uu *= b
            tt -= uu
            if c:
                tt += c
        acc = diff2[r0:r1].reshape(n)
        np.einsum("ij,ij->j", dd[:, :n], dd[:, :n], out=acc)
        np.greater(acc, limit, out=cand[r0:r1].reshape(n))
    cand &= both
    idx = np.flatnonzero(cand)
    if not idx.size:
        return None
    # the remaining tests only on the few changed pixels: vegetation first (red and nir only;
    # fields greening are most of them), then the other bands of what is left
    def values(at: np.ndarray, names: Iterable[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return ({k: reflectance(cur.dn[k].ravel()[at], *cur.cal[k]) for k in names},
                {k: reflectance(ref[k][0].ravel()[at], ref[k][1], ref[k][2]) for k in names})

    cur_v, ref_v = values(idx, ("red", "nir"))
    keep = ((ndvi(cur_v["nir"], cur_v["red"]) <= NDVI_VEGETATION)
            & (ndvi(ref_v["nir"], ref_v["red"]) <= NDVI_VEGETATION))
    kept = idx[keep]
    cur_v, ref_v = values(kept, bands)
    cur_n = {k: cur_v[k] * gains[k] for k in bands}
    away = _spectral_distance(cur_n, ground, spread) > _spectral_distance(ref_v, ground, spread)
    idx = kept[away]
    if idx.size < min_px:
        return None
    objects = tuple(components(idx, w).windows(min_px))
    if not objects:
        return None
    return objects, diff2


def score_of(magnitude: float, area_m2: float) -> float:
    """0..1, rising with change magnitude (in noise deviations) and with size over the minimum."""
    z = 0.35 * (magnitude - CHANGE_SIGMA) + 1.2 * math.log(max(area_m2, 1.0) / MIN_AREA_M2)
    return round(1.0 / (1.0 + math.exp(-z)), 4)


#: Share of an object's ground a later scene must see clearly to confirm or refute it (the monitor's rule).
CLEAR_SHARE = 0.95


class _Levels:
    """Each scene's tile-wide median per band (clear pixels, sampled), computed when first asked:
    dividing by it cancels sensor gain and sun between scenes, as the change statistic's gain fit does."""

    def __init__(self, stack: Sequence[TileScene]):
        self.stack, self.cache = stack, {}  # type: ignore[var-annotated]

    def __call__(self, i: int, band: str) -> float:
        if (i, band) not in self.cache:
            ts = self.stack[i]
            sub = ts.clear[::_STEP, ::_STEP]
            vals = ts.dn[band][::_STEP, ::_STEP][sub]
            m = _median_of(vals, *ts.cal[band]) if vals.size else math.nan
            self.cache[(i, band)] = m if m > 1e-4 else math.nan
        return self.cache[(i, band)]


def persists(stack: Sequence[TileScene], sl: Window2D, part: np.ndarray, before: int, after: int,
             bands: Sequence[str], levels: _Levels | None = None) -> bool:
    """Whether the next scene that saw the object's ground clearly still shows the change: over the
    object, that scene's pixels are nearer to the scene that found it than to the scene before
    (each scene divided by its tile-wide level, so gain and sun cancel). A change seen once and
    gone at the next clear look (a shadow lengthening with the season, a haze) is not
    construction: the monitor's rule (:func:`sitewatch.changes.track`), applied to the scan. A
    change in the newest scene has no next look and is kept."""
    levels = levels or _Levels(stack)
    for j in range(after + 1, len(stack)):
        seen = stack[j].clear[sl][part]
        if seen.mean() < CLEAR_SHARE:
            continue
        use = seen & stack[after].clear[sl][part] & stack[before].clear[sl][part]
        if not use.any():
            continue
        to_after = to_before = 0.0
        for k in bands:
            lv = [levels(i, k) for i in (before, after, j)]
            if not all(math.isfinite(v) for v in lv):
                continue
            x = [reflectance(stack[i].dn[k][sl][part][use], *stack[i].cal[k]) / np.float32(v)
                 for i, v in zip((before, after, j), lv)]
            to_before += float(((x[2] - x[0]) ** 2).sum())
            to_after += float(((x[2] - x[1]) ** 2).sum())
        return to_after < to_before
    return True


def candidates(stack: Sequence[TileScene], job: TileJob, min_area_m2: float = MIN_AREA_M2) -> list[Candidate]:
    """New building blocks as polygons (tile CRS), one per connected object that the next clear
    scene still shows (:func:`persists`)."""
    res = job.transform.a
    found: list[Candidate] = []
    bands = [b for b in BANDS if all(b in s.dn and b not in s.resampled for s in stack)]
    levels = _Levels(stack)
    for pc in new_blocks(stack, res, min_area_m2):
        for sl, part in pc.objects:
            before = int(np.bincount(pc.before[sl][part].clip(0)).argmax())
            if not persists(stack, sl, part, before, pc.after, bands, levels):
                continue
            t = job.transform @ Affine.translation(sl[1].start, sl[0].start)
            geom = unary_union(mask_polygons(part, t))
            if job.region is not None and not job.region.contains(geom.centroid):
                continue
            mag = float(np.sqrt(pc.magnitude2[sl][part]).mean())
            area = float(part.sum()) * res * res
            found.append(Candidate(as_multipolygon(geom), before, pc.after, area, score_of(mag, area), round(mag, 2)))
    return found


class TileDetector(Protocol):
    """Turns one tile's scenes into new objects: what :func:`sitewatch.scan.tile.scan_tile` calls.

    ``name`` and ``version`` go into every detection's evidence (``detector``). A whole scan
    (:func:`sitewatch.scan.runner.run`) runs :data:`BLOCKS`, and its key names
    :data:`SCAN_DETECTOR`; another detector is passed to ``scan_tile``.
    """

    name: str
    version: str

    def candidates(self, stack: Sequence[TileScene], job: TileJob) -> list[Candidate]:
        """New objects in ``job``'s tile (tile CRS), from ``stack``: the tile's scenes, oldest first."""
        ...


@dataclass(frozen=True)
class BlockDetector:
    """The scan's detector of new building blocks (this module's :func:`candidates`)."""

    name: str = "sitewatch-scan"
    version: str = "1"
    min_area_m2: float = MIN_AREA_M2

    def candidates(self, stack: Sequence[TileScene], job: TileJob) -> list[Candidate]:
        return candidates(stack, job, self.min_area_m2)


#: The scan's detector, as every scan so far has run it.
BLOCKS: TileDetector = BlockDetector()
#: Its name and version, as stored in each detection's evidence and in the scan's key.
SCAN_DETECTOR = f"{BLOCKS.name} {BLOCKS.version}"
