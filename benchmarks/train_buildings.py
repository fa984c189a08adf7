"""Fit the per-date building models (``src/sitewatch/data/building_model.json``) on real labelled tiles.

Scenes are read exactly as ``monitor`` reads them (static STAC catalog -> ``sitewatch.reader``,
site grid, ground levels) and described by :func:`sitewatch.buildings.map_cues`; labels are the
building masks of ``../shared/data/buildings-real`` (SpaceNet Rio centre crop and Atlanta, Inria
Austin, the three xBD Joplin pre images) reprojected onto the same grid. LEVIR-CD and OSCD are
never used here: they stay held out for ``benchmarks/real.py``.

Two models, both held out by dataset (for each of the four datasets, fitted on the other three and
scored on it: pixel P/R/F1 of the probability smoothed over 1 m and thresholded): the logistic over 20
cues and their squares (:func:`sitewatch.buildings.probability`, which ``finechange`` reads as a cue and
which this script does not rewrite: the shipped coefficients were fitted 2026-12-02 by this script as it
stood at commit 1a31ea9, ``git show 1a31ea9:benchmarks/train_buildings.py`` refits them), and boosted trees (scikit-learn's HistGradientBoosting, as
``train_finechange.py``) over 30 cues and their ranks in the scene, each dataset weighing the same and
within it buildings and ground half each (:func:`sitewatch.buildings.map_probability`: the per-date
map). Each set's threshold is the one best on the other three sets' pooled held-out counts (nested).
With ``--write`` the trees fitted on all four are written into the model file beside the logistic
(its coefficients kept as they are); with ``--folds DIR`` each dataset's held-out trees too, for
``benchmarks/real.py --map-folds DIR``. Only node arrays and coefficients are written; no imagery or
label leaves ``../shared/data``. scikit-learn is used here only.
Run: ``python benchmarks/train_buildings.py [--write] [--folds DIR]`` (7 min on the loaded 2-core machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real  # noqa: E402

from sitewatch import align, buildings, pixelmodel  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "src" / "sitewatch" / "data" / "building_model.json"
PER_IMAGE = 60_000
SEED = 13


def scene_samples(case: real.Case, work: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Sampled pixels' map cues and labels of one map case, as the monitor's reader and detector would see
    it, and the whole scene's cues (for the held-out maps)."""
    from shapely.geometry import shape

    from sitewatch.catalog import discover
    from sitewatch.reader import read_scene

    sites, cat = real.write_catalog(case, work)
    aoi = shape(json.loads(sites.read_text())["features"][0]["geometry"])
    ref = discover(str(cat), aoi=aoi).scenes[0]
    r = read_scene(ref, aoi)
    levels = align.ground_levels(r.bands, r.valid)
    rel = align.relative_to_ground(r.bands, levels)
    c = buildings.map_cues(rel, r.bands, r.valid, r.grid.res)
    label = _label_on_grid(case, r.grid)
    ok = r.valid.ravel()
    idx = np.flatnonzero(ok)
    take = rng.choice(idx, size=min(PER_IMAGE, idx.size), replace=False)
    q = buildings.scene_quantiles(c, r.valid)
    x = buildings.map_matrix(c, q, take)
    y = label.ravel()[take].astype(np.float64)
    full = {"cues": c, "q": q, "label": label, "valid": r.valid, "res": r.grid.res}
    return x, y, full


def _label_on_grid(case: real.Case, grid) -> np.ndarray:
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out = np.zeros(grid.shape, np.uint8)
    reproject(case.label.astype(np.uint8), out, src_transform=case.label_transform, src_crs=case.label_crs,
              dst_transform=grid.transform, dst_crs=grid.crs, resampling=Resampling.nearest)
    return out.astype(bool)


def map_f1(p: np.ndarray, label: np.ndarray, valid: np.ndarray, thr: float) -> tuple[int, int, int]:
    pred = (p > thr) & valid
    return int((pred & label).sum()), int((pred & ~label).sum()), int((~pred & label & valid).sum())


#: Boosted trees for the per-date map (scikit-learn's HistGradientBoostingClassifier, as
#: ``train_finechange.py``), shipped as node arrays; read by :func:`sitewatch.buildings.map_probability`.
TREES = {"max_depth": 5, "max_iter": 120, "learning_rate": 0.1, "l2_regularization": 1.0, "max_leaf_nodes": 20}
THRESHOLDS = np.round(np.arange(0.1, 0.91, 0.05), 2)


def fit_trees(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[object, dict]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(**TREES, random_state=SEED).fit(x, y, sample_weight=w)
    return clf, pixelmodel.export_trees(clf, TREES, digits=None)


def _balanced(parts: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Each dataset weighs the same, and within it buildings and ground weigh half each (mean weight 1): the
    sets' building shares differ (0.04-0.18), and so a threshold learnt on three carries to the fourth."""
    ys: dict[str, list[np.ndarray]] = {}
    for n, y in parts:
        ys.setdefault(n, []).append(y)
    share = {n: float(np.concatenate(v).mean()) for n, v in ys.items()}
    size = {n: sum(len(y) for y in v) for n, v in ys.items()}
    w = np.concatenate([np.where(y > 0, 0.5 / share[n], 0.5 / (1 - share[n])) / size[n] for n, y in parts])
    return w * len(w) / w.sum()


def _weights(parts: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Each dataset weighs the same, whatever its number of images (mean weight 1)."""
    size: dict[str, int] = {}
    for n, y in parts:
        size[n] = size.get(n, 0) + len(y)
    w = np.concatenate([np.full(len(y), 1.0 / size[n]) for n, y in parts])
    return w * len(w) / w.sum()


def _counts(p: np.ndarray, full: dict) -> np.ndarray:
    """(thresholds, 3) tp/fp/fn of the probability smoothed over 1 m (as the map smooths it) at each threshold."""
    from scipy import ndimage

    ps = ndimage.gaussian_filter(p.astype(np.float32), max(0.5, 1.0 / full["res"]))
    return np.array([map_f1(ps, full["label"], full["valid"], t) for t in THRESHOLDS])


def _prf(c) -> tuple[float, float, float]:
    tp, fp, fn = (float(v) for v in c)
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1), 2 * tp / max(2 * tp + fp + fn, 1)


def table(name: str, per: dict[str, np.ndarray]) -> dict:
    """Per-set and pooled held-out P/R/F1: each set at the threshold best on the other sets' pooled held-out
    counts (nested: a set never votes for its own threshold); and at the one best on all (as before)."""
    sets = list(per)
    nested = {}
    for s in sets:
        other = np.sum([per[o] for o in sets if o != s], axis=0)
        nested[s] = int(np.argmax([_prf(c)[2] for c in other]))
    pooled_n = np.sum([per[s][nested[s]] for s in sets], axis=0)
    allc = np.sum([per[s] for s in sets], axis=0)
    best = int(np.argmax([_prf(c)[2] for c in allc]))
    print(f"\n### {name}, held out by dataset (pixel maps before cleaning, smoothed over 1 m)\n")
    print("| held-out dataset | threshold (nested) | P | R | F1 | F1 at the pooled best " + f"{THRESHOLDS[best]} |")
    print("|---|---|---|---|---|---|")
    for s in sets:
        P, R, F = _prf(per[s][nested[s]])
        print(f"| {s} | {THRESHOLDS[nested[s]]} | {P:.2f} | {R:.2f} | {F:.2f} | {_prf(per[s][best])[2]:.2f} |")
    P, R, F = _prf(pooled_n)
    print(f"| pooled | – | {P:.2f} | {R:.2f} | **{F:.2f}** | {_prf(allc[best])[2]:.2f} |", flush=True)
    return {"threshold": float(THRESHOLDS[best]), "nested_threshold": {s: float(THRESHOLDS[nested[s]]) for s in sets},
            "pooled_nested": (round(P, 3), round(R, 3), round(F, 3)),
            "per_set_nested": {s: [round(v, 3) for v in _prf(per[s][nested[s]])] for s in sets}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true",
                    help="write the trees into building_model.json beside its logistic (kept byte for byte)")
    ap.add_argument("--folds", default=None, help="also write each dataset's held-out trees into this folder "
                    "(building_map-without-<dataset>.json, its threshold chosen without it) for real.py --map-folds")
    args = ap.parse_args()
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="sitewatch-train-"))
    rng = np.random.default_rng(SEED)
    cases = [c for c in real.building_cases(work) + real.xbd_cases(work) if c.task == "map"]
    groups: dict[str, list] = {}
    for i, c in enumerate(cases):
        x, y, full = scene_samples(c, work / f"c{i}", rng)
        ds = c.dataset.replace("-pre", "")
        groups.setdefault(ds, []).append((x, y, full))
        print(f"  {c.dataset} {c.name}: {full['label'].shape}, building share {y.mean():.2f}", flush=True)
    print(f"read {len(cases)} scenes, {len(buildings.MAP_CUES)} cues, in {time.perf_counter() - t0:.0f} s", flush=True)
    names = list(groups)
    nlog = len(buildings.CUES)
    per_log: dict[str, np.ndarray] = {}
    per_tree: dict[str, np.ndarray] = {}
    folds: dict[str, dict] = {}
    for held in names:
        parts = [(n, x, y) for n in names if n != held for x, y, _ in groups[n]]
        xs = np.vstack([x for _, x, _ in parts])
        ys = np.concatenate([y for _, _, y in parts])
        w = _weights([(n, y) for n, _, y in parts])
        m = buildings.fit_logistic(np.hstack([xs[:, :nlog], xs[:, :nlog] ** 2]), ys, weights=w)
        clf, doc = fit_trees(xs, ys, _balanced([(n, y) for n, _, y in parts]))
        folds[held] = {"cues": list(buildings.MAP_FEATURES), **doc, "data": f"building-labelled sets without {held}"}
        per_log[held] = per_tree[held] = 0
        for _, _, full in groups[held]:
            c = full["cues"]
            per_log[held] = per_log[held] + _counts(buildings.probability(c, m), full)
            xf = buildings.map_matrix(c, full["q"])
            pt = clf.predict_proba(xf)[:, 1].reshape(full["label"].shape)  # type: ignore[attr-defined]
            per_tree[held] = per_tree[held] + _counts(pt, full)
        # the shipped forward pass (node arrays, numpy) must give scikit-learn's answer
        sub = xf[rng.choice(len(xf), 20_000, replace=False)]
        diff = np.abs(pixelmodel.trees_logit(sub, doc) - clf.decision_function(sub))  # type: ignore[attr-defined]
        print(f"  without {held}: fitted in {time.perf_counter() - t0:.0f} s; node arrays vs scikit-learn on "
              f"{len(sub)} pixels: logit differs by > 0.01 on {int((diff > 0.01).sum())}, at most {diff.max():.1e}",
              flush=True)
    log = table("Logistic (20 cues and their squares)", per_log)
    tree = table(f"Boosted trees ({len(buildings.MAP_CUES)} cues and their ranks in the scene)", per_tree)
    print(f"\n{time.perf_counter() - t0:.0f} s so far", flush=True)
    if args.folds:
        d = Path(args.folds)
        d.mkdir(parents=True, exist_ok=True)
        for held, f in folds.items():
            f = buildings.validate_map({**f, "threshold": tree["nested_threshold"][held]})
            (d / f"building_map-without-{held}.json").write_text(json.dumps(f, separators=(",", ":")) + "\n")
        print(f"wrote {len(folds)} held-out models into {d}")
    if not args.write:
        return
    parts = [(n, x, y) for n in names for x, y, _ in groups[n]]
    xs = np.vstack([x for _, x, _ in parts])
    ys = np.concatenate([y for _, _, y in parts])
    _, doc = fit_trees(xs, ys, _balanced([(n, y) for n, _, y in parts]))
    model = json.loads(OUT.read_text())
    model["map"] = {"cues": list(buildings.MAP_FEATURES), **doc, "threshold": tree["threshold"],
                    "fitted": dt.date.today().isoformat(), "script": "benchmarks/train_buildings.py --write",
                    "trained_on": {n: len(groups[n]) for n in names}, "samples": int(len(ys)),
                    "held_out_nested": {"trees": tree, "logistic": log}}
    buildings.validate_map(model["map"])
    OUT.write_text(json.dumps(model, separators=(",", ":")) + "\n")
    print(f"\nwrote {OUT} ({OUT.stat().st_size} bytes) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
