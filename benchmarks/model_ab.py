"""Before/after of the pipeline's own cost: monitor runs of one model over one set of
``benchmarks/model.py``, alternating between two source trees (say main's, exported with
``git archive main src | tar -x -C /tmp/base``, and this checkout's), each run in its own process.

    nice .venv/bin/python benchmarks/model_ab.py --src /tmp/base/src --src src [--set xbd] [--runs 3] [--following]

Prints per run: the whole run's CPU and wall (scenes read ahead, as shipped), the pipeline's own
CPU (a second run with each stage's CPU taken and its scenes read one after another, less the
inference) and each stage, with the load average at its end; and the model alone over the same
tiles (:func:`model.direct`). ``--following``: a site's next run (one new scene per site, a GeoPackage
holding its first two) instead of its first. With two trees, it then checks that their last timed
runs stored the same GeoPackage (every row of the findings' tables, blobs and geometries byte for
byte): a speed-up must not change what is stored.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the tables compared between the two trees' GeoPackages (test_model_evidence.STORED_TABLES)
STORED = ("sites", "scenes", "detections", "site_metrics", "sitewatch_scene_maps")


def one(src: str, key: str, model: str, work: Path, following: bool = False) -> dict:
    """In this process: ``src``'s sitewatch, the model alone over the pairs' tiles, one timed monitor
    run and one breakdown run. ``following``: the runs are a site's next run, one new scene per site
    (the after image again, a year later: no change) over a GeoPackage holding the pair already."""
    sys.path.insert(0, str(HERE))
    import model as M  # noqa: N812 (inserts this checkout's src; ``src`` goes before it)

    sys.path.insert(0, str(Path(src).resolve()))

    import sitewatch
    from sitewatch.monitor import MonitorParams, run

    assert Path(sitewatch.__file__).resolve().is_relative_to(Path(src).resolve()), sitewatch.__file__
    meta = dict(scale=255, tile=256, gsd_m=0.5, threshold=0.5)
    path = M.build(model, work, **meta)
    pset = M.SETS[key]()
    imagery, sites, index = M.write_pairs(work, pset)
    _, (d_cpu, d_wall) = M.direct(path, pset, 1)
    if not following:
        _, (cpu, wall), timed, _ = M.through_monitor(path, imagery, sites, pset, index, work, 1)
        total, spent = M.breakdown(path, imagery, sites, work)
    else:
        base = work / "first-run.gpkg"
        base.unlink(missing_ok=True)
        params = MonitorParams(sites=str(sites), imagery=str(imagery), db=str(base), change_model=str(path),
                               model_only=True)
        run(params)
        for name in index:
            shutil.copy(imagery / f"{name}_2015-06-01.tif", imagery / f"{name}_2016-06-01.tif")
        timed, split = work / "next-run.gpkg", work / "next-run-breakdown.gpkg"
        shutil.copy(base, timed)
        shutil.copy(base, split)
        t0, c0 = time.perf_counter(), time.process_time()
        s = run(dataclasses.replace(params, db=str(timed)))
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        assert s.as_dict()["scenes_new"] == len(index) and s.status == "completed", s.as_dict()
        total, spent = M.breakdown(path, imagery, sites, work, db=split)
    own = total - spent[M.INFERENCE]
    return {"cpu": cpu, "wall": wall, "own": own, "model_cpu": d_cpu, "model_wall": d_wall,
            "load": os.getloadavg()[0], "db": str(timed), **spent}


def same_stored(a: Path, b: Path, work_a: Path, work_b: Path) -> list[str]:
    """Where two runs' GeoPackages differ: every row of the tables a run stores its findings in,
    blobs and geometries byte for byte (tests/test_model_evidence.py's ``stored_bytes``, each run's
    folder read as ``<tmp>``); empty when they hold the same."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_model_evidence import STORED_TABLES, stored_bytes

    x, y = stored_bytes(a, work_a), stored_bytes(b, work_b)
    out = []
    for t in STORED_TABLES:
        if len(x[t]) != len(y[t]):
            out.append(f"{t}: {len(x[t])} rows against {len(y[t])}")
        else:
            out += [f"{t} row {i + 1}" for i, (r, q) in enumerate(zip(x[t], y[t])) if r != q][:5]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", action="append", required=True, help="a source tree (give two)")
    ap.add_argument("--set", default="xbd")
    ap.add_argument("--model", default="difference")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default="/tmp/sitewatch-model-ab")
    ap.add_argument("--following", action="store_true",
                    help="time a site's next run (one new scene per site) instead of its first (two scenes)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        print(json.dumps(one(args.src[0], args.set, args.model, work, args.following)))
        return
    rows = []
    for k in range(args.runs):
        for i, src in enumerate(args.src):
            out = subprocess.run([sys.executable, __file__, "--one", "--src", src, "--set", args.set, "--model",
                                  args.model, "--work", f"{args.work}/{i}", *(["--following"] if args.following else [])],
                                 check=True, capture_output=True,
                                 text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rows.append((src, r))
            print(f"{src}: run {k + 1}: CPU {r['cpu']:.2f} s, wall {r['wall']:.2f} s, own CPU {r['own']:.2f} s; "
                  f"model alone CPU {r['model_cpu']:.2f} s, wall {r['model_wall']:.2f} s; "
                  f"ratio CPU {r['cpu'] / r['model_cpu']:.2f}x, 1 + own / model {1 + r['own'] / r['model_cpu']:.2f}x, "
                  f"wall {r['wall'] / r['model_wall']:.2f}x; load {r['load']:.1f}", flush=True)
            time.sleep(0.5)
    if len(args.src) == 2:  # the last run of each tree: what they stored must be the same
        dbs = {src: Path(r["db"]) for src, r in rows}
        diff = same_stored(dbs[args.src[0]], dbs[args.src[1]], Path(f"{args.work}/0"), Path(f"{args.work}/1"))
        print(f"\nGeoPackages of the two trees' last timed runs: "
              f"{'the same rows and bytes (' + ', '.join(STORED) + ')' if not diff else 'DIFFER: ' + '; '.join(diff)}")
    stages = [k for k in rows[0][1] if k not in ("cpu", "wall", "own", "load", "model_cpu", "model_wall", "db")]
    print("\n| stage | " + " | ".join(args.src) + " |\n|---|" + "---|" * len(args.src))
    for st in ["cpu", "wall", "own", "model_cpu", "model_wall", *stages]:
        cells = []
        for src in args.src:
            v = [r[st] for s, r in rows if s == src]
            cells.append(f"{min(v):.3f}–{max(v):.3f}")
        print(f"| {st} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
