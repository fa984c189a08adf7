"""Scenes older than a site's 10 m change reference: the site's maps are remade from them.

The case that failed: a first run from 2019-09 (halls already standing), then a run over the whole
archive. Each older scene was mapped as change *since* the 2019-09 reference, so the four halls
built in 2019 became one 33,800 m2 ``building_removed`` and were never reported built. Now the run
over the archive ends as one run over all scenes would; when the later scenes cannot be read again
the older ones wait, named, and nothing false is stored.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pytest

from sitewatch.monitor import MonitorParams, run
from sitewatch.rebase import plan
from sitewatch.s2change import REF_PREFIX
from sitewatch.scenes import SceneRef
from sitewatch.store import Store

UTC = dt.timezone.utc


def _ref(sid: str, day: str) -> SceneRef:
    return SceneRef(sid, "cat", dt.datetime.fromisoformat(day).replace(tzinfo=UTC), {})


def _kept(sid: str, day: str, res: float = 10.0, reference: bool = False):
    feats = {REF_PREFIX + "red": np.zeros((2, 2), np.float16)} if reference else {}
    rec = SimpleNamespace(scene_id=sid, acquired=dt.datetime.fromisoformat(day).replace(tzinfo=UTC), grid_res_m=res)
    return rec, SimpleNamespace(features=feats)


def test_plan_remaps_every_stored_scene_of_the_grid_oldest_first():
    kept = [_kept("c", "2020-05-01", reference=True), _kept("d", "2020-09-01"), _kept("e", "2021-01-01")]
    found = [_ref(s, d) for s, d in (("a", "2019-01-01"), ("b", "2020-06-01"), ("c", "2020-05-01"),
                                     ("e", "2021-01-01"), ("d", "2020-09-01"))]
    todo = [found[0], found[1]]
    rb = plan("s", kept, todo, found)
    assert [s.scene_id for s in rb.remap] == ["c", "d", "e"]
    assert rb.resolutions == {10.0} and not rb.held and not rb.why
    # a new scene after the reference changes nothing; a grid without a reference neither
    assert plan("s", kept, [found[1]], found).remap == ()
    assert plan("s", [_kept("c", "2020-05-01"), _kept("d", "2020-09-01")], todo, found).remap == ()


def test_plan_holds_the_older_scenes_when_a_stored_one_cannot_be_read_again():
    kept = [_kept("c", "2020-05-01", reference=True), _kept("d", "2020-09-01"),
            _kept("f", "2020-07-01", res=0.5, reference=True)]
    found = [_ref("a", "2019-01-01"), _ref("c", "2020-05-01"), _ref("f", "2020-07-01")]  # "d" is outside the search
    rb = plan("site-1", kept, [found[0]], found)
    assert rb.held == {"a"} and rb.remap == () and rb.resolutions == frozenset()
    (line,) = rb.why
    assert "site-1" in line and "c (2020-05-01)" in line and "d" in line and "--since/--until" in line


@pytest.fixture(scope="module")
def s2_series(tmp_path_factory):
    from sitewatch.testbed.demo import demo_sites, write_series

    (site,) = [s for s in demo_sites() if s.site_id == "demo-s2"]
    return write_series(tmp_path_factory.mktemp("rebase") / "data", [site], 2017)


def _facts(db) -> list[tuple]:
    return sorted((d.kind, d.before_date, d.after_date, d.status, round(d.area_m2 / 100))
                  for d in Store(db).detections())


def _run(series, db, since=None, until=None):
    return run(MonitorParams(sites=str(series.sites_path), imagery=str(series.catalog_path), db=str(db),
                             since=since, until=until))


def test_the_archive_after_a_recent_first_run_ends_as_one_run(s2_series, tmp_path, gpkg_valid):
    whole = tmp_path / "whole.gpkg"
    _run(s2_series, whole)
    want = _facts(whole)
    assert [f[:3] for f in want] == [("building_new", dt.date(2019, 3, 30), dt.date(2019, 9, 21))] * 4

    db = tmp_path / "late.gpkg"
    first = _run(s2_series, db, since=dt.date(2019, 9, 1))
    assert first.as_dict()["scenes_new"] == 4 and _facts(db) == []
    again = _run(s2_series, db).as_dict()
    assert _facts(db) == want
    assert again["scenes_new"] == 4, "the four older scenes are new; the four remapped ones are not"
    assert any("4 stored scene(s) at 10 m mapped again" in n for n in again["notes"]), again["notes"]
    assert not [d for d in Store(db).detections() if d.kind.endswith("_removed")]
    gpkg_valid(db)


def test_older_scenes_wait_when_the_later_ones_are_outside_the_run(s2_series, tmp_path):
    db = tmp_path / "held.gpkg"
    _run(s2_series, db, since=dt.date(2019, 9, 1))
    held = _run(s2_series, db, until=dt.date(2020, 12, 31)).as_dict()  # 2021-06-27 is outside
    assert held["scenes_new"] == 0 and _facts(db) == []
    (line,) = [w for w in held["warnings"] if "older than its change reference" in w]
    assert "not mapped" in line and "widen --since/--until" in line
    assert len(Store(db).scenes()) == 4, "nothing stored for the scenes that wait"
    _run(s2_series, db)
    whole = tmp_path / "whole.gpkg"
    _run(s2_series, whole)
    assert _facts(db) == _facts(whole)


def test_a_fine_change_reference_is_one_too():
    """At 0.3-2 m the change model's reference (sitewatch.finechange) is remade from an older scene as well."""
    from sitewatch import finechange

    rec, _ = _kept("c", "2020-05-01", res=0.5)
    fine_ref = SimpleNamespace(features={finechange.REF_PREFIX + "pb": np.zeros((2, 2), np.uint8)})
    later = _kept("d", "2020-09-01", res=0.5)
    found = [_ref("a", "2019-01-01"), _ref("c", "2020-05-01"), _ref("d", "2020-09-01")]
    rb = plan("s", [(rec, fine_ref), later], [found[0]], found)
    assert [s.scene_id for s in rb.remap] == ["c", "d"] and rb.resolutions == {0.5}
