"""A reference roof gone at 0.3-2 m, read from the roof itself, not only from the change model.

:mod:`sitewatch.finechange` removes a reference roof where its learnt change model sees a building go.
It learnt Texas suburbs (new roofs darker than the soil) and sees no change where a pale roof comes off
pale ground; and the scene's own per-date roof map dropping a roof says little alone (that map misses
most roofs on real imagery). So a roof is also gone when three things hold at once, each read over the
roof as the reference mapped it:

- **the scene's own map no longer maps it, nor a roof near it**: its own roofs that come within
  ``SHIFT_M`` of the roof, counted whole, add up to under ``OWN_MAX`` of the roof's area (a roof seen
  from another angle or under another sun is displaced, and what the reference mapped may be its
  sunlit wall or its shadow);
- **the whole roof changed**: the median over the roof's pixels of the change vector (RGB, each band in
  robust units of its own scene on the ground both dates saw, as the change model reads them) is at
  least ``CHANGE_MIN``: most of the roof, not a part of it (a shadow, a tarp, a car park beside it);
- **its pattern is found nowhere near**: the roof with ``PAD_M`` of its surroundings, brightness and
  edge strength, matches the later scene nowhere within ``SHIFT_M`` (largest normalised
  cross-correlation at most ``MATCH_BRIGHT_MAX`` and ``MATCH_EDGE_MAX``). A standing roof keeps its
  outline and its shadow whatever the light, sensor or season (correlation is blind to gain and
  offset), even seen from another angle (the shift search); ground where a building stood does not.

Thresholds chosen on real pairs (``benchmarks/gone.py``: xBD Joplin destroyed footprints against
no-damage and minor-damage ones and LEVIR-CD roofs standing in both dates), held out by xBD tile;
figures in benchmarks/README.md section 2.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from . import components, pixelmodel

BANDS = ("red", "green", "blue")
#: The scene's own roofs (whole) within ``SHIFT_M`` of a reference roof, as a share of its area, under
#: which the roof may be gone.
OWN_MAX = 0.2
#: Least median change (robust units, RGB change-vector length) over the roof.
CHANGE_MIN = 0.9
#: Most the roof's window may match the later scene, brightness and edge strength (normalised
#: cross-correlation, best over shifts).
MATCH_BRIGHT_MAX = 0.3
MATCH_EDGE_MAX = 0.15
#: The roof's window: the roof and this much of its surroundings (its outline, its shadow).
PAD_M = 2.0
#: How far the roof may have moved between dates (co-registration left over; a roof leaning in an
#: off-nadir view: 28 degrees, 5 m of wall, ~2.7 m).
SHIFT_M = 3.0
#: Least share of a roof both dates must have seen to judge it.
SEEN_MIN = 0.8
#: Least roof (pixels) judged: under it a correlation means little.
MIN_PX = 20


def _edges(x: np.ndarray) -> np.ndarray:
    return (np.hypot(ndimage.sobel(x, 0), ndimage.sobel(x, 1)) / 8).astype(np.float32)


class View:
    """One window of a pair in robust units: the change vector's length, brightness and edge strength
    of each date (reference, later), and the ground both saw."""

    def __init__(self, pair: Pair, sl: tuple[slice, slice]):
        self.both = pair.both[sl]
        r = np.stack([(np.nan_to_num(np.asarray(pair.ref[b][sl], np.float32)) - q) / u
                      for b, (q, u) in zip(BANDS, pair.units[0])]) * self.both
        c = np.stack([(np.nan_to_num(np.asarray(pair.cur[b][sl], np.float32)) - q) / u
                      for b, (q, u) in zip(BANDS, pair.units[1])]) * self.both
        self.change = np.sqrt(((c - r) ** 2).mean(axis=0)).astype(np.float32)
        self.bright = (r.mean(axis=0).astype(np.float32), c.mean(axis=0).astype(np.float32))
        self.edge = (_edges(self.bright[0]), _edges(self.bright[1]))


class Pair:
    """Two dates of a scene (RGB) and the ground both saw, with each band's robust unit (median and
    spread on that ground) per date: in these units a uniform gain or haze is no change. Cues are made
    per roof window (:class:`View`), so a 5000 x 5000 px scene is never held as float cues whole."""

    def __init__(self, ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], both: np.ndarray):
        sample = pixelmodel.unit_sample(both)
        self.ref, self.cur, self.both = ref, cur, both
        self.units = tuple(pixelmodel.robust_units(img, BANDS, sample) for img in (ref, cur))


def _grow(box: tuple[slice, slice], m: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """``box`` grown by ``m`` pixels each way, within ``shape``."""
    return (slice(max(0, box[0].start - m), min(shape[0], box[0].stop + m)),
            slice(max(0, box[1].start - m), min(shape[1], box[1].stop + m)))


def _px(m: float, res: float) -> int:
    return max(1, int(round(m / res)))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-9 else 0.0


def best_match(view: View, roof: np.ndarray, res: float) -> tuple[float, float]:
    """Largest normalised cross-correlation of the roof's window (the roof and ``PAD_M`` around it, on
    ground both dates saw; ``roof`` a mask of the view) between the reference and the later scene,
    over shifts up to ``SHIFT_M``: (brightness, edge strength). Shifts past the scene's edge are skipped."""
    k, s = _px(PAD_M, res), _px(SHIFT_M, res)
    step = 1 if s <= 6 else 2
    h, w = roof.shape
    rows, cols = np.nonzero(roof)
    r0, r1 = max(0, rows.min() - k), min(h, rows.max() + k + 1)
    c0, c1 = max(0, cols.min() - k), min(w, cols.max() + k + 1)
    win = ndimage.binary_dilation(roof[r0:r1, c0:c1], iterations=k) & view.both[r0:r1, c0:c1]
    best = [-1.0, -1.0]
    for dy in range(-s, s + 1, step):
        for dx in range(-s, s + 1, step):
            a0, a1, b0, b1 = r0 + dy, r1 + dy, c0 + dx, c1 + dx
            if a0 < 0 or b0 < 0 or a1 > h or b1 > w:
                continue
            m = win & view.both[a0:a1, b0:b1]
            if m.sum() < MIN_PX:
                continue
            for i, (ref, cur) in enumerate((view.bright, view.edge)):
                best[i] = max(best[i], _ncc(ref[r0:r1, c0:c1][m], cur[a0:a1, b0:b1][m]))
    return best[0], best[1]


class Own:
    """The scene's own roof map, its roofs labelled once (8-connected) with their areas."""

    def __init__(self, own: np.ndarray):
        self.lab, n = components.label(own, corners=True)
        self.px = np.bincount(self.lab.ravel(), minlength=n + 1) if n else np.zeros(1, np.int64)


def own_near(roof: np.ndarray, box: tuple[slice, slice], own: Own, res: float) -> float:
    """The scene's own roofs (whole) that come within ``SHIFT_M`` of the roof (``roof``: its mask over
    ``box``, its bounding box in the scene), as a share of its area."""
    n = int(roof.sum())
    if not n or own.px.size < 2:
        return 0.0
    s = _px(SHIFT_M, res)
    sl = _grow(box, s, own.lab.shape)
    local = np.zeros((sl[0].stop - sl[0].start, sl[1].stop - sl[1].start), bool)
    local[box[0].start - sl[0].start:box[0].stop - sl[0].start, box[1].start - sl[1].start:box[1].stop - sl[1].start] = roof
    near = ndimage.binary_dilation(local, structure=np.ones((3, 3), bool), iterations=s)
    ids = np.unique(own.lab[sl][near])
    return float(own.px[ids[ids > 0]].sum()) / n


def _facts(pair: Pair, roof: np.ndarray, box: tuple[slice, slice], own: Own, res: float, every: bool
           ) -> dict[str, float]:
    n = int(roof.sum())
    out = {"px": n, "seen": 0.0, "own": own_near(roof, box, own, res), "change": 0.0,
           "match_bright": float("nan"), "match_edge": float("nan")}
    if not n:
        return out
    sl = _grow(box, _px(PAD_M, res) + _px(SHIFT_M, res) + 2, pair.both.shape)
    local = np.zeros((sl[0].stop - sl[0].start, sl[1].stop - sl[1].start), bool)
    local[box[0].start - sl[0].start:box[0].stop - sl[0].start, box[1].start - sl[1].start:box[1].stop - sl[1].start] = roof
    view = View(pair, sl)
    seen = local & view.both
    out["seen"] = float(seen.sum()) / n
    if seen.any():
        out["change"] = float(np.median(view.change[seen]))
    standing = out["seen"] < SEEN_MIN or out["own"] >= OWN_MAX or out["change"] < CHANGE_MIN
    if seen.sum() >= MIN_PX and (every or not standing):
        out["match_bright"], out["match_edge"] = best_match(view, seen, res)
    return out


def roof_facts(pair: Pair, roof: np.ndarray, own: Own | np.ndarray, res: float, every: bool = True
               ) -> dict[str, float]:
    """What the rule reads over one reference roof (a mask of the scene): the share both dates saw, the
    scene's own roofs near it (:func:`own_near`), the median change, and the best matches (NaN when
    both dates saw under ``MIN_PX`` of it, or, with ``every`` False, when the other facts already keep
    the roof standing: the shift search is the costly part)."""
    own = own if isinstance(own, Own) else Own(own)
    if not roof.any():
        return _facts(pair, roof[:0, :0], (slice(0, 0), slice(0, 0)), own, res, every)
    rows, cols = np.nonzero(roof)
    box = (slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1))
    return _facts(pair, roof[box], box, own, res, every)


def is_gone(f: Mapping[str, float], settings: Mapping[str, float] | None = None) -> bool:
    """The rule on one roof's facts (``settings``: other thresholds, for the benchmark's choice)."""
    s = {"own": OWN_MAX, "change": CHANGE_MIN, "bright": MATCH_BRIGHT_MAX, "edge": MATCH_EDGE_MAX,
         **(settings or {})}
    return bool(f["px"] >= MIN_PX and f["seen"] >= SEEN_MIN and f["own"] < s["own"] and f["change"] >= s["change"]
                and f["match_bright"] <= s["bright"] and f["match_edge"] <= s["edge"])


def gone_roofs(roofs: np.ndarray, own: np.ndarray, ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray],
               both: np.ndarray, res: float) -> np.ndarray:
    """The reference roofs (``roofs``, 8-connected) this scene shows gone by the rule; ``own``: the scene's
    own per-date roof map; ``ref``/``cur``: RGB of both dates; ``both``: ground both saw."""
    out = np.zeros(roofs.shape, bool)
    if not roofs.any():
        return out
    pair, mine = Pair(ref, cur, both), Own(own)
    lab, _ = components.label(roofs, corners=True)
    for i, sl in enumerate(components.find_objects(lab), start=1):
        if sl is None:
            continue
        roof = lab[sl] == i
        # the cheap facts first: most roofs stand, and their seen share or the scene's own roofs say so
        if roof.sum() < MIN_PX or (roof & both[sl]).sum() < SEEN_MIN * roof.sum():
            continue
        if is_gone(_facts(pair, roof, sl, mine, res, every=False)):
            out[sl] |= roof
    return out
