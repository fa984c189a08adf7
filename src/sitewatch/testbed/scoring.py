"""Scoring detections against ground truth: the arithmetic behind ``benchmarks/``.

Kept in the library (and unit-tested on cases with known answers) so that the figures in
``benchmarks/README.md`` come from code that is itself checked. The score stored with each
detection is not here: it is :mod:`sitewatch.scoremodel`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from .. import components


@dataclass(frozen=True)
class Truth:
    """One true change: a structure that appeared (or went) between two dates.

    Attributes:
        kind: a detection kind, e.g. ``wall_new``.
        geometry: where, in the same CRS as the detections it is scored against.
        last_before: the last date the old state was seen (absent, for ``_new``).
        first_after: the first date the new state was seen (present, for ``_new``).
        site_id: which site.
    """

    kind: str
    geometry: BaseGeometry
    last_before: dt.date
    first_after: dt.date
    site_id: str = ""


@dataclass(frozen=True)
class Found:
    """One detection, as scored."""

    kind: str
    geometry: BaseGeometry
    before_date: dt.date
    after_date: dt.date
    score: float
    site_id: str = ""


@dataclass(frozen=True)
class Match:
    """Outcome of matching detections to truths of one kind family."""

    tp: int
    fp: int
    fn: int
    valid_dates: int
    exact_dates: int
    #: (score, correct) per detection, for calibration.
    scored: tuple[tuple[float, bool], ...]

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0


def family(kind: str) -> str:
    """``wall_new`` -> ``wall``: recall and precision are reported per structure family."""
    return kind.rsplit("_", 1)[0]


def dates_valid(f: Found, t: Truth) -> bool:
    """The detection's claim holds: old state on ``before_date``, new state on ``after_date``."""
    return f.before_date <= t.last_before and f.after_date >= t.first_after


#: Positional tolerance per family, in the geometry's units (metres for projected data):
#: a line structure's mapped outline follows its shadow, which moves with the sun.
TOLERANCE = {"building": 0.0, "wall": 2.0, "fence": 5.0, "tower": 2.0}


def match(found: Sequence[Found], truths: Sequence[Truth], min_overlap: float = 0.25,
          tolerance: float | None = None) -> Match:
    """Greedy one-to-one matching by overlap, same kind and same site.

    A detection matches a truth when they overlap by at least ``min_overlap`` of the smaller
    of the two (walls and fences are thin: IoU would punish a correct but wider outline),
    the truth grown by the family's positional ``tolerance``. Each truth is matched at most
    once; extra detections of a matched truth count as false.
    """
    pairs = []
    grown = [t.geometry.buffer(tolerance if tolerance is not None else TOLERANCE.get(family(t.kind), 0.0))
             if (tolerance or TOLERANCE.get(family(t.kind), 0.0)) else t.geometry for t in truths]
    for i, f in enumerate(found):
        for j, t in enumerate(truths):
            if f.kind != t.kind or f.site_id != t.site_id:
                continue
            inter = f.geometry.intersection(grown[j]).area
            small = min(f.geometry.area, t.geometry.area)
            if small > 0 and inter / small >= min_overlap:
                pairs.append((inter / small, i, j))
    pairs.sort(reverse=True)
    used_f: set[int] = set()
    used_t: set[int] = set()
    valid = exact = 0
    correct = [False] * len(found)
    for _, i, j in pairs:
        if i in used_f or j in used_t:
            continue
        used_f.add(i)
        used_t.add(j)
        correct[i] = True
        if dates_valid(found[i], truths[j]):
            valid += 1
            if found[i].before_date == truths[j].last_before and found[i].after_date == truths[j].first_after:
                exact += 1
    tp = len(used_f)
    return Match(tp, len(found) - tp, len(truths) - tp, valid, exact,
                 tuple((f.score, c) for f, c in zip(found, correct)))


def by_family(found: Sequence[Found], truths: Sequence[Truth]) -> dict[str, Match]:
    fams = sorted({family(x.kind) for x in [*found, *truths]})
    return {fam: match([f for f in found if family(f.kind) == fam], [t for t in truths if family(t.kind) == fam])
            for fam in fams}


@dataclass(frozen=True)
class Calibration:
    """Reliability of scores: in each score bin, how often a detection was right."""

    bins: tuple[tuple[float, float, int, float, float], ...]  # (lo, hi, n, mean score, fraction correct)
    ece: float  # expected calibration error, weighted by bin size


def calibration(scored: Iterable[tuple[float, bool]], n_bins: int = 5) -> Calibration:
    s = np.array([x for x, _ in scored], dtype=float)
    c = np.array([y for _, y in scored], dtype=float) if s.size else np.array([])
    edges = np.linspace(0, 1, n_bins + 1)
    rows = []
    ece = 0.0
    for k in range(n_bins):
        lo, hi = edges[k], edges[k + 1]
        m = (s >= lo) & ((s < hi) if k < n_bins - 1 else (s <= hi))
        n = int(m.sum())
        if n:
            ms, fc = float(s[m].mean()), float(c[m].mean())
            ece += n / s.size * abs(ms - fc)
            rows.append((float(lo), float(hi), n, round(ms, 3), round(fc, 3)))
        else:
            rows.append((float(lo), float(hi), 0, float("nan"), float("nan")))
    return Calibration(tuple(rows), round(ece, 4))


# --- pixels (LEVIR-CD style) ---------------------------------------------------------------


@dataclass(frozen=True)
class PixelScore:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def iou(self) -> float:
        d = self.tp + self.fp + self.fn
        return self.tp / d if d else 1.0

    def __add__(self, other: PixelScore) -> PixelScore:
        return PixelScore(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def pixel_score(pred: np.ndarray, label: np.ndarray) -> PixelScore:
    p, t = pred.astype(bool), label.astype(bool)
    return PixelScore(int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum()))


def object_recall(pred: np.ndarray, label: np.ndarray, min_cover: float = 0.5) -> tuple[int, int]:
    """(found, total) changed objects in ``label``; found when ``pred`` covers ≥ ``min_cover`` of it."""
    lab, n = components.label(label.astype(bool))
    if not n:
        return 0, 0
    idx = np.arange(1, n + 1)
    cover = ndimage.mean(pred.astype(float), lab, idx)
    return int((np.asarray(cover) >= min_cover).sum()), n


def average_precision(order: list[str], labels: dict[str, bool]) -> float:
    """Average precision of a review queue in ``order`` (ids), given which ids are real changes."""
    hits, total = 0, 0.0
    for k, did in enumerate(order, start=1):
        if labels[did]:
            hits += 1
            total += hits / k
    return total / max(1, sum(labels[d] for d in order))
