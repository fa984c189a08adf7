"""What the learnt pixel models share: design matrix, boosted trees' forward pass, per-date cues, model slot.

:mod:`sitewatch.s2change` (10 m) and :mod:`sitewatch.finechange` (0.3-2 m) each ship a model as
JSON package data, hashed so evidence can name the exact file, and let a benchmark swap in a
model fitted without the pair or city it scores (``benchmarks/real.py --s2-folds/--fine-folds``).
:mod:`sitewatch.finechange` and :mod:`sitewatch.buildings` both ship boosted trees as node arrays
(:func:`trees_logit`, :func:`check_trees`) and read the same per-date saturation and one-sided shadow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import ndimage


#: Smallest spread (IQR) a band's robust unit may have, as a share of its median: a scene with almost
#: no contrast (water, fresh snow, a uniform generated scene) would otherwise have its sensor noise
#: magnified into change (uniform desert is the case that matters). OSCD dev city scenes have 0.11-0.78
#: (all bands; it bites on one: Beihai blue on its first date, 0.11).
MIN_SPREAD = 0.15


def robust_unit(x: np.ndarray, sample: np.ndarray) -> tuple[float, float]:
    """A band's robust unit on ``sample``: its median and spread (IQR, never under MIN_SPREAD of the median):
    in these units a uniform gain or haze is no change."""
    q25, q50, q75 = np.percentile(x[sample], [25, 50, 75]) if sample.any() else (0.0, 0.0, 1.0)
    return float(q50), max(float(q75 - q25), MIN_SPREAD * abs(float(q50)), 1e-4)


def unit_sample(both: np.ndarray) -> np.ndarray:
    """The ground robust units are read on: ``both``, or a regular subsample of it when large (enough
    for quartiles)."""
    if both.sum() <= 400_000:
        return both
    keep = np.zeros_like(both)
    keep[::3, ::3] = True
    return both & keep


def robust_units(img: Mapping[str, np.ndarray], bands: Sequence[str], sample: np.ndarray
                 ) -> list[tuple[float, float]]:
    """:func:`robust_unit` of each of ``img``'s ``bands`` (no data read as 0) on ``sample``."""
    return [robust_unit(np.nan_to_num(np.asarray(img[b], np.float32)), sample) for b in bands]


def masked_mean(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``x`` over a k x k window, over the pixels ``w`` (weights 0/1) only: ground a date did
    not see (cloud, snow, no data) must not leak into its clear neighbours' cues."""
    den = ndimage.uniform_filter(w, k)
    return np.where(den > 1e-3, ndimage.uniform_filter(x * w, k) / np.maximum(den, 1e-3), 0.0).astype(np.float32)


def local_spread(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Texture: the standard deviation of ``x`` over a k x k window of ``w``'s pixels, 0 off ``w``."""
    m = masked_mean(x, w, k)
    return np.sqrt(np.maximum(masked_mean(x * x, w, k) - m * m, 0)) * w


def hysteresis(p: np.ndarray, high: float, low: float) -> np.ndarray:
    """Pixels at or above ``low`` connected (8-neighbours) to one at or above ``high``: a change's
    core decides that it is one, its weaker rim how far it reaches (10 m objects are a few pixels;
    a core alone is often under the tracker's 12-pixel floor)."""
    from . import components

    lab, n = components.label(p >= min(low, high), corners=True)
    if not n:
        return np.zeros(p.shape, bool)
    keep = np.asarray(ndimage.maximum(p >= high, lab, np.arange(1, n + 1)), bool)
    return np.concatenate([[False], keep])[lab]


def design(f: Mapping[str, np.ndarray], names: Sequence[str], lo: Sequence[float] | None = None,
           hi: Sequence[float] | None = None) -> np.ndarray:
    """(n_pixels, 2 n) matrix: the named cues and their squares (a cheap non-linearity); with
    ``lo``/``hi``, each cue first clipped to the range it took in training (squares extrapolate
    wildly beyond it)."""
    cols = [f[k].ravel() for k in names]
    if lo is not None and hi is not None:
        cols = [np.clip(x, a, b) for x, a, b in zip(cols, lo, hi)]
    cols += [x * x for x in cols]
    return np.stack(cols, axis=1).astype(np.float32)


def saturation(raw: Mapping[str, np.ndarray], bands: Sequence[str] = ("red", "green", "blue")) -> np.ndarray:
    """Colour saturation (max - min) / max of the bands: 0 for grey (roofs, concrete), higher for soil
    and vegetation; a ratio, so a uniform gain or haze moves it little."""
    x = np.stack([np.nan_to_num(raw[k].astype(np.float32)) for k in bands])
    hi = x.max(0)
    return ((hi - x.min(0)) / np.maximum(hi, 1e-4)).astype(np.float32)


def shadow_side(dark: np.ndarray, res: float, metres: float) -> np.ndarray:
    """Dark ground (``dark``: a share of dark pixels, 0 off the seen ground) on one side of a pixel and not
    on the other, ``metres`` away, along the most lopsided of four axes: a roof casts its shadow away from
    the sun, a road or a graded lot casts none (and dark ground all round is asphalt or water). Any sun
    azimuth: the largest difference over the axes, not one direction."""
    box = ndimage.uniform_filter(dark, max(3, int(round(metres / res)) | 1))
    d = int(round(metres / res))
    out = np.full(dark.shape, -1.0, np.float32)
    for dy, dx in ((0, 1), (1, 1), (1, 0), (1, -1)):
        a = ndimage.shift(box, (dy * d, dx * d), order=0, mode="nearest")
        b = ndimage.shift(box, (-dy * d, -dx * d), order=0, mode="nearest")
        out = np.maximum(out, np.abs(a - b))
    return out


def trees_logit(x: np.ndarray, doc: Mapping) -> np.ndarray:
    """Sum of the boosted trees' leaf values (and the baseline) for each row of ``x``: a node sends a
    row left when its cue is at or below the node's threshold; a leaf is a node whose left is -1.
    Each node works on the rows that reach it only (a row visits one node per level)."""
    cols = np.asfortranarray(x)
    out = np.full(x.shape[0], float(doc["baseline"]), np.float32)
    for t in doc["trees"]:
        feat, thr, left, right, value = t["feature"], t["threshold"], t["left"], t["right"], t["value"]
        stack = [(0, np.arange(x.shape[0]))]
        while stack:
            node, rows = stack.pop()
            if left[node] < 0:
                out[rows] += value[node]
                continue
            go = cols[rows, feat[node]] <= np.float32(thr[node])
            stack.append((left[node], rows[go]))
            stack.append((right[node], rows[~go]))
    return out


def check_trees(doc: Mapping, n_cues: int, what: str) -> None:
    """Raise ValueError unless ``doc`` holds boosted trees whose node arrays agree with each other and
    with ``n_cues`` cues: every node's children inside its tree, every split on a cue that exists."""
    if "trees" not in doc or "baseline" not in doc:
        raise ValueError(f"{what}: no trees")
    for t in doc["trees"]:
        n = len(t["feature"])
        if not n or not (len(t["threshold"]) == len(t["left"]) == len(t["right"]) == len(t["value"]) == n) or (
                max(t["feature"]) >= n_cues or min(t["feature"]) < 0):
            raise ValueError(f"{what}: a tree does not match its cues")
        left, right = np.asarray(t["left"]), np.asarray(t["right"])
        inner = left >= 0
        if (np.any((right >= 0) != inner) or np.any(left[inner] >= n) or np.any(right[inner] >= n)
                or np.any(left[inner] <= np.flatnonzero(inner)) or np.any(right[inner] <= np.flatnonzero(inner))):
            raise ValueError(f"{what}: a tree's nodes do not link up (a child outside it, or before its parent)")


def _float32_floor(x: np.ndarray) -> list[float]:
    """The largest float32 at or below each value, written as the shortest decimal that reads back as it: a
    float32 cue is at or below it exactly when it is at or below the value (scikit-learn's split points are
    often data values, which rounding to some decimals sends the other way)."""
    f = x.astype(np.float32)
    f = np.where(f.astype(np.float64) > x, np.nextafter(f, np.float32(-np.inf)), f).astype(np.float32)
    return [float(str(v)) for v in f]


def export_trees(clf: object, settings: Mapping[str, object], digits: int | None = 5) -> dict:
    """A fitted scikit-learn HistGradientBoostingClassifier as node arrays (training scripts only); thresholds
    to ``digits`` decimals (a cue within that of a split may go the other way than in scikit-learn), or with
    ``None`` exact for float32 cues (:func:`_float32_floor`)."""
    trees = []
    for (pred,) in clf._predictors:  # type: ignore[attr-defined]
        n = pred.nodes
        leaf = n["is_leaf"].astype(bool)
        thr = np.where(leaf, 0.0, n["num_threshold"]).astype(np.float64)
        trees.append({"feature": np.where(leaf, 0, n["feature_idx"].astype(np.int64)).astype(int).tolist(),
                      "threshold": (thr.astype(np.float32).round(digits).tolist() if digits is not None
                                    else _float32_floor(thr)),
                      "left": np.where(leaf, -1, n["left"].astype(np.int64)).astype(int).tolist(),
                      "right": np.where(leaf, -1, n["right"].astype(np.int64)).astype(int).tolist(),
                      "value": np.where(leaf, n["value"], 0.0).round(5).tolist(),
                      "depth": int(n["depth"].max())})
    return {"kind": "trees", "baseline": round(float(np.ravel(clf._baseline_prediction)[0]), 6),  # type: ignore[attr-defined]
            "trees": trees, "trees_settings": dict(settings)}


class ModelSlot:
    """The shipped model (``file`` in the package, checked by ``validate(doc, sha256)``) unless a
    benchmark set another with :meth:`use`; the product always uses the shipped one."""

    def __init__(self, file: str, validate: Callable[[dict, str], dict]):
        self.file = file
        self._validate = validate
        self._shipped: dict | None = None
        self._override: list[dict] = []

    def load(self, raw: bytes) -> dict:
        """A model document from its JSON bytes, validated, with the ``sha256`` of those bytes."""
        return self._validate(json.loads(raw), hashlib.sha256(raw).hexdigest())

    def shipped(self) -> dict:
        if self._shipped is None:
            self._shipped = self.load(bytes(resources.files("sitewatch").joinpath(self.file).read_bytes()))
        return self._shipped

    def model(self) -> dict:
        return self._override[-1] if self._override else self.shipped()

    def use(self, doc: dict | None) -> None:
        """Use ``doc`` instead of the shipped model (None: back to it)."""
        self._override.clear()
        if doc is not None:
            self._override.append(doc)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float, max_iter: int) -> dict:
    """A logistic on standardised cues (scikit-learn, training scripts only), as the models store it."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    lr = LogisticRegression(C=c, max_iter=max_iter).fit((x - mean) / scale, y)
    return {"mean": mean.round(5).tolist(), "scale": scale.round(5).tolist(),
            "coef": lr.coef_[0].round(5).tolist(), "intercept": round(float(lr.intercept_[0]), 5)}


def write_models(out: Path, doc: Mapping[str, object], folds: Mapping[str, Mapping[str, object]],
                 folds_dir: str | None, stem: str, started: float) -> None:
    """Write a training script's shipped model and, into ``folds_dir``, one held-out model per
    pair or city left out (``{stem}-without-{name}.json``), saying what was written."""
    import time

    out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"\nwrote {out} ({out.stat().st_size} bytes) in {time.perf_counter() - started:.0f} s")
    if folds_dir:
        d = Path(folds_dir)
        d.mkdir(parents=True, exist_ok=True)
        for name, f in folds.items():
            (d / f"{stem}-without-{name}.json").write_text(json.dumps(f, separators=(",", ":")) + "\n")
        print(f"wrote {len(folds)} held-out models into {d}")
