"""Fit the 10 m two-date change model (``src/sitewatch/data/s2_change_model.json``) on OSCD.

Each OSCD dev city (``../shared/data/oscd-dev``: 5 Sentinel-2 L1C pairs with urban-change masks)
is read exactly as ``monitor`` reads it (static STAC catalog -> ``sitewatch.reader`` on the site
grid, the second date co-registered to the first as the detector does), described by
:func:`sitewatch.s2change.features`, and labelled by the city's change mask on the same grid.

Held out by city: for each city a model is fitted on the other four and scored on it (pixel
precision / recall / F1, and the same after the tracker's 12-pixel floor on change objects);
the presence thresholds (a core threshold and a lower one its rim grows to) are chosen on the
pooled held-out maps: the most label objects found within 0.02 of the best pooled pixel F1. The shipped model is then fitted
on all five cities with that threshold. One model per band set (all five bands; no swir16;
visible only), fitted on the same pixels. With ``--folds DIR`` the per-city held-out models
are written too (``DIR/s2_change_model-without-<city>.json``) for ``benchmarks/real.py --s2-folds``.
scikit-learn is used here only, never at runtime. Only coefficients leave ``../shared/data``.
``--structure`` adds the structure-persistence cues (``sitewatch.s2change.STRUCT_CUES``; measured held
out, not shipped), ``--out`` writes the all-city model elsewhere than the shipped file.
Run: ``python benchmarks/train_s2change.py [--folds /tmp/s2folds] [--structure] [--out PATH]`` (about 2-3 min
on 2 cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real  # noqa: E402

from sitewatch import align, components, pixelmodel, s2change  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "src" / "sitewatch" / "data" / "s2_change_model.json"
#: Training pixels per city: every changed pixel up to half of this, the rest unchanged ones.
PER_CITY = 60_000
SEED = 13
#: Inverse regularisation (scikit-learn's C) of the logistic model.
C = 0.05
#: The tracker's floor on a building change object (changes.MIN_PX["building"]).
MIN_PX = 12
NAME, VERSION = "sitewatch-s2change", "1"
#: Pixel F1 the threshold pair may give up (pooled, held out) to find more objects.
F1_SLACK = 0.02


def read_pair(case: real.Case, work: Path, min_gain: float | None = None) -> dict:
    """Both dates on the site grid as monitor reads them, the second aligned to the first, and the label.
    ``min_gain``: shift only when it improves the match that much (``sitewatch.align.MIN_SHIFT_GAIN``,
    as the detector does; None: always, as when the shipped 10 m model was fitted)."""
    from shapely.geometry import shape

    from sitewatch.catalog import discover
    from sitewatch.reader import read_scene

    sites, cat = real.write_catalog(case, work)
    aoi = shape(json.loads(sites.read_text())["features"][0]["geometry"])
    refs = sorted(discover(str(cat), aoi=aoi).scenes, key=lambda s: s.acquired)
    a = read_scene(refs[0], aoi)
    b = read_scene(refs[1], aoi, site_res=(a.grid.res,))
    bands_b, valid_b = dict(b.bands), b.valid
    dx, dy, _, gain = align.registered(align.brightness(a.bands), align.brightness(bands_b), valid_b)
    if min_gain is not None and math.hypot(dx, dy) >= 0.2 and gain < min_gain:
        dx = dy = 0.0
    if math.hypot(dx, dy) <= align.MAX_SHIFT_PX and math.hypot(dx, dy) >= 0.2:
        bands_b = {k: align.apply_shift(v, dx, dy) for k, v in bands_b.items()}
        valid_b = align.apply_shift(valid_b, dx, dy)
    ref = {k: np.where(a.valid, v, np.nan) for k, v in a.bands.items()}
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    label = np.zeros(a.grid.shape, np.uint8)
    reproject(case.label.astype(np.uint8), label, src_transform=case.label_transform, src_crs=case.label_crs,
              dst_transform=a.grid.transform, dst_crs=a.grid.crs, resampling=Resampling.nearest)
    both = valid_b & a.valid
    return {"ref": ref, "cur": bands_b, "both": both, "label": label.astype(bool), "res": a.grid.res,
            "shift": (round(dx, 2), round(dy, 2))}


def fit(x: np.ndarray, y: np.ndarray) -> dict:
    return pixelmodel.fit_logistic(x, y, C, max_iter=500)


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def counts(pred: np.ndarray, label: np.ndarray, both: np.ndarray) -> tuple[int, int, int]:
    return int((pred & label & both).sum()), int((pred & ~label & both).sum()), int((~pred & label & both).sum())


def floor(pred: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    lab, n = components.label(pred, corners=True)
    if not n:
        return pred
    sizes = ndimage.sum_labels(pred, lab, np.arange(1, n + 1))
    return np.concatenate([[False], sizes >= MIN_PX])[lab]


def choose(held: dict[str, np.ndarray], pairs: dict[str, dict]) -> tuple[float, float]:
    """Threshold and grow threshold (:func:`sitewatch.s2change.hysteresis`) on the pooled held-out maps,
    after the tracker's 12-px floor: of the pairs whose pixel F1 is within F1_SLACK of the best, the
    one that finds the most label objects (both are targets; a rim grown around a core finds more)."""
    from sitewatch.testbed.scoring import object_recall

    rows = []
    for hi in np.round(np.arange(0.7, 0.976, 0.025), 3):
        for lo in np.round(np.arange(hi, hi - 0.31, -0.05), 3):
            tot, found = np.zeros(3), 0
            for n, p in pairs.items():
                pred = floor(s2change.hysteresis(held[n], float(hi), float(lo))) & p["both"]
                tot += counts(pred, p["label"], p["both"])
                found += object_recall(pred, real._drop_specks(p["label"]))[0]
            rows.append((prf(*tot)[2], found, float(hi), float(lo)))
    best = max(r[0] for r in rows)
    f1, found, hi, lo = max((r for r in rows if r[0] >= best - F1_SLACK), key=lambda r: (r[1], r[0]))
    print(f"  threshold {hi}, grown to {lo}: pooled held-out F1 {f1:.3f} (best {best:.3f}), {found} objects")
    return hi, lo


def balanced_sample(pairs: dict) -> dict[str, np.ndarray]:
    """Each city's training pixels: up to half of :data:`PER_CITY` labelled change, the rest not, drawn
    with :data:`SEED` (so ``s2_cues.py`` draws the very sample the shipped model was fitted on)."""
    rng = np.random.default_rng(SEED)
    take: dict[str, np.ndarray] = {}
    for name, p in pairs.items():
        pos = np.flatnonzero((p["label"] & p["both"]).ravel())
        neg = np.flatnonzero((~p["label"] & p["both"]).ravel())
        pos = rng.choice(pos, size=min(pos.size, PER_CITY // 2), replace=False)
        neg = rng.choice(neg, size=min(neg.size, PER_CITY - pos.size), replace=False)
        take[name] = np.concatenate([pos, neg])
    return take


def design_sets(feats: dict, pairs: dict) -> tuple[list[str], dict, dict]:
    """The cue names (sorted), each city's design matrix and its labels, flattened."""
    names = sorted(next(iter(feats.values())))
    return (names, {n: s2change.design(f, names) for n, f in feats.items()},
            {n: p["label"].ravel() for n, p in pairs.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", default=None, help="also write the per-city held-out models into this folder")
    ap.add_argument("--structure", action="store_true", help="add the structure-persistence cues (not shipped)")
    ap.add_argument("--out", default=str(OUT), help="where the all-city model goes (default: the shipped file)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="sitewatch-s2train-"))
    cases = real.oscd_cases(work / "tif")
    pairs = {c.name: read_pair(c, work / c.name) for c in cases}
    print(f"read {len(pairs)} cities in {time.perf_counter() - t0:.0f} s "
          f"({sum(int(p['both'].sum()) for p in pairs.values()) / 1e6:.2f} M clear px)")
    take = balanced_sample(pairs)
    doc: dict = {"name": NAME, "version": VERSION, "fitted": dt.date.today().isoformat(),
                 "script": "benchmarks/train_s2change.py", "data": "OSCD dev cities " + ", ".join(pairs),
                 "bands_note": "one model per band set; the largest set both dates hold is used", "models": {}}
    folds: dict[str, dict] = {name: {**doc, "data": f"OSCD dev cities without {name}", "models": {}} for name in pairs}
    for bands in s2change.BAND_SETS:
        key = ",".join(bands)
        feats = {n: s2change.features(p["ref"], p["cur"], p["both"], bands, structure=args.structure)
                 for n, p in pairs.items()}
        names, xs, ys = design_sets(feats, pairs)
        held = {}
        for name in pairs:
            others = [n for n in pairs if n != name]
            m = fit(np.concatenate([xs[n][take[n]] for n in others]), np.concatenate([ys[n][take[n]] for n in others]))
            m["cues"] = names
            folds[name]["models"][key] = m
            sub = {"models": {key: {**m, "threshold": 0.5}}}
            held[name], _ = s2change.probability(pairs[name]["ref"], pairs[name]["cur"], pairs[name]["both"], bands, sub)
        thr, grow = choose(held, pairs)
        print(f"\n## band set {key}: {len(names)} cues, held out by city, threshold {thr:.3f}, grown to {grow:.3f}\n")
        print("| city | px | changed | P | R | F1 | F1 after 12-px floor | objects ≥ 10 px found |")
        print("|---|---|---|---|---|---|---|---|")
        tot, totf, found, nobj = np.zeros(3), np.zeros(3), 0, 0
        for n, p in pairs.items():
            pred = s2change.hysteresis(held[n], thr, grow)
            c, cf = counts(pred, p["label"], p["both"]), counts(floor(pred), p["label"], p["both"])
            tot += c
            totf += cf
            from sitewatch.testbed.scoring import object_recall

            f, k = object_recall(floor(pred) & p["both"], real._drop_specks(p["label"]))
            found, nobj = found + f, nobj + k
            P, R, F = prf(*c)
            print(f"| {n} | {int(p['both'].sum())} | {int((p['label'] & p['both']).sum())} | {P:.2f} | {R:.2f} "
                  f"| {F:.2f} | {prf(*cf)[2]:.2f} | {f}/{k} |")
        P, R, F = prf(*tot)
        print(f"| pooled | {sum(int(p['both'].sum()) for p in pairs.values())} | | {P:.2f} | {R:.2f} | **{F:.2f}** "
              f"| {prf(*totf)[2]:.2f} | {found}/{nobj} = {found / max(nobj, 1):.2f} |")
        for name in pairs:
            folds[name]["models"][key].update(threshold=thr, grow_threshold=grow)
        m = fit(np.concatenate([xs[n][take[n]] for n in pairs]), np.concatenate([ys[n][take[n]] for n in pairs]))
        doc["models"][key] = {**m, "cues": names, "threshold": thr, "grow_threshold": grow, "held_out_f1": round(F, 4),
                              "held_out_precision": round(P, 4), "held_out_recall": round(R, 4)}
    s2change.validate(doc)
    pixelmodel.write_models(Path(args.out), doc, folds, args.folds, "s2_change_model", t0)


if __name__ == "__main__":
    main()
