"""GDAL access for the scan: each worker thread's open datasets, and one band's window onto a tile.

Tiles start on block boundaries, so every block is decoded once; a dataset stays open in its
thread so the next tile re-uses the header the previous one fetched.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from affine import Affine

#: GDAL's block cache per process, MB: tiles start on block boundaries, so every block is
#: decoded once and a large cache would only grow memory with the region's size.
SCAN_CACHE_MB = 24


def scan_env() -> Any:
    import rasterio

    from ..httpio import gdal_env

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


def open_dataset(href: str, sas: str | None = None) -> Any:
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
            from ..signing import sign

            ds = cache[href] = rasterio.open(f"/vsicurl/{sign(href, sas)}")
        else:
            ds = cache[href] = rasterio.open(href)
    return ds


def read_window(href: str, band: int, transform: Affine, width: int, height: int,
                 sas: str | None = None) -> tuple[np.ndarray, Any, bool]:
    """The tile's pixels of one band, and whether they are the file's own pixels (no resampling).

    Bands on the tile's grid are read as they are; nodata outside the file. A band with
    another pixel size (Sentinel-2's 20 m ``swir16`` and ``scl`` beside 10 m red) is read
    nearest-neighbour onto the tile's pixels, so every band covers the same ground.
    """
    from rasterio.windows import Window

    ds = open_dataset(href, sas)
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
