"""Reviews teach the ranking: a small re-ranker of the pending queue, fitted on reviewed detections.

Every confirm or reject is a label from the user's own region. ``sitewatch review learn``
fits a logistic regression (scikit-learn, standardised features, balanced classes) on the
confirmed and rejected detections of one GeoPackage, from what is stored with each: its
score, kind, size, evidence (magnitude, confirmation, model probabilities) and statistics of
its before/after quicklook chips. The fit is stored in the file (the attribute table
``sitewatch_rankers``) as plain numbers (JSON: feature names, means, scales, coefficients;
never a pickle, which would run code from a shared file), with the review ids it learned
from, their count and the cross-validated AUC. The review queue is then ordered by the
latest fit's ``rank_score``, best first; detections and reviews are never changed.
"""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import __version__, gpkg
from .errors import InputError
from .reviews import latest_decisions
from .store import DetectionRecord, Store, utc_now
from .structures import KINDS

TABLE = "sitewatch_rankers"
_COLUMNS = ('"ranker_id" TEXT NOT NULL UNIQUE, "fitted_at" DATETIME NOT NULL, "method" TEXT NOT NULL, '
            '"model" TEXT NOT NULL, "review_ids" TEXT NOT NULL, "n_confirmed" INTEGER NOT NULL, '
            '"n_rejected" INTEGER NOT NULL, "cv_auc" REAL, "cv_folds" INTEGER, "version" TEXT')
#: Fewer reviews of either decision than this and nothing is learnt (nor can AUC be cross-validated).
MIN_PER_DECISION = 5
#: Folds of the cross-validated AUC (fewer when a decision has fewer reviews).
FOLDS = 5
METHOD = "logistic regression (scikit-learn), standardised features, balanced classes, C=1"


class TooFewReviews(InputError):
    """Not enough confirmed or rejected detections to learn from."""


# --- features --------------------------------------------------------------------------------

CHIP_FEATURES = ("chip_diff_in", "chip_diff_ring", "chip_diff_contrast", "chip_bright_after",
                 "chip_bright_before", "chip_contrast_after", "chip_green_change", "chip_std_after")
FEATURES = ("score", "log_area_m2", "log_length_m", "magnitude", "confirmed", "by_model", "model_max_probability",
            *(f"family_{k}" for k in KINDS), "removed", *CHIP_FEATURES)


class _Quicklooks:
    """Decoded quicklooks of a file, each scene once."""

    def __init__(self, store: Store):
        self.store = store
        self.cache: dict[tuple[str, str], tuple[np.ndarray, Any] | None] = {}

    def get(self, site_id: str, scene_id: str) -> tuple[np.ndarray, Any] | None:
        key = (site_id, scene_id)
        if key not in self.cache:
            ql = self.store.quicklook(site_id, scene_id)
            if ql is None or not ql[1]:
                self.cache[key] = None
            else:
                from PIL import Image

                from .grid import Grid

                img = np.asarray(Image.open(io.BytesIO(ql[0])).convert("RGB"), np.float32) / 255.0
                self.cache[key] = (img, Grid.from_dict(ql[1]))
        return self.cache[key]


def chip_stats(d: DetectionRecord, qls: _Quicklooks) -> list[float]:
    """Before/after statistics inside the outline and in a ring around it (NaN without quicklooks)."""
    nan = [math.nan] * len(CHIP_FEATURES)
    before, after = qls.get(d.site_id, d.before_scene_id), qls.get(d.site_id, d.after_scene_id)
    if before is None or after is None or d.geometry.is_empty:
        return nan
    from affine import Affine
    from rasterio.features import rasterize
    from scipy import ndimage

    from .grid import to_crs

    a_img, grid = after
    b_img = before[0]
    h, w = a_img.shape[:2]
    if b_img.shape != a_img.shape:  # a quicklook stored downscaled: onto the other's pixels
        from PIL import Image

        b_img = np.asarray(Image.fromarray((b_img * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                           np.float32) / 255.0
        qls.cache[(d.site_id, d.before_scene_id)] = (b_img, before[1])
    t = grid.transform * Affine.scale(grid.width / w, grid.height / h)
    geom = to_crs(d.geometry, "EPSG:4326", grid.crs)
    # only the detection's window (and a ring of 4 px) is looked at
    minx, miny, maxx, maxy = geom.bounds
    c0, r0 = ~t * (minx, maxy)
    c1, r1 = ~t * (maxx, miny)
    c0, r0 = max(0, int(math.floor(min(c0, c1))) - 6), max(0, int(math.floor(min(r0, r1))) - 6)
    c1, r1 = min(w, int(math.ceil(max(c0 + 6, c1))) + 6), min(h, int(math.ceil(max(r0 + 6, r1))) + 6)
    if c1 <= c0 or r1 <= r0:
        return nan
    a_img, b_img = a_img[r0:r1, c0:c1], b_img[r0:r1, c0:c1]
    t = t * Affine.translation(c0, r0)
    inside = rasterize([geom], out_shape=a_img.shape[:2], transform=t, all_touched=True).astype(bool)
    if not inside.any():
        return nan
    ring = ndimage.binary_dilation(inside, iterations=4) & ~inside
    diff = np.abs(a_img - b_img).mean(-1)
    bright_a, bright_b = a_img.mean(-1), b_img.mean(-1)
    green = lambda im: im[..., 1] - (im[..., 0] + im[..., 2]) / 2  # noqa: E731
    d_in = float(diff[inside].mean())
    d_ring = float(diff[ring].mean()) if ring.any() else math.nan
    ring_a = float(bright_a[ring].mean()) if ring.any() else math.nan
    return [d_in, d_ring, d_in - d_ring, float(bright_a[inside].mean()), float(bright_b[inside].mean()),
            float(bright_a[inside].mean()) - ring_a, float((green(a_img) - green(b_img))[inside].mean()),
            float(bright_a[inside].std())]


def features(d: DetectionRecord, qls: _Quicklooks) -> list[float]:
    """One detection's feature vector, in :data:`FEATURES` order (NaN where unknown)."""
    ev = d.evidence
    fam, direction = d.kind.rsplit("_", 1)
    model = ev.get("model") if isinstance(ev.get("model"), Mapping) else None
    num = lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan  # noqa: E731
    return [float(d.score), math.log1p(max(0.0, float(d.area_m2 or 0.0))),
            math.log1p(max(0.0, float(d.length_m or 0.0))), num(ev.get("magnitude")),
            1.0 if ev.get("confirmed_by_next_clear_scene") else 0.0, 1.0 if model else 0.0,
            num(ev.get("max_probability")) if model else 0.0,
            *(1.0 if fam == k else 0.0 for k in KINDS), 1.0 if direction == "removed" else 0.0,
            *chip_stats(d, qls)]


def feature_matrix(store: Store, dets: Sequence[DetectionRecord]) -> np.ndarray:
    qls = _Quicklooks(store)
    return np.array([features(d, qls) for d in dets], dtype=np.float64).reshape(len(dets), len(FEATURES))


# --- the ranker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranker:
    """A fitted re-ranker as stored: plain numbers, applied with numpy."""

    ranker_id: str
    fitted_at: str
    features: tuple[str, ...]
    fill: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    review_ids: tuple[str, ...]
    n_confirmed: int
    n_rejected: int
    cv_auc: float | None
    cv_folds: int

    def summary(self) -> str:
        auc = "n/a" if self.cv_auc is None else f"{self.cv_auc:.3f}"
        return (f"ranking {self.ranker_id} learnt from {len(self.review_ids)} reviews ({self.n_confirmed} confirmed, "
                f"{self.n_rejected} rejected): {self.cv_folds}-fold cross-validated AUC {auc}")

    def model_json(self) -> str:
        return json.dumps({"features": list(self.features), "fill": list(self.fill), "mean": list(self.mean),
                           "scale": list(self.scale), "coef": list(self.coef), "intercept": self.intercept})

    def apply(self, X: np.ndarray) -> np.ndarray:
        """rank_score in 0..1 for rows of :data:`FEATURES` (columns matched by name)."""
        idx = [FEATURES.index(f) if f in FEATURES else -1 for f in self.features]
        Z = np.column_stack([X[:, i] if i >= 0 else np.full(len(X), np.nan) for i in idx]) if idx else np.zeros((len(X), 0))
        Z = np.where(np.isnan(Z), np.asarray(self.fill), Z)
        z = ((Z - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def reviewed(store: Store) -> tuple[list[DetectionRecord], list[int], list[str]]:
    """Detections whose latest decision is confirmed or rejected, their labels (1 confirmed) and
    the ids of those latest reviews."""
    last_review: dict[str, str] = {}
    for r in store.reviews():
        last_review[r.detection_id] = r.review_id
    decisions = latest_decisions(store.reviews())
    dets, labels, ids = [], [], []
    for d in store.detections():
        dec = decisions.get(d.detection_id)
        if dec in ("confirmed", "rejected"):
            dets.append(d)
            labels.append(1 if dec == "confirmed" else 0)
            ids.append(last_review[d.detection_id])
    return dets, labels, ids


def fit(X: np.ndarray, y: Sequence[int], review_ids: Sequence[str], *, where: str = "") -> Ranker:
    """Fit on labelled rows; TooFewReviews when a decision has fewer than :data:`MIN_PER_DECISION`."""
    y_arr = np.asarray(y, int)
    n_pos, n_neg = int(y_arr.sum()), int(len(y_arr) - y_arr.sum())
    if n_pos < MIN_PER_DECISION or n_neg < MIN_PER_DECISION:
        raise TooFewReviews(f"{where}too few reviews to learn a ranking: {n_pos} confirmed and {n_neg} rejected; "
                            f"at least {MIN_PER_DECISION} of each are needed")
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold
    except ImportError:
        raise InputError("learning a ranking needs scikit-learn (pip install 'sitewatch[models]')") from None
    keep = [i for i in range(X.shape[1]) if np.isfinite(X[:, i]).any()]
    Xk = X[:, keep]
    fill = np.nanmean(Xk, axis=0)
    Xf = np.where(np.isnan(Xk), fill, Xk)
    mean, scale = Xf.mean(0), Xf.std(0)
    scale[scale == 0] = 1.0

    def model() -> Any:
        return LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)

    folds = min(FOLDS, n_pos, n_neg)
    # cross-validated AUC: each fold's scaling and fit from its training part only
    scores = np.zeros(len(y_arr))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=0).split(Xk, y_arr):
        f = np.nanmean(Xk[tr], 0)
        f = np.where(np.isnan(f), 0.0, f)
        A = np.where(np.isnan(Xk), f, Xk)
        m, s = A[tr].mean(0), A[tr].std(0)
        s[s == 0] = 1.0
        scores[te] = model().fit((A[tr] - m) / s, y_arr[tr]).decision_function((A[te] - m) / s)
    auc = float(roc_auc_score(y_arr, scores))
    lr = model().fit((Xf - mean) / scale, y_arr)
    return Ranker(uuid.uuid4().hex[:12], utc_now(), tuple(FEATURES[i] for i in keep), tuple(map(float, fill)),
                  tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(float, lr.coef_[0])),
                  float(lr.intercept_[0]), tuple(review_ids), n_pos, n_neg, round(auc, 4), folds)


def learn(db: str | Store) -> Ranker:
    """Fit on the file's reviews and store the fit (a new row; earlier fits are kept)."""
    store = db if isinstance(db, Store) else Store(db, create=False)
    dets, y, ids = reviewed(store)
    ranker = fit(feature_matrix(store, dets), y, ids, where=f"{store.path}: ")
    with store.write() as con:
        _ensure_table(con)
        con.execute(f'INSERT INTO "{TABLE}" (ranker_id, fitted_at, method, model, review_ids, n_confirmed, '
                    "n_rejected, cv_auc, cv_folds, version) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (ranker.ranker_id, ranker.fitted_at, METHOD, ranker.model_json(), json.dumps(list(ids)),
                     ranker.n_confirmed, ranker.n_rejected, ranker.cv_auc, ranker.cv_folds, __version__))
    return ranker


def _ensure_table(con: Any) -> None:
    if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)).fetchone() is None:
        gpkg.add_attributes_table(con, TABLE, _COLUMNS,
                                  "Review-queue rankings learnt from reviews (sitewatch review learn)")


def latest(store: Store) -> Ranker | None:
    """The newest stored fit, or None when nothing was learnt in this file."""
    with store.read() as con:
        if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)).fetchone() is None:
            return None
        r = con.execute(f'SELECT * FROM "{TABLE}" ORDER BY fid DESC LIMIT 1').fetchone()
    if r is None:
        return None
    m = json.loads(r["model"])
    return Ranker(r["ranker_id"], r["fitted_at"], tuple(m["features"]), tuple(m["fill"]), tuple(m["mean"]),
                  tuple(m["scale"]), tuple(m["coef"]), float(m["intercept"]), tuple(json.loads(r["review_ids"])),
                  int(r["n_confirmed"]), int(r["n_rejected"]), r["cv_auc"], int(r["cv_folds"] or 0))


def rank_scores(store: Store, dets: Sequence[DetectionRecord], ranker: Ranker | None = None) -> list[float | None]:
    """Each detection's rank_score under the latest fit (None for all when nothing was learnt)."""
    ranker = ranker or latest(store)
    if ranker is None or not dets:
        return [None] * len(dets)
    return [round(float(v), 4) for v in ranker.apply(feature_matrix(store, dets))]


__all__ = ["Ranker", "TooFewReviews", "learn", "latest", "rank_scores", "fit", "features", "FEATURES",
           "MIN_PER_DECISION"]
