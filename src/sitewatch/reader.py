"""Reading one scene over one site: only the site's window, onto the site's grid.

Each band is read over the window that covers the site (plus a margin for resampling) —
for a remote COG that is a few HTTP range requests, not the whole file — hashed as read
(the evidence: ``scenes.sha256`` is over these source pixels, before any resampling) and
then reprojected onto the site's local-UTM grid — or copied, when the file's pixels already
are the grid's (:func:`on_source_grid`: a Sentinel-2 10 m band under a site in its own UTM
zone). Clouds, shadows, snow and no-data are masked from ``scl`` when the scene has it, else
by :mod:`sitewatch.clouds`.

Remote reads are bound by latency and bytes, not decoding, so ``scl`` (one 20 m file, a
quarter of a 10 m band's pixels) is read first: a site window too cloudy to use costs that
mask and not the five bands. The bands are then read concurrently on a shared, bounded
pool (``SITEWATCH_READ_THREADS``), each thread with its own GDAL handle; the hash is taken
in :data:`~sitewatch.scenes.BANDS` order whatever order the reads finish in.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import Any

import numpy as np
from affine import Affine
from shapely.geometry.base import BaseGeometry

from . import httpio
from .errors import FetchError, SceneError
from .progress import reporter
from .grid import Grid, grid_for, nice_resolution, site_resolution  # noqa: F401 (nice_resolution: public here too)
from .scenes import BANDS, SCL_MASKED, AssetRef, SceneRaster, SceneRef

# Every reproject here passes both transforms, yet rasterio, with two sites read at once on
# threads, sometimes warns that a dataset "has no geotransform" (its warning, not the pixels:
# threaded reads equal serial ones). Users should not be told their imagery lacks georeferencing.
warnings.filterwarnings("ignore", message="Dataset has no geotransform")

#: Scene classes that are cloud or cloud shadow (the rest of SCL_MASKED is no-data and snow).
SCL_CLOUD = (3, 8, 9, 10)
#: Extra source pixels read around the site so bilinear resampling has neighbours at the edge.
MARGIN_PX = 2
#: Ground this close to a pixel ``scl`` calls cloud or cloud shadow is not used, metres. A scene
#: classification marks a cloud's dense part; its thin edge (haze that brightens the ground) and
#: the fringe of its shadow pass as clear, and a bright ring of haze looks like new roofs. Cloud
#: masks are buffered for this as a rule: Fmask dilates by 3 Landsat pixels (90 m), sen2r's and
#: rgeeExtra's defaults are 250 m; 100 m is at the cautious end (it costs the least clear ground).
CLOUD_BUFFER_M = 100.0


def near_cloud(cloud: np.ndarray, res_m: float, buffer_m: float = CLOUD_BUFFER_M) -> np.ndarray:
    """Pixels within ``buffer_m`` of a cloud pixel (the cloud included); the cloud itself when there is none."""
    if buffer_m <= 0 or not cloud.any():
        return cloud
    from scipy import ndimage

    r = buffer_m / res_m
    return ndimage.distance_transform_edt(~cloud) <= r


def source_window(ds: Any, grid: Grid) -> tuple[int, int, int, int] | None:
    """(col0, row0, col1, row1) of the file's pixels under ``grid``, plus :data:`MARGIN_PX`,
    clipped to the file; None when the file does not reach it. The pixels a scene's
    ``sha256`` is computed over (the scan hashes cited sites by the same window)."""
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    left, bottom, right, top = transform_bounds(grid.crs, ds.crs, *grid.bounds, densify_pts=21)
    win = from_bounds(left, bottom, right, top, ds.transform)
    col0 = max(0, math.floor(win.col_off) - MARGIN_PX)
    row0 = max(0, math.floor(win.row_off) - MARGIN_PX)
    col1 = min(ds.width, math.ceil(win.col_off + win.width) + MARGIN_PX)
    row1 = min(ds.height, math.ceil(win.row_off + win.height) + MARGIN_PX)
    return None if col1 <= col0 or row1 <= row0 else (col0, row0, col1, row1)


#: How far from a whole pixel a scene's origin may lie and still count as on the grid, in pixels: well
#: under what a bilinear weight can move in a float32 value (so a copy equals the warp bit for bit).
ALIGN_TOL_PX = 1e-9


@lru_cache(maxsize=64)
def _crs(text: str) -> Any:
    from rasterio.crs import CRS

    return CRS.from_user_input(text)


def on_source_grid(src_transform: Affine, src_crs: Any, grid: Grid) -> bool:
    """Whether the file's pixels already are the grid's: same CRS, north-up, same pixel size and an
    origin a whole number of pixels away (a Sentinel-2 10 m band under a site grid of that tile).
    Then each grid pixel is one file pixel and a plain copy gives what the warp gives, for less CPU."""
    t, g = src_transform, grid.transform
    res = grid.res
    if src_crs is None or t.b != 0 or t.d != 0 or g.b != 0 or g.d != 0:
        return False
    if abs(t.a - res) > ALIGN_TOL_PX * res or abs(t.e + res) > ALIGN_TOL_PX * res or g.e != -res:
        return False
    dc, dr = (g.c - t.c) / res, (t.f - g.f) / res
    if abs(dc - round(dc)) > ALIGN_TOL_PX or abs(dr - round(dr)) > ALIGN_TOL_PX:
        return False
    try:
        return bool(src_crs == _crs(grid.crs))
    except Exception:  # a CRS rasterio cannot compare: let the warp decide
        return False


def copy_onto(src: np.ndarray, src_transform: Affine, out: np.ndarray, grid: Grid, nodata: Any = None) -> None:
    """Put a window read on the grid it lies on (:func:`on_source_grid`): grid pixels the window
    does not cover keep what ``out`` holds (no data), as the warp leaves them. The window's values
    are cast to ``out``'s type as they are copied; ``nodata``: its pixels equal to it become NaN."""
    res = grid.res
    dc = round((grid.transform.c - src_transform.c) / res)
    dr = round((src_transform.f - grid.transform.f) / res)
    r0, c0 = max(0, -dr), max(0, -dc)
    r1, c1 = min(grid.height, src.shape[0] - dr), min(grid.width, src.shape[1] - dc)
    if r1 > r0 and c1 > c0:
        part = src[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
        out[r0:r1, c0:c1] = part
        if nodata is not None:
            np.copyto(out[r0:r1, c0:c1], np.float32(np.nan), where=part == nodata)


def window_bytes(ds: Any, span: tuple[int, int, int, int]) -> tuple[int, int, int, str]:
    """(tiles, rows of tiles, bytes, how counted) a read of ``span`` fetches from ``ds``.

    From the file's tile index (GDAL's ``BLOCK_SIZE_x_y`` TIFF metadata: the header, never
    the tiles): the compressed full-resolution tiles under the window, which a read decodes
    whole; a COG stores a row's tiles one after another, so each row is one range. A file
    without a tile index (striped, or not a TIFF) counts its window uncompressed, as one range.
    """
    col0, row0, col1, row1 = span
    bh, bw = ds.block_shapes[0]
    if bw < ds.width or bh < ds.height or ds.profile.get("tiled", False):
        total = tiles = 0
        for ty in range(row0 // bh, math.ceil(row1 / bh)):
            for tx in range(col0 // bw, math.ceil(col1 / bw)):
                size = ds.get_tag_item(f"BLOCK_SIZE_{tx}_{ty}", "TIFF", bidx=1)
                if size is None:
                    break
                total += int(size)
                tiles += 1
            else:
                continue
            break
        else:
            return tiles, math.ceil(row1 / bh) - row0 // bh, total, "tile index"
    itemsize = sum(int(d[-2:]) // 8 if d[-2:].isdigit() else 1 for d in ds.dtypes)
    return 1, 1, (col1 - col0) * (row1 - row0) * itemsize, "uncompressed window"


@contextmanager
def _open(href: str, sas: str | None = None) -> Iterator[Any]:
    """Open a raster with one-line errors: FetchError for remote ones (retried next run).

    ``sas`` (``account/container``): sign the href with a Planetary Computer SAS token first;
    a 403 renews the token once, then says what is missing.
    """
    import rasterio

    from .signing import forbidden, sign

    remote = href.startswith(("http://", "https://"))
    with rasterio.Env(**httpio.gdal_env()):
        ds = None
        for attempt in (0, 1):
            url = sign(href, sas, renew=attempt > 0) if remote else href
            try:
                ds = rasterio.open(f"/vsicurl/{url}" if remote else href)
                break
            except rasterio.errors.RasterioIOError as exc:
                msg = str(exc).splitlines()[0][:200]
                if remote and "403" in msg:
                    if sas and attempt == 0:
                        continue  # an expired or revoked token: renew once
                    raise FetchError(forbidden(href, sas)) from None
                if remote:
                    raise FetchError(f"cannot read {href}: {msg}") from None
                raise SceneError(f"cannot read {href}: {msg}") from None
        assert ds is not None
        with ds:
            yield ds


#: Native pixel sizes already read, by file (a local file by its path, size and modification
#: time): every site over a scene needs its red band's pixel size to choose its grid, and
#: opening the file for it again costs a GDAL open per read. Bounded; facts of a header only.
_GSD_CACHE: OrderedDict[tuple[str, int, int], float] = OrderedDict()
_GSD_CACHE_MAX = 4096
_GSD_LOCK = threading.Lock()


def _file_key(href: str) -> tuple[str, int, int]:
    """What identifies a file's contents here: a URL as itself (as GDAL's /vsicurl/ cache
    keys it), a local file with its size and modification time (a rewritten file is new)."""
    if href.startswith(("http://", "https://")):
        return (href, 0, 0)
    try:
        st = os.stat(href)
        return (href, st.st_size, st.st_mtime_ns)
    except OSError:
        return (href, -1, -1)


def href_gsd(asset: AssetRef) -> float:
    """The native pixel size of ``asset``'s file, metres (opened once per file and run)."""
    key = _file_key(asset.href)
    with _GSD_LOCK:
        if key in _GSD_CACHE:
            _GSD_CACHE.move_to_end(key)
            return _GSD_CACHE[key]
    with _open(asset.href, asset.sas) as ds:
        gsd = native_gsd(ds)
    with _GSD_LOCK:
        _GSD_CACHE[key] = gsd
        while len(_GSD_CACHE) > _GSD_CACHE_MAX:
            _GSD_CACHE.popitem(last=False)
    return gsd


def native_gsd(ds: Any) -> float:
    """Pixel size in metres (geographic files converted at their centre latitude)."""
    a = abs(ds.transform.a)
    if ds.crs is not None and ds.crs.is_geographic:
        lat = (ds.bounds.bottom + ds.bounds.top) / 2
        return a * 111_320.0 * math.cos(math.radians(lat))
    return a


def default_scale(dtype: str, asset: AssetRef) -> tuple[float, float]:
    """Reflectance scaling: the source's own, else the usual convention for its data type."""
    if asset.scale != 1.0 or asset.offset != 0.0:
        return asset.scale, asset.offset
    if dtype == "uint16" or dtype == "int16":
        return 1e-4, 0.0  # Sentinel-2 L2A digital numbers
    if dtype == "uint8":
        return 1 / 255, 0.0  # 8-bit visual products
    return 1.0, 0.0


class _Hash:
    """Collects what :func:`_read_band` feeds a hash, so concurrent reads hash in a fixed order."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def update(self, b: bytes) -> None:
        self.parts.append(b)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def read_threads() -> int:
    """How many band windows are read at once in this process (``SITEWATCH_READ_THREADS``, default 16):
    enough to keep several 80 ms round trips in flight, few enough for a 2-core machine."""
    return max(1, int(os.environ.get("SITEWATCH_READ_THREADS", "16")))


def _pool() -> ThreadPoolExecutor:
    """One pool for every band read in the process, so concurrent sites and scenes stay bounded.
    Band reads never wait on other pool work, so callers on other threads cannot deadlock it."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=read_threads(), thread_name_prefix="sitewatch-read")
        return _POOL


def bound_heap() -> bool:
    """Keep a long run's resident memory flat with the number of sites (glibc's allocator).

    Every band read decodes whole internal tiles (2 MB each for a 1024-px ``uint16`` tile) on
    one of many threads. glibc raises its mmap threshold after such a buffer is freed, so later
    ones come from per-thread arenas that keep their freed pages: resident memory crept up
    site after site (369 -> 500 MB over 30 sites in ``benchmarks/remote.py``). A fixed 256 KiB
    threshold (which returns large buffers to the system when freed) and two arenas keep it flat
    (~325 MB). Process-wide, so it is called by the CLI's monitoring run, not on import; a user's
    own ``MALLOC_ARENA_MAX`` or ``MALLOC_MMAP_THRESHOLD_`` wins. True when applied.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows): nothing to tune
        return False
    m_mmap_threshold, m_arena_max = -3, -8  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 256 * 1024)) and bool(mallopt(m_arena_max, 2))


def _read_band(asset: AssetRef, grid: Grid, h: Any, nearest: bool = False,
               scales: dict[str, tuple[float, float]] | None = None, name: str = "",
               files: _Files | None = None) -> tuple[np.ndarray, float]:
    """One band on the grid (float32, NaN where no data) and its native resolution; the
    reflectance scaling used goes into ``scales[name]``. ``files``: the scene's local files,
    each opened once for all of its bands (:class:`_Files`)."""
    if files is not None:
        return _band(files.get(asset), asset, grid, h, nearest, scales, name)
    with _open(asset.href, asset.sas) as ds:
        return _band(ds, asset, grid, h, nearest, scales, name)


class _Files:
    """A scene's local files, each opened once while its bands are read one after another (a
    multi-band GeoTIFF was opened once per band: four GDAL opens for an RGB file with ``scl``).
    Only for local files, read on one thread: remote bands are read concurrently, each with its
    own handle."""

    def __init__(self) -> None:
        from contextlib import ExitStack

        self._stack = ExitStack()
        self._open: dict[tuple[str, str | None], Any] = {}

    def get(self, asset: AssetRef) -> Any:
        key = (asset.href, asset.sas)
        if key not in self._open:
            self._open[key] = self._stack.enter_context(_open(asset.href, asset.sas))
        return self._open[key]

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def _band(ds: Any, asset: AssetRef, grid: Grid, h: Any, nearest: bool,
          scales: dict[str, tuple[float, float]] | None, name: str) -> tuple[np.ndarray, float]:
    """:func:`_read_band` from an open dataset."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject
    from rasterio.windows import Window

    if asset.band > ds.count:
        raise SceneError(f"{asset.href}: has {ds.count} band(s), band {asset.band} asked for")
    if ds.crs is None:
        raise SceneError(f"{asset.href}: has no CRS; cannot place it on the ground")
    gsd = native_gsd(ds)
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    try:
        span = source_window(ds, grid)
        if span is None:
            return out, gsd  # the scene does not reach the site
        col0, row0, col1, row1 = span
        window = Window(col0, row0, col1 - col0, row1 - row0)
        raw = ds.read(asset.band, window=window)
    except rasterio.errors.RasterioError as exc:
        raise (FetchError if asset.href.startswith("http") else SceneError)(
            f"cannot read {asset.href}: {str(exc).splitlines()[0][:200]}") from None
    rep = reporter()
    if rep.counts_bytes:  # the progress bar's bytes: what the window spans in the file
        rep.read_bytes(window_bytes(ds, span)[2])
    h.update(str(raw.dtype).encode() + str(raw.shape).encode())
    h.update(raw.tobytes())
    nodata = ds.nodata if ds.nodata is not None else (0 if raw.dtype.kind in "ui" else None)
    src_transform = ds.window_transform(window)
    if on_source_grid(src_transform, ds.crs, grid):
        # no resampling to do (the warp would copy too): the window's values cast straight onto the
        # grid, its no-data NaN there (no float32 copy of the window first: the same values)
        copy_onto(raw, src_transform, out, grid, nodata)
    else:
        src = raw.astype(np.float32)
        if nodata is not None:
            src[raw == nodata] = np.nan
        reproject(src, out, src_transform=src_transform, src_crs=ds.crs, src_nodata=np.nan,
                  dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=np.nan,
                  resampling=Resampling.nearest if nearest else Resampling.bilinear)
    if not nearest:
        scale, offset = default_scale(str(raw.dtype), asset)
        out *= np.float32(scale)  # in place: the same float32 operations, one array fewer
        out += np.float32(offset)
        if scales is not None:
            scales[name] = (float(scale), float(offset))
    return out, gsd


def _scl_in(code: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """``np.isin(code, classes)`` for 8-bit scene classes, by a 256-entry table (a tenth of the time)."""
    table = np.zeros(256, bool)
    table[list(classes)] = True
    return table[code]


def read_scene(ref: SceneRef, aoi: BaseGeometry, res_m: float | None = None,
               site_res: Sequence[float] = (), min_valid: float | None = None) -> SceneRaster:
    """The scene over ``aoi`` (EPSG:4326) on the site grid; SceneError/FetchError when unreadable.

    ``res_m`` fixes the grid's pixel size; without it the size is the site's (``site_res``: the
    resolutions its scenes are already on, see :func:`sitewatch.grid.site_resolution`), or one
    from the scene's own pixels for a site's first scene.

    With ``min_valid``, a scene whose ``scl`` leaves less than that fraction of the site clear
    is returned after reading ``scl`` alone: no bands (``bands`` empty), its ``sha256`` over the
    ``scl`` pixels read. Clear ground needs a clear ``scl`` pixel, so such a scene would have
    been unusable with every band read too.
    """
    if "red" not in ref.assets:
        raise SceneError(f"scene {ref.scene_id}: no red band")
    # local files: each opened once (its header gives the native pixel size, then its bands are read
    # one after another on this thread: a scene is read ahead of the one being mapped, on its own
    # thread); remote bands: concurrently, each with its own handle, the header's facts cached
    local = not any(a.href.startswith(("http://", "https://", "/vsi")) for a in ref.assets.values())
    with _Files() if local else nullcontext() as files:
        native: float | None = None
        if res_m is None:
            red = ref.assets["red"]
            native = native_gsd(files.get(red)) if files is not None else href_gsd(red)
            res_m = site_resolution(native, site_res)
        grid = grid_for(aoi, res_m)
        h = hashlib.sha256()
        scl_hash = _Hash()
        cc = ref.properties.get("eo:cloud_cover")
        # a tile its source calls cloud-free gains nothing from waiting for the mask: read it with the bands
        mask_first = min_valid is not None and not (isinstance(cc, (int, float)) and cc == 0)
        return _read_on(ref, grid, res_m, native, min_valid, mask_first, h, scl_hash, files)


def _read_on(ref: SceneRef, grid: Grid, res_m: float, native: float | None, min_valid: float | None,
             mask_first: bool, h: Any, scl_hash: _Hash, files: _Files | None) -> SceneRaster:
    """:func:`read_scene` once the grid is chosen (``files``: local files, see :class:`_Files`)."""
    scl_code: np.ndarray | None = None
    scl_future: Future[tuple[np.ndarray, float]] | None = None
    judged: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # the mask's cloud, masked, near cloud
    if "scl" in ref.assets and not mask_first and files is None:
        scl_future = _pool().submit(_read_band, ref.assets["scl"], grid, scl_hash, True)
    elif "scl" in ref.assets and mask_first:
        scl, _ = _read_band(ref.assets["scl"], grid, scl_hash, nearest=True, files=files)
        scl_code = np.nan_to_num(scl, nan=0).astype(np.uint8)
        if min_valid is not None:
            cloud = _scl_in(scl_code, SCL_CLOUD)
            masked, near = _scl_in(scl_code, SCL_MASKED), near_cloud(cloud, grid.res)
            judged = (cloud, masked, near)
            # as the full read would judge it (its clear ground is inside this), so no result changes
            seen = ~masked & ~near
            if float(seen.mean()) < min_valid:
                for b in scl_hash.parts:
                    h.update(b)
                return SceneRaster(ref, grid, {}, seen, cloud, h.hexdigest(), float(native or res_m))
    names = [n for n in BANDS if n in ref.assets]
    hashes = {n: _Hash() for n in names}
    scales: dict[str, tuple[float, float]] = {}  # each read sets its own band's (one key per thread)
    if files is not None:
        results = {n: _read_band(ref.assets[n], grid, hashes[n], False, scales, n, files=files) for n in names}
        if "scl" in ref.assets and not mask_first:
            scl = _read_band(ref.assets["scl"], grid, scl_hash, True, files=files)[0]
            scl_code = np.nan_to_num(scl, nan=0).astype(np.uint8)
    else:
        pool = _pool()
        futures: dict[str, Future[tuple[np.ndarray, float]]] = {
            n: pool.submit(_read_band, ref.assets[n], grid, hashes[n], False, scales, n) for n in names}
        try:
            results = {n: futures[n].result() for n in names}
        finally:
            for f in (*futures.values(), scl_future):
                if f is not None:
                    f.cancel()
    if scl_future is not None:
        scl_code = np.nan_to_num(scl_future.result()[0], nan=0).astype(np.uint8)
    bands = {n: results[n][0] for n in names}
    gsd = results["red"][1]
    for n in names:
        for b in hashes[n].parts:
            h.update(b)
    for b in scl_hash.parts:
        h.update(b)
    have = np.isfinite(bands["red"])
    for name in ("green", "blue"):
        if name in bands:
            have &= np.isfinite(bands[name])
    if judged is not None and have.all():  # the mask judged above, on every pixel the bands have
        cloud, masked, near = judged
        valid = have & ~masked & ~near
    elif scl_code is not None:
        cloud = _scl_in(scl_code, SCL_CLOUD) & have
        valid = have & ~_scl_in(scl_code, SCL_MASKED) & ~near_cloud(cloud, grid.res)
    else:
        from .clouds import detect

        cloud = detect(bands, res_m=grid.res) & have
        valid = have & ~cloud
    lost = ~have
    for name in bands:  # nothing downstream may use a pixel that is not clear ground (each band its own array)
        np.copyto(bands[name], np.float32(np.nan), where=lost)
    return SceneRaster(ref, grid, bands, valid, cloud, h.hexdigest(), float(gsd), scales=scales)
