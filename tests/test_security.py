"""The security-level rule on known layouts: 0..4, None for coarse imagery, desecuritisation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pytest
from affine import Affine

from sitewatch.grid import Grid
from sitewatch.security import (RULE, DatedLevel, desecuritisation, estimate, layout, levels_over_time,
                                store_updates)
from sitewatch.store import MetricsRecord
from sitewatch.structures import KINDS, StructureMaps

GRID = Grid("EPSG:32645", Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4800000.0), 240, 240)


@dataclass
class M:
    wall_length_m: float | None
    fence_length_m: float | None
    tower_count: int | None
    enclosed_area_m2: float | None


def _rect(a: np.ndarray, r0: int, c0: int, r1: int, c1: int) -> None:
    a[r0, c0:c1 + 1] = a[r1, c0:c1 + 1] = True
    a[r0:r1 + 1, c0] = a[r0:r1 + 1, c1] = True


def _maps(*, wall: bool = True, outer_fence: bool = False, internal: bool = False, towers: int = 0) -> StructureMaps:
    p = {k: np.zeros(GRID.shape, bool) for k in KINDS}
    if wall:
        _rect(p["wall"], 40, 40, 200, 200)
    if outer_fence:  # a second line 12 m outside the wall
        _rect(p["fence"], 28, 28, 212, 212)
    if internal:  # courtyards: one fence across, two down
        p["fence"][120, 44:197] = True
        p["fence"][124:197, 100] = True
        p["fence"][124:197, 150] = True
    for i in range(towers):
        p["tower"][41:44, 41 + 150 * i:44 + 150 * i] = True
    return StructureMaps(GRID, KINDS, p, {k: v.astype(np.float32) for k, v in p.items()}, np.ones(GRID.shape, bool))


def _metrics(maps: StructureMaps) -> M:
    """Plain pixel counts (1 m grid): the rule reads enclosure from the maps themselves."""
    from scipy import ndimage

    p = maps.presence
    return M(float(p["wall"].sum()), float(p["fence"].sum()), int(ndimage.label(p["tower"])[1]), 0.0)


@pytest.mark.parametrize("kw, level", [
    (dict(wall=False), 0),
    (dict(), 1),
    (dict(internal=True), 2),
    (dict(internal=True, towers=2), 3),
    (dict(outer_fence=True, internal=True, towers=2), 4),
    (dict(towers=2), 2),  # perimeter + towers, no internal fences: one step each
])
def test_levels_from_maps(kw, level):
    maps = _maps(**kw)
    s = estimate(_metrics(maps), maps)
    assert s.level == level, s.reasons
    assert s.reasons and all(isinstance(r, str) for r in s.reasons)


def test_layout_tells_layers_from_courtyards():
    lay = layout(_maps(outer_fence=True))
    assert lay.layered and 8 <= lay.layer_gap_m <= 16 and lay.courtyards == 1
    lay = layout(_maps(internal=True))
    assert not lay.layered and lay.courtyards == 4 and lay.internal_m > 100


def test_levels_from_metrics_alone():
    assert estimate(M(None, None, None, None)).level is None
    assert "too coarse" in estimate(M(None, None, None, None)).reasons[0]
    assert estimate(M(0.0, 0.0, 0, 0.0)).level == 0
    assert estimate(M(0.0, 0.0, 3, 0.0)).level == 0  # towers alone make no perimeter
    assert estimate(M(640.0, 0.0, 0, 25_000.0)).level == 1
    assert estimate(M(640.0, 400.0, 0, 25_000.0)).level == 2  # much more line than the outline
    assert estimate(M(640.0, 400.0, 4, 25_000.0)).level == 3
    assert estimate(M(640.0, 0.0, 4, 25_000.0)).level == 2


def _row(i: int, level_kw: dict, month: int) -> tuple[MetricsRecord, StructureMaps]:
    maps = _maps(**level_kw)
    m = _metrics(maps)
    when = dt.datetime(2018 + month // 12, month % 12 + 1, 10, 5, tzinfo=dt.timezone.utc)
    return MetricsRecord("s", f"sc{i}", when, 0.0, m.wall_length_m, m.fence_length_m, m.tower_count,
                         m.enclosed_area_m2, "r"), maps


def test_desecuritisation_when_towers_and_fences_come_down():
    plan = [dict(), dict(internal=True), dict(internal=True, towers=2), None, dict(internal=True), dict()]
    rows, maps = [], {}
    for i, kw in enumerate(plan):
        if kw is None:  # a coarse scene in between: no level, skipped when comparing
            when = dt.datetime(2018, 12, 1, tzinfo=dt.timezone.utc)
            rows.append(MetricsRecord("s", f"sc{i}", when, 900.0, None, None, None, None, "r"))
            continue
        r, m = _row(i, kw, i * 2)
        rows.append(r)
        maps[r.scene_id] = m
    levels = levels_over_time(list(reversed(rows)), maps)  # sorted by date whatever the input order
    assert [x.scene_id for x in levels] == sorted((r.scene_id for r in rows), key=lambda s: next(
        r.acquired for r in rows if r.scene_id == s))
    by_id = {x.scene_id: x.level for x in levels}
    assert [by_id[f"sc{i}"] for i in range(6)] == [1, 2, 3, None, 2, 1]
    falls = desecuritisation(levels)
    assert [(f.level_from, f.level_to) for f in falls] == [(3, 2), (2, 1)]
    d_from, d_to, l_from, l_to = falls[0]
    assert d_from < d_to and (l_from, l_to) == (3, 2)
    assert falls[0].scene_from == "sc2" and falls[0].scene_to == "sc4"  # across the coarse scene
    assert store_updates(levels)["sc3"][0] is None and "tower" in store_updates(levels)["sc2"][1]


def test_no_desecuritisation_when_level_holds_or_rises():
    t = dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc)
    levels = [DatedLevel(f"s{i}", t + dt.timedelta(days=i), lv, ()) for i, lv in enumerate([0, 1, 1, None, 3])]
    assert desecuritisation(levels) == []


def test_rule_is_written_down():
    for words in ("too coarse", "perimeter", "internal fences", "watchtowers", "layered", "estimate"):
        assert words in RULE.lower()


def test_site_levels_prefer_what_the_run_stored(tmp_path):
    from shapely.geometry import box

    from sitewatch.security import site_levels
    from sitewatch.sites import Site
    from sitewatch.store import SceneRecord, Store

    store = Store(tmp_path / "f.gpkg")
    store.upsert_sites([Site("s", box(88.0, 43.0, 88.01, 43.01))])
    for i, kw in enumerate([dict(internal=True, towers=2), dict()]):
        r, maps = _row(i, kw, i * 3)
        store.save_scene(SceneRecord(r.scene_id, "s", "t", r.acquired, 0.5, 0.0, 1.0, None, "r", grid_res_m=1.0),
                         maps=maps.to_bytes(), metrics=r)
    assert [x.level for x in site_levels(store, "s")] == [3, 1]  # estimated from the stored maps
    store.update_security("s", {"sc1": (None, "not assessed: cloud")})
    levels = site_levels(store, "s")
    assert [x.level for x in levels] == [3, None] and levels[1].reasons == ("not assessed: cloud",)
    assert desecuritisation(levels) == []
