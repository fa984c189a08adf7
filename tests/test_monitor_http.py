"""``sitewatch monitor`` over real HTTP on 127.0.0.1: a static catalog, a STAC API, and faults.

The demo's Sentinel-2-like site is served from a real threaded HTTP server with Range
support (tests/servers.py). The same run over HTTP must store the same pixels (hashes) and
detections as the local run, read the COGs by range requests, page through a STAC API in
Earth Search's shape, and survive server faults: a scene whose asset keeps failing is
recorded as failed and named (exit 1), the rest is stored, and the next run finishes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import earth_search_item, serve_dir, stac_api

from sitewatch.testbed.demo import make_demo
from sitewatch.store import Store

SITE = "demo-s2"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("httpdemo")
    bundle = make_demo(root / "data")
    doc = json.loads(bundle.sites_path.read_text())
    doc["features"] = [f for f in doc["features"] if f["properties"]["site_id"] == SITE]
    sites = root / "s2.geojson"
    sites.write_text(json.dumps(doc))
    local = root / "local.gpkg"
    r = monitor(sites, bundle.catalog_path, local)
    assert r.returncode == 0, r.stderr
    return bundle, sites, local


def monitor(sites: Path, imagery: str | Path, db: Path, *extra: str, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "monitor", "--sites", str(sites),
                           "--imagery", str(imagery), "--db", str(db), "--no-prefect", *extra],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def facts(db: Path):
    s = Store(db)
    scenes = {(x.scene_id, x.status, x.sha256) for x in s.scenes(SITE)}
    dets = {(d.kind, d.before_scene_id, d.after_scene_id, round(d.area_m2)) for d in s.detections(site_id=SITE)}
    return scenes, dets


def test_static_catalog_over_http_same_as_local(demo, tmp_path):
    bundle, sites, local = demo
    with serve_dir(bundle.catalog_path.parent.parent) as srv:
        url = f"{srv.url}/catalog/catalog.json"
        db = tmp_path / "http.gpkg"
        r = monitor(sites, url, db)
        assert r.returncode == 0, r.stderr
        tifs = [q for q in srv.seen() if q.path.endswith(".tif")]
    assert facts(db) == facts(local)
    assert facts(db)[1], "the halls must be found over HTTP too"
    assert tifs and all(q.method in ("GET", "HEAD") for q in tifs)
    gets = [q for q in tifs if q.method == "GET"]
    assert gets and all(q.range for q in gets), "remote COGs must be read by range requests only"


def _api_items(bundle, base_url: str) -> list[dict]:
    items = []
    for p in sorted(bundle.catalog_path.parent.glob("demo-sentinel-2/*/*.json")):
        it = json.loads(p.read_text())
        rel = {k: a["href"] for k, a in it["assets"].items()}
        hrefs = {k: f"{base_url}/demo-sentinel-2/{it['id']}/{h}" for k, h in rel.items()}
        items.append(earth_search_item(it["id"], it["properties"]["datetime"], it["bbox"], hrefs, offset=0.0,
                                       epsg=it["properties"]["proj:epsg"]))
    return items


def test_stac_api_with_paging_same_as_local(demo, tmp_path):
    bundle, sites, local = demo
    with serve_dir(bundle.catalog_path.parent) as files:
        items = _api_items(bundle, files.url)
        with stac_api(items, max_limit=3) as api:
            db = tmp_path / "api.gpkg"
            r = monitor(sites, api.url, db, "--collection", "sentinel-2-l2a")
            assert r.returncode == 0, r.stderr
            searches = [q for q in api.seen() if q.path.startswith("/search")]
    assert len(searches) >= 3, "8 items at 3 per page take at least three pages"
    assert facts(db) == facts(local)


def test_faults_partial_run_then_finished(demo, tmp_path):
    bundle, sites, local = demo
    root = bundle.catalog_path.parent.parent
    env = {"SITEWATCH_HTTP_TIMEOUT": "2", "SITEWATCH_HTTP_RETRIES": "1"}
    bad = "catalog/demo-sentinel-2/demo-s2_20190921_red.tif"
    flaky = "catalog/demo-sentinel-2/demo-s2_20200504_nir.tif"
    stalled = "catalog/demo-sentinel-2/demo-s2_20210627_green.tif"
    with serve_dir(root) as srv:
        url = f"{srv.url}/catalog/catalog.json"
        db = tmp_path / "faults.gpkg"
        srv.fail(bad, "500", times=None)
        srv.fail(flaky, "429", times=1, retry_after=0.2)
        srv.fail(stalled, "stall", times=None, stall_s=30)
        t0 = time.monotonic()
        r = monitor(sites, url, db, env=env)
        took = time.monotonic() - t0
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr
        assert "scene demo-s2_20190921" in r.stderr and "scene demo-s2_20210627" in r.stderr
        assert took < 120, "a stalled server must not hang the run"
        status = {s.scene_id: s.status for s in Store(db).scenes(SITE)}
        assert status["demo-s2_20190921"] == "failed" and status["demo-s2_20210627"] == "failed"
        assert status["demo-s2_20200504"] == "observed", "one 429 with Retry-After is retried"
        assert sum(v == "observed" for v in status.values()) == len(status) - 2
        assert [x.status for x in Store(db).runs()] == ["partial"]
        first = {d.detection_id: d for d in Store(db).detections(site_id=SITE)}
        srv.faults.clear()
        r2 = monitor(sites, url, db, env=env)
        assert r2.returncode == 0, r2.stderr
    assert facts(db) == facts(local), "after the faults clear, the result equals an uninterrupted run"
    # what went is either superseded (named by its better-dated version) or withdrawn, named in the summary
    now = Store(db).detections(site_id=SITE)
    gone = set(first) - {d.detection_id for d in now} - {d.evidence.get("supersedes") for d in now}
    named = {ln.split()[1] for ln in r2.stderr.splitlines() if ln.startswith("withdrawn: ")}
    assert named == gone and (f"{len(gone)} withdrawn" in r2.stdout) == bool(gone), r2.stdout + r2.stderr
    assert all(first[i].status == "pending" and not first[i].evidence["confirmed_by_next_clear_scene"] for i in gone)
    summary = max(Store(db).runs(), key=lambda x: x.started_at).summary
    assert set(summary["withdrawn"]) == gone
    # what each withdrawn detection claimed stays on record with the run that withdrew it
    kept = {c["detection_id"]: c for c in summary["withdrawn_claims"]}
    assert set(kept) == gone
    for i in gone:
        assert (kept[i]["kind"], kept[i]["after_date"], kept[i]["after_scene_id"]) == \
            (first[i].kind, first[i].after_date.isoformat(), first[i].after_scene_id)
        assert kept[i]["outline_wkt"].startswith("MULTIPOLYGON")


def _dates(local: Path) -> list[str]:
    return sorted({x.acquired.date().isoformat() for x in Store(local).scenes(SITE)})


def test_a_run_after_new_scenes_arrive_reads_only_those_and_ends_like_one_run(demo, tmp_path):
    """--until a middle date, then everything: the second run reads only the newer scenes and the
    result is the one-shot run's (same scenes, same hashes, same dated detections)."""
    bundle, sites, local = demo
    dates = _dates(local)
    mid = dates[len(dates) // 2]
    db = tmp_path / "inc.gpkg"
    assert monitor(sites, bundle.catalog_path, db, "--until", mid).returncode == 0
    first = {x.scene_id for x in Store(db).scenes(SITE)}
    assert first and len(first) < len(dates)
    r = monitor(sites, bundle.catalog_path, db)
    assert r.returncode == 0, r.stderr
    assert f"{len(dates) - len(first)} new" in r.stdout, r.stdout
    assert facts(db) == facts(local)


def test_a_confirmed_detection_stays_confirmed_across_later_runs(demo, tmp_path):
    bundle, sites, local = demo
    dates = _dates(local)
    db = tmp_path / "rev.gpkg"
    assert monitor(sites, bundle.catalog_path, db, "--until", dates[-2]).returncode == 0
    dets = Store(db).detections(site_id=SITE)
    assert dets, "the halls stand by the second-to-last scene"
    det = dets[0].detection_id
    cli = [sys.executable, "-m", "sitewatch.cli.main"]
    r = subprocess.run([*cli, "review", "confirm", det, "--db", str(db), "--reviewer", "A. Analyst"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for _ in range(2):  # the newest scene arrives, then the same imagery again
        assert monitor(sites, bundle.catalog_path, db).returncode == 0
        d = Store(db).detection(det)
        assert d.status == "confirmed" and len(Store(db).reviews(det)) == 1
    r = subprocess.run([*cli, "verify", "--db", str(db)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("fault", ["stall", "reset", "truncate", "429"])
def test_stac_api_fault_once_is_retried_and_the_run_completes(demo, tmp_path, fault):
    bundle, sites, local = demo
    env = {"SITEWATCH_HTTP_TIMEOUT": "2", "SITEWATCH_HTTP_RETRIES": "2"}
    with serve_dir(bundle.catalog_path.parent) as files:
        with stac_api(_api_items(bundle, files.url), max_limit=3) as api:
            api.fail("/search", fault, times=1, retry_after=1, stall_s=6)
            db = tmp_path / f"{fault}.gpkg"
            t0 = time.monotonic()
            r = monitor(sites, api.url, db, "--collection", "sentinel-2-l2a", env=env)
            assert r.returncode == 0, r.stderr
            assert time.monotonic() - t0 < 90
    assert facts(db) == facts(local)


def test_stac_api_search_failing_every_time_is_a_partial_run_then_finished(demo, tmp_path):
    bundle, sites, local = demo
    env = {"SITEWATCH_HTTP_TIMEOUT": "2", "SITEWATCH_HTTP_RETRIES": "1"}
    with serve_dir(bundle.catalog_path.parent) as files:
        with stac_api(_api_items(bundle, files.url), max_limit=3) as api:
            api.fail("/search", "500", times=None)
            db = tmp_path / "down.gpkg"
            r = monitor(sites, api.url, db, "--collection", "sentinel-2-l2a", env=env)
            assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
            assert any("search" in ln and "500" in ln for ln in r.stderr.splitlines()), r.stderr
            assert [x.status for x in Store(db).runs()] == ["partial"]
            assert Store(db).scenes(SITE) == []  # nothing observed is claimed
            api.faults.clear()
            r = monitor(sites, api.url, db, "--collection", "sentinel-2-l2a", env=env)
            assert r.returncode == 0, r.stderr
    assert facts(db) == facts(local)
