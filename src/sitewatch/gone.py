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
#: Most of a reference roof the scene's own per-date map may still map for the roof to be gone.
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


def _robust(img: Mapping[str, np.ndarray], both: np.ndarray) -> np.ndarray:
    """Bands (3, H, W) in robust units of their own scene on ``both`` (a regular subsample when large)."""
    sample = both
    if both.sum() > 400_000:
        sample = both.copy()
        keep = np.zeros_like(sample)
        keep[::3, ::3] = True
        sample &= keep
    out = []
    for b in BANDS:
        x = np.nan_to_num(np.asarray(img[b], np.float32))
        q50, spread = pixelmodel.robust_unit(x, sample)
        out.append((x - q50) / spread * both)
    return np.stack(out).astype(np.float32)


def _edges(x: np.ndarray) -> np.ndarray:
    return (np.hypot(ndimage.sobel(x, 0), ndimage.sobel(x, 1)) / 8).astype(np.float32)


class Pair:
    """Two dates of one window in robust units: brightness, edge strength and the change vector."""

    def __init__(self, ref: Mapping[str, np.ndarray], cur: Mapping[str, np.ndarray], both: np.ndarray):
        r, c = _robust(ref, both), _robust(cur, both)
        self.both = both
        self.change = np.sqrt(((c - r) ** 2).mean(axis=0)).astype(np.float32)
        self.bright = (r.mean(axis=0), c.mean(axis=0))
        self.edge = (_edges(self.bright[0]), _edges(self.bright[1]))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-9 else 0.0


def best_match(pair: Pair, roof: np.ndarray, res: float) -> tuple[float, float]:
    """Largest normalised cross-correlation of the roof's window (the roof and ``PAD_M`` around it, on
    ground both dates saw) between the reference and the later scene, over shifts up to ``SHIFT_M``:
    (brightness, edge strength). Shifts that leave the scene are skipped."""
    k = max(1, int(round(PAD_M / res)))
    s = max(1, int(round(SHIFT_M / res)))
    step = 1 if s <= 6 else 2
    h, w = roof.shape
    rows, cols = np.nonzero(roof)
    r0, r1 = max(0, rows.min() - k), min(h, rows.max() + k + 1)
    c0, c1 = max(0, cols.min() - k), min(w, cols.max() + k + 1)
    win = ndimage.binary_dilation(roof[r0:r1, c0:c1], iterations=k) & pair.both[r0:r1, c0:c1]
    best = [-1.0, -1.0]
    for dy in range(-s, s + 1, step):
        for dx in range(-s, s + 1, step):
            a0, a1, b0, b1 = r0 + dy, r1 + dy, c0 + dx, c1 + dx
            if a0 < 0 or b0 < 0 or a1 > h or b1 > w:
                continue
            m = win & pair.both[a0:a1, b0:b1]
            if m.sum() < MIN_PX:
                continue
            for i, (ref, cur) in enumerate((pair.bright, pair.edge)):
                best[i] = max(best[i], _ncc(ref[r0:r1, c0:c1][m], cur[a0:a1, b0:b1][m]))
    return best[0], best[1]


class Own:
    """The scene's own roof map, its roofs labelled once (8-connected) with their areas."""

    def __init__(self, own: np.ndarray):
        self.lab, n = components.label(own, corners=True)
        self.px = np.bincount(self.lab.ravel(), minlength=n + 1) if n else np.zeros(1, np.int64)


def own_near(roof: np.ndarray, own: Own, res: float) -> float:
    """The scene's own roofs (whole) that come within ``SHIFT_M`` of the roof, as a share of its area."""
    n = int(roof.sum())
    if not n or own.px.size < 2:
        return 0.0
    s = max(1, int(round(SHIFT_M / res)))
    rows, cols = np.nonzero(roof)
    sl = (slice(max(0, rows.min() - s), rows.max() + s + 1), slice(max(0, cols.min() - s), cols.max() + s + 1))
    near = ndimage.binary_dilation(roof[sl], structure=np.ones((3, 3), bool), iterations=s)
    ids = np.unique(own.lab[sl][near])
    return float(own.px[ids[ids > 0]].sum()) / n


def roof_facts(pair: Pair, roof: np.ndarray, own: Own | np.ndarray, res: float) -> dict[str, float]:
    """What the rule reads over one reference roof (a mask of the scene): the share both dates saw, the
    scene's own roofs near it (:func:`own_near`), the median change, and the best matches (NaN when
    both dates saw under ``MIN_PX`` of it)."""
    own = own if isinstance(own, Own) else Own(own)
    seen = roof & pair.both
    n = int(roof.sum())
    out = {"px": n, "seen": float(seen.sum()) / max(n, 1), "own": own_near(roof, own, res),
           "change": float(np.median(pair.change[seen])) if seen.any() else 0.0,
           "match_bright": float("nan"), "match_edge": float("nan")}
    if seen.sum() >= MIN_PX:
        out["match_bright"], out["match_edge"] = best_match(pair, seen, res)
    return out


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
    lab, n = components.label(roofs, corners=True)
    for i, sl in enumerate(components.find_objects(lab), start=1):
        if sl is None:
            continue
        roof = lab[sl] == i
        seen = roof & both[sl]
        # the cheap facts first: most roofs stand, and their own map or their unchanged pixels say so
        if (roof.sum() < MIN_PX or seen.sum() < SEEN_MIN * roof.sum()
                or np.median(pair.change[sl][seen]) < CHANGE_MIN):
            continue
        full = np.zeros(roofs.shape, bool)
        full[sl] = roof
        if own_near(full, mine, res) >= OWN_MAX:
            continue
        if is_gone(roof_facts(pair, full, mine, res)):
            out |= full
    return out
