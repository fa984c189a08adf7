"""Reviews teach the ranking: the pending queue's average precision before and after k reviews.

    nice .venv/bin/python benchmarks/rerank.py [--work DIR] [--seeds 5]

Data: real labelled pairs from ``../shared/data``: the eleven LEVIR-CD samples (0.5 m RGB, building
change labels), the five OSCD Sentinel-2 cities (10 m, urban-change masks) and the three xBD Joplin
tiles (≈0.45 m, before/after a tornado; truth: buildings of major damage or destroyed). Each
pair goes through ``sitewatch.monitor.run`` with the default detector and, beside it, the
``difference`` change model of benchmarks/model.py (a fixed-weight ONNX network, not a trained
one), so the queue holds both detectors' claims.

Truth per detection: a detection is real when at least half of its pixels are changed in the
pair's label (reprojected onto the site grid). A simulated reviewer confirms the real ones and
rejects the others. For k = 25, 50, 100 reviews (k detections drawn at random, seeds 0..n-1;
and, second protocol, the top k of the queue by score, as a reviewer working down the list),
``review learn`` fits the re-ranker, and the average precision of the detections still pending
is computed in the detector's order (``score``) and in the learnt order (``rank_score``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from sitewatch.testbed.scoring import average_precision  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def oscd(work: Path) -> tuple[Path, Path, dict[str, tuple[Path, str]]]:
    """Per-band GeoTIFFs named <city>_<date>_<band>.tif, the cities' boxes as sites, the change masks."""
    import shutil as sh

    root = SHARED / "oscd-dev"
    imagery = work / "oscd-imagery"
    imagery.mkdir(parents=True, exist_ok=True)
    feats, truth = [], {}
    for city in sorted(p for p in root.iterdir() if p.is_dir()):
        dates = dict(line.split(": ") for line in (city / "dates.txt").read_text().split("\n") if ": " in line)
        for k in (1, 2):
            d = dates[f"date_{k}"].strip()
            iso = f"{d[:4]}-{d[4:6]}-{d[6:]}"
            for src, band in (("B04", "red"), ("B03", "green"), ("B02", "blue"), ("B08", "nir"), ("B11", "swir16")):
                sh.copy(city / f"imgs_{k}" / f"{src}.tif", imagery / f"{city.name}_{iso}_{band}.tif")
        g = json.loads((city / f"{city.name}.geojson").read_text())
        f = g["features"][0] if g.get("type") == "FeatureCollection" else g
        feats.append({"type": "Feature", "properties": {"site_id": f"oscd-{city.name}"}, "geometry": f["geometry"]})
        truth[f"oscd-{city.name}"] = (city / "cm.tif", "any")
    sites = work / "oscd-sites.geojson"
    sites.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return imagery, sites, truth


def xbd(work: Path) -> tuple[Path, Path, dict[str, tuple[Path, str]]]:
    """The Joplin tiles warped to north-up GeoTIFFs; truth = major damage or destroyed (classes 3, 4)."""
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject
    from shapely.geometry import box, mapping

    root = SHARED / "buildings-real" / "xbd-joplin"
    imagery = work / "xbd-imagery"
    imagery.mkdir(parents=True, exist_ok=True)
    feats, truth = [], {}
    for pre in sorted((root / "images").glob("*_pre_disaster.png")):
        tile = pre.name.split("_")[1]
        sid = f"xbd-t{int(tile)}"  # no 8-digit run in the name: it would be read as a date
        for src_path, date, out_name in ((pre, "2009-08-08", f"{sid}_2009-08-08.tif"),
                                         (Path(str(pre).replace("_pre_", "_post_")), "2011-05-29", f"{sid}_2011-05-29.tif"),
                                         (root / "masks" / pre.name.replace("_pre_disaster.png", "_post_disaster_damage.png"),
                                          None, f"truth-{sid}.tif")):
            # the damage mask (no date) is on the post image's pixels and takes its georeferencing
            geo = Path(str(pre).replace("_pre_", "_post_")) if date is None else src_path
            with rasterio.open(geo) as g, rasterio.open(src_path) as s:
                t, w, h = calculate_default_transform(g.crs, g.crs, g.width, g.height, *g.bounds)
                data = s.read()
                out = np.zeros((data.shape[0], h, w), data.dtype)
                for i in range(data.shape[0]):
                    reproject(data[i], out[i], src_transform=g.transform, src_crs=g.crs, dst_transform=t,
                              dst_crs=g.crs, resampling=Resampling.nearest if date is None else Resampling.bilinear)
                dest = (work / out_name) if date is None else imagery / out_name
                prof = {"driver": "GTiff", "count": out.shape[0], "height": h, "width": w, "dtype": str(out.dtype),
                        "crs": g.crs, "transform": t, "nodata": 0}
                with rasterio.open(dest, "w", **prof) as ds:
                    ds.write(out)
                    if date is not None:
                        for i, n in enumerate(("red", "green", "blue"), start=1):
                            ds.set_band_description(i, n)
                if date is None:
                    truth[sid] = (dest, "34")
                    b = g.bounds
                    dx, dy = (b.right - b.left) * 0.02, (b.top - b.bottom) * 0.02
                    feats.append({"type": "Feature", "properties": {"site_id": sid},
                                  "geometry": mapping(box(b.left + dx, b.bottom + dy, b.right - dx, b.top - dy))})
    sites = work / "xbd-sites.geojson"
    sites.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return imagery, sites, truth


def levir(work: Path) -> tuple[Path, Path, dict[str, tuple[Path, str]]]:
    import rasterio
    from affine import Affine

    from model import CRS, RES, levir_pairs, write_pairs

    pset = levir_pairs()
    imagery, sites, index = write_pairs(work, pset, clear_mask=True)
    truth = {}
    for name, _, _, label in pset.pairs:
        x0, y0 = pset.origin(index[name])
        p = work / f"truth-{name}.tif"
        with rasterio.open(p, "w", driver="GTiff", count=1, height=label.shape[0], width=label.shape[1], dtype="uint8",
                           crs=CRS, transform=Affine(RES, 0, x0, 0, -RES, y0)) as ds:
            ds.write(label.astype(np.uint8)[None])
        truth[name] = (p, "any")
    return imagery, sites, truth


def truth_on_grid(path: Path, rule: str, grid) -> np.ndarray:
    import rasterio
    from rasterio.warp import Resampling, reproject

    out = np.zeros(grid.shape, np.uint8)
    with rasterio.open(path) as ds:
        reproject(ds.read(1), out, src_transform=ds.transform, src_crs=ds.crs, dst_transform=grid.transform,
                  dst_crs=grid.crs, resampling=Resampling.nearest)
    return np.isin(out, (3, 4)) if rule == "34" else out > 0


def label_detections(store, truth: dict[str, tuple[Path, str]]) -> dict[str, bool]:
    from rasterio.features import rasterize

    from sitewatch.grid import Grid, to_crs

    labels = {}
    grids: dict[str, tuple] = {}
    for d in store.detections():
        if d.site_id not in grids:
            g = Grid.from_dict(store.quicklook(d.site_id, d.after_scene_id)[1])
            grids[d.site_id] = (g, truth_on_grid(*truth[d.site_id], g))
        g, t = grids[d.site_id]
        m = rasterize([(to_crs(d.geometry, "EPSG:4326", g.crs), 1)], out_shape=g.shape, transform=g.transform,
                      all_touched=False).astype(bool)
        labels[d.detection_id] = bool(m.any() and t[m].mean() >= 0.5)
    return labels


def trial(db: Path, work: Path, chosen: list[str], labels: dict[str, bool]) -> tuple[float, float, float | None]:
    """AP of the still-pending queue by score and by rank_score after reviewing ``chosen``."""
    from sitewatch.errors import SitewatchError
    from sitewatch.rerank import learn
    from sitewatch.reviewweb import queue_rows
    from sitewatch.store import Store

    copy = work / "trial.gpkg"
    shutil.copy(db, copy)
    store = Store(copy)
    for did in chosen:
        store.add_review(did, "simulated", "confirmed" if labels[did] else "rejected")
    pending = store.detections(status="pending")
    by_score = [d.detection_id for d in sorted(pending, key=lambda d: (-d.score, d.detection_id))]
    try:
        r = learn(store)
    except SitewatchError:
        return average_precision(by_score, labels), float("nan"), None
    ranked = [row["detection_id"] for row in queue_rows(store, pending)]
    return average_precision(by_score, labels), average_precision(ranked, labels), r.cv_auc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=None)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sets", default="levir,oscd,xbd", help="data sets, comma-separated (levir, oscd, xbd)")
    ap.add_argument("--reuse", action="store_true", help="keep WORK/pool.gpkg from an earlier run (no monitor runs)")
    args = ap.parse_args()
    import onnx_models as om

    from sitewatch.monitor import MonitorParams, run
    from sitewatch.store import Store

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sitewatch-rerank-"))
    work.mkdir(parents=True, exist_ok=True)
    model = om.difference_model(work / "difference.onnx", tile=256, threshold=0.5)
    db = work / "pool.gpkg"
    reuse = args.reuse and db.exists()
    if not reuse:
        db.unlink(missing_ok=True)
    truth: dict[str, tuple[Path, str]] = {}
    sets = {}
    chosen_sets = set(args.sets.split(","))
    for key, name, make in (("levir", "LEVIR-CD samples", levir), ("oscd", "OSCD (5 cities)", oscd),
                            ("xbd", "xBD Joplin", xbd)):
        if key not in chosen_sets:
            continue
        imagery, sites, t = make(work)
        truth.update(t)
        if reuse:
            n = sum(len(Store(db).detections(site_id=sid)) for sid in t)
            sets[name] = ("reused", n)
            continue
        s = run(MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model)))
        sets[name] = (s.status, s.as_dict()["detections_new"])
    store = Store(db)
    labels = label_detections(store, truth)
    dets = store.detections()
    ids = [d.detection_id for d in dets]
    n_true = sum(labels.values())
    print(f"## Re-ranking from reviews: {len(ids)} detections on real labelled pairs, {n_true} real "
          f"({', '.join(f'{k}: {v[1]} detections, run {v[0]}' for k, v in sets.items())})\n")
    by_model = sum(1 for d in dets if "model" in d.evidence)
    print(f"{by_model} by the difference model, {len(ids) - by_model} by the default detector.\n")
    base = average_precision([d.detection_id for d in sorted(dets, key=lambda d: (-d.score, d.detection_id))], labels)
    print(f"Average precision of the whole queue by score, before any review: **{base:.3f}** "
          f"(a random order gives ≈ {n_true / len(ids):.3f})\n")
    print("| protocol | reviews | trials | pending left | AP by score | AP by rank_score | gain | CV AUC |")
    print("|---|---|---|---|---|---|---|---|")
    top = [d.detection_id for d in sorted(dets, key=lambda d: (-d.score, d.detection_id))]
    for k in (25, 50, 100):
        if k >= len(ids) - 5:
            continue
        for protocol in ("random", "top of queue"):
            rows = []
            seeds = range(args.seeds) if protocol == "random" else range(1)
            for seed in seeds:
                chosen = list(np.random.default_rng(seed).choice(ids, k, replace=False)) if protocol == "random" \
                    else top[:k]
                rows.append(trial(db, work, chosen, labels))
            a = np.array([(r[0], r[1]) for r in rows], float)
            aucs = [r[2] for r in rows if r[2] is not None]
            learnt = np.isfinite(a[:, 1])
            if not learnt.any():
                print(f"| {protocol} | {k} | {len(rows)} | {len(ids) - k} | {a[:, 0].mean():.3f} | not learnt "
                      f"(too few of one decision) | | |")
                continue
            g = a[learnt, 1] - a[learnt, 0]
            sd = lambda v: f" ± {v.std(ddof=1):.3f}" if len(v) > 1 else ""  # noqa: E731
            print(f"| {protocol} | {k} | {int(learnt.sum())}/{len(rows)} | {len(ids) - k} | {a[learnt, 0].mean():.3f}"
                  f"{sd(a[learnt, 0])} | {a[learnt, 1].mean():.3f}{sd(a[learnt, 1])} | {g.mean():+.3f}{sd(g)} | "
                  f"{np.mean(aucs):.3f} |")


if __name__ == "__main__":
    main()
