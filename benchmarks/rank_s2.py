"""Can a 10 m detection score rank better, held out by city? (issue 13: top-20 % precision >= 0.7)

Measures, does not ship. Input: the OSCD dev detections of
``python benchmarks/real.py --only oscd --s2-folds DIR --json OUT --pixels`` (each city run with the
10 m change model fitted without it; ``--pixels`` keeps each detection's pixels on the label grid).
For every detection it computes, besides the facts the detector stores (``evidence``):

- *imagery under the region*, both dates from the OSCD bands on the label grid: brightness, NDVI,
  NDBI before, after and their change, each also against a 3-px ring around the region (other
  detections left out); the change-vector length in robust scene units; the spectral angle between
  the dates; the correlation of the two dates' brightness (``struct_corr``) and of their gradient
  magnitude (``grad_corr``) over the region grown by 2 px: a standing roof that brightened keeps its
  outline, a new building does not; ``grad_lcorr_rel``: a 7x7 windowed version against the scene's median;
- *scene-relative facts*: percentile and robust z of magnitude, area, core share, p_max, ``grad_corr``
  among the scene's detections; distance to the nearest other detection, detections within 250 m,
  local over scene changed share.

Then: each fact's AUC pooled and within each city; leave-one-city-out logistic fits for a fixed
list of input sets (in the order they were tried; picking the best of them on these same five cities
is itself fitting: the honest figure is the nested one); a nested forward selection (each outer
city's inputs chosen by an inner leave-one-city-out over the other four); all facts at once (logistic,
gradient boosting; raw and z-scored within the scene); city fixed effects with the intercept read from
the scene's changed share; and a ceiling: the best any score could do that keeps each city's held-out
order, with the number taken from each city chosen knowing the labels; and fewer detections (a floor on
magnitude, area or core share) with the pixel F1 and object recall they keep.
Run: ``python benchmarks/rank_s2.py OUT.json`` (about 30 s).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata

from sitewatch import buildings, scoremodel
from sitewatch.testbed import scoring

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "oscd-dev"
BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11"}
L2 = 0.05  # as calibrate_real.py
#: The shipped score's inputs less the constant and duplicated ones (strength_after = magnitude at
#: 10 m, strength_before and removed 0 on every OSCD detection).
BASE = ["magnitude", "log_area", "scene_changed_share"]
SHIPPED = ["magnitude", "magnitude", "log_area", "scene_changed_share"]
#: Input sets tried, in the order tried (each a held-out figure; see the module docstring).
SETS = [
    ("shipped inputs", SHIPPED), ("base: magnitude, log area, scene changed share", BASE),
    ("base + magnitude_pct", BASE + ["magnitude_pct"]),
    ("base + magnitude_pct, log_area_pct", BASE + ["magnitude_pct", "log_area_pct"]),
    ("base + ndbi_after_ring, d_ndvi", BASE + ["ndbi_after_ring", "d_ndvi"]),
    ("base + cv_ring", BASE + ["cv_ring"]),
    ("base + log local/scene share", BASE + ["log_local_over_scene"]),
    ("magnitude_pct, log_area_pct, scene share", ["magnitude_pct", "log_area_pct", "scene_changed_share"]),
    ("magnitude_z, log_area_z, core_share_z, scene share",
     ["magnitude_z", "log_area_z", "core_share_z", "scene_changed_share"]),
    ("base + d_ndbi, d_ndvi, d_bright", BASE + ["d_ndbi", "d_ndvi", "d_bright"]),
    ("base + dist_other, n_other_250", BASE + ["dist_other", "n_other_250"]),
    ("base + struct_corr", BASE + ["struct_corr"]), ("base + grad_corr", BASE + ["grad_corr"]),
    ("base + struct_corr, grad_corr", BASE + ["struct_corr", "grad_corr"]),
    ("shipped + grad_corr", SHIPPED + ["grad_corr"]),
    ("base + grad_corr_pct", BASE + ["grad_corr_pct"]), ("base + grad_lcorr_rel", BASE + ["grad_lcorr_rel"]),
]


def _read(city: str, date: int, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    import rasterio
    from rasterio.enums import Resampling

    out = {}
    for k, b in BANDS.items():
        with rasterio.open(DATA / city / f"imgs_{date}" / f"{b}.tif") as ds:  # swir16 is 20 m: resampled
            out[k] = ds.read(1, out_shape=shape, resampling=Resampling.bilinear).astype(np.float32) / 10000
    return out


def _robust(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    q = np.percentile(x[valid], [25, 50, 75])
    return (x - q[1]) / max(q[2] - q[0], 0.15 * abs(q[1]), 1e-6)


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / np.maximum(a + b, 1e-6)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0


def _window_corr(a: np.ndarray, b: np.ndarray, w: int = 7) -> np.ndarray:
    mu = lambda x: ndimage.uniform_filter(x, w)  # noqa: E731
    ma, mb = mu(a), mu(b)
    return (mu(a * b) - ma * mb) / np.sqrt(np.maximum((mu(a * a) - ma * ma) * (mu(b * b) - mb * mb), 1e-12))


def city_facts(city: str, rows: list[dict]) -> None:
    """Add ``facts`` (imagery under each detection, its neighbours) to one city's detections."""
    import rasterio

    with rasterio.open(DATA / city / "cm.tif") as ds:
        shape = ds.shape
    a, b = _read(city, 1, shape), _read(city, 2, shape)
    valid = np.all([a[k] > 0 for k in a] + [b[k] > 0 for k in b], axis=0)
    na, nb = {k: _robust(a[k], valid) for k in a}, {k: _robust(b[k], valid) for k in b}
    bra, brb = sum(na[k] for k in ("blue", "green", "red")) / 3, sum(nb[k] for k in ("blue", "green", "red")) / 3
    ndvi_a, ndvi_b = _nd(a["nir"], a["red"]), _nd(b["nir"], b["red"])
    ndbi_a, ndbi_b = _nd(a["swir16"], a["nir"]), _nd(b["swir16"], b["nir"])
    maps = {"bright_after": brb, "bright_before_img": bra, "d_bright": brb - bra, "ndvi_after": ndvi_b,
            "ndvi_before_img": ndvi_a, "d_ndvi": ndvi_b - ndvi_a, "ndbi_after": ndbi_b, "ndbi_before": ndbi_a,
            "d_ndbi": ndbi_b - ndbi_a, "cv": np.sqrt(sum((nb[k] - na[k]) ** 2 for k in na))}
    ga = np.hypot(ndimage.sobel(bra, 0), ndimage.sobel(bra, 1))
    gb = np.hypot(ndimage.sobel(brb, 0), ndimage.sobel(brb, 1))
    lc = _window_corr(ga, gb)
    scene_lc = float(np.median(lc[valid]))
    sa, sb = np.stack([a[k] for k in BANDS]), np.stack([b[k] for k in BANDS])
    masks = []
    for r in rows:
        m = np.zeros(shape, bool)
        m.flat[r["label_px"]] = True
        masks.append(m)
    every = np.any(masks, axis=0) if masks else np.zeros(shape, bool)
    for r, m in zip(rows, masks):
        f = r["facts"]
        if not m.any():
            continue
        ring = ndimage.binary_dilation(m, iterations=3) & ~every & valid
        for k, v in maps.items():
            f[k] = float(v[m].mean())
            f[k + "_ring"] = f[k] - float(v[ring].mean()) if ring.any() else 0.0
        pa, pb = sa[:, m], sb[:, m]
        cos = (pa * pb).sum(0) / np.maximum(np.linalg.norm(pa, axis=0) * np.linalg.norm(pb, axis=0), 1e-9)
        f["spectral_angle"] = float(np.arccos(np.clip(cos, -1, 1)).mean())
        grown = ndimage.binary_dilation(m, iterations=2)
        f["struct_corr"], f["grad_corr"] = _corr(bra[grown], brb[grown]), _corr(ga[grown], gb[grown])
        f["grad_lcorr_rel"] = float(lc[m].mean()) - scene_lc
        others = every & ~m
        f["dist_other"] = float(min(ndimage.distance_transform_edt(~others)[m].min(), 50)) if others.any() else 50.0
        near = ndimage.binary_dilation(m, iterations=25)
        f["n_other_250"] = float(sum(1 for o in masks if (o & near).any()) - 1)
    for k in ("magnitude", "log_area", "core_share", "p_max", "grad_corr"):  # scene-relative
        v = np.array([fact(r, k) for r in rows])
        iqr = max(float(np.subtract(*np.percentile(v, [75, 25]))), 1e-6)
        for r, p, z in zip(rows, (rankdata(v) - 0.5) / len(v), (v - np.median(v)) / iqr):
            r["facts"][k + "_pct"], r["facts"][k + "_z"] = float(p), float(z)


def fact(r: dict, k: str) -> float:
    """One fact of a detection: stored evidence first, then what this script computed (0 if none)."""
    if k == "magnitude":
        return float(r["evidence"]["magnitude"])
    if k == "log_area":
        return math.log(max(r["area_m2"], 1.0))
    reg = r["evidence"].get("region") or {}
    if k == "log_local_over_scene":
        return math.log((reg.get("local_changed_share", 0) + 1e-3) / (reg.get("scene_changed_share", 0) + 1e-3))
    v = reg[k] if k in reg else r["facts"].get(k, 0.0)
    return float(v) if v is not None and math.isfinite(float(v)) else 0.0


class Data:
    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.y = np.array([float(r["right"]) for r in rows])
        self.city = np.array([r["site"] for r in rows])
        self.cities = sorted(set(self.city))

    def x(self, keys: list[str]) -> np.ndarray:
        return np.array([[fact(r, k) for k in keys] for r in self.rows], float)


def auc(s: np.ndarray, y: np.ndarray) -> float:
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    if not n1 or not n0:
        return float("nan")
    return float((rankdata(s)[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def top20(s: np.ndarray, y: np.ndarray) -> float:
    return float(y[np.argsort(-s, kind="stable")[:max(1, math.ceil(0.2 * len(s)))]].mean())


def held_out(d: Data, keys: list[str], keep: np.ndarray | None = None) -> np.ndarray:
    """Each city's scores from the logistic fitted on the other cities (``keep``: a subset)."""
    keep = np.ones(len(d.y), bool) if keep is None else keep
    x, y, c = d.x(keys)[keep], d.y[keep], d.city[keep]
    out = np.zeros(len(y))
    for u in np.unique(c):
        m = c == u
        fit = buildings.fit_logistic(x[~m], y[~m], l2=L2)
        out[m] = [scoremodel.logistic(fit, row) for row in x[m]]
    return out


def line(d: Data, label: str, s: np.ndarray) -> str:
    cal = scoring.calibration(list(zip(s.tolist(), d.y.astype(bool).tolist())))
    top = np.argsort(-s, kind="stable")[:math.ceil(0.2 * len(s))]
    mix = ", ".join(f"{u[:3]} {int(d.y[top][d.city[top] == u].sum())}/{int((d.city[top] == u).sum())}"
                    for u in d.cities)
    return f"| {label} | **{top20(s, d.y):.2f}** | {cal.ece:.3f} | {auc(s, d.y):.2f} | {mix} |"


def forward(d: Data, train: np.ndarray, pool: list[str], max_add: int = 3) -> list[str]:
    """Inputs chosen on ``train`` cities only: add the fact that most raises their inner held-out top-20 %."""
    cur = list(BASE)
    best = top20(held_out(d, cur, train), d.y[train])
    for _ in range(max_add):
        score, k = max((top20(held_out(d, cur + [k], train), d.y[train]), k) for k in pool if k not in cur)
        if score < best + 0.01:
            break
        cur, best = cur + [k], score
    return cur


def nested(d: Data, pool: list[str]) -> tuple[np.ndarray, dict[str, list[str]]]:
    out, chosen = np.zeros(len(d.y)), {}
    for u in d.cities:
        train = d.city != u
        keys = forward(d, train, pool)
        chosen[u] = keys[len(BASE):]
        x = d.x(keys)
        fit = buildings.fit_logistic(x[train], d.y[train], l2=L2)
        out[~train] = [scoremodel.logistic(fit, row) for row in x[~train]]
    return out, chosen


def sklearn_all(d: Data, keys: list[str], kind: str, scene_z: bool) -> np.ndarray:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = d.x(keys)
    if scene_z:
        for u in d.cities:
            m = d.city == u
            iqr = np.subtract(*np.percentile(x[m], [75, 25], axis=0))
            x[m] = (x[m] - np.median(x[m], axis=0)) / np.where(iqr < 1e-6, 1.0, iqr)
    x = np.hstack([x, d.x(["scene_changed_share"])])
    out = np.zeros(len(d.y))
    for u in d.cities:
        m = d.city == u
        model = (make_pipeline(StandardScaler(), LogisticRegression(C=0.03, max_iter=5000)) if kind == "logistic"
                 else GradientBoostingClassifier(max_depth=2, n_estimators=100, learning_rate=0.05, subsample=0.8,
                                                 random_state=0))
        out[m] = model.fit(x[~m], d.y[~m]).predict_proba(x[m])[:, 1]
    return out


def fixed_effects(d: Data, keys: list[str]) -> np.ndarray:
    """Slopes fitted within cities (one intercept per training city), the held-out city's intercept
    read off a line through the training cities' intercepts against their log scene changed share."""
    from sklearn.linear_model import LogisticRegression

    x = d.x(keys)
    z = (x - x.mean(0)) / (x.std(0) + 1e-9)
    share = np.log(d.x(["scene_changed_share"])[:, 0] + 1e-3)
    out = np.zeros(len(d.y))
    for u in d.cities:
        tr, others = d.city != u, [c for c in d.cities if c != u]
        dummies = np.array([[c == o for o in others] for c in d.city[tr]], float)
        fit = LogisticRegression(C=1.0, fit_intercept=False, max_iter=5000).fit(np.hstack([z[tr], dummies]), d.y[tr])
        w, icp = fit.coef_[0][:len(keys)], fit.coef_[0][len(keys):]
        slope, c0 = np.polyfit([np.median(share[d.city == o]) for o in others], icp, 1)
        out[~tr] = 1 / (1 + np.exp(-(z[~tr] @ w + slope * np.median(share[~tr]) + c0)))
    return out


def ceiling(d: Data, s: np.ndarray) -> tuple[float, dict[str, int]]:
    """Best top-20 % of any score keeping each city's order by ``s``: how many to take from each city
    chosen knowing the labels (dynamic programme). An upper bound, not a score."""
    k_top = math.ceil(0.2 * len(s))
    best: dict[int, tuple[float, dict[str, int]]] = {0: (0.0, {})}
    for u in d.cities:
        m = d.city == u
        gain = np.concatenate([[0], np.cumsum(d.y[m][np.argsort(-s[m], kind="stable")])])
        nxt: dict[int, tuple[float, dict[str, int]]] = {}
        for used, (v, alloc) in best.items():
            for k in range(min(len(gain), k_top - used + 1)):
                if used + k not in nxt or nxt[used + k][0] < v + gain[k]:
                    nxt[used + k] = (v + gain[k], {**alloc, u: k})
        best = nxt
    v, alloc = best[k_top]
    return v / k_top, alloc


def filters(d: Data) -> None:
    """Fewer detections (idea 4): drop those under a magnitude, area or core share; the kept set's
    pixel F1 and object recall (``real.py``'s rules) and its held-out top-20 % (shipped inputs refitted)."""
    import rasterio

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from real import _drop_specks

    labels = {}
    for u in d.cities:
        with rasterio.open(DATA / u / "cm.tif") as ds:
            labels[u] = ds.read(1) > 0
    print("\n| kept | n (right) | pixel F1 | objects | top-20 % held out (shipped inputs) |\n|---|---|---|---|---|")
    mag, area, core = d.x(["magnitude"])[:, 0], d.x(["log_area"])[:, 0], d.x(["core_share"])[:, 0]
    rules = [("all", mag >= 0)] + [(f"magnitude >= {t}", mag >= t) for t in (0.93, 0.95, 0.96, 0.97)] \
        + [(f"area >= {a} m²", area >= math.log(a)) for a in (1000, 1500, 2000, 3000)] \
        + [(f"core share >= {t}", core >= t) for t in (0.1, 0.2, 0.3)]
    for label, keep in rules:
        px, found, total = scoring.PixelScore(0, 0, 0), 0, 0
        for u in d.cities:
            pred = np.zeros(labels[u].shape, bool)
            for r, k in zip(d.rows, keep):
                if k and r["site"] == u:
                    pred.flat[r["label_px"]] = True
            px = px + scoring.pixel_score(pred, labels[u])
            f, n = scoring.object_recall(pred, _drop_specks(labels[u]))
            found, total = found + f, total + n
        s = held_out(d, SHIPPED, keep)
        print(f"| {label} | {int(keep.sum())} ({int(d.y[keep].sum())}) | {px.f1:.3f} | "
              f"{found}/{total} = {found / total:.3f} | {top20(s, d.y[keep]):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("detections", help="JSON of benchmarks/real.py --only oscd --s2-folds DIR --json OUT --pixels")
    args = ap.parse_args()
    rows = [r for r in json.loads(Path(args.detections).read_text())
            if scoremodel.resolution_class(r["res"]) == "coarse" and r["dataset"] == "oscd-dev"]
    if not rows or "label_px" not in rows[0]:
        sys.exit("need OSCD detections with their pixels: benchmarks/real.py --only oscd --json OUT --pixels")
    for r in rows:
        r["facts"] = {}
    for u in sorted({r["site"] for r in rows}):
        city_facts(u, [r for r in rows if r["site"] == u])
    d = Data(rows)
    print(f"## {len(rows)} OSCD dev detections at 10 m ({int(d.y.sum())} right), "
          + ", ".join(f"{u} {int(d.y[d.city == u].sum())}/{int((d.city == u).sum())}" for u in d.cities))
    facts = sorted({k for r in rows for k in r["facts"]} | set((rows[0]["evidence"].get("region") or {}))
                   | {"magnitude", "log_area", "log_local_over_scene"})
    print("\n| fact | AUC pooled | " + " | ".join(d.cities) + " |\n|---|---|" + "---|" * len(d.cities))
    for k in facts:
        v = d.x([k])[:, 0]
        print(f"| {k} | {auc(v, d.y):.2f} | "
              + " | ".join(f"{auc(v[d.city == u], d.y[d.city == u]):.2f}" for u in d.cities) + " |")
    print("\n| held out by city | top-20 % | ECE | AUC | top-20 % by city: right/taken |\n|---|---|---|---|---|")
    orders = {}
    for label, keys in SETS:
        orders[label] = held_out(d, keys)
        print(line(d, f"logistic: {label}", orders[label]))
    pool = [k for k in facts if k not in BASE]
    s, chosen = nested(d, pool)
    print(line(d, f"nested forward selection over {len(pool)} facts", s))
    print("\nchosen per held-out city: " + "; ".join(f"{u}: {', '.join(v) or 'none'}" for u, v in chosen.items()))
    raw = [k for k in facts if not k.endswith(("_pct", "_z")) and k != "scene_changed_share"]
    for kind in ("logistic", "boosting"):
        for z in (False, True):
            print(line(d, f"{kind}, all {len(raw)} facts{' z-scored within the scene' if z else ''} + scene share",
                       sklearn_all(d, raw, kind, z)))
    for keys in (["magnitude", "log_area"], ["magnitude", "log_area", "core_share", "p_max"]):
        print(line(d, f"city fixed effects on {', '.join(keys)}", fixed_effects(d, keys)))
    print("\nCeiling (labels choose how many from each city; each city's held-out order kept):")
    for label in ("shipped inputs", "base + grad_corr"):
        v, alloc = ceiling(d, orders[label])
        print(f"- {label}: {v:.2f} ({', '.join(f'{u} {k}' for u, k in alloc.items())})")
    filters(d)


if __name__ == "__main__":
    main()
