"""The per-date roof map's cleaning (``buildings.roof_map``): hysteresis, minimum area, holes."""

import numpy as np

from sitewatch import buildings

RES = 0.5
SETTINGS = {"smooth_m": 1.0, "rim": 0.15, "core": 0.45, "open_m": 1.5, "min_m2": 20.0, "mean_p": 0.0,
            "hole_m2": 100.0}


def _scene() -> np.ndarray:
    p = np.full((200, 200), 0.02, np.float32)
    p[20:60, 20:60] = 0.25          # a roof the model is lukewarm about ...
    p[35:45, 35:45] = 0.8           # ... with a confident core: kept whole
    p[30:34, 50:54] = 0.02          # a small dark vent inside it: a hole, filled
    p[120:160, 120:160] = 0.25      # as lukewarm, no core: not a roof
    p[100:104, 20:24] = 0.9         # confident but 4 m²: too small
    return p


def test_hysteresis_keeps_a_lukewarm_roof_with_a_confident_core_and_fills_its_holes():
    m = buildings.roof_map(_scene(), np.ones((200, 200), bool), RES, SETTINGS)
    assert m[22:58, 22:58].mean() > 0.95
    assert m[31:33, 51:53].all()
    assert not m[120:160, 120:160].any()
    assert not m[95:110, 15:30].any()


def test_unseen_ground_is_never_roof():
    seen = np.ones((200, 200), bool)
    seen[:, :40] = False
    m = buildings.roof_map(_scene(), seen, RES, SETTINGS)
    assert not m[:, :40].any() and m[40:58, 42:58].all()


def test_the_former_cleaning_drops_the_lukewarm_roof():
    """What the settings before 2026-12-03 did: a blob whose mean probability is under 0.35 is dropped."""
    m = buildings.roof_map(_scene(), np.ones((200, 200), bool), RES, buildings.MAP_BEFORE)
    assert not m[20:60, 20:60].any()
