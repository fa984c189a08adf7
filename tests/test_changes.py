"""Change tracking and site metrics on hand-made structure maps.

Maps are drawn directly (no detector), so each test checks the dating and persistence
rules alone: before = the last scene that saw the ground clearly without the structure,
after = the first that saw it clearly with it; a structure standing for years is one
change; a structure seen in one scene only is noise.
"""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest
from affine import Affine

from sitewatch.changes import Change, Metrics, Observation, measure, track
from sitewatch.grid import Grid
from sitewatch.structures import CHANGE_KINDS, KINDS, StructureMaps, kinds_for_gsd

RES = 1.0
N = 120
GRID = Grid("EPSG:32645", Affine(RES, 0, 500000.0, 0, -RES, 4400000.0), N, N)
BLOCK = (slice(20, 45), slice(30, 80))  # 50 x 25 m
CLOUD = (slice(10, 60), slice(20, 90))  # covers the block


def maps(*, block: bool = False, observed: np.ndarray | None = None, wall: np.ndarray | None = None,
         extra: np.ndarray | None = None, grid: Grid = GRID, gsd: float = 0.5) -> StructureMaps:
    kinds = kinds_for_gsd(gsd)
    shape = grid.shape
    presence = {k: np.zeros(shape, bool) for k in kinds}
    if block:
        presence["building"][BLOCK] = True
    if extra is not None:
        presence["building"] |= extra
    if wall is not None and "wall" in kinds:
        presence["wall"] |= wall
    strength = {k: presence[k].astype(np.float32) * np.float32(0.8) for k in kinds}
    obs = np.ones(shape, bool) if observed is None else observed
    return StructureMaps(grid, kinds, presence, strength, obs)


def day(i: int) -> dt.datetime:
    return dt.datetime(2019, 1, 1, 5, tzinfo=dt.timezone.utc) + dt.timedelta(days=30 * i)


def series(*scenes: StructureMaps) -> list[Observation]:
    return [Observation(f"s{i}", day(i), m) for i, m in enumerate(scenes)]


def cloudy() -> np.ndarray:
    o = np.ones((N, N), bool)
    o[CLOUD] = False
    return o


def _only(changes: list[Change], kind: str) -> Change:
    got = [c for c in changes if c.kind == kind]
    assert len(got) == 1, [(c.kind, c.before_scene_id, c.after_scene_id) for c in changes]
    return got[0]


def test_appearance_is_one_new_building_dated_by_the_bracketing_scenes():
    obs = series(maps(), maps(), maps(block=True), maps(block=True), maps(block=True), maps(block=True))
    changes = track(obs)
    assert [c.kind for c in changes] == ["building_new"]  # it stays: one change, not one per scene
    c = changes[0]
    assert (c.before_scene_id, c.after_scene_id) == ("s1", "s2")
    assert (c.before_date, c.after_date) == (day(1).date(), day(2).date())
    assert c.area_m2 == pytest.approx(50 * 25, rel=0.02)
    assert c.length_m is None
    assert 0 < c.score <= 1
    x0, y0, x1, y1 = c.geometry.bounds  # in the grid's CRS, metres
    assert (x0, x1) == pytest.approx((500030.0, 500080.0)) and (y0, y1) == pytest.approx((4399955.0, 4399980.0))
    assert c.geometry.geom_type == "MultiPolygon"
    assert c.kind in CHANGE_KINDS
    for k in ("magnitude",):
        assert k in c.evidence


def test_structure_under_cloud_is_dated_from_the_next_clear_scene():
    # s2 is cloudy over the site: the block may stand there already, but nobody saw it
    obs = series(maps(), maps(), maps(observed=cloudy()), maps(block=True), maps(block=True))
    c = _only(track(obs), "building_new")
    assert (c.before_scene_id, c.after_scene_id) == ("s1", "s3")


def test_cloudy_scene_is_never_the_before_scene():
    # s1 is cloudy; the block appears in s2; before must be s0, the last clear look
    obs = series(maps(), maps(observed=cloudy()), maps(block=True), maps(block=True))
    c = _only(track(obs), "building_new")
    assert (c.before_scene_id, c.after_scene_id) == ("s0", "s2")


def test_partly_seen_object_waits_for_a_clear_scene():
    # s2 sees only the western half of the block (the rest under cloud): dating waits for s3
    o = np.ones((N, N), bool)
    o[:, 55:] = False
    obs = series(maps(), maps(), maps(block=True, observed=o), maps(block=True), maps(block=True))
    c = _only(track(obs), "building_new")
    assert c.after_scene_id == "s3" and c.before_scene_id == "s1"


def test_a_building_cut_by_a_shift_strip_at_the_window_edge_is_dated_where_it_first_stands():
    # a co-registration shift leaves the window's 3 eastern columns unseen in every later scene; a new
    # building running into them is as complete as one cut by the window's edge itself
    edge = np.zeros((N, N), bool)
    edge[20:45, N - 30:N - 3] = True
    o = np.ones((N, N), bool)
    o[:, N - 3:] = False
    obs = series(maps(), maps(observed=o), maps(extra=edge & o, observed=o), maps(extra=edge & o, observed=o))
    c = _only(track(obs), "building_new")
    assert (c.before_scene_id, c.after_scene_id) == ("s1", "s2")


def test_a_wide_unseen_band_at_the_window_edge_still_hides_part_of_a_building():
    # 20 unseen columns are cloud, not a shift's strip: the scene saw a fragment, dating waits
    edge = np.zeros((N, N), bool)
    edge[20:45, N - 40:] = True
    o = np.ones((N, N), bool)
    o[:, N - 20:] = False
    obs = series(maps(), maps(), maps(extra=edge & o, observed=o), maps(extra=edge), maps(extra=edge))
    c = _only(track(obs), "building_new")
    assert (c.before_scene_id, c.after_scene_id) == ("s1", "s3")


def test_window_edge_strip_is_whole_unseen_lines_at_the_sides_only():
    from sitewatch.changes import window_edge_strip

    o = np.ones((N, N), bool)
    o[:2, :] = False  # a shift's strip at the top
    o[:, N - 4:] = False  # and at the east
    o[50:60, 0:3] = False  # a patch of no data at the west edge: not whole columns
    s = window_edge_strip(o)
    assert s[:2].all() and s[:, N - 4:].all()
    assert not s[2:, :N - 4].any()
    o[:, :10] = False  # wider than any shift: not a strip
    assert not window_edge_strip(o)[:, :10][2:, :].any()


def test_appear_then_disappear_is_new_then_removed():
    obs = series(maps(), maps(block=True), maps(block=True), maps(block=True), maps(), maps())
    changes = track(obs)
    new, gone = _only(changes, "building_new"), _only(changes, "building_removed")
    assert (new.before_scene_id, new.after_scene_id) == ("s0", "s1")
    assert (gone.before_scene_id, gone.after_scene_id) == ("s3", "s4")
    assert changes.index(new) < changes.index(gone)


def test_one_scene_that_missed_a_standing_structure_does_not_make_it_new():
    # the block stands from s0; s2 misses it (the map failed, the ground was clear); s3 sees it again
    obs = series(maps(block=True), maps(block=True), maps(), maps(block=True))
    assert [c for c in track(obs) if c.kind == "building_new"] == []


def test_a_structure_seen_absent_twice_then_standing_is_new():
    # the same pattern once the absence is seen in two clear scenes: a real (re)construction
    obs = series(maps(), maps(), maps(block=True), maps(block=True))
    assert _only(track(obs), "building_new").before_scene_id == "s1"


def test_a_sliver_of_cloud_over_the_object_does_not_disqualify_the_before_scene_but_a_tenth_does():
    sliver, tenth = np.ones((N, N), bool), np.ones((N, N), bool)
    sliver[BLOCK[0], 30:31] = False  # 2% of the block hidden
    tenth[BLOCK[0], 30:35] = False  # 10% hidden: that ground was not clearly seen
    c = _only(track(series(maps(), maps(observed=sliver), maps(block=True), maps(block=True))), "building_new")
    assert c.before_scene_id == "s1"
    c = _only(track(series(maps(), maps(observed=tenth), maps(block=True), maps(block=True))), "building_new")
    assert c.before_scene_id == "s0"


def _faint(strength: float = 0.6) -> StructureMaps:
    """Not mapped, but the map's response over the block is strong (a faint fence band turned down)."""
    m = maps()
    m.strength["building"][BLOCK] = strength
    return m


def test_a_strong_unmapped_response_is_not_absence_so_dating_looks_earlier():
    c = _only(track(series(maps(), _faint(), maps(block=True), maps(block=True))), "building_new")
    assert (c.before_scene_id, c.after_scene_id) == ("s0", "s2")
    assert [c for c in track(series(_faint(), _faint(), maps(block=True), maps(block=True)))] == []
    # a weak response is absence
    c = _only(track(series(maps(), _faint(0.2), maps(block=True), maps(block=True))), "building_new")
    assert c.before_scene_id == "s1"


def test_a_strong_unmapped_response_is_not_a_removal():
    obs = series(maps(block=True), maps(block=True), _faint(), _faint(), maps(block=True))
    assert [c for c in track(obs) if c.kind == "building_removed"] == []


def test_a_building_mostly_hidden_in_the_first_scene_is_not_new_from_its_visible_sliver():
    # s0 hides 70% of the block (snow, cloud) and the visible sliver is too small to map;
    # the block stands whole in s1 and s2: s0 never saw that building, so nothing is dated from it
    o = np.ones((N, N), bool)
    o[BLOCK[0], 30:65] = False
    assert [c for c in track(series(maps(observed=o), maps(block=True), maps(block=True)))
            if c.kind == "building_new"] == []


def _one_off(strength: float) -> list[Observation]:
    blob = np.zeros((N, N), bool)
    blob[80:95, 80:100] = True
    noisy = maps(extra=blob)
    noisy.strength["building"][blob] = strength
    return series(maps(), maps(), noisy, maps(), maps())


def test_one_scene_of_weak_noise_is_not_new():
    assert [c for c in track(_one_off(0.4)) if c.kind.endswith("_new")] == []


def test_one_scene_of_weak_noise_is_not_removed_either():
    assert track(_one_off(0.4)) == []


def test_one_scene_of_strong_noise_is_nothing():
    assert track(_one_off(0.8)) == []


def test_evidence_is_plain_json():
    import json

    c = _only(track(series(maps(), maps(), maps(block=True), maps(block=True))), "building_new")
    assert json.loads(json.dumps(dict(c.evidence))) == dict(c.evidence)


def test_newest_scene_alone_is_reported_but_with_a_lower_score():
    last = track(series(maps(), maps(), maps(block=True)))
    kept = track(series(maps(), maps(), maps(block=True), maps(block=True)))
    a, b = _only(last, "building_new"), _only(kept, "building_new")
    assert a.after_scene_id == b.after_scene_id == "s2"
    assert a.score < b.score


def test_no_change_without_observations_before():
    assert track(series(maps(block=True))) == []
    assert track([]) == []
    # standing from the first scene on: nothing is new
    assert track(series(maps(block=True), maps(block=True), maps(block=True))) == []


def test_deterministic_whatever_the_input_order():
    blob = np.zeros((N, N), bool)
    blob[80:100, 80:110] = True
    scenes = [maps(), maps(observed=cloudy()), maps(block=True), maps(block=True, extra=blob),
              maps(block=True, extra=blob), maps(extra=blob), maps(extra=blob)]
    obs = series(*scenes)
    ref = track(obs)
    key = [(c.kind, c.before_scene_id, c.after_scene_id, c.area_m2, c.score, c.geometry.wkb) for c in ref]
    assert len(ref) == 3
    for seed in range(3):
        shuffled = obs[:]
        random.Random(seed).shuffle(shuffled)
        got = track(shuffled)
        assert [(c.kind, c.before_scene_id, c.after_scene_id, c.area_m2, c.score, c.geometry.wkb) for c in got] == key


def _square_ring(side_px: int, off: int, n: int, width: int = 1) -> np.ndarray:
    m = np.zeros((n, n), bool)
    m[off:off + side_px, off:off + side_px] = True
    m[off + width:off + side_px - width, off + width:off + side_px - width] = False
    return m


def test_new_wall_has_a_length():
    g = Grid("EPSG:32645", Affine(0.5, 0, 500000.0, 0, -0.5, 4400000.0), 260, 260)
    ring = _square_ring(200, 30, 260, width=2)  # a 100 m square wall, 1 m thick
    obs = series(maps(grid=g), maps(grid=g), maps(grid=g, wall=ring), maps(grid=g, wall=ring))
    walls = [c for c in track(obs) if c.kind == "wall_new"]
    assert walls and all(c.after_scene_id == "s2" for c in walls)
    assert sum(c.length_m or 0 for c in walls) == pytest.approx(400, rel=0.08)


def test_coarse_scenes_never_report_walls_fences_towers():
    g = Grid("EPSG:32645", Affine(10, 0, 500000.0, 0, -10, 4400000.0), 60, 60)
    blk = np.zeros((60, 60), bool)
    blk[20:23, 20:30] = True  # 100 x 30 m
    obs = series(maps(grid=g, gsd=10), maps(grid=g, gsd=10), maps(grid=g, gsd=10, extra=blk),
                 maps(grid=g, gsd=10, extra=blk))
    changes = track(obs)
    assert [c.kind for c in changes] == ["building_new"]
    assert changes[0].area_m2 == pytest.approx(3000)


# --- metrics ------------------------------------------------------------------------------------


def test_measure_square_wall_length_and_enclosed_area():
    g = Grid("EPSG:32645", Affine(0.5, 0, 500000.0, 0, -0.5, 4400000.0), 260, 260)
    ring = _square_ring(200, 30, 260, width=2)  # 100 m side, 1 m thick
    tower = np.zeros((260, 260), bool)
    for r, c in ((30, 30), (30, 224), (224, 30)):
        tower[r:r + 6, c:c + 6] = True
    m = maps(grid=g, wall=ring)
    m.presence["tower"][...] = tower
    m.presence["building"][100:130, 60:160] = True  # 50 x 15 m
    got = measure(m)
    assert isinstance(got, Metrics)
    assert got.wall_length_m == pytest.approx(400, rel=0.05)
    assert got.fence_length_m == 0
    assert got.tower_count == 3
    assert got.built_area_m2 == pytest.approx(750)
    assert got.enclosed_area_m2 == pytest.approx(99 * 99, rel=0.1)


def test_measure_enclosed_area_within_three_percent():
    g = Grid("EPSG:32645", Affine(0.5, 0, 500000.0, 0, -0.5, 4400000.0), 260, 260)
    got = measure(maps(grid=g, wall=_square_ring(200, 30, 260, width=2)))
    assert got.enclosed_area_m2 == pytest.approx(99 * 99, rel=0.03)


def test_measure_coarse_scene_has_no_line_metrics():
    g = Grid("EPSG:32645", Affine(10, 0, 500000.0, 0, -10, 4400000.0), 30, 30)
    m = maps(grid=g, gsd=10)
    m.presence["building"][5:8, 5:15] = True
    got = measure(m)
    assert got.built_area_m2 == pytest.approx(3000)
    assert got.wall_length_m is None and got.fence_length_m is None
    assert got.tower_count is None and got.enclosed_area_m2 is None
    assert KINDS[0] == "building"


# --- on the project's renderer -------------------------------------------------------------------


def _rendered_observations(structs, epochs, size: float, gsd: float, seed: int) -> list:
    """Each epoch rendered (clouds masked), mapped by the default detector in date order."""
    from sitewatch.detect import default_detector
    from sitewatch.scenes import SceneRaster, SceneRef
    from sitewatch.testbed import synth

    ground = synth.Ground(size, 4, fields=((-size / 2 + 5, -size / 2 + 5, 60, 50),))
    det, history, obs = default_detector(), [], []
    n = int(size / gsd)
    grid = Grid("EPSG:32645", Affine(gsd, 0, -size / 2, 0, -gsd, size / 2), n, n)
    for i, e in enumerate(epochs):
        r = synth.render(ground, [s for s in structs if s.id in e.present], gsd, e.conditions, seed=seed + i)
        when = dt.datetime(e.date.year, e.date.month, e.date.day, 5, tzinfo=dt.timezone.utc)
        v = ~r.cloud
        raster = SceneRaster(SceneRef(e.date.isoformat(), "synth", when, {}), grid,
                             {k: np.where(v, a, np.nan).astype(np.float32) for k, a in r.bands.items()}, v, r.cloud,
                             "0" * 64, gsd)
        m = det.maps(raster, history)
        history.append(m)
        obs.append(Observation(e.date.isoformat(), when, m))
    return obs


@pytest.mark.xfail(strict=True, reason="the 0.3-2 m building maps keep the scene's own per-date roof map (sitewatch.buildings) beside the learnt change (sitewatch.finechange), and that map over-maps the renderer's compound: extra building_new on it; real imagery is the judge (LEVIR-CD held out by pair: pixel F1 0.25 -> 0.62 with model version 3, settings nested, issue 13)")
def test_rendered_build_up_and_desecuritisation_match_the_truth():
    """A compound built up, partly hidden by cloud, then stripped of fences and towers (0.5 m).

    Every structure stands in at least two clear scenes, so the truth does not depend on
    how one-sighting changes are treated.
    """
    from sitewatch.testbed import synth

    size, gsd, lat = 240.0, 0.5, 43.0
    structs, g = synth.compound(11, size_m=size)
    b, w, f, t = (frozenset(g[k]) for k in ("blocks", "wall", "fences", "towers"))
    t2 = next(s for s in structs if s.id == "tower-2")
    plan = [("2017-04-12", frozenset(), {}), ("2017-09-20", b, {"shift_px": (1.2, -0.6)}),
            ("2018-04-05", b | w, {"gain": (1.15,) * 5}),
            ("2018-07-18", b | w | f | t, {"clouds": (synth.Cloud(t2.x + 8, t2.y + 6, 25.0),)}),
            ("2018-10-02", b | w | f | t, {"offset": 0.02}), ("2019-05-14", b | w | f | t, {"shift_px": (-0.7, 0.9)}),
            ("2019-09-14", b | w, {}), ("2020-08-30", b | w, {})]
    epochs = [synth.Epoch(dt.date.fromisoformat(d), p, synth.conditions_for(dt.date.fromisoformat(d), lat, **kw))
              for d, p, kw in plan]
    changes = track(_rendered_observations(structs, epochs, size, gsd, seed=100))
    want = {(x.kind, x.last_before.isoformat(), x.first_after.isoformat()) for x in synth.truth(structs, epochs)}
    got = {(c.kind, c.before_scene_id, c.after_scene_id) for c in changes}
    assert got == want
    # one change per structure that persists (fence runs may come in pieces, never duplicated in time)
    assert len([c for c in changes if c.kind == "building_new"]) == len(b)
    assert len([c for c in changes if c.kind == "wall_new"]) >= 1
    assert all(0 < c.score <= 1 for c in changes)


def test_rendered_blocks_taken_down_are_building_removed():
    """Dormitory blocks standing in three clear scenes, then taken down and gone in two (0.5 m). The change
    model reads the renderer's pale roofs coming off pale ground as no change; the roofs themselves show
    them gone (sitewatch.gone)."""
    from sitewatch.testbed import synth

    size, gsd, lat = 240.0, 0.5, 43.0
    structs, g = synth.compound(11, size_m=size)
    b = frozenset(g["blocks"])
    plan = [("2018-04-05", b), ("2018-07-18", b), ("2018-10-02", b), ("2019-05-14", frozenset()),
            ("2019-09-14", frozenset())]
    epochs = [synth.Epoch(dt.date.fromisoformat(d), p, synth.conditions_for(dt.date.fromisoformat(d), lat))
              for d, p in plan]
    removed = [c for c in track(_rendered_observations(structs, epochs, size, gsd, seed=200))
               if c.kind == "building_removed"]
    assert len(removed) >= len(b) - 1  # blocks that stood side by side may go as one
    assert all((c.before_scene_id, c.after_scene_id) == ("2018-10-02", "2019-05-14") for c in removed)
    assert all(c.evidence["finechange"]["roofs_gone_by_rule"] >= 1 for c in removed)  # the evidence says how


def test_enclosure_under_partial_cloud_is_unknown_not_zero():
    g = Grid("EPSG:32645", Affine(0.5, 0, 500000.0, 0, -0.5, 4400000.0), 260, 260)
    ring = _square_ring(200, 30, 260, width=2)
    seen = np.ones((260, 260), bool)
    seen[10:60, 100:160] = False  # a cloud over the northern wall
    got = measure(maps(grid=g, wall=ring & seen, observed=seen))
    assert got.enclosed_area_m2 is None or got.enclosed_area_m2 == pytest.approx(99 * 99, rel=0.1)


def _fence(rows: list[slice], strong_rows: slice | None = None) -> StructureMaps:
    """A fence run down column 60 (1 px wide) present over ``rows``; ``strong_rows``: a strong but
    unmapped fence response there (a wall beside it)."""
    m = maps()
    for r in rows:
        m.presence["fence"][r, 60] = True
    m.strength["fence"][:] = m.presence["fence"] * np.float32(0.8)
    if strong_rows is not None:
        m.strength["fence"][strong_rows, 60] = 0.8
    return m


def test_one_fence_run_is_one_change_when_a_wall_made_one_piece_look_further_back():
    """Two pieces of one fence (a gap at a junction): in s1 the upper piece's ground is clearly empty,
    while a wall beside the lower piece makes s1 ambiguous there (strong, not present), so that piece
    alone would be dated from s0. The run was not present in s1 anywhere: one change, s1..s2."""
    pieces = [slice(10, 50), slice(53, 93)]
    obs = series(_fence([]), _fence([], strong_rows=pieces[1]), _fence(pieces), _fence(pieces))
    c = _only(track(obs), "fence_new")
    assert (c.before_scene_id, c.after_scene_id) == ("s1", "s2") and c.evidence["pieces"] == 2
    assert c.length_m is not None and c.length_m >= 75
    # a piece whose ground s1 did not see: nobody saw the run absent in s1, so the pieces keep their dates
    hidden = _fence([])
    hidden.observed[52:100, 50:70] = False
    got = sorted((c.before_scene_id, c.after_scene_id) for c in track(series(_fence([]), hidden, _fence(pieces),
                                                                          _fence(pieces))) if c.kind == "fence_new")
    assert got == [("s0", "s2"), ("s1", "s2")]
