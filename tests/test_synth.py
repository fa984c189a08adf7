"""The renderer behind the demo and the benchmarks: does it draw what it claims to?

Each test renders a tiny scene with noise switched off and compares it with the same scene
without the thing under test, so the check is on the physics (shadows, mixing, clouds,
shifts), not on the texture.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from sitewatch.testbed import synth
from sitewatch.structures import CHANGE_KINDS

QUIET = synth.Conditions(season=0.0, noise=0.0)  # winter: no green fields to confuse a difference


def _ground(size: float, seed: int = 5) -> synth.Ground:
    return synth.Ground(size, seed)


def _diff(structs, size, gsd, cond, band="red"):
    """Reflectance without the structures minus with them (positive where they darken the ground)."""
    g = _ground(size)
    without = synth.render(g, [], gsd, cond, seed=1).bands[band]
    with_ = synth.render(g, structs, gsd, cond, seed=1).bands[band]
    return without - with_


def _xy(size: float, gsd: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in metres (x east, y north) of a site grid."""
    n = int(round(size / gsd))
    c = (np.arange(n) + 0.5) * gsd - size / 2
    return np.meshgrid(c, -c)


# --- shadows -----------------------------------------------------------------------------------


@pytest.mark.parametrize("azimuth, away", [(90.0, (-1, 0)), (180.0, (0, 1)), (270.0, (1, 0)), (135.0, (-1, 1))])
def test_shadow_falls_away_from_the_sun(azimuth, away):
    tower = synth.Tower("t", 0.0, 0.0, size=3.0, height=10.0)
    cond = synth.Conditions(season=0.0, noise=0.0, sun_azimuth=azimuth, sun_elevation=40.0)
    d = _diff([tower], 80.0, 0.5, cond)
    x, y = _xy(80.0, 0.5)
    dark = (d > 0.05) & ~((np.abs(x) < 1.6) & (np.abs(y) < 1.6))  # shaded ground outside the tower
    assert dark.sum() > 50
    cx, cy = x[dark].mean(), y[dark].mean()
    ex, ey = away
    assert cx * ex >= 0 and cy * ey >= 0
    assert math.hypot(cx, cy) > 3  # well clear of the tower itself
    if ex == 0:
        assert abs(cx) < 1.0
    if ey == 0:
        assert abs(cy) < 1.0


@pytest.mark.parametrize("elevation", [25.0, 40.0, 60.0])
def test_shadow_length_is_height_over_tan_elevation(elevation):
    tower = synth.Tower("t", 0.0, 0.0, size=3.0, height=10.0)
    cond = synth.Conditions(season=0.0, noise=0.0, sun_azimuth=90.0, sun_elevation=elevation)
    d = _diff([tower], 80.0, 0.5, cond)
    x, y = _xy(80.0, 0.5)
    dark = (d > 0.05) & (np.abs(y) < 1.0)
    tip = -x[dark].min()  # the sun is in the east: the shadow runs west from the tower's west edge
    expected = 1.5 + 10.0 / math.tan(math.radians(elevation))
    assert tip == pytest.approx(expected, abs=1.0)
    geom = synth.shadow(tower, 90.0, elevation)
    assert -geom.bounds[0] == pytest.approx(expected, abs=1e-6)


def test_fence_shadow_is_fainter_than_a_wall_shadow():
    cond = synth.Conditions(season=0.0, noise=0.0, sun_azimuth=180.0, sun_elevation=40.0)
    wall = synth.Wall("w", ((-20.0, 0.0), (20.0, 0.0)))
    fence = synth.Fence("f", ((-20.0, 0.0), (20.0, 0.0)))
    x, y = _xy(60.0, 0.5)
    band = (np.abs(x) < 15) & (y > 1.0) & (y < 3.0)  # just north of the line: in both shadows
    dw = _diff([wall], 60.0, 0.5, cond)[band].mean()
    df = _diff([fence], 60.0, 0.5, cond)[band].mean()
    assert dw > 0.1 and 0.01 < df < dw / 3


# --- mixing at coarse resolution ---------------------------------------------------------------


def test_a_100_by_30_m_block_is_visible_at_10_m():
    # x from -15 to 15 m: two whole 10 m columns and two half-covered ones; y from -45 to 55 m
    block = synth.Building("b", 0.0, 5.0, w=30.0, h=100.0, height=12.0, roof=synth.ROOF_BLUE)
    cond = synth.Conditions(season=0.0, noise=0.004, sun_elevation=50.0)
    g = _ground(500.0)
    before = synth.render(g, [], 10.0, cond, seed=2).bands
    after = synth.render(g, [block], 10.0, cond, seed=2).bands
    assert before["blue"].shape == (50, 50)
    x, y = _xy(500.0, 10.0)
    inside = (np.abs(x) < 10) & (np.abs(y - 5) < 45)  # pixels wholly under the roof
    changed = np.abs(after["blue"] - before["blue"]) > 0.05
    assert inside.sum() == 18
    assert changed[inside].all()
    assert after["blue"][inside].mean() == pytest.approx(synth.ROOF_BLUE[2], abs=0.02)
    # the edge columns are half covered: their values sit between soil and roof (area average)
    edge = (np.abs(x) > 14) & (np.abs(x) < 16) & (np.abs(y - 5) < 45)
    assert edge.sum() == 18
    mid = after["blue"][edge]
    assert (mid > before["blue"][edge] + 0.05).all() and (mid < synth.ROOF_BLUE[2] - 0.05).all()
    assert changed.sum() < 60  # and nothing much else changed


# --- clouds --------------------------------------------------------------------------------------


def test_clouds_set_scl_8_9_and_the_cloud_mask_and_their_shadow_3():
    cloud = synth.Cloud(-200.0, 100.0, 250.0, shadow_m=(400.0, -300.0))
    g = synth.Ground(2500.0, 3, fields=((600.0, 600.0, 300.0, 300.0),))
    clear = synth.render(g, [], 10.0, synth.Conditions(season=1.0), seed=4)
    cloudy = synth.render(g, [], 10.0, synth.Conditions(season=1.0, clouds=(cloud,)), seed=4)
    x, y = _xy(2500.0, 10.0)
    core = np.hypot(x + 200, y - 100) < 100
    rim = (np.hypot(x + 200, y - 100) > 150) & (np.hypot(x + 200, y - 100) < 220)
    shade = np.hypot(x - 200, y + 200) < 60
    far = np.hypot(x - 1000, y - 1000) < 150
    assert set(np.unique(clear.scl)) <= {4, 5} and not clear.cloud.any()
    assert (clear.scl[far] == 4).any()  # summer fields are vegetation
    assert (cloudy.scl[core] == 9).all() and cloudy.cloud[core].all()
    assert (cloudy.scl[rim] == 8).all() and cloudy.cloud[rim].all()
    # the true mask reaches further than scl does: thin edges are what a classifier misses
    flagged = np.isin(cloudy.scl, (3, 8, 9))
    assert cloudy.cloud[flagged].all() and cloudy.cloud.sum() > flagged.sum()
    assert (cloudy.scl[shade] == 3).all() and cloudy.cloud[shade].all()
    assert not cloudy.cloud[far].any() and (cloudy.scl[far] == clear.scl[far]).all()
    assert cloudy.bands["blue"][core].mean() > 0.6  # bright and white
    assert cloudy.bands["red"][shade].mean() < 0.6 * clear.bands["red"][shade].mean()
    assert 0.05 < cloudy.cloud.mean() < 0.5


def test_snow_is_scl_11():
    r = synth.render(_ground(200.0), [], 10.0, synth.Conditions(season=0.0, snow=0.4), seed=1)
    assert 0.25 < (r.scl == 11).mean() < 0.55
    assert r.bands["green"][r.scl == 11].mean() > 0.6


# --- misregistration, seasons, sensor, determinism -----------------------------------------------


@pytest.mark.parametrize("dx, dy", [(2.0, 0.0), (0.0, -3.0), (1.0, 1.0)])
def test_shift_moves_pixels_by_the_requested_amount(dx, dy):
    b = synth.Building("b", 0.0, 0.0, 20.0, 10.0)
    g = _ground(60.0)
    ref = synth.render(g, [b], 0.5, QUIET, seed=1).bands["red"]
    moved = synth.render(g, [b], 0.5, synth.Conditions(season=0.0, noise=0.0, shift_px=(dx, dy)), seed=1)
    m = moved.bands["red"]
    sx, sy = int(dx), int(dy)
    h, w = ref.shape
    inner = (slice(5, h - 5), slice(5, w - 5))
    expected = np.roll(ref, (sy, sx), axis=(0, 1))  # +dx east (right), +dy south (down)
    np.testing.assert_allclose(m[inner], expected[inner], atol=1e-5)


def test_sub_pixel_shift_interpolates():
    g = _ground(60.0)
    b = synth.Building("b", 0.0, 0.0, 20.0, 10.0)
    ref = synth.render(g, [b], 0.5, QUIET, seed=1).bands["red"]
    half = synth.render(g, [b], 0.5, synth.Conditions(season=0.0, noise=0.0, shift_px=(0.5, 0.0)), seed=1)
    expected = 0.5 * (ref + np.roll(ref, 1, axis=1))
    np.testing.assert_allclose(half.bands["red"][5:-5, 5:-5], expected[5:-5, 5:-5], atol=1e-5)


def test_fields_are_green_in_summer_and_bare_in_winter():
    g = synth.Ground(200.0, 9, fields=((-50.0, -50.0, 100.0, 100.0),))
    x, y = _xy(200.0, 10.0)
    field = (np.abs(x) < 45) & (np.abs(y) < 45)
    summer = synth.render(g, [], 10.0, synth.conditions_for(dt.date(2019, 7, 15), 40.0), seed=1)
    winter = synth.render(g, [], 10.0, synth.conditions_for(dt.date(2019, 1, 15), 40.0), seed=1)

    def ndvi(r):
        return (r.bands["nir"] - r.bands["red"]) / (r.bands["nir"] + r.bands["red"])

    assert ndvi(summer)[field].mean() > 0.6 > 0.2 > ndvi(winter)[field].mean()
    assert (summer.scl[field] == 4).all() and (winter.scl[field] == 5).all()
    assert 0.22 < summer.bands["red"][~field].mean() < 0.32  # dry desert soil


def test_sensor_gain_and_offset():
    g = _ground(100.0)
    base = synth.render(g, [], 10.0, QUIET, seed=1).bands
    changed = synth.render(g, [], 10.0, synth.Conditions(season=0.0, noise=0.0, gain=(1.1,) * 5, offset=0.02),
                           seed=1).bands
    np.testing.assert_allclose(changed["nir"], base["nir"] * 1.1 + 0.02, rtol=1e-5)


def test_reflectances_are_plausible():
    structs, _ = synth.compound(3, size_m=300)
    r = synth.render(_ground(300.0), structs, 0.5, synth.Conditions(season=0.5), seed=1)
    for b in synth.BANDS:
        a = r.bands[b]
        assert a.dtype == np.float32 and a.shape == (600, 600)
        assert 0.0 < a.min() and a.max() <= 1.0
    assert r.scl.dtype == np.uint8 and r.cloud.dtype == bool


def test_same_seed_same_bytes_other_seed_other_noise():
    structs, _ = synth.compound(3, size_m=200)
    cond = synth.Conditions(season=0.4, clouds=(synth.Cloud(10.0, 10.0, 30.0),), shift_px=(0.3, -0.7))
    a = synth.render(_ground(200.0), structs, 0.5, cond, seed=11)
    b = synth.render(_ground(200.0), structs, 0.5, cond, seed=11)
    c = synth.render(_ground(200.0), structs, 0.5, cond, seed=12)
    for k in synth.BANDS:
        assert a.bands[k].tobytes() == b.bands[k].tobytes()
        assert a.bands[k].tobytes() != c.bands[k].tobytes()
    assert a.scl.tobytes() == b.scl.tobytes() and a.cloud.tobytes() == b.cloud.tobytes()


# --- the compound and truth ----------------------------------------------------------------------


def test_compound_has_blocks_a_walled_perimeter_corner_towers_and_inner_fences():
    structs, groups = synth.compound(7, size_m=400, blocks=4)
    by_id = {s.id: s for s in structs}
    assert len(by_id) == len(structs)
    assert {k: len(v) for k, v in groups.items()} == {"blocks": 4, "wall": 1, "fences": 4, "towers": 4}
    wall = by_id[groups["wall"][0]]
    assert isinstance(wall, synth.Wall) and wall.points[0] == wall.points[-1]
    corners = set(wall.points)
    for t in groups["towers"]:
        assert (by_id[t].x, by_id[t].y) in corners
    from shapely.geometry import Polygon

    inside = Polygon(wall.points)
    for f in groups["fences"]:
        assert isinstance(by_id[f], synth.Fence) and inside.contains(by_id[f].footprint())
    for b in groups["blocks"]:
        assert inside.contains(by_id[b].footprint())


def _epoch(day: str, present, clouds=()):
    d = dt.date.fromisoformat(day)
    return synth.Epoch(d, frozenset(present), synth.Conditions(season=0.5, clouds=tuple(clouds)))


def test_truth_is_dated_by_the_next_clear_scene():
    hall = synth.Building("hall", 0.0, 0.0, 30.0, 100.0)
    tower = synth.Tower("tower", 300.0, 300.0)
    over_hall = synth.Cloud(10.0, 0.0, 120.0)
    epochs = [_epoch("2019-01-01", []),
              _epoch("2019-03-01", []),
              _epoch("2019-05-01", ["hall", "tower"], [over_hall]),  # both built; the hall is under cloud
              _epoch("2019-07-01", ["hall", "tower"]),
              _epoch("2019-09-01", ["hall"], [over_hall]),  # tower gone, seen clear
              _epoch("2019-11-01", [])]  # hall gone, seen clear; the cloudy September scene does not count
    got = {(c.structure, c.kind): (c.last_before.isoformat(), c.first_after.isoformat())
           for c in synth.truth([hall, tower], epochs)}
    assert got == {("hall", "building_new"): ("2019-03-01", "2019-07-01"),
                   ("tower", "tower_new"): ("2019-03-01", "2019-05-01"),
                   ("tower", "tower_removed"): ("2019-07-01", "2019-09-01"),
                   ("hall", "building_removed"): ("2019-07-01", "2019-11-01")}
    # the rendered cloud mask agrees: the hall is masked in the cloudy scenes, the tower is not
    g = synth.Ground(800.0, 1)
    x, y = _xy(800.0, 10.0)
    hall_px = (np.abs(x) < 15) & (np.abs(y) < 50)
    tower_px = (np.abs(x - 300) < 10) & (np.abs(y - 300) < 10)
    r = synth.render(g, [hall, tower], 10.0, epochs[2].conditions, seed=1)
    assert r.cloud[hall_px].any() and not r.cloud[tower_px].any()


def test_truth_kinds_lengths_and_no_change_without_a_clear_bracket():
    wall = synth.Wall("wall", ((0.0, 0.0), (50.0, 0.0), (50.0, 20.0)))
    fence = synth.Fence("fence", ((0.0, 10.0), (40.0, 10.0)))
    cover = synth.Cloud(25.0, 10.0, 60.0)
    epochs = [_epoch("2018-01-01", []),
              _epoch("2018-02-01", ["fence"], [cover]),  # fence up and down again, only ever under cloud
              _epoch("2018-03-01", ["wall"])]
    changes = synth.truth([wall, fence], epochs)
    assert [(c.structure, c.kind) for c in changes] == [("wall", "wall_new")]
    assert changes[0].length_m == pytest.approx(70.0)
    assert changes[0].kind in CHANGE_KINDS


def test_truth_of_the_typical_build_up():
    structs, g = synth.compound(2017, size_m=400)
    b, w, f, t = (frozenset(g[k]) for k in ("blocks", "wall", "fences", "towers"))
    plan = [("2017-04-01", frozenset()), ("2017-09-01", b), ("2018-04-01", b | w), ("2018-09-01", b | w | f | t),
            ("2019-09-01", b | w)]
    epochs = [_epoch(d, p) for d, p in plan]
    kinds = {}
    for c in synth.truth(structs, epochs):
        kinds.setdefault(c.kind, set()).add(c.first_after.isoformat())
    assert kinds == {"building_new": {"2017-09-01"}, "wall_new": {"2018-04-01"}, "fence_new": {"2018-09-01"},
                     "tower_new": {"2018-09-01"}, "fence_removed": {"2019-09-01"}, "tower_removed": {"2019-09-01"}}
