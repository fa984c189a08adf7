"""A band already on the site's grid is copied, not warped, and gives the warp's pixels bit for bit.

Tiny real COGs in the site's UTM zone: 10 m bands on the 10 m grid (copied), a 20 m band and
``scl`` (warped, as before), a window at the raster's edge, no-data holes, an origin half a
pixel off (warped).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio.warp
from affine import Affine
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform_geom
from servers import write_cog
from shapely.geometry import box, mapping, shape

from sitewatch import reader
from sitewatch.grid import Grid, grid_for
from sitewatch.reader import copy_onto, on_source_grid, read_scene
from sitewatch.scenes import BANDS, AssetRef, SceneRef

UTM = "EPSG:32645"
X0, Y0 = 500_000.0, 4_400_000.0
PX = 300  # 3 km of 10 m pixels
WHEN = dt.datetime(2024, 5, 1, 5, tzinfo=dt.timezone.utc)


def _grid(x: float = X0 + 1000, y: float = Y0 - 1000, res: float = 10.0) -> Grid:
    return Grid(UTM, Affine(res, 0, x, 0, -res, y), 50, 40)


def test_the_predicate_says_on_grid_only_for_same_crs_size_and_whole_pixel_origin():
    t = from_origin(X0, Y0, 10, 10)
    crs = CRS.from_user_input(UTM)
    assert on_source_grid(t, crs, _grid())
    assert on_source_grid(from_origin(X0 - 30, Y0 + 70, 10, 10), crs, _grid())  # whole pixels away
    assert not on_source_grid(from_origin(X0 + 5, Y0, 10, 10), crs, _grid())  # half a pixel off
    assert not on_source_grid(from_origin(X0, Y0 - 3, 10, 10), crs, _grid())
    assert not on_source_grid(from_origin(X0, Y0, 20, 20), crs, _grid())  # a 20 m band
    assert not on_source_grid(t, CRS.from_user_input("EPSG:32644"), _grid())  # the next zone
    assert not on_source_grid(t, None, _grid())
    assert not on_source_grid(Affine(10, 0.1, X0, 0, -10, Y0), crs, _grid())  # rotated
    assert not on_source_grid(t, crs, _grid(res=5.0))


def test_a_copy_fills_the_overlap_and_leaves_the_rest_as_it_was():
    src = np.arange(12, dtype=np.float32).reshape(3, 4)
    g = Grid(UTM, Affine(10, 0, 10, 0, -10, 0), 4, 3)  # one pixel right of the window's origin
    out = np.full(g.shape, np.nan, np.float32)
    copy_onto(src, from_origin(0, 0, 10, 10), out, g)
    assert np.array_equal(out[:, :3], src[:, 1:]) and np.isnan(out[:, 3]).all()


def test_an_integer_window_is_cast_and_its_no_data_made_nan_as_a_float32_copy_of_it_would_be():
    """The reader copies a window's integers onto the grid without a float32 copy of the window
    first: the same values, the window's no-data pixels NaN, the rest of the grid untouched."""
    rng = np.random.default_rng(5)
    g = Grid(UTM, Affine(10, 0, 10, 0, -10, -10), 6, 5)  # one pixel right of and below the window's origin
    for dtype, nodata in (("uint8", 0), ("uint16", 0), ("int16", -9999), ("float32", None)):
        raw = rng.integers(0, 200, (4, 5)).astype(dtype)
        if nodata is not None:
            raw[1, 2] = raw[3, 4] = nodata
        plain = raw.astype(np.float32)
        if nodata is not None:
            plain[raw == nodata] = np.nan
        want = np.full(g.shape, np.nan, np.float32)
        copy_onto(plain, from_origin(0, 0, 10, 10), want, g)
        got = np.full(g.shape, np.nan, np.float32)
        copy_onto(raw, from_origin(0, 0, 10, 10), got, g, nodata)
        assert np.array_equal(got, want, equal_nan=True) and np.isnan(got).sum() == np.isnan(want).sum() > 0


def _write(root, name: str, origin_shift: float, seed: int) -> SceneRef:
    """Noisy uint16 bands (bilinear would blur them if anything were off) with no-data holes."""
    rng = np.random.default_rng(seed)
    d = root / name
    d.mkdir()
    x0 = X0 + origin_shift
    for i, band in enumerate(BANDS):
        data = rng.integers(500, 9000, (PX, PX)).astype("uint16")
        data[100:110, 40:47] = 0  # no data inside a site's window
        data[:, -3:] = 0  # and a ragged edge
        if band == "swir16":  # 20 m, as on Sentinel-2: still needs resampling
            write_cog(d / f"{band}.tif", data[::2, ::2], UTM, from_origin(x0, Y0, 20, 20), blocksize=64)
        else:
            write_cog(d / f"{band}.tif", data, UTM, from_origin(x0, Y0, 10, 10), blocksize=64)
    scl = np.where(rng.random((PX // 2, PX // 2)) < 0.05, 9, 4).astype("uint8")
    write_cog(d / "scl.tif", scl, UTM, from_origin(x0, Y0, 20, 20), blocksize=64)
    assets = {b: AssetRef(str(d / f"{b}.tif")) for b in (*BANDS, "scl")}
    return SceneRef(name, "test", WHEN, assets)


def _aoi(x: float, y: float, size: float = 700.0):
    return shape(transform_geom(UTM, "EPSG:4326", mapping(box(x, y - size, x + size, y))))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    return {"aligned": _write(root, "aligned", 0.0, 1), "offset": _write(root, "offset", 5.0, 2)}


@pytest.fixture
def warps(monkeypatch):
    """Counts the warps a read makes (rasterio's reproject, as reader imports it per read)."""
    calls = []
    orig = rasterio.warp.reproject

    def counted(*a, **k):
        calls.append(k.get("src_transform"))
        return orig(*a, **k)

    monkeypatch.setattr(rasterio.warp, "reproject", counted)
    return calls


@pytest.mark.parametrize("where", ["inside", "edge", "corner"])
@pytest.mark.parametrize("min_valid", [None, 0.0])
def test_copied_bands_equal_warped_ones_bit_for_bit(scenes, warps, monkeypatch, where, min_valid):
    x, y = {"inside": (X0 + 300, Y0 - 900),  # over the no-data hole
            "edge": (X0 + PX * 10 - 400, Y0 - 1500),  # runs past the raster's east edge
            "corner": (X0 - 300, Y0 + 300)}[where]  # past its north-west corner
    aoi = _aoi(x, y)
    assert grid_for(aoi, 10.0).crs == UTM
    copied = read_scene(scenes["aligned"], aoi, res_m=10.0, min_valid=min_valid)
    n_copy = len(warps)
    monkeypatch.setattr(reader, "on_source_grid", lambda *a: False)
    warped = read_scene(scenes["aligned"], aoi, res_m=10.0, min_valid=min_valid)
    assert n_copy == 2  # swir16 (20 m) and scl are warped; the four 10 m bands are copied
    assert len(warps) - n_copy == 6  # with the copy off, every band and scl
    assert copied.sha256 == warped.sha256
    assert set(copied.bands) == set(BANDS)
    assert np.array_equal(copied.valid, warped.valid) and np.array_equal(copied.cloud, warped.cloud)
    for b in BANDS:
        a, w = copied.bands[b], warped.bands[b]
        assert a.dtype == w.dtype and np.array_equal(a, w, equal_nan=True), b
    red = copied.bands["red"]
    assert np.isnan(red).any() and np.isfinite(red).any()  # holes or the edge, and ground, both seen


def test_a_scene_half_a_pixel_off_the_grid_is_still_warped(scenes, warps):
    raster = read_scene(scenes["offset"], _aoi(X0 + 300, Y0 - 900), res_m=10.0)
    assert len(warps) == 6 and np.isfinite(raster.bands["red"]).any()
