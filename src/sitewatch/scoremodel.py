"""The detection score fitted on real labelled detections (``data/score_model.json``).

What a stored detection's ``score`` is at resolutions a real model covers: the share of such
detections that were right on real labelled pairs. Every input is in the detection's evidence
(the change region's facts under ``evidence["region"]``), so a score is recomputed from the file. Fitted by ``benchmarks/calibrate_real.py``
(held out by site; figures in ``benchmarks/README.md``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources


#: What the real-data score was computed from before the change region's facts (kept so
#: ``benchmarks/calibrate_real.py`` can print the held-out figures before and after).
BASE_INPUTS = ("magnitude", "strength_after", "strength_before", "log_area_m2", "removed")
#: Facts of the change region (``evidence["region"]``, :mod:`sitewatch.regionfacts`) the score reads.
#: Only the scene's changed share: of the region facts measured on real detections it is the one
#: that ranks held out by city (benchmarks/README.md section 2 has the others' figures).
REGION_INPUTS = ("scene_changed_share",)
#: What the real-data score is computed from (``score_inputs``), in model order.
SCORE_INPUTS = BASE_INPUTS + REGION_INPUTS
#: Grids at or finer than this (metres) use the ``fine`` model, coarser ones ``coarse``.
FINE_MAX_RES_M = 2.0


def resolution_class(res: float) -> str:
    return "fine" if res <= FINE_MAX_RES_M else "coarse"


def score_inputs(kind: str, evidence: Mapping[str, object], area_m2: float, res: float,
                 region: Sequence[str] = REGION_INPUTS) -> list[float]:
    """The detection's facts the real-data score reads (see :data:`SCORE_INPUTS`; ``region``: which of
    ``evidence["region"]`` follow the base inputs, 0 where a fact is missing)."""
    def num(src: Mapping[str, object], k: str) -> float:
        v = src.get(k, 0.0)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0

    facts = evidence.get("region")
    facts = facts if isinstance(facts, Mapping) else {}
    return [num(evidence, "magnitude"), num(evidence, "strength_after"), num(evidence, "strength_before"),
            math.log(max(area_m2, 1.0)), 1.0 if kind.endswith("_removed") else 0.0] + [num(facts, k) for k in region]


def logistic(fit: Mapping[str, object], row: Sequence[float]) -> float:
    """A fitted logistic model (``mean``, ``scale``, ``coef``, ``intercept``) at one input row."""
    z = float(fit["intercept"])  # type: ignore[arg-type]
    for x, m, s, w in zip(row, fit["mean"], fit["scale"], fit["coef"]):  # type: ignore[call-overload]
        z += w * (x - m) / s
    return 1 / (1 + math.exp(-max(-50.0, min(50.0, z))))


@lru_cache(maxsize=1)
def score_model() -> dict:
    """``data/score_model.json`` (``benchmarks/calibrate_real.py``); empty classes when none was fitted."""
    try:
        doc = json.loads(resources.files("sitewatch").joinpath("data/score_model.json").read_text())
    except FileNotFoundError:
        return {"classes": {}}
    return doc if tuple(doc.get("inputs", ())) == SCORE_INPUTS else {"classes": {}}


def real_score(kind: str, evidence: Mapping[str, object], area_m2: float, res: float) -> float | None:
    """Share of such detections that were right on real labelled pairs (held-out reliability in
    benchmarks/README.md), or None where no real model covers this resolution.

    The labelled pairs have two dates, so every detection fitted on was unconfirmed. One that a
    later clear scene confirmed is stronger evidence we have no real data to measure: by rule
    (not fitted) its odds of being wrong are halved, so it ranks above an unconfirmed twin.
    """
    fit = score_model()["classes"].get(resolution_class(res))
    if fit is None:
        return None
    p = logistic(fit, score_inputs(kind, evidence, area_m2, res))
    if evidence.get("confirmed_by_next_clear_scene"):
        p = 1 - (1 - p) / 2
    return round(p, 4)
