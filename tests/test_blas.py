"""Sites run on one BLAS thread each, and a site ending does not lift the limit from another still running.

In a fresh interpreter: OpenBLAS ignores a thread count set from a worker thread once the main
thread has set one (tests earlier in this process may have run a monitor on the main thread).
What is checked is the CPU OpenBLAS's own worker threads burn, not only the count it reports.
An idle OpenBLAS worker busy-waits for a while (2**28 cycles by default) before it sleeps, even
when the count says it has no work; the test sets OPENBLAS_THREAD_TIMEOUT to its minimum so
that spin does not count as work shared (measured: 5-10 ticks of spin against 12-14 of work).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sitewatch import monitor

SCRIPT = r"""
import json, os, threading
import numpy as np
from threadpoolctl import threadpool_info
from sitewatch.blas import one_blas_thread

a = np.ones((600, 600))

def blas_threads():
    return sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})

def ticks():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        out[int(tid)] = int(parts[11]) + int(parts[12])
    return out

def products():
    # CPU of every thread but this one while it multiplies: OpenBLAS's workers, if it uses them
    me, b = threading.get_native_id(), ticks()
    for _ in range(40):
        a @ a
    e = ticks()
    return sum(e[t] - b.get(t, 0) for t in e if t != me)

res = {"before": blas_threads()}
a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

def site_a():
    with one_blas_thread():
        a_in.set()
        b_in.wait(30)
    a_out.set()

def site_b():
    a_in.wait(30)
    with one_blas_thread():
        b_in.set()
        a_out.wait(30)  # site a has ended; b still runs
        res["inside"] = blas_threads()
        res["workers_inside"] = products()

def unlimited():
    res["workers_without"] = products()

for fn in ((site_a, site_b), (unlimited,)):
    ts = [threading.Thread(target=f) for f in fn]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
res["after"] = blas_threads()
print(json.dumps(res))
"""


def test_one_thread_inside_while_any_site_runs_and_the_original_back_after_the_last():
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "OPENBLAS_THREAD_TIMEOUT": "4"}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["before"] == [2] and res["after"] == [2]
    assert res["inside"] == [1]
    # without the limit OpenBLAS's workers share the products; inside it they stay idle
    assert res["workers_without"] >= 5, res
    assert res["workers_inside"] <= res["workers_without"] / 4, res


def test_run_site_holds_the_limit(monkeypatch):
    from threadpoolctl import threadpool_info

    seen = []

    def probe(*a):
        seen.append({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
        return "done"

    monkeypatch.setattr(monitor, "_run_site", probe)
    assert monitor.run_site(None, None, "r") == "done"  # type: ignore[arg-type]
    assert seen and seen[0] == {1}
