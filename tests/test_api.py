"""The public Python API: ``import sitewatch`` with GeoDataFrames in and out.

Every function is checked against what the command line does with the same input: the
same checks on sites, the same stored scenes and detections, nothing written on bad input.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point, box

import sitewatch
from sitewatch.testbed.demo import make_demo
from sitewatch.errors import InputError, SitesError
from sitewatch.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's Sentinel-2-like site, monitored once from its file (the CLI's path)."""
    root = tmp_path_factory.mktemp("apidemo")
    bundle = make_demo(root / "data")
    doc = json.loads(bundle.sites_path.read_text())
    doc["features"] = [f for f in doc["features"] if f["properties"]["site_id"] == "demo-s2"]
    sites = root / "s2.geojson"
    sites.write_text(json.dumps(doc))
    db = root / "file.gpkg"
    summary = sitewatch.monitor(sites, bundle.catalog_path, db)
    assert summary.status == "completed"
    return bundle, sites, db


def facts(db: Path):
    s = Store(db, create=False)
    return ({(x.scene_id, x.status, x.sha256) for x in s.scenes("demo-s2")},
            {(d.kind, d.before_scene_id, d.after_scene_id, round(d.area_m2)) for d in s.detections(site_id="demo-s2")})


def test_import_is_cheap_and_all_lists_the_api():
    code = ("import sys, sitewatch; print(sitewatch.__all__); "
            "print(sorted(m for m in ('numpy', 'pandas', 'geopandas', 'rasterio', 'shapely') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "src")}).stdout.splitlines()
    names = eval(out[0])  # noqa: S307 - our own printed list
    for name in ("read_sites", "monitor", "scan", "open", "Findings", "RunSummary", "Detector", "StructureMaps",
                 "SitewatchError", "SitesError"):
        assert name in names
    assert out[1] == "[]", f"import sitewatch pulled in {out[1]}"
    for name in names:
        assert getattr(sitewatch, name) is not None


def test_read_sites_is_the_cli_check_as_a_geodataframe(tmp_path):
    from sitewatch.sites import read_sites as read_list

    frame = sitewatch.read_sites(ROOT / "geodata" / "xinjiang_sites.gpkg")
    listed = read_list(ROOT / "geodata" / "xinjiang_sites.gpkg")
    assert isinstance(frame, gpd.GeoDataFrame) and frame.crs.to_epsg() == 4326
    assert list(frame.site_id) == [s.site_id for s in listed]
    assert all(g.equals(s.geometry) for g, s in zip(frame.geometry, listed))
    bad = tmp_path / "bad.csv"
    bad.write_text("site_id,name,lon,lat\nok-1,a,80.0,40.0\nbad id,b,80.1,40.1\n")
    with pytest.raises(SitesError) as api_err:
        sitewatch.read_sites(bad)
    with pytest.raises(SitesError) as cli_err:
        read_list(bad)
    assert str(api_err.value) == str(cli_err.value) and "bad id" in str(api_err.value)


def test_a_geodataframe_in_any_crs_becomes_the_same_sites_as_a_file(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("site_id,name,lon,lat,radius_m\na,A,80.0,40.0,300\nb,B,80.2,40.1,\n")
    from_file = sitewatch.read_sites(csv)
    frame = gpd.GeoDataFrame({"site_id": ["a", "b"], "name": ["A", "B"], "radius_m": [300.0, None]},
                             geometry=[Point(80.0, 40.0), Point(80.2, 40.1)], crs="EPSG:4326").to_crs(32644)
    from sitewatch.api import sites_from_frame

    sites = sites_from_frame(frame)
    for s, g in zip(sites, from_file.geometry):
        assert s.geometry.symmetric_difference(g).area < 1e-6 * g.area


@pytest.mark.parametrize("change, says", [
    (lambda f: f.assign(site_id=["ok", "no good"]), "row 1"),
    (lambda f: f.assign(site_id=["same", "same"]), "duplicate site_id"),
    (lambda f: f.drop(columns="site_id"), "no site_id column"),
])
def test_a_bad_geodataframe_is_refused_naming_the_row_and_nothing_is_written(tmp_path, demo, change, says):
    bundle, _, _ = demo
    frame = gpd.GeoDataFrame({"site_id": ["ok", "ok2"]}, geometry=[box(80, 40, 80.01, 40.01), box(81, 40, 81.01, 40.01)],
                             crs="EPSG:4326")
    db = tmp_path / "never.gpkg"
    with pytest.raises(SitesError, match=says):
        sitewatch.monitor(change(frame), bundle.catalog_path, db)
    assert not db.exists()


def test_monitor_a_geodataframe_stores_what_the_file_run_stores(tmp_path, demo):
    bundle, sites, file_db = demo
    frame = gpd.read_file(sites).to_crs(32644)  # a notebook user's frame, in UTM
    db = tmp_path / "frame.gpkg"
    summary = sitewatch.monitor(frame, bundle.catalog_path, db)
    assert summary.status == "completed" and summary.as_dict()["detections_new"] == 4
    assert facts(db) == facts(file_db)
    again = sitewatch.monitor(frame, bundle.catalog_path, db)  # the same imagery adds nothing
    assert again.as_dict()["scenes_new"] == 0 and again.as_dict()["detections_new"] == 0


def test_monitor_takes_a_detector_and_site_ids(tmp_path, demo):
    bundle, _, file_db = demo
    from sitewatch.detect import default_detector

    calls = []

    class Counting:
        """The default detector, counting the scenes it maps."""

        name, version = "counting", "1"

        def __init__(self):
            self.inner = default_detector()

        def maps(self, raster, history=()):
            calls.append(raster.scene.scene_id)
            return self.inner.maps(raster, history)

    db = tmp_path / "det.gpkg"
    summary = sitewatch.monitor(bundle.sites_path, bundle.catalog_path, db, detector=Counting(), site_ids=["demo-s2"])
    assert [r.site_id for r in summary.sites] == ["demo-s2"]
    assert len(calls) == summary.sites[0].scenes_new == 8
    assert facts(db) == facts(file_db)
    with Store(db).read() as con:
        assert {r[0] for r in con.execute("SELECT detector FROM sitewatch_scene_maps")} == {"counting 1"}
    with pytest.raises(SitesError, match="no site 'nowhere'"):
        sitewatch.monitor(bundle.sites_path, bundle.catalog_path, tmp_path / "x.gpkg", site_ids=["nowhere"])
    assert not (tmp_path / "x.gpkg").exists()


def test_change_model_without_support_is_one_clear_error(tmp_path, demo):
    import inspect

    from sitewatch.monitor import MonitorParams, run

    if "change_model" in inspect.signature(run).parameters or "change_model" in MonitorParams.__dataclass_fields__:
        pytest.skip("this install runs change models")
    bundle, sites, _ = demo
    with pytest.raises(InputError, match="models extra"):
        sitewatch.monitor(sites, bundle.catalog_path, tmp_path / "m.gpkg", change_model=tmp_path / "m.onnx")
    assert not (tmp_path / "m.gpkg").exists()


def test_open_reads_every_layer_as_frames(tmp_path, demo):
    _, _, file_db = demo
    db = tmp_path / "copy.gpkg"
    db.write_bytes(file_db.read_bytes())
    f = sitewatch.open(db)
    sites, dets, scenes = f.sites(), f.detections(), f.scenes(site_id="demo-s2")
    for frame in (sites, dets, scenes):
        assert isinstance(frame, gpd.GeoDataFrame) and frame.crs.to_epsg() == 4326
    store = Store(db)
    assert list(sites.site_id) == [s.site_id for s in store.sites()]
    assert sorted(dets.detection_id) == sorted(d.detection_id for d in store.detections())
    assert (dets.geom_type == "MultiPolygon").all() and (dets.status == "pending").all()
    assert len(scenes) == 8 and str(scenes.acquired.dtype).endswith("UTC]")
    assert scenes.acquired.is_monotonic_increasing
    m = f.metrics("demo-s2")
    assert isinstance(m, pd.DataFrame) and len(m) == 8 and (m.built_area_m2.iloc[-1] > m.built_area_m2.iloc[0])
    assert f.reviews().empty
    first = dets.detection_id.iloc[0]
    store.add_review(first, "A. Analyst", "confirmed", "halls visible")
    assert list(f.detections(status="confirmed").detection_id) == [first]
    assert len(f.detections(status="pending")) == len(dets) - 1
    assert f.detections(site_id="elsewhere").empty
    r = f.reviews()
    assert list(r.reviewer) == ["A. Analyst"] and list(r.detection_id) == [first]
    with pytest.raises(InputError, match="status 'bogus'"):
        f.detections(status="bogus")
    page = f.timeline("demo-s2", tmp_path / "tl")
    assert page.name == "index.html" and "demo-s2" in page.read_text()


def test_open_never_creates_a_file(tmp_path):
    with pytest.raises(InputError, match="no such findings GeoPackage"):
        sitewatch.open(tmp_path / "missing.gpkg")
    assert not (tmp_path / "missing.gpkg").exists()


def test_scan_region_from_shapes(tmp_path):
    from sitewatch.api import _region_arg
    from sitewatch.scan import read_region

    assert _region_arg(box(80, 40, 81, 41), tmp_path / "f.gpkg") == "80,40,81,41"
    tri = gpd.GeoDataFrame(geometry=[Point(80, 40).buffer(0.1)], crs="EPSG:4326")
    name = _region_arg(tri, tmp_path / "f.gpkg")
    assert name == _region_arg(tri, tmp_path / "f.gpkg"), "the same shape must name the same scan (resume)"
    assert read_region(name).symmetric_difference(tri.geometry.iloc[0]).area < 1e-9
    digest = hashlib.sha256(Path(name).read_bytes()).hexdigest()[:12]
    assert digest in name
