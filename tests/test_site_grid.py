"""One grid per site, and the co-registration shift stored with each scene (issue 13, item 7).

Real pixels (OSCD Rennes, Sentinel-2, first date) written as two GeoTIFF scenes the way two
passes deliver them: one at 8.44 m pixels, one at 8.56 m pixels and misregistered by 15 m
east. Before: the two went onto 8 m and 9 m grids, were never compared, and the run still
said "completed"; and ``scenes.shift_x_px`` read 0 although the detector shifted the scene.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from sitewatch.detect import default_detector
from sitewatch.monitor import finish, monitor_site
from sitewatch.scenes import AssetRef, SceneRef
from sitewatch.sites import Site
from sitewatch.store import Store

BANDS = (("blue", "B02"), ("green", "B03"), ("red", "B04"), ("nir", "B08"))
SHIFT_M = 15.0


def _write(src_dir: Path, out: Path, pixel_m: float, east_m: float = 0.0) -> dict[str, AssetRef]:
    """The bands resampled onto ``pixel_m`` pixels (EPSG:4326, as OSCD), georeferenced ``east_m`` off."""
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out.mkdir(parents=True, exist_ok=True)
    assets = {}
    for name, band in BANDS:
        with rasterio.open(src_dir / f"{band}.tif") as ds:
            lat = (ds.bounds.top + ds.bounds.bottom) / 2
            deg = pixel_m / (111_320.0 * math.cos(math.radians(lat)))
            w = int((ds.bounds.right - ds.bounds.left) / deg)
            h = int((ds.bounds.top - ds.bounds.bottom) / deg)
            dst_t = Affine(deg, 0, ds.bounds.left, 0, -deg, ds.bounds.top)
            dst = np.zeros((h, w), np.uint16)
            reproject(ds.read(1), dst, src_transform=ds.transform, src_crs=ds.crs, dst_transform=dst_t,
                      dst_crs=ds.crs, resampling=Resampling.bilinear)
            written_t = dst_t * Affine.translation(east_m / pixel_m, 0)
            p = out / f"{name}.tif"
            with rasterio.open(p, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint16", crs=ds.crs,
                               transform=written_t, nodata=0) as o:
                o.write(dst, 1)
        assets[name] = AssetRef(str(p))
    return assets


@pytest.fixture
def two_passes(shared_data, tmp_path):
    src = shared_data / "oscd-dev" / "rennes" / "imgs_1"
    a = _write(src, tmp_path / "a", 8.44)
    b = _write(src, tmp_path / "b", 8.56, east_m=SHIFT_M)
    with rasterio.open(src / "B04.tif") as ds:
        cx, cy = (ds.bounds.left + ds.bounds.right) / 2, (ds.bounds.top + ds.bounds.bottom) / 2
    site = Site("rennes-centre", box(cx - 0.012, cy - 0.008, cx + 0.012, cy + 0.008))
    when = dt.datetime(2015, 8, 21, 11, tzinfo=dt.timezone.utc)
    refs = [SceneRef("pass-a", str(tmp_path), when, a), SceneRef("pass-b", str(tmp_path), when + dt.timedelta(days=5), b)]
    return site, refs, tmp_path


def test_site_resolution_kept_for_slightly_different_pixels():
    from sitewatch.grid import site_resolution

    assert site_resolution(8.44) == 8.0 and site_resolution(8.56) == 9.0  # on their own, two grids
    assert site_resolution(8.56, (8.0,)) == 8.0  # at a site already on 8 m: the same grid
    assert site_resolution(0.5, (10.0,)) == 0.5  # another class of imagery: a grid of its own
    assert site_resolution(10.2, (0.5, 10.0)) == 10.0


def test_scenes_with_slightly_different_pixels_share_the_site_grid(two_passes):
    site, refs, tmp = two_passes
    store = Store(tmp / "f.gpkg")
    store.upsert_sites([site])
    run = store.start_run("monitor", {})
    monitor_site(store, site, refs[:1], default_detector(), run)
    # a later run, as a new pass arrives: the grid the site was given is kept
    result = monitor_site(store, site, refs[1:], default_detector(), run)
    finish(store, run, [result])
    scenes = {s.scene_id: s for s in store.scenes(site.site_id)}
    assert scenes["pass-a"].gsd_m == pytest.approx(8.44, abs=0.02)
    assert scenes["pass-b"].gsd_m == pytest.approx(8.56, abs=0.02)
    assert scenes["pass-a"].grid_res_m == scenes["pass-b"].grid_res_m == 8.0
    assert store.quicklook(site.site_id, "pass-a")[1] == store.quicklook(site.site_id, "pass-b")[1]
    from sitewatch.structures import StructureMaps

    maps = {rec.scene_id: StructureMaps.from_bytes(blob) for rec, blob in store.scene_maps(site.site_id)}
    assert "shift_quality" in maps["pass-b"].info  # compared with (aligned to) pass-a


def test_co_registration_shift_is_stored(two_passes):
    site, refs, tmp = two_passes
    store = Store(tmp / "f.gpkg")
    store.upsert_sites([site])
    run = store.start_run("monitor", {})
    monitor_site(store, site, refs, default_detector(), run)
    from sitewatch.structures import StructureMaps

    infos = {rec.scene_id: StructureMaps.from_bytes(blob).info for rec, blob in store.scene_maps(site.site_id)}
    scenes = {s.scene_id: s for s in store.scenes(site.site_id)}
    assert (scenes["pass-a"].shift_x_px, scenes["pass-a"].shift_y_px) == (0.0, 0.0)  # the reference
    b = scenes["pass-b"]
    assert [b.shift_x_px, b.shift_y_px] == pytest.approx(infos["pass-b"]["shift_px"], abs=1e-3)
    # content placed 15 m east: moved back west by 15 m on the 8 m grid
    assert b.shift_x_px == pytest.approx(-SHIFT_M / 8.0, abs=0.4)
    assert abs(b.shift_y_px) < 0.4
