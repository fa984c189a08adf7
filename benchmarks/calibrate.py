"""Fit the detection score's coefficients on a generated series with its own seed.

    .venv/bin/python benchmarks/calibrate.py [--seeds 4242,4343,4444] [--work DIR]

Runs the generated benchmark (benchmarks/accuracy.py) with a seed that the accuracy table
does not use, matches detections to truth, and fits a logistic model of "this detection is
right" on the evidence each detection carries (change magnitude, size over the kind's
minimum, confirmed by the next clear scene, structure family, new or removed). It prints
the coefficients to paste into ``sitewatch.changes.SCORE_COEFFICIENTS``; the accuracy
benchmark then reports calibration on its own, different seed.

Several seeds are pooled, and the fit carries a prior of one wrong and one right detection
at the mean evidence (a Beta(1, 1) on the base rate): when every detection of the
calibration series is right, the score then says "nearly always right", not "certain".
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import accuracy  # noqa: E402
from shapely.geometry import shape  # noqa: E402

from sitewatch.changes import SCORE_COEFFICIENTS, score_features  # noqa: E402
from sitewatch.testbed.scoring import Found, Truth, family, match  # noqa: E402
from sitewatch.store import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="4242,4343,4444", help="comma-separated seeds, none the accuracy table's")
    ap.add_argument("--work", default=None)
    ap.add_argument("--full", action="store_true", help="fit every coefficient even when the series has few mistakes")
    ap.add_argument("--reuse", action="store_true", help="score an existing --work run again instead of rendering")
    args = ap.parse_args()
    root = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sitewatch-calib-"))
    X, y = [], []
    for seed in (int(x) for x in args.seeds.split(",")):
        work = root / f"seed-{seed}"
        work.mkdir(parents=True, exist_ok=True)
        if args.reuse and (work / "bench.gpkg").exists():
            g = {"sites": {s.site_id: (r, s.gsd, s.story, len(s.epochs)) for s, r in accuracy.benchmark_sites(seed)}}
        else:
            g = accuracy.score_generated(work, seed=seed)
        dets = Store(work / "bench.gpkg").detections()
        truths = json.loads((work / "data" / "truth.json").read_text())
        roles = {sid: role for sid, (role, *_rest) in g["sites"].items()}
        n0, r0 = len(y), sum(y)
        for fam in ("building", "wall", "fence", "tower"):
            ds = [d for d in dets if family(d.kind) == fam]
            ts = [t for t in truths if family(t["kind"]) == fam]
            found = [Found(d.kind, accuracy._utm(d.geometry), d.before_date, d.after_date, d.score, d.site_id)
                     for d in ds]
            truth = [Truth(t["kind"], accuracy._utm(shape(t["geometry"])), accuracy.D(t["before_date"]),
                           accuracy.D(t["after_date"]), t["site_id"]) for t in ts]
            m = match(found, truth)
            for d, (_, ok) in zip(ds, m.scored):
                X.append(score_features(d.kind, d.evidence, d.area_m2, d.evidence.get("grid_res_m", 1.0)))
                y.append(1.0 if ok and roles.get(d.site_id) == "change" else 0.0)
        print(f"seed {seed}: {len(y) - n0} detections, {int(sum(y) - r0)} right")
    centre = list(np.mean(np.array(X), axis=0))
    X += [centre, centre]  # the prior: one wrong, one right, at the mean evidence
    y += [0.0, 1.0]
    X_, y_ = np.array(X), np.array(y)

    def loss(w: np.ndarray) -> float:
        z = X_ @ w
        return float(np.sum(np.logaddexp(0, z) - y_ * z) + 0.5 * np.sum(w[1:] ** 2))

    wrong = int(len(y) - 2 - (y_.sum() - 1))
    if wrong >= 5 or args.full:
        w = minimize(loss, np.zeros(X_.shape[1]), method="L-BFGS-B").x
        how = "all coefficients fitted"
    else:
        # Too few mistakes to learn which evidence marks one: keep the slopes (learned when the
        # detector still erred: confirmation, family, size, magnitude) and refit only the level.
        slopes = np.array(SCORE_COEFFICIENTS[1:])
        rest = X_[:, 1:] @ slopes

        def loss0(b: np.ndarray) -> float:
            z = b[0] + rest
            return float(np.sum(np.logaddexp(0, z) - y_ * z))

        b0 = minimize(loss0, np.array([float(SCORE_COEFFICIENTS[0])]), method="L-BFGS-B").x[0]
        w = np.concatenate([[b0], slopes])
        how = f"only {wrong} wrong: slopes kept, intercept refitted (--full fits all)"
    print(f"{len(y) - 2} detections, {int(y_.sum()) - 1} right (+ the prior's one right, one wrong); {how}:")
    print("SCORE_COEFFICIENTS = (" + ", ".join(f"{v:.3f}" for v in w) + ")")
    p = 1 / (1 + np.exp(-(X_ @ w)))
    print(f"mean score {p.mean():.3f} (min {p.min():.3f}) vs fraction right {y_.mean():.3f}; "
          f"log loss {loss(w) / len(y):.3f}")

if __name__ == "__main__":
    main()
