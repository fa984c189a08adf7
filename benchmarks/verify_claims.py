"""What binding each review to its claim costs: review writes and a full ``verify`` on a large log.

Builds a findings GeoPackage through the Store API with N generated detections (site-sized
boxes, two scenes per site) and N reviews, then times ``add_review`` (which now reads the
detection and its scenes to hash the claim) and ``verify`` (which recomputes every claim).
Prints a table; not a test.

    nice .venv/bin/python benchmarks/verify_claims.py --n 2000 --work /tmp/verify-bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from pathlib import Path

from shapely.geometry import MultiPolygon, box

from sitewatch.sites import Site
from sitewatch.store import DetectionRecord, SceneRecord, Store
from sitewatch.verify import verify

SITES = 50


def build(path: Path, n: int) -> Store:
    s = Store(path)
    s.upsert_sites([Site(f"s{i}", box(80 + i * 0.01, 40, 80.008 + i * 0.01, 40.008)) for i in range(SITES)])
    run = s.start_run("bench", {})
    for i in range(SITES):
        for j, when in enumerate((dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc),
                                  dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))):
            s.save_scene(SceneRecord(f"sc{i}_{j}", f"s{i}", "bench", when, 10.0, 0.0, 1.0, f"{i:02x}{j:02x}" * 16, run))
    dets = []
    for k in range(n):
        i = k % SITES
        x, y = 80 + i * 0.01 + (k // SITES % 40) * 0.0002, 40.001
        dets.append(DetectionRecord(f"det-{k:06d}", f"s{i}", "building_new", dt.date(2019, 1, 1), dt.date(2020, 1, 1),
                                    f"sc{i}_0", f"sc{i}_1", 400.0, None, 0.5,
                                    MultiPolygon([box(x, y, x + 0.0002, y + 0.0002)]), run, detector="bench 1"))
    s.save_detections(dets)
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000, help="detections, and reviews (one each)")
    ap.add_argument("--work", default="/tmp/sitewatch-verify-bench")
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    s = build(work / "f.gpkg", a.n)
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(a.n):
        s.add_review(f"det-{k:06d}", "bench", "confirmed")
    t_add, c_add = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    rep = verify(s.path)
    t_verify, c_verify = time.perf_counter() - t0, time.process_time() - c0
    assert rep.ok, rep.claim_problems[:1] or rep.chain_problems[:1]
    size = (work / "f.gpkg").stat().st_size
    print("| detections = reviews | add_review, mean wall (CPU) | verify, whole file, wall (CPU) | file size |")
    print("| --- | --- | --- | --- |")
    print(f"| {a.n} | {t_add / a.n * 1000:.1f} ms ({c_add / a.n * 1000:.1f} ms) | {t_verify:.2f} s ({c_verify:.2f} s) "
          f"| {size / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
