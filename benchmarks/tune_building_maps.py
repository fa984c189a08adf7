"""Chooses the per-date roof map's cleaning settings (``sitewatch.buildings.roof_map``) held out by dataset.

The four building-labelled real sets of ``../shared/data/buildings-real`` (xBD Joplin pre images,
SpaceNet Rio, SpaceNet Atlanta, Inria Austin) are run once through ``monitor`` as
``benchmarks/real.py`` does; the building probability each scene's map was cleaned from is recorded
(with the ground it saw, and what the blue-roof rule added), then every candidate setting re-cleans it
and is scored against the labels on the label's grid. Held out by dataset: for each set, the setting
with the best mean pixel F1 (or F-beta) over the other three is scored on it. The candidate is the best over
all four. LEVIR-CD and OSCD are never used here (they judge the change detector). Result (2026-12-03):
better maps held out, but worse LEVIR-CD change, so ``buildings.MAP_SETTINGS`` stays the old cleaning.

Run: ``python benchmarks/tune_building_maps.py [--work DIR]`` (7 min at load 1, 16 min at load 3-6, on 2 cores).
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import real
from sitewatch import buildings

GRID = {"smooth_m": (1.0, 2.0, 3.0), "rim": (0.1, 0.15, 0.2, 0.3), "core": (0.0, 0.3, 0.45, 0.6),
        "open_m": (1.5, 3.0), "min_m2": (20.0, 50.0)}
FIXED = {"mean_p": 0.0, "hole_m2": 100.0}


def candidates() -> list[dict[str, float]]:
    out = [dict(buildings.MAP_BEFORE)]
    for vals in itertools.product(*GRID.values()):
        s = dict(zip(GRID, vals), **FIXED)
        if 0 < s["core"] <= s["rim"]:
            continue
        out.append(s)
    return out


def record(work: Path) -> list[dict]:
    """Each map case's probability, seen ground, resolution and the blue-roof additions, via monitor."""
    from sitewatch.store import Store
    from sitewatch.structures import StructureMaps

    cases = [c for c in real.all_cases(work, {"xbd", "buildings"}) if c.task == "map"]
    orig = buildings.roof_map
    out = []
    for i, case in enumerate(cases):
        rec: list = []

        def spy(p, seen, res, settings=None, smooth=None, _rec=rec):
            m = orig(p, seen, res, settings, smooth)
            _rec.append((p.copy(), seen.copy(), res, m))
            return m

        buildings.roof_map = spy
        try:
            cw = work / f"case{i}"
            cw.mkdir(parents=True, exist_ok=True)
            real.run_case(case, cw)
        finally:
            buildings.roof_map = orig
        sm = StructureMaps.from_bytes(Store(cw / "real.gpkg").scene_maps(f"{case.dataset}-{case.name}")[-1][1])
        p, seen, res, m = rec[-1]
        extra = np.asarray(sm.presence["building"], bool) & ~m
        out.append({"case": case, "p": p, "seen": seen, "res": res, "extra": extra, "grid": sm.grid,
                    "label": real._drop_specks(case.label)})
        print(f"recorded {case.dataset} {case.name}: {p.shape}, res {res}", flush=True)
    return out


def evaluate(recs: list[dict], s: dict) -> dict[str, np.ndarray]:
    """Per dataset: [tp, fp, fn, objects found, objects]."""
    from sitewatch.testbed.scoring import object_recall

    per: dict[str, np.ndarray] = {}
    for r in recs:
        m = buildings.roof_map(r["p"], r["seen"], r["res"], s) | r["extra"]
        pred = real._map_to_label_grid(m, r["grid"], r["case"])
        lab = r["case"].label
        f, n = object_recall(pred, r["label"])
        v = np.array([(pred & lab).sum(), (pred & ~lab).sum(), (~pred & lab).sum(), f, n], float)
        per[r["case"].dataset] = per.get(r["case"].dataset, 0) + v
    return per


def f1(v: np.ndarray, beta: float = 1.0) -> float:
    """F-beta of [tp, fp, fn, ...] (beta 0.5 weighs precision more: a map that over-maps inflates built area)."""
    b2 = beta * beta
    return (1 + b2) * v[0] / max(1.0, (1 + b2) * v[0] + b2 * v[2] + v[1])


def line(name: str, v: np.ndarray) -> str:
    p, r = v[0] / max(1.0, v[0] + v[1]), v[0] / max(1.0, v[0] + v[2])
    return f"| {name} | {p:.2f} | {r:.2f} | {f1(v):.2f} | {int(v[3])}/{int(v[4])} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="", help="working folder (default: a temp dir)")
    ap.add_argument("--beta", type=float, default=1.0, help="choose by mean F-beta over the datasets (default F1)")
    ap.add_argument("--json", default="", help="write every setting's per-dataset counts here")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="tune-maps-"))
    t0 = time.perf_counter()
    recs = record(work)
    cands = candidates()
    scores = []
    for i, s in enumerate(cands):
        scores.append(evaluate(recs, s))
        if i % 20 == 0:
            print(f"  {i}/{len(cands)} settings, {time.perf_counter() - t0:.0f} s", flush=True)
    sets = sorted(scores[0])
    if args.json:
        Path(args.json).write_text(json.dumps([{"settings": c, "counts": {d: v.tolist() for d, v in sc.items()}}
                                               for c, sc in zip(cands, scores)]))
    mean_f1 = lambda sc, keep: float(np.mean([f1(sc[d], args.beta) for d in keep]))  # noqa: E731
    print(f"choosing by mean F-beta, beta {args.beta}")
    print("\nbefore (MAP_BEFORE), per dataset: | set | P | R | F1 | objects |")
    for d in sets:
        print(line(d, scores[0][d]))
    print("\nheld out by dataset (setting chosen on the other three): | set | P | R | F1 | objects | setting")
    for d in sets:
        others = [x for x in sets if x != d]
        best = max(range(len(cands)), key=lambda i: mean_f1(scores[i], others))
        print(line(d, scores[best][d]), cands[best])
    best = max(range(len(cands)), key=lambda i: mean_f1(scores[i], sets))
    print("\nchosen on all four:", cands[best])
    for d in sets:
        print(line(d, scores[best][d]))
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
