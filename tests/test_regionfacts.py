"""The change region's facts (``sitewatch.regionfacts``) on hand-made arrays, and the 10 m score that
reads them: stored in the evidence, so a detection's score is recomputed from the file alone."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
from affine import Affine

from sitewatch import regionfacts, scoremodel
from sitewatch.changes import Observation, track
from sitewatch.grid import Grid
from sitewatch.s2change import REF_PREFIX
from sitewatch.structures import StructureMaps


def test_a_square_is_full_and_round_a_line_is_long():
    sq = np.zeros((20, 20), bool)
    sq[5:11, 5:11] = True
    line = np.zeros((20, 40), bool)
    line[10, 5:35] = True
    ell = np.zeros((20, 20), bool)
    ell[2:14, 2:5] = True
    ell[11:14, 2:14] = True
    s, ln, el = (regionfacts.shape_facts(m) for m in (sq, line, ell))
    assert s["fill"] == 1.0 and s["elongation"] == pytest.approx(1.0)
    assert ln["fill"] == 1.0 and ln["elongation"] > 20
    assert el["fill"] < 0.5 and 1.0 <= el["elongation"] < ln["elongation"]
    assert regionfacts.shape_facts(np.zeros((4, 4), bool)) == {"fill": 0.0, "elongation": 1.0}


def test_response_facts_are_the_strongest_and_the_share_above_threshold():
    obj = np.zeros((6, 6), bool)
    obj[1:3, 1:3] = True
    p = np.zeros((6, 6), np.float32)
    p[1:3, 1:3] = [[0.99, 0.9], [0.8, 0.96]]
    p[5, 5] = 1.0  # outside the region: not counted
    f = regionfacts.response_facts(p, obj, 0.95)
    assert f == {"p_max": 0.99, "core_share": 0.5}


def test_ground_before_reads_green_fields_and_bright_ground():
    red = np.full((10, 10), 0.10, np.float32)
    nir = np.full((10, 10), 0.12, np.float32)
    field = np.zeros((10, 10), bool)
    field[:3, :3] = True
    nir[field], red[field] = 0.40, 0.05
    ref = {"red": red, "nir": nir, "green": red.copy(), "blue": red.copy()}
    bare = np.zeros((10, 10), bool)
    bare[6:9, 6:9] = True
    g_field, g_bare = regionfacts.ground_before(ref, field), regionfacts.ground_before(ref, bare)
    assert g_field["ndvi_before"] == pytest.approx((0.40 - 0.05) / 0.45, abs=1e-3)
    assert g_bare["ndvi_before"] == pytest.approx(0.02 / 0.22, abs=1e-3)
    assert g_field["bright_before"] < g_bare["bright_before"] == pytest.approx(1.0)
    assert regionfacts.ground_before({}, field) == {}
    nan = {k: np.full((10, 10), np.nan, np.float32) for k in ref}
    assert regionfacts.ground_before(nan, field) == {}  # no clear reference ground: nothing claimed


def test_scene_and_local_shares_count_changed_clear_ground():
    present = np.zeros((60, 60), bool)
    present[10:14, 10:14] = True  # the region
    present[40:50, 40:50] = True  # another change, 26+ px away
    observed = np.ones((60, 60), bool)
    observed[:, 55:] = False
    assert regionfacts.scene_share(present, observed) == round(116 / (60 * 55), 4)
    sl = (slice(10, 14), slice(10, 14))
    obj = present[sl].copy()
    assert regionfacts.local_share(present, observed, sl, obj) == 0.0  # the region itself is left out
    near = present.copy()
    near[16:18, 16:18] = True
    assert regionfacts.local_share(near, observed, sl, obj) > 0.0
    assert regionfacts.scene_share(present, np.zeros_like(observed)) == 0.0
    # the region itself left out: only the other change counts, over the rest of the clear ground
    assert regionfacts.scene_share(present, observed, sl, obj) == round(100 / (60 * 55 - 16), 4)


def test_edge_distance_is_capped():
    d = np.arange(100, dtype=np.float32).reshape(10, 10)
    obj = np.zeros((10, 10), bool)
    obj[2, 3] = obj[5, 5] = True
    assert regionfacts.edge_px(d, obj) == 23.0
    obj[:] = False
    obj[9, 9] = True
    assert regionfacts.edge_px(d, obj) == regionfacts.EDGE_CAP_PX


def test_score_inputs_put_the_region_facts_after_the_base_ones():
    ev = {"magnitude": 0.9, "strength_after": 0.9, "strength_before": 0.0,
          "region": {"scene_changed_share": 0.04, "core_share": 0.5}}
    row = scoremodel.score_inputs("building_new", ev, 1000.0, 10.0)
    assert len(row) == len(scoremodel.SCORE_INPUTS)
    assert row[:5] == [0.9, 0.9, 0.0, pytest.approx(math.log(1000.0)), 0.0]
    assert row[5:] == [0.04]
    assert scoremodel.score_inputs("building_new", ev, 1000.0, 10.0, region=("core_share", "missing"))[5:] == [0.5, 0.0]
    assert scoremodel.score_inputs("building_new", {"magnitude": 0.9}, 1000.0, 10.0)[5:] == [0.0]


def test_the_shipped_score_model_reads_the_current_inputs():
    """A model file whose inputs differ from the code's is ignored (every 10 m score would fall back
    to the uncalibrated one): the shipped file must match."""
    doc = scoremodel.score_model()
    assert tuple(doc["inputs"]) == scoremodel.SCORE_INPUTS
    assert "coarse" in doc["classes"]


GRID10 = Grid("EPSG:32645", Affine(10.0, 0, 500000.0, 0, -10.0, 4400000.0), 80, 80)
ABOUT = {"change_model": "sitewatch-s2change", "change_model_version": "1", "change_model_sha256": "x" * 16,
         "change_bands": ["blue", "green", "red", "nir", "swir16"], "change_threshold": 0.95}


def _maps10(changed: list[tuple[slice, slice]], reference: bool = False) -> StructureMaps:
    presence = np.zeros(GRID10.shape, bool)
    for sl in changed:
        presence[sl] = True
    strength = presence.astype(np.float32) * np.float32(0.97)
    feats = {}
    if reference:
        feats = {REF_PREFIX + b: np.full(GRID10.shape, v, np.float16)
                 for b, v in (("blue", 0.1), ("green", 0.1), ("red", 0.1), ("nir", 0.3), ("swir16", 0.2))}
    return StructureMaps(GRID10, ("building",), {"building": presence}, {"building": strength},
                         np.ones(GRID10.shape, bool), feats, {"s2change": dict(ABOUT)})


def _new_hall(other_change: list[tuple[slice, slice]]):
    hall = (slice(20, 26), slice(20, 28))
    day = [dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=40 * i) for i in range(3)]
    obs = [Observation("s0", day[0], _maps10([], reference=True)), Observation("s1", day[1], _maps10([])),
           Observation("s2", day[2], _maps10([hall] + other_change))]
    got = [c for c in track(obs) if c.kind == "building_new" and c.geometry.bounds[0] < 500000 + 30 * 10]
    assert len(got) == 1
    return got[0]


def test_a_10m_detection_carries_its_region_facts_and_its_score_follows_from_them():
    quiet, busy = _new_hall([]), _new_hall([(slice(50, 78), slice(40, 78))])
    for c in (quiet, busy):
        r = c.evidence["region"]
        assert r["p_max"] == pytest.approx(0.97, abs=1e-3) and r["core_share"] == 1.0
        assert r["fill"] == 1.0 and r["ndvi_before"] == pytest.approx(0.5, abs=1e-2)
        assert json.loads(json.dumps(dict(c.evidence))) == dict(c.evidence)
        assert c.evidence["score_model"] == "real"
        # reproducible from what is stored: the score is the model at the stored evidence
        assert c.score == scoremodel.real_score(c.kind, c.evidence, c.area_m2, 10.0)
    assert quiet.evidence["region"]["scene_changed_share"] == 0.0  # nothing changed but the hall itself
    assert busy.evidence["region"]["scene_changed_share"] > quiet.evidence["region"]["scene_changed_share"]
    assert busy.score != quiet.score  # the scene's changed share moves the score
