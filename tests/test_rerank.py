"""Reviews teach the ranking: `review learn`, the stored fit, and the queue's order."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest
from click.testing import CliRunner
from shapely.geometry import MultiPolygon, box

from fixtures_review import build_findings
from sitewatch.cli.main import cli
from sitewatch.rerank import FEATURES, MIN_PER_DECISION, _Quicklooks, features, latest, learn
from sitewatch.reviewweb import queue_rows
from sitewatch.testbed.scoring import average_precision
from sitewatch.sites import Site
from sitewatch.store import DetectionRecord, Store
from sitewatch.verify import verify

pytest.importorskip("sklearn")


def _store(tmp_path, n: int = 60, seed: int = 0):
    """n pending detections at one site: real ones are bigger and changed more (magnitude) than
    false ones; the detector's score is noise, so only learning can order them."""
    rng = np.random.default_rng(seed)
    store = Store(tmp_path / "f.gpkg")
    store.upsert_sites([Site("s1", box(80.0, 40.0, 80.02, 40.02), "s1")])
    truth = {}
    recs = []
    for i in range(n):
        real = bool(i % 2)
        x = 80.0 + (i % 10) * 0.0015
        y = 40.0 + (i // 10) * 0.0015
        did = f"det-{i:03d}"
        truth[did] = real
        recs.append(DetectionRecord(
            did, "s1", "building_new", dt.date(2020, 1, 1), dt.date(2020, 6, 1), "a", "b",
            area_m2=float(rng.normal(400 if real else 150, 60)), length_m=None, score=float(rng.uniform(0.3, 0.9)),
            geometry=MultiPolygon([box(x, y, x + 0.0005, y + 0.0005)]), run_id="r",
            evidence={"magnitude": float(rng.normal(0.6 if real else 0.35, 0.1)),
                      "confirmed_by_next_clear_scene": True}))
    store.save_detections(recs)
    return store, truth


def invoke(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def _snapshot(db) -> tuple[list, list]:
    con = sqlite3.connect(db)
    try:
        dets = con.execute("SELECT detection_id, kind, score, status, evidence, geom FROM detections ORDER BY fid").fetchall()
        revs = con.execute("SELECT * FROM reviews ORDER BY fid").fetchall()
    finally:
        con.close()
    return dets, revs


def test_too_few_reviews_is_refused_in_one_line(tmp_path):
    store, truth = _store(tmp_path)
    for did in list(truth)[:2 * MIN_PER_DECISION - 1]:
        store.add_review(did, "ana", "confirmed" if truth[did] else "rejected")
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "review", "learn", "--db", str(store.path)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "too few reviews" in lines[0] and "at least 5 of each" in lines[0], r.stderr
    assert latest(store) is None


def test_learn_stores_the_fit_and_orders_the_queue(tmp_path):
    store, truth = _store(tmp_path)
    reviewed = list(truth)[:30]
    for did in reviewed:
        store.add_review(did, "ana", "confirmed" if truth[did] else "rejected")
    before = _snapshot(store.path)
    pending = [r["detection_id"] for r in json.loads(invoke("review", "list", "--db", str(store.path), "--status",
                                                            "pending", "--format", "json"))]
    out = invoke("review", "learn", "--db", str(store.path))
    assert "learnt from 30 reviews (15 confirmed, 15 rejected)" in out and "cross-validated AUC" in out
    ids = {r.review_id for r in store.reviews()}
    assert set(out.split("review ids: ")[1].strip().split(", ")) == ids
    # stored in the GeoPackage, as a registered attribute table, with what it learnt from
    con = sqlite3.connect(store.path)
    row = con.execute("SELECT review_ids, n_confirmed, n_rejected, cv_auc FROM sitewatch_rankers").fetchone()
    assert con.execute("SELECT data_type FROM gpkg_contents WHERE table_name='sitewatch_rankers'").fetchone() == \
        ("attributes",)
    con.close()
    assert set(json.loads(row[0])) == ids and row[1:3] == (15, 15) and 0.8 < row[3] <= 1.0
    # nothing reviewed or detected was changed, and the chain still verifies
    assert _snapshot(store.path) == before
    assert verify(store.path).ok
    # the pending queue, best first by rank_score, each row with both scores
    rows = json.loads(invoke("review", "list", "--db", str(store.path), "--status", "pending", "--format", "json"))
    assert {r["detection_id"] for r in rows} == set(pending)
    rs = [r["rank_score"] for r in rows]
    assert all(0 <= v <= 1 for v in rs) and rs == sorted(rs, reverse=True)
    assert all(isinstance(r["score"], float) for r in rows)
    by_score = sorted(pending, key=lambda d: -store.detection(d).score)
    assert average_precision([r["detection_id"] for r in rows], truth) > average_precision(by_score, truth) + 0.1
    # the table view shows the rank too
    assert "rank" in invoke("review", "list", "--db", str(store.path))


def test_without_a_fit_rank_score_is_null_and_order_kept(tmp_path):
    store, _ = _store(tmp_path, n=6)
    rows = queue_rows(store, store.detections())
    assert [r["detection_id"] for r in rows] == [d.detection_id for d in store.detections()]
    assert all(r["rank_score"] is None and "score" in r for r in rows)


def test_chip_statistics_from_stored_quicklooks(tmp_path):
    fx = build_findings(tmp_path / "f.gpkg")
    f = dict(zip(FEATURES, features(fx.store.detection("det-b1"), _Quicklooks(fx.store))))
    # the fixture drew the new building into the after quicklook: it changed inside, not around
    assert f["chip_diff_in"] > f["chip_diff_ring"] + 0.1 and f["chip_bright_after"] > f["chip_bright_before"]


def test_review_page_queue_carries_rank_score(tmp_path):
    from sitewatch.reviewweb import ReviewServer
    from test_review_web import request

    store, truth = _store(tmp_path, n=24)
    for did in list(truth)[:12]:
        store.add_review(did, "ana", "confirmed" if truth[did] else "rejected")
    learn(store)
    server = ReviewServer(store, port=0, token="t0k3n")
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        status, _, body = request(server, "GET", "/api/queue?token=t0k3n")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 200
    rows = json.loads(body)["detections"]
    assert len(rows) == 12 and all("score" in r and r["rank_score"] is not None for r in rows)
    assert [r["rank_score"] for r in rows] == sorted((r["rank_score"] for r in rows), reverse=True)


def test_scheduled_runs_relearn_or_say_why_not(tmp_path):
    pytest.importorskip("prefect")
    from pipelines.monitor import relearn

    store, truth = _store(tmp_path, n=24)
    assert relearn(str(store.path)).startswith("ranking not learnt: ") and latest(store) is None
    for did in list(truth)[:12]:
        store.add_review(did, "ana", "confirmed" if truth[did] else "rejected")
    line = relearn(str(store.path))
    assert "learnt from 12 reviews" in line and latest(store) is not None
