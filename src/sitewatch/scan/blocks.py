"""Wide-area scan: find new compounds nobody has listed yet.

A region of any size is cut into tiles on each scene's *native* grid (no reprojection: the
pixels are decoded once and compared as they are), and streamed tile by tile so memory
stays flat whatever the region's size. Each tile is a pure function of its scenes
(:func:`scan_tile`), so tiles can run anywhere: in this process, on a local Dask cluster,
or on workers on other machines; only the small :class:`TileResult` comes back, and the
one process that holds the GeoPackage writes it (:class:`TileWriter`), one transaction per
tile, marking the tile done so a killed scan resumes where it stopped.

Only buildings are looked for at 10 m (walls, fences and towers need ~1 m imagery, see
:func:`sitewatch.structures.kinds_for_gsd`). The detector is deliberately cheap per pixel
(a few array operations on top of decoding), because the floor is the decode itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.prepared import prep
from shapely.strtree import STRtree

from . import __version__
from .components import components
from .detections import Change, detection_record
from .errors import InputError, SceneError
from .grid import Grid, to_crs
from .reader import SCL_CLOUD, default_scale, source_window
from .scenes import BANDS, SCL_MASKED, AssetRef, SceneRef
from .sites import Site
from .store import DetectionRecord, RunParams, ScanTile, SceneRecord, Store
from .vrt import one_file_image

#: Tile side in pixels: ~1 M pixels keeps a tile's stack of dates well under 100 MB.
TILE_PX = 1024
#: Smallest new building block reported, m² (the contract's 100 x 30 m blocks are 3000 m²).
MIN_AREA_M2 = 1500.0
#: Change magnitude, in robust standard deviations of the tile's date-to-date difference.
CHANGE_SIGMA = 6.0
#: Pixels this green on either date are vegetation: seasons, not construction.
NDVI_VEGETATION = 0.3
#: Bounding box used for ``--region xinjiang`` (lon/lat; a box, not the border).
NAMED_REGIONS = {"xinjiang": (73.4, 34.3, 96.4, 49.2)}
SCAN_DETECTOR = "sitewatch-scan 1"


# --- inputs --------------------------------------------------------------------------------


def read_region(region: str) -> BaseGeometry:
    """A region as ``minlon,minlat,maxlon,maxlat``, a named box, or a vector file (union of its shapes)."""
    key = region.strip().lower()
    if key in NAMED_REGIONS:
        return box(*NAMED_REGIONS[key])
    parts = region.split(",")
    if len(parts) == 4:
        try:
            minx, miny, maxx, maxy = (float(p) for p in parts)
        except ValueError:
            raise InputError(f"region {region!r}: expected minlon,minlat,maxlon,maxlat as numbers") from None
        for lat in (miny, maxy):
            if not -90 <= lat <= 90:
                hint = ""
                if -90 <= minx <= 90 and -90 <= maxx <= 90 and -180 <= miny <= 180 and -180 <= maxy <= 180:
                    hint = (f"; it reads as minlat,minlon,maxlat,maxlon: for lon/lat order give "
                            f"{miny:g},{minx:g},{maxy:g},{maxx:g}")
                raise InputError(f"region {region!r}: latitude {lat:g} is outside -90..90{hint}")
        for lon in (minx, maxx):
            if not -180 <= lon <= 180:
                raise InputError(f"region {region!r}: longitude {lon:g} is outside -180..180")
        if not (minx < maxx and miny < maxy):
            raise InputError(f"region {region!r}: expected minlon,minlat,maxlon,maxlat with each min below its max")
        return box(minx, miny, maxx, maxy)
    path = Path(region)
    if not path.exists():
        raise InputError(f"region {region!r}: no such file, and not a minlon,minlat,maxlon,maxlat box")
    import pyogrio
    from shapely import from_wkb

    try:
        meta, _, geoms, _ = pyogrio.raw.read(path)
    except Exception as exc:  # pyogrio raises several DataSourceError flavours
        raise InputError(f"{path}: cannot read as a vector file ({exc})") from None
    shapes = [g for g in from_wkb([g for g in geoms if g is not None]) if g is not None and not g.is_empty]
    polys = [g for g in shapes if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        raise InputError(f"{path}: no polygon to scan")
    crs = meta.get("crs") or "EPSG:4326"
    return to_crs(unary_union(polys), crs, "EPSG:4326")


# --- planning ------------------------------------------------------------------------------


def pixel_key(g: Grid) -> tuple[str, float, float, float]:
    """Grids with the same key share pixel boundaries, so their scenes compare pixel by pixel."""
    r = g.res
    return (g.crs, round(r, 6), round(g.transform.c % r, 3), round(g.transform.f % r, 3))


@dataclass(frozen=True)
class TileJob:
    """One tile of one native grid, with every scene that covers it in date order.

    Attributes:
        tile_id: stable name, ``<epsg>-<res>m-<col>-<row>``; candidate sites are named after it.
        crs / transform / width / height: the tile's pixel grid (a window of the native grid).
        scenes: the scenes covering it, oldest first.
        area_km2: area of the tile inside the region (what the progress bar counts).
        region: the region in the tile's CRS; objects whose centre is outside are dropped.
    """

    tile_id: str
    crs: str
    transform: Affine
    width: int
    height: int
    scenes: tuple[SceneRef, ...]
    area_km2: float
    region: BaseGeometry | None = None

    @property
    def grid(self) -> Grid:
        return Grid(self.crs, self.transform, self.width, self.height)


def native_grid(ref: SceneRef) -> Grid:
    """The grid of the scene's red band (the band every scene has)."""
    import rasterio

    asset = ref.assets.get("red") or next(iter(ref.assets.values()), None)
    if asset is None:
        raise SceneError(f"scene {ref.scene_id}: no band to read")
    with _env():
        try:
            with rasterio.open(asset.href) as ds:
                crs = ds.crs.to_string() if ds.crs else None
                if not crs or ds.crs.is_geographic:
                    raise SceneError(f"scene {ref.scene_id}: {asset.href} is not on a projected grid")
                return Grid(crs, ds.transform, ds.width, ds.height)
        except rasterio.errors.RasterioIOError as exc:
            raise SceneError(f"scene {ref.scene_id}: cannot open {asset.href}: {exc}") from None


def plan(scenes: Sequence[SceneRef], region: BaseGeometry, tile_px: int = TILE_PX,
         grid_of: Callable[[SceneRef], Grid] = native_grid) -> tuple[list[TileJob], list[str]]:
    """Cut the region into tiles on each native grid; returns the tiles and the scenes that failed."""
    groups: dict[tuple[str, float, float, float], list[tuple[SceneRef, Grid]]] = {}
    failed: list[str] = []
    for ref in scenes:
        try:
            g = grid_of(ref)
        except SceneError as exc:
            failed.append(str(exc))
            continue
        groups.setdefault(pixel_key(g), []).append((ref, g))
    jobs: list[TileJob] = []
    for (crs, res, _, _), members in sorted(groups.items()):
        # tiles start on the pixel grid of the group's first file, so a tile of whole blocks
        # decodes each block once (a misaligned tile would decode up to nine blocks twice)
        t0 = min(members, key=lambda m: m[0].scene_id)[1].transform
        side0 = tile_px * res
        ox, oy = t0.c % side0, t0.f % side0
        reg = to_crs(region, "EPSG:4326", crs)
        covered = unary_union([box(*g.bounds) for _, g in members]).intersection(reg)
        if covered.is_empty:
            continue
        side = tile_px * res
        minx, miny, maxx, maxy = covered.bounds
        c0, c1 = math.floor((minx - ox) / side), math.ceil((maxx - ox) / side)
        r0, r1 = math.floor(-(maxy - oy) / side), math.ceil(-(miny - oy) / side)
        pcov = prep(covered)
        epsg = crs.split(":")[-1]
        # scenes by footprint in a tree: all of Xinjiang is ~16,000 tiles under thousands of scenes
        footprints = STRtree([box(*g.bounds) for _, g in members])
        for row in range(r0, r1):
            for col in range(c0, c1):
                left, top = ox + col * side, oy - row * side
                tile = box(left, top - side, left + side, top)
                if not pcov.intersects(tile):
                    continue
                inside = [members[int(i)] for i in footprints.query(tile, predicate="intersects")]
                refs = tuple(r for r, _ in sorted(inside, key=lambda m: (m[0].acquired, m[0].scene_id)))
                area = tile.intersection(covered).area / 1e6
                jobs.append(TileJob(f"{epsg}-{res:g}m-{col}-{row}", crs, Affine(res, 0, left, 0, -res, top),
                                    tile_px, tile_px, refs, round(area, 4), reg))
    return jobs, failed


# --- reading -------------------------------------------------------------------------------


#: GDAL's block cache per process, MB: tiles start on block boundaries, so every block is
#: decoded once and a large cache would only grow memory with the region's size.
SCAN_CACHE_MB = 24


def _env() -> Any:
    import rasterio

    from .httpio import gdal_env

    return rasterio.Env(GDAL_CACHEMAX=SCAN_CACHE_MB, **gdal_env())


class _PerThread(threading.local):
    """This thread's open datasets. A GDAL dataset must not be read by two threads at once
    (Prefect's thread runner runs tiles side by side in one process: shared datasets gave
    "Read failed" and lost tiles), so each thread keeps its own."""

    def __init__(self) -> None:
        self.datasets: dict[str, Any] = {}


_LOCAL = _PerThread()
#: Datasets kept open per thread; past this, the thread's datasets are closed and reopened as needed.
MAX_OPEN = 64


def _open(href: str, sas: str | None = None) -> Any:
    """Datasets stay open per worker thread: a tile re-uses the header a previous tile fetched.

    ``sas`` (``account/container``): a Planetary Computer asset, signed when it is opened
    (:func:`sitewatch.signing.sign`); the signed URL is never stored.
    """
    import rasterio

    cache = _LOCAL.datasets
    ds = cache.get(href)
    if ds is None or ds.closed:
        if len(cache) > MAX_OPEN:
            for old in list(cache.values()):
                old.close()
            cache.clear()
        if sas and href.startswith(("http://", "https://")):
            from .signing import sign

            ds = cache[href] = rasterio.open(f"/vsicurl/{sign(href, sas)}")
        else:
            ds = cache[href] = rasterio.open(href)
    return ds


def _read_window(href: str, band: int, transform: Affine, width: int, height: int,
                 sas: str | None = None) -> tuple[np.ndarray, Any, bool]:
    """The tile's pixels of one band, and whether they are the file's own pixels (no resampling).

    Bands on the tile's grid are read as they are; nodata outside the file. A band with
    another pixel size (Sentinel-2's 20 m ``swir16`` and ``scl`` beside 10 m red) is read
    nearest-neighbour onto the tile's pixels, so every band covers the same ground.
    """
    from rasterio.windows import Window

    ds = _open(href, sas)
    res = transform.a
    nodata = ds.nodata if ds.nodata is not None else 0
    if abs(ds.transform.a - res) > 1e-6 * res or abs(ds.transform.e + res) > 1e-6 * res:
        from rasterio.enums import Resampling
        from rasterio.windows import from_bounds

        win = from_bounds(transform.c, transform.f - height * res, transform.c + width * res, transform.f,
                          ds.transform)
        out = ds.read(band, window=win, out_shape=(height, width), resampling=Resampling.nearest, boundless=True,
                      fill_value=nodata)
        return out, nodata, False
    col = int(round((transform.c - ds.transform.c) / res))
    row = int(round((ds.transform.f - transform.f) / res))
    c0, r0 = max(col, 0), max(row, 0)
    c1, r1 = min(col + width, ds.width), min(row + height, ds.height)
    if (c0, r0, c1, r1) == (col, row, col + width, row + height):  # inside the file: no copy
        return ds.read(band, window=Window(c0, r0, width, height)), nodata, True
    if c1 <= c0 or r1 <= r0:
        return np.full((height, width), nodata, dtype=ds.dtypes[band - 1]), nodata, True
    out = np.empty((height, width), dtype=ds.dtypes[band - 1])
    y0, y1, x0, x1 = r0 - row, r1 - row, c0 - col, c1 - col
    # nodata only where the tile is outside the file (the rest is read over)
    out[:y0] = nodata
    out[y1:] = nodata
    out[y0:y1, :x0] = nodata
    out[y0:y1, x1:] = nodata
    ds.read(band, window=Window(c0, r0, c1 - c0, r1 - r0), out=out[y0:y1, x0:x1])
    return out, nodata, True


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
        return {k: _reflectance(v, *self.cal[k]) for k, v in self.dn.items()}

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

    from .grid import grid_for

    grid = grid_for(aoi_wgs84, job.transform.a)
    h = hashlib.sha256()
    names = [b for b in BANDS if b in ts.ref.assets] + (["scl"] if "scl" in ts.ref.assets else [])
    href = ts.ref.href or ts.ref.scene_id
    try:
        with _env():
            for name in names:
                a = ts.ref.assets[name]
                href = a.href
                ds = _open(a.href, a.sas)
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


def _reflectance(dn: np.ndarray, scale: np.float32, offset: np.float32) -> np.ndarray:
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
    from .reader import near_cloud

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
        with _env():
            have = None
            for name in names:
                a = ref.assets[name]
                href = a.href
                raw, nodata, native = _read_window(a.href, a.band, job.transform, job.width, job.height, a.sas)
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
                scl, _, native = _read_window(a.href, a.band, job.transform, job.width, job.height, a.sas)
                if native:
                    source["scl"] = scl
                clear = _scl_clear(scl)
                clear &= have
                _clear_of_cloud_edges(clear, scl, job.transform.a)
            else:
                clear = have & ~_clouds({k: _reflectance(v, *cal[k]) for k, v in dn.items()})
    except SceneError:
        raise
    except Exception as exc:  # rasterio/GDAL raise many types for broken or unreachable files
        raise SceneError(f"scene {ref.scene_id}: cannot read {href}: {str(exc).splitlines()[0][:160]}") from None
    return TileScene(ref, dn, cal, clear, source)


def _clouds(bands: dict[str, np.ndarray]) -> np.ndarray:
    try:
        from .clouds import detect
    except ImportError:  # pragma: no cover
        return np.zeros(bands["red"].shape, dtype=bool)
    return detect(bands)


# --- detection -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A new building block found in a tile, in the tile's CRS."""

    geometry: MultiPolygon
    before: int
    after: int
    area_m2: float
    score: float
    magnitude: float


def _ndvi(b: dict[str, np.ndarray]) -> np.ndarray:
    n, r = b["nir"], b["red"]
    return (n - r) / np.maximum(n + r, 1e-4)


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
                    v = _reflectance(v, s, o)
                np.copyto(v, _reflectance(c, cs, co), where=cur.clear)
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
    """``np.median(_reflectance(dn, scale, offset))``, found by counting the stored integers."""
    if dn.dtype not in (np.uint8, np.uint16) or not dn.size:
        return _median(_reflectance(dn, scale, offset))
    n = dn.size
    k = n // 2
    below = np.cumsum(np.bincount(dn))
    mid = np.searchsorted(below, (k,) if n % 2 else (k - 1, k), side="right").astype(dn.dtype)
    return float(np.mean(_reflectance(mid, scale, offset)))  # the map to reflectance keeps the order


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
        rs, cs = _reflectance(rsub, rsc, rof), _reflectance(csub, csc, cof)
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
        return ({k: _reflectance(cur.dn[k].ravel()[at], *cur.cal[k]) for k in names},
                {k: _reflectance(ref[k][0].ravel()[at], ref[k][1], ref[k][2]) for k in names})

    cur_v, ref_v = values(idx, ("red", "nir"))
    keep = (_ndvi(cur_v) <= NDVI_VEGETATION) & (_ndvi(ref_v) <= NDVI_VEGETATION)
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
            x = [_reflectance(stack[i].dn[k][sl][part][use], *stack[i].cal[k]) / np.float32(v)
                 for i, v in zip((before, after, j), lv)]
            to_before += float(((x[2] - x[0]) ** 2).sum())
            to_after += float(((x[2] - x[1]) ** 2).sum())
        return to_after < to_before
    return True


def candidates(stack: Sequence[TileScene], job: TileJob, min_area_m2: float = MIN_AREA_M2) -> list[Candidate]:
    """New building blocks as polygons (tile CRS), one per connected object that the next clear
    scene still shows (:func:`persists`)."""
    import rasterio.features

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
            polys = [shape(g) for g, v in rasterio.features.shapes(part.astype(np.uint8), mask=part, transform=t) if v]
            geom = unary_union(polys)
            if job.region is not None and not job.region.contains(geom.centroid):
                continue
            mag = float(np.sqrt(pc.magnitude2[sl][part]).mean())
            area = float(part.sum()) * res * res
            mp = geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom])
            found.append(Candidate(mp, before, pc.after, area, score_of(mag, area), round(mag, 2)))
    return found

# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileResult:
    """What one tile produced; small enough to ship back from any worker."""

    tile_id: str
    area_km2: float
    sites: tuple[Site, ...] = ()
    scenes: tuple[SceneRecord, ...] = ()
    detections: tuple[DetectionRecord, ...] = ()
    failures: tuple[str, ...] = ()
    scenes_read: int = 0
    seconds: float = 0.0


_MALLOC_TUNED = False


def _keep_freed_memory() -> None:
    """Ask glibc's allocator to keep freed memory for the next tile instead of returning it.

    A tile allocates the same few dozen MB of arrays as the one before it; by default glibc
    hands arrays over 128 KB back to the kernel when they are freed, so each tile faulted its
    memory in again, page by page (~7,000 page faults per tile: a tenth of the scan's CPU, in
    the kernel). Kept, the pages are reused and the resident set stays what it was (flat in the
    region's size, as before). Once per process; a no-op where the C library is not glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes
        import sys

        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None)
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is None:
            return
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        mallopt(m_mmap_threshold, 32 << 20)  # tile-sized arrays from the heap, not fresh mappings
        mallopt(m_trim_threshold, 256 << 20)  # and the heap not trimmed between tiles
    except (OSError, AttributeError, TypeError):  # pragma: no cover - not glibc
        pass


def scan_tile(job: TileJob, run_id: str) -> TileResult:
    """Read every scene of one tile, find new blocks, and describe them as sites, scenes and detections."""
    _keep_freed_memory()
    t0 = time.perf_counter()
    stack: list[TileScene] = []
    failures: list[str] = []
    for ref in job.scenes:
        try:
            stack.append(read_tile(ref, job))
        except SceneError as exc:
            failures.append(str(exc))
    found = candidates(stack, job)
    sites: list[Site] = []
    scenes: dict[str, SceneRecord] = {}
    dets: list[DetectionRecord] = []
    grid = job.grid
    for n, c in enumerate(sorted(found, key=lambda c: (c.geometry.centroid.y, c.geometry.centroid.x)), start=1):
        site_id = f"scan-{job.tile_id}-{n}"
        outline = to_crs(c.geometry.convex_hull.buffer(200, join_style="mitre"), job.crs, "EPSG:4326")
        b, a = stack[c.before], stack[c.after]
        sites.append(Site(site_id, outline, name=f"Scan candidate {n} in tile {job.tile_id}",  # type: ignore[arg-type]
                          notes=f"new building block between {b.ref.date} and {a.ref.date}; found by a wide-area scan",
                          properties={"tile_id": job.tile_id, "run_id": run_id, "source": "scan"}))
        for ts in (b, a):
            try:
                sha = site_sha256(ts, job, outline)
            except SceneError as exc:  # the tile is not marked done: the next run scans it again
                failures.append(str(exc))
                sha = None
            scenes[f"{site_id}|{ts.ref.scene_id}"] = SceneRecord(
                scene_id=ts.ref.scene_id, site_id=site_id, source=ts.ref.source, acquired=ts.ref.acquired,
                gsd_m=job.transform.a, grid_res_m=job.transform.a, cloud_fraction=round(1 - ts.clear_fraction, 4),
                valid_fraction=round(ts.clear_fraction, 4), sha256=sha, run_id=run_id,
                collection=ts.ref.collection, href=ts.ref.href, footprint=outline,  # type: ignore[arg-type]
                status="observed", image_href=one_file_image(ts.ref),
                properties={"tile_id": job.tile_id, "pixels": "site window, native grid (as sitewatch.reader reads it)"})
        change = Change("building_new", c.geometry, b.ref.scene_id, b.ref.date, a.ref.scene_id, a.ref.date,
                        c.area_m2, None, c.score,
                        {"detector": SCAN_DETECTOR, "maps": ["building"], "magnitude": c.magnitude,
                         "tile_id": job.tile_id})
        dets.append(detection_record(site_id, change, grid, run_id))
    return TileResult(job.tile_id, job.area_km2, tuple(sites), tuple(scenes.values()), tuple(dets),
                      tuple(failures), len(stack), round(time.perf_counter() - t0, 3))


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanParams(RunParams):
    """What one scan was asked to do (stored in ``runs.params``)."""

    region: str
    imagery: str
    db: str = "findings.gpkg"
    collection: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    tile_px: int = TILE_PX
    #: Tiles per GeoPackage transaction (a kill loses at most this many tiles' work, never data).
    batch_tiles: int = 64

    @property
    def key(self) -> str:
        """Same scan asked again, same key: the tiles it already did are skipped."""
        d = {**self.as_dict(), "detector": SCAN_DETECTOR}
        d.pop("db")
        d.pop("batch_tiles")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ScanSummary:
    """Totals of a scan, for ``runs.summary`` and the terminal."""

    run_id: str
    tiles: int = 0
    tiles_skipped: int = 0
    area_km2: float = 0.0
    scenes: int = 0
    detections_new: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: what the user should know that is not a failure (a region that matched no scene)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "partial" if self.failures else "completed"

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "tiles": self.tiles, "tiles_skipped": self.tiles_skipped,
                "area_km2": round(self.area_km2, 1), "scenes": self.scenes, "detections_new": self.detections_new,
                "failures": _counted(self.failures), "seconds": round(self.seconds, 2), "notes": list(self.notes)}


def _counted(lines: Sequence[str]) -> list[str]:
    """One line per distinct failure (a broken scene fails every tile it covers), with how many tiles."""
    counts: dict[str, int] = {}
    for ln in lines:
        counts[ln] = counts.get(ln, 0) + 1
    return [f"{ln} ({n} tiles)" if n > 1 else ln for ln, n in counts.items()]


def prepare(params: ScanParams) -> tuple[Store, str, list[TileJob], list[str], list[str]]:
    """Check inputs, discover and plan before writing; then register the run. Skips tiles done before.

    Returns the store, the run id, the tiles to scan, the failures so far and notes (a region
    that matched no scene is named, with where it is: a silent "0 tiles" hides swapped lon/lat).
    """
    from .catalog import discover, probe
    from .extent import no_scene_note

    region = read_region(params.region)
    probe(params.imagery, collection=params.collection)
    found = discover(params.imagery, collection=params.collection, aoi=region, since=params.since,
                     until=params.until)
    jobs, failed = plan(found.scenes, region, params.tile_px)
    failed = [*found.problems, *failed]
    notes = [] if found.scenes else [no_scene_note(f"region {params.region!r}", region, params.imagery,
                                                   collection=params.collection, since=params.since,
                                                   until=params.until)]
    store = Store(params.db)
    done = store.done_scan_tiles(params.key)
    run_id = store.start_run("scan", {**params.as_dict(), "scan_key": params.key})
    return store, run_id, [j for j in jobs if j.tile_id not in done], failed, notes


class TileWriter:
    """Writes tile results as they arrive, in batches: one transaction per batch of tiles (or every
    couple of seconds), each tile with its done mark. A kill loses at most the last batch, which
    the next run scans again."""

    def __init__(self, store: Store, params: ScanParams, run_id: str, summary: ScanSummary,
                 batch: int = 64, every_s: float = 2.0):
        self.store, self.params, self.run_id, self.summary = store, params, run_id, summary
        self.batch, self.every_s = batch, every_s
        self.pending: list[ScanTile] = []
        self.last = time.monotonic()

    def add(self, result: TileResult) -> None:
        s = self.summary
        if result.failures:  # a tile with a failed scene is not marked done: the next run reads it again
            s.failures.extend(result.failures)
        else:
            self.pending.append(ScanTile(result.tile_id, result.area_km2, result.sites, result.scenes,
                                         result.detections))
            if len(self.pending) >= self.batch or time.monotonic() - self.last > self.every_s:
                self.flush()
        s.tiles += 1
        s.area_km2 += result.area_km2
        s.scenes += result.scenes_read

    def flush(self) -> None:
        self.summary.detections_new += self.store.save_scan_tiles(self.params.key, self.run_id, self.pending)
        self.pending = []
        self.last = time.monotonic()


MapUnordered = Callable[[Callable[[TileJob], TileResult], Sequence[TileJob]], Iterable[TileResult]]


def serial(fn: Callable[[TileJob], TileResult], jobs: Sequence[TileJob]) -> Iterator[TileResult]:
    return (fn(j) for j in jobs)


def process_map(workers: int) -> MapUnordered:
    """Run tiles in ``workers`` forked processes on this machine (cheap to start: no cluster)."""
    import multiprocessing as mp

    def run(fn: Callable[[TileJob], TileResult], jobs: Sequence[TileJob]) -> Iterator[TileResult]:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            yield from pool.imap_unordered(fn, jobs, chunksize=1)

    return run


def dask_map(client: Any) -> MapUnordered:
    """Run tiles on a Dask cluster, results in completion order, a bounded number in flight."""
    from dask.distributed import as_completed

    def run(fn: Callable[[TileJob], TileResult], jobs: Sequence[TileJob]) -> Iterator[TileResult]:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        window = 4 * n_workers  # jobs carry no pixels, but results pile up if nobody drains them
        it = iter(jobs)
        pending = as_completed([client.submit(fn, j, pure=False) for _, j in zip(range(window), it)])
        for fut in pending:
            yield fut.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.add(client.submit(fn, nxt, pure=False))

    return run


def drain(store: Store, params: ScanParams, run_id: str, jobs: Sequence[TileJob], failed: Sequence[str],
          results: Iterable[TileResult], notes: Sequence[str] = ()) -> ScanSummary:
    """Write tile results as they arrive, under a progress bar in km², then close the run."""
    from .progress import reporter

    t0 = time.perf_counter()
    summary = ScanSummary(run_id, failures=list(failed), notes=list(notes))
    writer = TileWriter(store, params, run_id, summary, batch=params.batch_tiles)
    rep = reporter()
    task = rep.start("scan", total=sum(j.area_km2 for j in jobs))
    try:
        for result in results:
            writer.add(result)
            rep.advance(task, result.area_km2)
        writer.flush()
    finally:
        rep.finish(task)
        summary.seconds = time.perf_counter() - t0
        store.finish_run(run_id, summary.status if summary.tiles == len(jobs) else "failed", summary.as_dict())
    return summary


def run(params: ScanParams, map_unordered: MapUnordered = serial) -> ScanSummary:
    """A whole scan without Prefect: tiles run wherever ``map_unordered`` runs them."""
    store, run_id, jobs, failed, notes = prepare(params)
    return drain(store, params, run_id, jobs, failed, map_unordered(partial(scan_tile, run_id=run_id), jobs), notes)


def summary_line(s: ScanSummary | dict[str, Any]) -> str:
    d = s.as_dict() if isinstance(s, ScanSummary) else s
    rate = d["area_km2"] / d["seconds"] if d.get("seconds") else 0.0
    return (f"{d['tiles']} tiles, {d['area_km2']:,.0f} km² in {d['seconds']:.1f} s ({rate:,.0f} km²/s), "
            f"{d['scenes']} scene reads, {d['detections_new']} new detections, {len(d['failures'])} failures")


# ``sitewatch.scan(...)``, the public API's scan, is this module called (sitewatch._CallableModule).
from . import _api_module  # noqa: E402

_api_module(__name__)
