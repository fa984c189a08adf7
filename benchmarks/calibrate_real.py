"""Fit the detection score on real labelled detections (``src/sitewatch/data/score_model.json``).

Input: the detections ``benchmarks/real.py --json FILE`` scored against the labels (a detection
is right when >= 50 % of it is labelled change). One logistic model per resolution class
(``fine``: grids of 2 m or finer; ``coarse``: 10 m), over :func:`sitewatch.scoremodel.score_inputs`.
Held-out figures: leave-one-site-out (a LEVIR-CD tile, an xBD tile, an OSCD city is one site),
so the reliability table printed here is of scores the model never saw the labels of.
Only coefficients are shipped; the labels (LEVIR-CD, xBD, OSCD: research / non-commercial
terms) stay in ``../shared/data``.
Run: ``python benchmarks/real.py --json /tmp/real.json && python benchmarks/calibrate_real.py /tmp/real.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np

from sitewatch import buildings, scoremodel
from sitewatch.testbed import scoring

OUT = Path(__file__).resolve().parents[1] / "src" / "sitewatch" / "data" / "score_model.json"
L2 = 0.05


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("detections", help="JSON written by benchmarks/real.py --json")
    args = ap.parse_args()
    rows = json.loads(Path(args.detections).read_text())
    doc: dict = {"inputs": list(scoremodel.SCORE_INPUTS), "fitted": dt.date.today().isoformat(),
                 "script": "benchmarks/calibrate_real.py", "classes": {}}
    for cls in ("fine", "coarse"):
        sel = [r for r in rows if scoremodel.resolution_class(r["res"]) == cls]
        if len(sel) < 10 or len({r["right"] for r in sel}) < 2:
            print(f"{cls}: {len(sel)} detections, too few (or all alike) to fit: left uncalibrated")
            continue
        x = np.array([scoremodel.score_inputs(r["kind"], r["evidence"], r["area_m2"], r["res"]) for r in sel], float)
        y = np.array([float(r["right"]) for r in sel])
        sites = np.array([f"{r['dataset']}/{r['site']}" for r in sel])
        held = np.zeros(len(sel))
        for s in np.unique(sites):
            m = sites == s
            if len(set(y[~m])) < 2:
                held[m] = y[~m].mean()
                continue
            fit = buildings.fit_logistic(x[~m], y[~m], l2=L2)
            held[m] = [scoremodel.logistic(fit, row) for row in x[m]]
        cal = scoring.calibration(list(zip(held.tolist(), y.astype(bool).tolist())))
        print(f"\n## {cls}: {len(sel)} real detections ({int(y.sum())} right) from {len(set(sites))} sites; "
              f"held out by site; ECE {cal.ece:.3f}\n")
        print("| bin | n | mean score | fraction right |")
        print("|---|---|---|---|")
        for lo, hi, n, ms, fc in cal.bins:
            print(f"| {lo:.1f}–{hi:.1f} | {n} | {ms if n else '–'} | {fc if n else '–'} |")
        order = np.argsort(-held)
        top = order[:max(1, int(np.ceil(0.2 * len(order))))]
        print(f"\nheld-out top-20 % precision: {y[top].mean():.2f} (of {len(top)})")
        fit = buildings.fit_logistic(x, y, l2=L2)
        doc["classes"][cls] = {**fit, "n": len(sel), "right": int(y.sum()), "sites": len(set(sites)),
                               "held_out_ece": cal.ece,
                               "datasets": sorted({r["dataset"] for r in sel})}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
