"""Fit the detection score on real labelled detections (``src/sitewatch/data/score_model.json``).

Input: the detections ``benchmarks/real.py --json FILE`` scored against the labels (a detection
is right when >= 50 % of it is labelled change). One logistic model per resolution class
(``fine``: grids of 2 m or finer; ``coarse``: 10 m), over :func:`sitewatch.scoremodel.score_inputs`.
Held-out figures: leave-one-site-out (a LEVIR-CD tile, an xBD tile, an OSCD city is one site),
so the reliability table printed here is of scores the model never saw the labels of. It prints
them for the inputs before the change region's facts and for the shipped inputs, and how well
each region fact alone ranks (AUC pooled and within each site).
Only coefficients are shipped; the labels (LEVIR-CD, xBD, OSCD: research / non-commercial
terms) stay in ``../shared/data``.
Run: ``python benchmarks/real.py --json /tmp/real.json && python benchmarks/calibrate_real.py /tmp/real.json``
(``--no-write``: print the held-out figures only; the fine class also prints a one-feature monotone fit).
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


def held_out(x: np.ndarray, y: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """Each site's scores from the model fitted on the other sites (leave one site out)."""
    held = np.zeros(len(y))
    for s in np.unique(sites):
        m = sites == s
        if len(set(y[~m])) < 2:
            held[m] = y[~m].mean()
            continue
        fit = buildings.fit_logistic(x[~m], y[~m], l2=L2)
        held[m] = [scoremodel.logistic(fit, row) for row in x[m]]
    return held


def top_precision(held: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Share right among the 20 % highest-scored, and how many that is."""
    top = np.argsort(-held, kind="stable")[:max(1, int(np.ceil(0.2 * len(held))))]
    return float(y[top].mean()), len(top)


def auc(s: np.ndarray, y: np.ndarray) -> float:
    """Chance a right detection outranks a wrong one on ``s`` (ties half); nan with one class only."""
    from scipy.stats import rankdata

    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    if not n1 or not n0:
        return float("nan")
    return float((rankdata(s)[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def facts_table(sel: list[dict], y: np.ndarray, sites: np.ndarray) -> None:
    """Each region fact (``evidence["region"]``) alone: AUC pooled and within each site."""
    names = sorted({k for r in sel for k in (r["evidence"].get("region") or {})})
    if not names:
        return
    us = list(np.unique(sites))
    print("\n| fact (evidence.region) | AUC pooled | top-20 % by it alone (no fit; high first, low first) | "
          + " | ".join(u.split("/")[-1] for u in us) + " |")
    print("|---|---|---|" + "---|" * len(us))
    for k in ["magnitude"] + names:
        src = (lambda r: r["evidence"]) if k == "magnitude" else (lambda r: r["evidence"].get("region") or {})
        v = np.array([float(src(r).get(k, 0.0) or 0.0) for r in sel])
        hi, lo = top_precision(v, y)[0], top_precision(-v, y)[0]
        print(f"| {k} | {auc(v, y):.2f} | {hi:.2f}, {lo:.2f} | "
              + " | ".join(f"{auc(v[sites == u], y[sites == u]):.2f}" for u in us) + " |")


def one_feature(sel: list[dict], y: np.ndarray, sites: np.ndarray) -> None:
    """A monotone fit of the region's mean change probability (``evidence["magnitude"]``) alone,
    held out by site: a logistic (its slope per fold) and an isotonic step, against the no-fit order."""
    from sklearn.isotonic import IsotonicRegression

    m = np.array([[float(r["evidence"].get("magnitude", 0.0) or 0.0)] for r in sel])
    logi, iso, slopes = np.zeros(len(y)), np.zeros(len(y)), []
    for s in np.unique(sites):
        k = sites == s
        fit = buildings.fit_logistic(m[~k], y[~k], l2=L2)
        slopes.append(fit["coef"][0])
        logi[k] = [scoremodel.logistic(fit, row) for row in m[k]]
        iso[k] = IsotonicRegression(out_of_bounds="clip").fit(m[~k, 0], y[~k]).predict(m[k, 0])
    print(f"\n### one feature: the region's mean change probability (magnitude), held out by site\n\n"
          f"logistic slope per fold (logits per standard deviation): {min(slopes):.3f} to {max(slopes):.3f}, "
          f"{sum(w > 0 for w in slopes)} of {len(slopes)} positive\n")
    print("| score | ECE | AUC | top-20 % precision | n | bins: n, mean score, fraction right |")
    print("|---|---|---|---|---|---|")
    for label, held in (("no fit (the probability itself)", m[:, 0]), ("logistic, held out", logi),
                        ("isotonic, held out", iso)):
        cal = scoring.calibration(list(zip(held.tolist(), y.astype(bool).tolist())))
        prec, ntop = top_precision(held, y)
        bins = "; ".join(f"{lo:.1f}–{hi:.1f}: {n}, {ms:.2f}, {fc:.2f}" for lo, hi, n, ms, fc in cal.bins if n)
        print(f"| {label} | {cal.ece:.3f} | {auc(held, y):.2f} | {prec:.2f} (of {ntop}) | {len(y)} | {bins} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("detections", help="JSON written by benchmarks/real.py --json")
    ap.add_argument("--no-write", action="store_true", help="print the figures, leave score_model.json as it is")
    args = ap.parse_args()
    rows = json.loads(Path(args.detections).read_text())
    doc: dict = {"inputs": list(scoremodel.SCORE_INPUTS), "fitted": dt.date.today().isoformat(),
                 "script": "benchmarks/calibrate_real.py", "classes": {}}
    for cls in ("fine", "coarse"):
        sel = [r for r in rows if scoremodel.resolution_class(r["res"]) == cls]
        if len(sel) < 10 or len({r["right"] for r in sel}) < 2:
            print(f"{cls}: {len(sel)} detections, too few (or all alike) to fit: left uncalibrated")
            continue
        y = np.array([float(r["right"]) for r in sel])
        sites = np.array([f"{r['dataset']}/{r['site']}" for r in sel])
        print(f"\n## {cls}: {len(sel)} real detections ({int(y.sum())} right) from {len(set(sites))} sites; "
              f"held out by site")
        facts_table(sel, y, sites)
        one_feature(sel, y, sites)
        x0 = np.array([scoremodel.score_inputs(r["kind"], r["evidence"], r["area_m2"], r["res"], region=())
                       for r in sel], float)
        x = np.array([scoremodel.score_inputs(r["kind"], r["evidence"], r["area_m2"], r["res"]) for r in sel], float)
        for label, xs in (("before: " + ", ".join(scoremodel.BASE_INPUTS), x0),
                          ("after: " + ", ".join(scoremodel.SCORE_INPUTS), x)):
            held = held_out(xs, y, sites)
            cal = scoring.calibration(list(zip(held.tolist(), y.astype(bool).tolist())))
            prec, ntop = top_precision(held, y)
            print(f"\n### {label}\n\nheld-out ECE {cal.ece:.3f}; AUC {auc(held, y):.2f}; "
                  f"top-20 % precision {prec:.2f} (of {ntop})\n")
            print("| bin | n | mean score | fraction right |")
            print("|---|---|---|---|")
            for lo, hi, n, ms, fc in cal.bins:
                print(f"| {lo:.1f}–{hi:.1f} | {n} | {ms if n else '–'} | {fc if n else '–'} |")
        fit = buildings.fit_logistic(x, y, l2=L2)
        doc["classes"][cls] = {**fit, "n": len(sel), "right": int(y.sum()), "sites": len(set(sites)),
                               "held_out_ece": cal.ece, "held_out_top20_precision": round(prec, 3),
                               "datasets": sorted({r["dataset"] for r in sel})}
    if args.no_write:
        print(f"\n--no-write: {OUT} left as it is")
        return
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
