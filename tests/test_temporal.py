"""Changes judged over several clear scenes, not one pair (issue 13, item 6).

Hand-made maps, so the tracking rule alone is under test: a building appears, one bad date
(a misplaced pass, unflagged haze) then misses it, later dates see it again.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from affine import Affine

from sitewatch import changes
from sitewatch.changes import Observation, track
from sitewatch.grid import Grid
from sitewatch.structures import StructureMaps

GRID = Grid("EPSG:32645", Affine(10.0, 0, 500_000.0, 0, -10.0, 4_500_000.0), 60, 60)


def _series(standing: list[bool]) -> list[Observation]:
    out = []
    for i, s in enumerate(standing):
        p = np.zeros(GRID.shape, bool)
        if s:
            p[20:30, 20:26] = True  # a 100 x 60 m hall
        maps = StructureMaps(GRID, ("building",), {"building": p}, {"building": p.astype(np.float32)},
                             np.ones(GRID.shape, bool))
        out.append(Observation(f"s{i}", dt.datetime(2019, 1 + i, 1, tzinfo=dt.timezone.utc), maps))
    return out


@pytest.fixture
def window():
    yield
    changes.WINDOW = 3


def test_one_bad_date_after_construction_does_not_lose_the_building(window):
    obs = _series([False, False, True, False, True, True])
    found = [c for c in track(obs) if c.kind == "building_new"]
    assert [(c.before_scene_id, c.after_scene_id) for c in found] == [("s1", "s2")]
    assert not [c for c in track(obs) if c.kind == "building_removed"]
    changes.WINDOW = 2  # one scene each side, as before: the building is never reported
    assert not [c for c in track(obs) if c.kind == "building_new"]


def test_one_bad_date_while_standing_makes_no_change():
    obs = _series([False, True, True, False, True, True])
    assert [(c.kind, c.after_scene_id) for c in track(obs)] == [("building_new", "s1")]


def test_two_dates_judged_as_before():
    """OSCD-like pairs: with one scene on each side, the old rule (the newest kept, unconfirmed)."""
    (c,) = track(_series([False, True]))
    assert c.kind == "building_new" and not c.evidence["confirmed_by_next_clear_scene"]


def test_most_later_looks_must_agree():
    """Seen at one date, then gone at two: noise, not a building."""
    assert not [c for c in track(_series([False, False, True, False, False])) if c.kind == "building_new"]


def test_removal_needs_two_standing_looks_and_most_of_them():
    assert [(c.kind, c.after_scene_id) for c in track(_series([True, True, True, False, False]))
            if c.kind == "building_removed"] == [("building_removed", "s3")]
    assert not [c for c in track(_series([False, True, False, False])) if c.kind == "building_removed"]
