"""Fit the 0.3-2 m two-date change model (``src/sitewatch/data/fine_change_model.json``) on LEVIR-CD.

Each LEVIR-CD sample pair (``../shared/data/levir-cd-samples``: 11 pairs, 256 x 256 px at 0.5 m,
label 255 = building new or gone) is read exactly as ``monitor`` reads it (static STAC catalog ->
``sitewatch.reader``, the second date co-registered to the first as the detector does), described
by :func:`sitewatch.finechange.features` (with each date's building probability from
:func:`sitewatch.finechange.building_probability`) and labelled by its change mask.

Held out by pair (leave-one-pair-out): each pair is scored by a model fitted on the other ten.
The presence settings (core threshold, the lower one its rim grows to, smoothing, opening) are chosen
on the pooled held-out maps: the best pooled pixel F1 that keeps MIN_OBJECTS of the label objects
found. The shipped model is then fitted on all eleven with those settings. With ``--folds DIR`` the
per-pair held-out models are written too (``DIR/fine_change_model-without-<pair>.json``) for
``benchmarks/real.py --fine-folds``, each with settings chosen on the other pairs' held-out maps only
(nested), so a figure through ``monitor`` with them has not chosen anything on the pair it scores. scikit-learn is used here only, never at runtime; only
coefficients leave ``../shared/data``. Run: ``python benchmarks/train_finechange.py [--folds DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real  # noqa: E402
import train_s2change as s2t  # noqa: E402

from sitewatch import align, finechange, pixelmodel  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "src" / "sitewatch" / "data" / "fine_change_model.json"
#: Training pixels per pair: every changed pixel up to half of this, the rest unchanged ones.
PER_PAIR = 20_000
SEED = 13
#: Also train on each pair seen backwards (half as many pixels again; see :func:`read_pair`). Tried
#: 2026-12-03: held-out pooled F1 0.60 -> 0.52 (through monitor 0.58 -> 0.54), and a bright flat roof on
#: pale ground still reads as no change (tests/test_finechange.py): off.
BACKWARDS = False
#: Inverse regularisation (scikit-learn's C) of the logistic model.
C = 0.05
#: 2: presence settings for the best held-out F1 keeping 0.65 of the objects (1: most objects within 0.02 of
#: it), the probability smoothed over up to 3 m before them (1: up to 1 m)
#: 3: two more cue families: colour saturation of each date and its change, and dark ground on one side of
#: a pixel only (a roof's shadow; a road casts none) of each date and its change
NAME, VERSION = "sitewatch-finechange", "3"
#: Smallest change region kept (m²): the tracker's building floor is 60 m² (changes.MIN_AREA_M2).
MIN_AREA_M2 = 20.0
#: Change of building probability (mean over a region) below which a region is a building gone.
GONE_MARGIN = 0.15


def read_pair(case: real.Case, work: Path) -> dict:
    """The pair as monitor reads it, its cues from the first date to the second (``f``) and, for
    training only, from the second to the first (``f_back``): the label marks change either way
    (a building new or gone), and LEVIR-CD's new roofs are mostly darker than the soil they replace;
    seen backwards they teach that a roof brighter than its ground is change too (pale steel roofs on
    sand, where camps stand)."""
    p = s2t.read_pair(case, work, min_gain=align.MIN_SHIFT_GAIN)
    res = p["res"]
    ref_valid = np.all([np.isfinite(v) for v in p["ref"].values()], axis=0)
    p["pb_ref"] = finechange.building_probability(p["ref"], ref_valid, res)
    p["pb_cur"] = finechange.building_probability(p["cur"], p["both"], res)
    p["f"] = finechange.features(p["ref"], p["cur"], p["both"], res, p["pb_ref"], p["pb_cur"])
    p["f_back"] = finechange.features(p["cur"], p["ref"], p["both"], res, p["pb_cur"], p["pb_ref"])
    return p


#: Boosted trees (scikit-learn's HistGradientBoostingClassifier), shipped as node arrays: held out, a
#: logistic over the cues and their squares reached pooled pixel F1 0.55, these trees ~0.6; and a tree
#: does not extrapolate (beyond the cues' training range its answer stays what it was at the edge).
TREES = {"max_depth": 5, "max_iter": 120, "learning_rate": 0.1, "l2_regularization": 1.0, "max_leaf_nodes": 20}


def fit_trees(x: np.ndarray, y: np.ndarray) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(**TREES, random_state=SEED).fit(x, y)
    return pixelmodel.export_trees(clf, TREES)


def fit(x: np.ndarray, y: np.ndarray) -> dict:
    return pixelmodel.fit_logistic(x, y, C, max_iter=1000)


def presence(prob: np.ndarray, p: dict, doc: dict) -> np.ndarray:
    return finechange.regions(prob, p["both"], doc, p["res"])


def evaluate(held: dict[str, np.ndarray], pairs: dict[str, dict], doc: dict) -> tuple[np.ndarray, int, int, dict]:
    from sitewatch.testbed.scoring import object_recall

    tot, found, nobj, per = np.zeros(3), 0, 0, {}
    for n, p in pairs.items():
        pred = presence(held[n], p, doc)
        c = s2t.counts(pred, p["label"], p["both"])
        f, k = object_recall(pred & p["both"], real._drop_specks(p["label"]))
        tot += c
        found, nobj = found + f, nobj + k
        per[n] = (c, f, k, pred)
    return tot, found, nobj, per


#: Least share of the label objects the presence settings must keep found (pooled, held out): issue 13
#: asks 0.6; the margin is for pairs the project never saw.
MIN_OBJECTS = 0.65


def grid(held: dict[str, np.ndarray], pairs: dict[str, dict]) -> list[tuple[dict, dict[str, tuple]]]:
    """Every presence setting tried, with each pair's (tp, fp, fn, objects found, objects) under it: tabulated
    once, so the settings can be chosen on any subset of pairs (the shipped ones on all, each fold's without
    its own pair) at no further cost."""
    from sitewatch.testbed.scoring import object_recall

    rows = []
    for smooth, opening in ((0.0, 0.0), (1.0, 0.0), (1.0, 2.0), (1.0, 4.0), (1.5, 0.0), (2.0, 0.0), (3.0, 0.0)):
        for hi in np.round(np.arange(0.3, 0.91, 0.05), 3):
            for lo in np.round(np.arange(hi, max(0.05, hi - 0.41), -0.1), 3):
                doc = {"threshold": float(hi), "grow_threshold": float(lo), "smooth_m": smooth, "open_m": opening,
                       "min_area_m2": MIN_AREA_M2}
                per = {}
                for n, p in pairs.items():
                    pred = presence(held[n], p, doc)
                    per[n] = (*s2t.counts(pred, p["label"], p["both"]),
                              *object_recall(pred & p["both"], real._drop_specks(p["label"])))
                rows.append((doc, per))
    return rows


def choose(rows: list[tuple[dict, dict[str, tuple]]], among: list[str], say: str = "") -> dict:
    """The best pooled held-out F1 over the pairs ``among`` that keeps MIN_OBJECTS of their objects."""
    scored = []
    for doc, per in rows:
        t = np.sum([per[n] for n in among], axis=0)
        scored.append((s2t.prf(*t[:3])[2], int(t[3]), int(t[4]), doc))
    f1, found, nobj, doc = max((r for r in scored if r[1] >= MIN_OBJECTS * r[2]), key=lambda r: (r[0], r[1]))
    if say:
        print(f"  {say}settings {doc}: pooled held-out F1 {f1:.3f} (best {max(r[0] for r in scored):.3f}), "
              f"{found}/{nobj} objects")
    return doc


def nested(rows: list[tuple[dict, dict[str, tuple]]], names: list[str]) -> dict[str, dict]:
    """Each pair's settings chosen on the other pairs' held-out maps, and the pooled figures they give: the
    settings' own choice held out too (the pair never votes for the settings it is scored with)."""
    chosen = {n: choose(rows, [m for m in names if m != n]) for n in names}
    index = {id(doc): per for doc, per in rows}
    t = np.sum([index[id(chosen[n])][n] for n in names], axis=0)
    P, R, F = s2t.prf(*t[:3])
    print(f"  settings chosen without each pair (nested): pooled P {P:.2f} R {R:.2f} F1 {F:.3f}, "
          f"{int(t[3])}/{int(t[4])} objects; {len({str(d) for d in chosen.values()})} distinct settings")
    return chosen


def main() -> None:
    global C  # noqa: PLW0603
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", default=None, help="also write the per-pair held-out models into this folder")
    ap.add_argument("--c", type=float, default=C, help="inverse regularisation (default 0.05)")
    ap.add_argument("--model", choices=("trees", "logistic"), default="trees")
    args = ap.parse_args()
    C = args.c
    fitter = fit_trees if args.model == "trees" else fit
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="sitewatch-finetrain-"))
    (work / "tif").mkdir(parents=True)
    cases = real.levir_cases(work / "tif")
    pairs = {c.name: read_pair(c, work / c.name) for c in cases}
    names = sorted(next(iter(pairs.values()))["f"])
    print(f"read {len(pairs)} pairs, {len(names)} cues, in {time.perf_counter() - t0:.0f} s")
    rng = np.random.default_rng(SEED)
    xs, ys = {}, {}
    for name, p in pairs.items():
        pos = np.flatnonzero((p["label"] & p["both"]).ravel())
        neg = np.flatnonzero((~p["label"] & p["both"]).ravel())
        pos = rng.choice(pos, size=min(pos.size, PER_PAIR // 2), replace=False)
        neg = rng.choice(neg, size=min(neg.size, PER_PAIR - pos.size), replace=False)
        take = np.concatenate([pos, neg])
        back = rng.permutation(take)[: take.size // 2] if BACKWARDS else take[:0]
        xs[name] = np.concatenate([finechange.design(p["f"], names)[take][:, :len(names)],
                                   finechange.design(p["f_back"], names)[back][:, :len(names)]])  # squared by ``data``
        ys[name] = np.concatenate([p["label"].ravel()[take], p["label"].ravel()[back]])

    def data(among: list[str]) -> tuple[np.ndarray, np.ndarray, dict]:
        """Design matrix and labels of the pairs ``among``: for trees the cues; for the logistic each cue
        clipped to its range there (0.1-99.9 %) and its square."""
        raw = np.concatenate([xs[n] for n in among])
        if args.model == "trees":
            return raw, np.concatenate([ys[n] for n in among]), {}
        lo, hi = np.percentile(raw, 0.1, axis=0).round(4), np.percentile(raw, 99.9, axis=0).round(4)
        x = raw.clip(lo, hi)
        return np.hstack([x, x * x]).astype(np.float32), np.concatenate([ys[n] for n in among]), \
            {"lo": lo.tolist(), "hi": hi.tolist()}
    base = {"name": NAME, "version": VERSION, "fitted": dt.date.today().isoformat(),
            "script": "benchmarks/train_finechange.py", "bands": list(finechange.BANDS), "cues": names}
    held, folds = {}, {}
    for name in pairs:
        others = [n for n in pairs if n != name]
        x, y, rng_ = data(others)
        folds[name] = {**base, "data": f"LEVIR-CD samples without {name}", **fitter(x, y), **rng_}
        held[name] = finechange.probability(pairs[name]["f"], pairs[name]["both"], {**folds[name], "threshold": 0.5})
    rows = grid(held, pairs)
    settings = choose(rows, list(pairs), say="shipped ")
    own = nested(rows, list(pairs))
    tot, found, nobj, per = evaluate(held, pairs, settings)
    print("\n| held-out pair | changed px | P | R | F1 | objects found |")
    print("|---|---|---|---|---|---|")
    for n, (c, f, k, _) in per.items():
        P, R, F = s2t.prf(*c)
        print(f"| {n} | {int(pairs[n]['label'].sum())} | {P:.2f} | {R:.2f} | {F:.2f} | {f}/{k} |")
    P, R, F = s2t.prf(*tot)
    print(f"| pooled | {sum(int(p['label'].sum()) for p in pairs.values())} | {P:.2f} | {R:.2f} | **{F:.2f}** "
          f"| {found}/{nobj} = {found / max(nobj, 1):.2f} |")
    settings["gone_margin"] = GONE_MARGIN
    x, y, rng_ = data(list(pairs))
    doc = {**base, "data": "LEVIR-CD samples " + ", ".join(pairs), **fitter(x, y), **rng_, **settings,
           "held_out_f1": round(F, 4), "held_out_precision": round(P, 4), "held_out_recall": round(R, 4),
           "held_out_objects": [found, nobj]}
    finechange.validate(doc)
    pixelmodel.write_models(OUT, doc, {n: {**f, **own[n], "gone_margin": GONE_MARGIN} for n, f in folds.items()}, args.folds,
                            "fine_change_model", t0)


if __name__ == "__main__":
    main()
