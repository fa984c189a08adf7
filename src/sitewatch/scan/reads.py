"""Reading one scene over one tile: its bands as decoded, where the ground is clear, and the
SHA-256 of a cited site's source pixels (the same bytes :func:`sitewatch.reader.read_scene` hashes)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from ..errors import SceneError
from ..grid import Grid
from ..reader import SCL_CLOUD, default_scale, source_window
from ..scenes import BANDS, SCL_MASKED, AssetRef, SceneRef
from .datasets import open_dataset, read_window, scan_env
from .region import TileJob


@dataclass(frozen=True, eq=False)
class TileScene:
    """One scene's pixels over one tile.

    ``dn`` keeps each band as decoded (no float copy of the tile: the change statistics fold
    the reflectance scale into their per-band coefficients), ``cal`` how stored values map to
    reflectance (``dn * scale + offset``, float32). ``source`` holds every asset's decoded
    pixels (the bands and ``scl``), from which :func:`site_sha256` takes a cited site's window.
    """

    ref: SceneRef
    dn: dict[str, np.ndarray]
    cal: dict[str, tuple[np.float32, np.float32]]
    clear: np.ndarray
    source: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def resampled(self) -> frozenset[str]:
        """Bands read from a coarser grid (nearest onto the tile's pixels, so not kept in ``source``):
        kept out of the change statistic."""
        return frozenset(n for n in self.dn if n not in self.source)

    @cached_property
    def bands(self) -> dict[str, np.ndarray]:
        """Reflectance, float32 (computed only when asked for: the scan itself does not need it)."""
        return {k: reflectance(v, *self.cal[k]) for k, v in self.dn.items()}

    @cached_property
    def clear_fraction(self) -> float:
        return np.count_nonzero(self.clear) / self.clear.size if self.clear.size else math.nan


def site_sha256(ts: TileScene, job: TileJob, aoi_wgs84: BaseGeometry) -> str:
    """SHA-256 of the scene's source pixels over a site, as :func:`sitewatch.reader.read_scene`
    hashes them for that site at the tile's resolution (what ``sitewatch verify --rehash``
    recomputes): each asset's window around the site's grid plus the reader's margin, in the
    reader's order, with its dtype and shape. The windows come out of the tile already decoded;
    one that crosses the tile's edge is read from the file.
    """
    from rasterio.windows import Window

    from ..grid import grid_for

    grid = grid_for(aoi_wgs84, job.transform.a)
    h = hashlib.sha256()
    names = [b for b in BANDS if b in ts.ref.assets] + (["scl"] if "scl" in ts.ref.assets else [])
    href = ts.ref.href or ts.ref.scene_id
    try:
        with scan_env():
            for name in names:
                a = ts.ref.assets[name]
                href = a.href
                ds = open_dataset(a.href, a.sas)
                span = _site_window(ds, grid)
                if span is None:
                    continue  # the scene does not reach the site: the reader hashes nothing either
                col0, row0, col1, row1 = span
                raw = _tile_part(ts.source.get(name), ds, job, col0, row0, col1, row1)
                if raw is None:
                    raw = ds.read(a.band, window=Window(col0, row0, col1 - col0, row1 - row0))
                h.update(str(raw.dtype).encode() + str(raw.shape).encode())
                h.update(np.ascontiguousarray(raw))  # the same bytes as raw.tobytes()
    except Exception as exc:  # rasterio/GDAL raise many types for broken or unreachable files
        raise SceneError(f"scene {ts.ref.scene_id}: cannot read {href}: {str(exc).splitlines()[0][:160]}") from None
    return h.hexdigest()


_WINDOWS: dict[tuple[Any, ...], tuple[int, int, int, int] | None] = {}


def _site_window(ds: Any, grid: Grid) -> tuple[int, int, int, int] | None:
    """:func:`sitewatch.reader.source_window`, once per site and file grid: a scene's bands and
    the scenes of a tile mostly share one grid, and the window costs a reprojection."""
    key = (grid, ds.crs, ds.transform, ds.width, ds.height)
    if key not in _WINDOWS:
        if len(_WINDOWS) > 4096:
            _WINDOWS.clear()
        _WINDOWS[key] = source_window(ds, grid)
    return _WINDOWS[key]


def _tile_part(pixels: np.ndarray | None, ds: Any, job: TileJob, col0: int, row0: int, col1: int,
               row1: int) -> np.ndarray | None:
    """File pixels ``[row0:row1, col0:col1]`` out of the tile's decoded array, if the tile holds them."""
    res = job.transform.a
    t = ds.transform
    if pixels is None or t.b or t.d or not math.isclose(t.a, res) or not math.isclose(-t.e, res):
        return None
    col = int(round((job.transform.c - t.c) / res))
    row = int(round((t.f - job.transform.f) / res))
    if col <= col0 and row <= row0 and col1 <= col + pixels.shape[1] and row1 <= row + pixels.shape[0]:
        return pixels[row0 - row:row1 - row, col0 - col:col1 - col]
    return None


def _calibration(asset: AssetRef, dtype: np.dtype) -> tuple[np.float32, np.float32]:
    """Stored value to reflectance, by the reader's rule (a scan and a watched site read an asset alike)."""
    scale, offset = default_scale(str(dtype), asset)
    return np.float32(scale), np.float32(offset)


def reflectance(dn: np.ndarray, scale: np.float32, offset: np.float32) -> np.ndarray:
    out = np.multiply(dn, scale, dtype=np.float32)
    if offset:
        out += offset
    return out


_SCL_CLEAR = np.ones(256, dtype=bool)
_SCL_CLEAR[list(SCL_MASKED)] = False


def _runs(values: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in sorted(set(values)):
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


#: The masked scene classes as ranges of consecutive values, ``(0, 0), (3, 3), (8, 11)``.
_SCL_RUNS = _runs(SCL_MASKED)


def _scl_clear(scl: np.ndarray) -> np.ndarray:
    """Pixels whose scene class is not masked: a few byte comparisons (a look-up table costs 5 x more)."""
    if scl.dtype != np.uint8:
        return np.take(_SCL_CLEAR, scl)
    clear = np.ones(scl.shape, dtype=bool)
    tmp = np.empty(scl.shape, dtype=np.uint8)
    out = np.empty(scl.shape, dtype=bool)
    for lo, hi in _SCL_RUNS:
        if lo == hi:
            np.not_equal(scl, np.uint8(lo), out=out)
        else:  # outside lo..hi: (scl - lo) wraps past hi - lo
            np.subtract(scl, np.uint8(lo), out=tmp)
            np.greater(tmp, np.uint8(hi - lo), out=out)
        clear &= out
    return clear


def _clear_of_cloud_edges(clear: np.ndarray, scl: np.ndarray, res: float) -> None:
    """Take ground near cloud or cloud shadow out of ``clear``, in place (:data:`sitewatch.reader.CLOUD_BUFFER_M`,
    as a watched site's reader does): a cloud's thin edge passes ``scl`` as clear and looks like new roofs.
    Only scenes with a cloud over the tile pay for it."""
    from ..reader import near_cloud

    if clear.all():  # nothing masked at all (most tiles): no cloud to grow
        return
    cloud = np.isin(scl, SCL_CLOUD)
    if cloud.any():
        clear &= ~near_cloud(cloud, res)


def read_tile(ref: SceneRef, job: TileJob) -> TileScene:
    """Decode one scene over one tile: the bands as stored, and where the ground is clear."""
    dn: dict[str, np.ndarray] = {}
    cal: dict[str, tuple[np.float32, np.float32]] = {}
    source: dict[str, np.ndarray] = {}
    names = [b for b in BANDS if b in ref.assets]
    href = ref.href or ref.scene_id
    if not {"red", "green", "blue", "nir"} <= set(names):
        raise SceneError(f"scene {ref.scene_id}: needs red, green, blue and nir bands for a scan")
    try:
        with scan_env():
            have = None
            for name in names:
                a = ref.assets[name]
                href = a.href
                raw, nodata, native = read_window(a.href, a.band, job.transform, job.width, job.height, a.sas)
                if have is None:  # the bands of one scene share one footprint
                    have = raw != nodata
                dn[name] = raw
                cal[name] = _calibration(a, raw.dtype)
                if native:  # a resampled band's site window is hashed from the file, not from here
                    source[name] = raw
            assert have is not None
            if "scl" in ref.assets:
                a = ref.assets["scl"]
                href = a.href
                scl, _, native = read_window(a.href, a.band, job.transform, job.width, job.height, a.sas)
                if native:
                    source["scl"] = scl
                clear = _scl_clear(scl)
                clear &= have
                _clear_of_cloud_edges(clear, scl, job.transform.a)
            else:
                clear = have & ~_clouds({k: reflectance(v, *cal[k]) for k, v in dn.items()})
    except SceneError:
        raise
    except Exception as exc:  # rasterio/GDAL raise many types for broken or unreachable files
        raise SceneError(f"scene {ref.scene_id}: cannot read {href}: {str(exc).splitlines()[0][:160]}") from None
    return TileScene(ref, dn, cal, clear, source)


def _clouds(bands: dict[str, np.ndarray]) -> np.ndarray:
    try:
        from ..clouds import detect
    except ImportError:  # pragma: no cover
        return np.zeros(bands["red"].shape, dtype=bool)
    return detect(bands)
