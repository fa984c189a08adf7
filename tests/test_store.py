from __future__ import annotations

import datetime as dt
import sqlite3

import pyogrio
import pytest
from shapely.geometry import MultiPolygon, box

from sitewatch import gpkg
from sitewatch.errors import NotFoundError, SchemaError, StoreError
from sitewatch.reviews import chain_problems
from sitewatch.sites import Site
from sitewatch.store import DetectionRecord, MetricsRecord, SceneRecord, Store

T0 = dt.datetime(2019, 5, 4, 5, 12, 33, tzinfo=dt.timezone.utc)


def _scene(run: str, sid: str = "s1", scene_id: str = "a", when: dt.datetime = T0) -> SceneRecord:
    return SceneRecord(scene_id=scene_id, site_id=sid, source="demo", acquired=when, gsd_m=0.5,
                       cloud_fraction=0.1, valid_fraction=0.9, sha256="ab" * 32, run_id=run,
                       footprint=box(88.0, 43.0, 88.01, 43.01), grid_res_m=0.5)


def _det(run: str, did: str = "d1", kind: str = "building_new", score: float = 0.8) -> DetectionRecord:
    return DetectionRecord(detection_id=did, site_id="s1", kind=kind, before_date=dt.date(2018, 1, 1),
                           after_date=dt.date(2019, 5, 4), before_scene_id="x", after_scene_id="a",
                           area_m2=1200.0, length_m=None, score=score,
                           geometry=MultiPolygon([box(88.001, 43.001, 88.002, 43.002)]), run_id=run)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "f.gpkg")
    s.upsert_sites([Site("s1", box(88.0, 43.0, 88.01, 43.01), "One", "n")])
    return s


def test_full_store_validates_and_reads_in_gdal(store, gpkg_valid):
    run = store.start_run("monitor", {"x": 1})
    m = MetricsRecord("s1", "a", T0, 100.0, 20.0, None, 2, 500.0, run)
    store.save_scene(_scene(run), maps=b"\x00\x01", detector="t", metrics=m)
    assert store.save_detections([_det(run)]) == 1
    store.add_review("d1", "ana", "confirmed", "looks right <b>")
    store.finish_run(run, "completed", {"scenes": 1})
    gpkg_valid(store.path)
    info = pyogrio.read_info(store.path, layer="detections")
    assert info["crs"] == "EPSG:4326" and info["features"] == 1
    assert info["geometry_type"] == "MultiPolygon"
    assert store.detection("d1").status == "confirmed"
    assert store.scenes("s1")[0].acquired == T0
    assert store.metrics("s1")[0].tower_count == 2


def test_redetection_keeps_review(store):
    run = store.start_run("monitor", {})
    store.save_detections([_det(run)])
    store.add_review("d1", "ana", "rejected")
    assert store.save_detections([_det(run)]) == 0
    assert store.detection("d1").status == "rejected"
    assert len(store.detections()) == 1


@pytest.mark.parametrize("bad", [
    dict(kind="bunker_new"), dict(score=1.5),
    dict(geometry=MultiPolygon([box(500000, 4800000, 500100, 4800100)])),  # UTM metres, not 4326
])
def test_refuses_corrupting_writes(store, bad):
    d = _det("r").__dict__ | bad
    with pytest.raises(SchemaError):
        store.save_detections([DetectionRecord(**d)])
    assert store.detections() == []


def test_file_guards_refuse_foreign_writers(store):
    store.save_detections([_det("r")])
    con = sqlite3.connect(store.path)
    gpkg.register_functions(con)  # what GDAL/SpatiaLite give any other GeoPackage writer
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("UPDATE detections SET kind='nonsense'")
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO reviews (review_id, detection_id, reviewer, decision, at, prev_hash, hash) "
                    "VALUES ('r','d1','x','maybe','2020-01-01T00:00:00Z','0','0')")


def test_review_chain_and_errors(store):
    store.save_detections([_det("r"), _det("r", "d2")])
    for i in range(4):
        store.add_review("d1" if i % 2 else "d2", f"r{i}", "confirmed" if i % 3 else "rejected")
    assert chain_problems(store.reviews()) == []
    with pytest.raises(NotFoundError):
        store.add_review("nope", "ana", "confirmed")
    with pytest.raises(SchemaError):
        store.add_review("d1", "ana", "maybe")


def test_refuses_foreign_files(tmp_path):
    p = tmp_path / "x.gpkg"
    p.write_bytes(b"\x00" * 4096)
    with pytest.raises(StoreError, match="not a GeoPackage"):
        Store(p)
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "nope" / "f.gpkg")


def test_scene_rewrite_is_atomic_and_failed_scenes_retry(store):
    run = store.start_run("monitor", {})
    failed = SceneRecord(**(_scene(run).__dict__ | dict(status="failed", sha256=None, error="HTTP 500")))
    store.save_scene(failed)
    assert store.done_scene_ids("s1") == set()
    store.save_scene(_scene(run), maps=b"m", detector="t")
    assert store.done_scene_ids("s1") == {"a"}
    assert len(store.scenes("s1")) == 1 and store.scene_maps("s1")[0][1] == b"m"


def test_withdraw_removes_pending_unreviewed_only_all_or_nothing(store, gpkg_valid):
    run = store.start_run("monitor", {})
    store.save_detections([_det(run, "d1"), _det(run, "d2"), _det(run, "d3")])
    store.add_review("d2", "ana", "rejected")
    with pytest.raises(StoreError, match="d2"):  # a reviewed one is refused, and nothing is removed
        store.withdraw_detections(["d1", "d2"])
    with pytest.raises(NotFoundError):
        store.withdraw_detections(["d1", "nope"])
    assert {d.detection_id for d in store.detections()} == {"d1", "d2", "d3"}
    assert store.withdraw_detections(["d1", "d1"]) == 1
    assert {d.detection_id for d in store.detections()} == {"d2", "d3"}
    assert store.detection("d2").status == "rejected" and len(store.reviews("d2")) == 1
    gpkg_valid(store.path)
