"""Many reviewers at the same moment: no lost review, no "database is locked", chain intact."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time

from fixtures_review import build_findings

from sitewatch.reviews import chain_problems, latest_decisions
from sitewatch.store import Store
from sitewatch.verify import verify

WORKERS = 8
PER_WORKER = 6


def _reviewer(path: str, worker: int, barrier: mp.synchronize.Barrier, ids: list[str], out: mp.Queue) -> None:
    try:
        store = Store(path, create=False)
        barrier.wait(timeout=60)
        done = []
        for i in range(PER_WORKER):
            # everyone hits det-b1 each round; the others spread over different detections
            did = ids[0] if i % 2 == 0 else ids[(worker + i) % len(ids)]
            decision = "confirmed" if (worker + i) % 3 else "rejected"
            done.append(store.add_review(did, f"worker{worker}", decision, f"w{worker} r{i}").review_id)
        out.put(("ok", worker, done))
    except BaseException as exc:  # reported to the parent, which fails the test with it
        out.put(("error", worker, repr(exc)))


def _check(store: Store, expected_reviews: int) -> None:
    reviews = store.reviews()
    assert len(reviews) == expected_reviews
    assert len({r.review_id for r in reviews}) == expected_reviews
    assert chain_problems(reviews) == []
    latest = latest_decisions(reviews)
    for d in store.detections():
        assert d.status == latest.get(d.detection_id, "pending"), d.detection_id
    rep = verify(store.path)
    assert rep.ok, rep.chain_problems + rep.status_problems + rep.gpkg_problems


def test_eight_processes_review_at_once(tmp_path):
    fx = build_findings(tmp_path / "f.gpkg")
    ctx = mp.get_context("spawn" if sys.platform == "darwin" else "fork")
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_reviewer, args=(str(fx.path), w, barrier, fx.detection_ids, out))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [r for r in results if r[0] != "ok"]
    assert not errors, errors
    ids = {rid for r in results for rid in r[2]}
    assert len(ids) == WORKERS * PER_WORKER
    _check(fx.store, WORKERS * PER_WORKER)
    assert {r.review_id for r in fx.store.reviews()} == ids  # every review that said OK is in the file


def test_eight_cli_reviewers_at_once(tmp_path):
    """Separate `sitewatch review confirm/reject` processes, started together, on the same and other detections."""
    fx = build_findings(tmp_path / "f.gpkg")
    fx.store.add_review("det-w1", "seed", "confirmed")
    start_at = time.time() + 2.0  # all processes past their imports before anyone writes
    waiter = f"import time; time.sleep(max(0, {start_at} - time.time())); " \
             "from sitewatch.cli.main import main; main()"
    procs = []
    for w in range(WORKERS):
        did = "det-b1" if w % 2 else fx.detection_ids[w % len(fx.detection_ids)]
        verb = "confirm" if w % 3 else "reject"
        procs.append(subprocess.Popen(
            [sys.executable, "-c", waiter, "review", verb, did, "--db", str(fx.path), "--reviewer", f"cli{w}",
             "--note", f"<b>{w}</b>"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}))
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (so, se) in zip(procs, outs):
        assert p.returncode == 0, se
        assert "locked" not in se and "locked" not in so
    _check(fx.store, WORKERS + 1)
