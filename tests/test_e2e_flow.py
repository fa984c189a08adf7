"""The demo through the real Prefect flow (test harness), checked against the contract.

The one harness-backed module: Prefect's throwaway server costs ~15 s, so everything that
needs the flow itself is checked here in one go; all else calls the library directly.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pyogrio
import pytest

from sitewatch.testbed.demo import make_demo
from sitewatch.store import Store
from sitewatch.structures import CHANGE_KINDS

pytestmark = pytest.mark.e2e

SPEC_FIELDS = {
    "sites": {"site_id", "name", "notes"},
    "scenes": {"scene_id", "site_id", "source", "acquired", "gsd_m", "cloud_fraction", "valid_fraction",
               "sha256", "run_id"},
    "detections": {"detection_id", "site_id", "kind", "before_date", "after_date", "before_scene_id",
                   "after_scene_id", "area_m2", "length_m", "score", "status", "run_id"},
    "site_metrics": {"site_id", "scene_id", "acquired", "built_area_m2", "wall_length_m", "fence_length_m",
                     "tower_count", "enclosed_area_m2"},
    "reviews": {"review_id", "detection_id", "reviewer", "decision", "note", "at", "prev_hash", "hash"},
    "runs": {"run_id", "flow", "started_at", "finished_at", "status", "version", "params"},
}
GEOMETRY = {"sites": "Polygon", "scenes": "Polygon", "detections": "MultiPolygon"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.monitor import monitor_flow

    tmp = tmp_path_factory.mktemp("demo")
    bundle = make_demo(tmp / "data")
    db = tmp / "findings.gpkg"
    args = dict(sites=str(bundle.sites_path), imagery=str(bundle.catalog_path), db=str(db))
    with prefect_test_harness(server_startup_timeout=120):
        first = monitor_flow(**args)
        snapshot = _rows(db)
        second = monitor_flow(**args)
        timelines = _timelines_and_deployments(db, tmp / "timelines")
        scan = _scan_on_dask(tmp)
        threads = _scan_on_threads(tmp)
    return bundle, db, first, second, snapshot, timelines, scan, threads


def _timelines_and_deployments(db, out):
    """The timeline flow on the demo's file; and the deployments ``pipelines.serve`` would serve."""
    from pipelines.serve import deployments
    from pipelines.timeline import timeline_flow

    result = timeline_flow(db=str(db), out=str(out))
    import argparse

    ns = argparse.Namespace(sites="geodata/xinjiang_sites.gpkg", imagery="https://example.invalid/v1",
                            collection="sentinel-2-l2a", db=str(db), since="2017-01-01", cron="0 4 * * *",
                            name="t", scan_region="xinjiang", scan_cron="0 6 * * 0", scan_days=30,
                            timelines=str(out), timelines_cron="0 7 * * *")
    deps = deployments(ns)
    return result, [(d.name, [str(x.schedule.cron) for x in d.schedules]) for d in deps]


def _scan_on_dask(tmp):
    """The scan flow on a local two-process Dask cluster through prefect-dask (same harness)."""
    from pipelines.runners import task_runner
    from pipelines.scan import scan_flow
    from sitewatch.testbed.synth_region import make_region

    region = make_region(tmp / "region", 4.0, seed=3, blocks_per_100km2=20)
    db = tmp / "scan.gpkg"
    result = scan_flow.with_options(task_runner=task_runner(workers=2))(
        region=region.region, imagery=str(region.catalog_path), db=str(db), tile_px=128)
    return region, db, result


def _scan_on_threads(tmp):
    """The scan as ``sitewatch scan`` runs it by default: the flow on Prefect's thread runner, over a
    two-date region of 2,000 x 2,000 px tiled GeoTIFFs (8 MB a band); and the same scan without Prefect."""
    from pipelines.runners import task_runner
    from pipelines.scan import scan_flow
    from sitewatch.scan import ScanParams, run, serial
    from sitewatch.testbed.synth_region import make_region

    region = make_region(tmp / "region20", 20.0, seed=5, blocks_per_100km2=3)
    args = dict(region=region.region, imagery=str(region.catalog_path), tile_px=512)
    flow = scan_flow.with_options(task_runner=task_runner(None, None))(db=str(tmp / "threads.gpkg"), **args)
    plain = run(ScanParams(db=str(tmp / "plain.gpkg"), **args), serial).as_dict()
    return region, tmp / "threads.gpkg", flow, tmp / "plain.gpkg", plain


def _rows(db):
    con = sqlite3.connect(db)
    out = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
           for t in ("sites", "scenes", "detections", "site_metrics")}
    con.close()
    return out


def test_layers_fields_types_crs_and_validator(demo_run, gpkg_valid):
    _, db, first, *_ = demo_run
    assert first["status"] == "completed", first
    gpkg_valid(db)
    layers = dict(pyogrio.list_layers(db))
    for layer, fields in SPEC_FIELDS.items():
        info = pyogrio.read_info(db, layer=layer)
        assert fields <= set(info["fields"]), (layer, fields - set(info["fields"]))
        assert layers[layer] == GEOMETRY.get(layer), layer
        if layer in GEOMETRY:
            assert info["crs"] == "EPSG:4326"
    det = pyogrio.read_info(db, layer="detections")
    types = dict(zip(det["fields"], det["dtypes"]))
    assert types["score"] == "float64" and types["area_m2"] == "float64"
    assert types["before_date"] in ("datetime64[ms]", "datetime64[D]", "object")
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    styles = {r[0] for r in con.execute("SELECT f_table_name FROM layer_styles")}
    assert "detections" in styles


def test_detections_match_the_demo_truth(demo_run):
    bundle, db, *_ = demo_run
    store = Store(db)
    dets = store.detections()
    assert dets, "the demo must produce detections"
    assert {d.kind for d in dets} <= set(CHANGE_KINDS)
    scenes = {(s.site_id, s.scene_id): s for s in store.scenes()}
    for d in dets:
        before, after = scenes[(d.site_id, d.before_scene_id)], scenes[(d.site_id, d.after_scene_id)]
        assert before.date == d.before_date and after.date == d.after_date
        assert before.status == after.status == "observed"
        assert d.before_date < d.after_date
        assert 0 <= d.score <= 1 and d.status == "pending"
    truth = json.loads(bundle.truth_path.read_text())
    found = {(d.site_id, d.kind) for d in dets}
    for t in truth:
        assert (t["site_id"], t["kind"]) in found, f"missed {t}"
    # the no-change site yields nothing
    quiet = [s for s in bundle.site_ids if not any(t["site_id"] == s for t in truth)]
    assert quiet and not [d for d in dets if d.site_id in quiet]


def test_demo_is_checked_against_what_it_planted(demo_run, tmp_path):
    """Every planted change gets one verdict and every detection is matched or named a false alarm;
    the report the demo writes says the same (a demo must match its truth or say where it does not)."""
    from sitewatch.testbed.truthcheck import check_store, write

    bundle, db, *_ = demo_run
    res = check_store(db, bundle.truth_path)
    truth = json.loads(bundle.truth_path.read_text())
    assert len(res.matches) == len(truth) > 10
    verdicts = len(res.right) + len(res.misdated) + len(res.pieces) + len(res.missed)
    assert verdicts == len(truth)
    matched = {d.detection_id for _, ds in res.matches for d in ds}
    assert matched | {d.detection_id for d in res.false} == {d.detection_id for d in Store(db).detections()}
    assert not matched & {d.detection_id for d in res.false}
    report = json.loads(write(res, tmp_path / "truth-check.json").read_text())
    assert report["summary"] == res.lines()[0] and report["ok"] == res.ok
    assert len(res.lines()) == 1 + len(res.missed) + len(res.misdated) + len(res.pieces) + len(res.false)


def test_second_run_adds_nothing(demo_run):
    _, db, first, second, snapshot, *_ = demo_run
    assert second["scenes_new"] == 0 and second["detections_new"] == 0
    assert _rows(db) == snapshot
    runs = Store(db).runs()
    assert [r.status for r in runs] == ["completed", "completed"]
    assert all(r.finished_at and r.version for r in runs)


def test_times_are_utc_iso(demo_run):
    _, db, *_ = demo_run
    for s in Store(db).scenes():
        assert s.acquired.tzinfo is not None and s.acquired.utcoffset() == dt.timedelta(0)
    con = sqlite3.connect(db)
    for (a,) in con.execute("SELECT acquired FROM scenes"):
        assert a.endswith("Z") and "T" in a


def test_scan_flow_on_a_dask_cluster(demo_run, gpkg_valid):
    from shapely.geometry import shape

    region, db, result = demo_run[6]
    assert result["status"] == "completed" and result["tiles"] > 4, result
    dets = Store(db).detections()
    planted = [shape(p["geometry"]) for p in region.planted]
    assert all(any(d.geometry.intersects(p) for d in dets) for p in planted)
    assert len(dets) == len(planted)
    assert [r.flow for r in Store(db).runs()] == ["scan"]
    gpkg_valid(db)


def test_scan_flow_on_threads_equals_the_plain_scan(demo_run):
    """The default path (threads) loses no tile and finds what the plain library finds."""
    from shapely.geometry import shape

    region, db, flow, plain_db, plain = demo_run[7]
    assert flow["status"] == "completed" and not flow["failures"], flow["failures"][:3]
    assert flow["tiles"] == plain["tiles"] == 16 and flow["scenes"] == plain["scenes"] == 32

    def claims(path):
        return sorted((d.detection_id, d.kind, d.before_date, d.after_date, round(d.area_m2))
                      for d in Store(path).detections())

    assert claims(db) == claims(plain_db)
    dets = Store(db).detections()
    planted = [shape(p["geometry"]) for p in region.planted]
    assert len(dets) == len(planted) and all(any(d.geometry.intersects(p) for d in dets) for p in planted)


def test_timeline_flow_writes_every_site_and_the_index(demo_run):
    bundle, db, *_ = demo_run
    result, _deps = demo_run[5]
    sites = [s.site_id for s in Store(db).sites()]
    assert len(result["pages"]) == len(sites) >= 3
    for sid in sites:
        assert any(p.endswith(f"{sid}/index.html") for p in result["pages"])
    index = open(result["index"], encoding="utf-8").read()
    assert all(f"{sid}/index.html" in index for sid in sites)


def test_serve_builds_monitor_scan_and_timeline_deployments(demo_run):
    _result, deps = demo_run[5]
    assert deps == [("t", ["0 4 * * *"]), ("t-scan", ["0 6 * * 0"]), ("t-timelines", ["0 7 * * *"])]
