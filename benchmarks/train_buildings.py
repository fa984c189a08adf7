"""Fit the per-date building model (``src/sitewatch/data/building_model.json``) on real labelled tiles.

Scenes are read exactly as ``monitor`` reads them (static STAC catalog -> ``sitewatch.reader``,
site grid, ground levels) and described by :func:`sitewatch.buildings.cues`; labels are the
building masks of ``../shared/data/buildings-real`` (SpaceNet Rio centre crop and Atlanta, Inria
Austin, the three xBD Joplin pre images) reprojected onto the same grid. LEVIR-CD and OSCD are
never used here: they stay held out for ``benchmarks/real.py``.

Figures are held out by dataset: for each of the four datasets the model is fitted on the
other three and scored on it (pixel F1 of the thresholded map); the threshold is the one that
maximises the pooled held-out F1. The shipped model is then fitted on all four. Only the
coefficients are written (a few kB); no imagery or label leaves ``../shared/data``.
Run: ``python benchmarks/train_buildings.py`` (about 2 min on 2 cores).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real  # noqa: E402

from sitewatch import align, buildings  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "src" / "sitewatch" / "data" / "building_model.json"
PER_IMAGE = 40_000
SEED = 13


def scene_samples(case: real.Case, work: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Cues and labels of one map case, as the monitor's reader and detector would see it."""
    from shapely.geometry import shape

    from sitewatch.catalog import discover
    from sitewatch.reader import read_scene

    sites, cat = real.write_catalog(case, work)
    aoi = shape(json.loads(sites.read_text())["features"][0]["geometry"])
    ref = discover(str(cat), aoi=aoi).scenes[0]
    r = read_scene(ref, aoi)
    levels = align.ground_levels(r.bands, r.valid)
    rel = align.relative_to_ground(r.bands, levels)
    c = buildings.cues(rel, r.bands, r.valid, r.grid.res)
    label = _label_on_grid(case, r.grid)
    ok = r.valid.ravel()
    idx = np.flatnonzero(ok)
    take = rng.choice(idx, size=min(PER_IMAGE, idx.size), replace=False)
    x = buildings.design(c)[take]
    y = label.ravel()[take].astype(np.float64)
    full = {"cues": c, "label": label, "valid": r.valid, "res": r.grid.res}
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


def main() -> None:
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
    names = list(groups)
    thresholds = np.round(np.arange(0.2, 0.75, 0.05), 2)
    pooled = {t: [0, 0, 0] for t in thresholds}
    rows = []
    for held in names:
        xs = np.vstack([x for n in names if n != held for x, _, _ in groups[n]])
        ys = np.concatenate([y for n in names if n != held for _, y, _ in groups[n]])
        # each training dataset weighs the same, whatever its number of images
        w = np.concatenate([np.full(len(y), 1.0 / sum(len(yy) for _, yy, _ in groups[n]))
                            for n in names if n != held for _, y, _ in groups[n]])
        m = buildings.fit_logistic(xs, ys, weights=w * len(ys) / w.sum())
        per = {t: [0, 0, 0] for t in thresholds}
        for _, _, full in groups[held]:
            p = buildings.probability(full["cues"], m)
            from scipy import ndimage

            p = ndimage.gaussian_filter(p, max(0.5, 1.0 / full["res"]))
            for t in thresholds:
                tp, fp, fn = map_f1(p, full["label"], full["valid"], t)
                per[t] = [per[t][0] + tp, per[t][1] + fp, per[t][2] + fn]
        for t in thresholds:
            pooled[t] = [a + b for a, b in zip(pooled[t], per[t])]
        rows.append((held, per))

    def f1(v: list[int]) -> float:
        return 2 * v[0] / max(2 * v[0] + v[1] + v[2], 1)

    best = max(thresholds, key=lambda t: f1(pooled[t]))
    print(f"\n## Per-date building model, held out by dataset (pixel maps before cleaning; threshold {best})\n")
    print("| held-out dataset | precision | recall | F1 |")
    print("|---|---|---|---|")
    for held, per in rows:
        tp, fp, fn = per[best]
        print(f"| {held} | {tp / max(tp + fp, 1):.2f} | {tp / max(tp + fn, 1):.2f} | {f1(per[best]):.2f} |")
    tp, fp, fn = pooled[best]
    print(f"| pooled | {tp / max(tp + fp, 1):.2f} | {tp / max(tp + fn, 1):.2f} | {f1(pooled[best]):.2f} |")
    xs = np.vstack([x for n in names for x, _, _ in groups[n]])
    ys = np.concatenate([y for n in names for _, y, _ in groups[n]])
    w = np.concatenate([np.full(len(y), 1.0 / sum(len(yy) for _, yy, _ in groups[n])) for n in names
                        for _, y, _ in groups[n]])
    m = buildings.fit_logistic(xs, ys, weights=w * len(ys) / w.sum())
    m["threshold"] = float(best)
    doc = {"cues": list(buildings.CUES), "features": "cues, then their squares",
           "fitted": dt.date.today().isoformat(), "script": "benchmarks/train_buildings.py",
           "trained_on": {n: len(groups[n]) for n in names},
           "samples": int(len(ys)), "held_out_f1_by_dataset": {h: round(f1(per[best]), 3) for h, per in rows},
           "note": "coefficients only; the training imagery and labels (SpaceNet CC BY-SA 4.0, xBD CC BY-NC-SA 4.0, "
                   "Inria research terms) are not shipped", "fine": m}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {OUT} ({OUT.stat().st_size} bytes) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
