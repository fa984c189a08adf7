"""Sites run on one BLAS thread each, and a site ending does not lift the limit from another still running."""

from __future__ import annotations

import threading

import numpy as np
from threadpoolctl import threadpool_info

from sitewatch import monitor
from sitewatch.blas import one_blas_thread


def _blas_threads() -> set[int]:
    np.ones(2) @ np.ones(2)  # numpy's BLAS is loaded
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_one_thread_inside_and_the_original_back_after_the_last_site():
    before = _blas_threads()
    assert before
    a_in, b_in, a_out, b_may_go = (threading.Event() for _ in range(4))
    seen: dict[str, set[int]] = {}

    def site_a() -> None:
        with one_blas_thread():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def site_b() -> None:
        a_in.wait(5)
        with one_blas_thread():
            b_in.set()
            a_out.wait(5)  # site a has ended; b still runs
            seen["b after a"] = _blas_threads()
            b_may_go.wait(5)

    ts = [threading.Thread(target=site_a), threading.Thread(target=site_b)]
    for t in ts:
        t.start()
    a_out.wait(5)
    b_in.wait(5)
    b_may_go.set()
    for t in ts:
        t.join(5)
    assert seen["b after a"] == {1}
    assert _blas_threads() == before


def test_run_site_holds_the_limit(monkeypatch):
    seen = []
    monkeypatch.setattr(monitor, "_run_site", lambda *a: seen.append(_blas_threads()) or "done")
    assert monitor.run_site(None, None, "r") == "done"  # type: ignore[arg-type]
    assert seen == [{1}]
