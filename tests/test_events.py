"""The rules that reconcile a site's stored detections with a run's judgement (sitewatch.events),
on hand-made records: which stored claims a later run withdraws, and which it must leave."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import MultiPolygon, box

from sitewatch.events import clear_after, clear_share, reconcile, withdrawals
from sitewatch.grid import Grid, to_crs
from sitewatch.store import DetectionRecord

RES = 10.0
GRID = Grid("EPSG:32644", Affine(RES, 0, 500000.0, 0, -RES, 4100000.0), 20, 20)


def _outline(c0: int, r0: int, c1: int, r1: int) -> MultiPolygon:
    """Pixels [r0:r1, c0:c1] of GRID as a WGS84 outline, as detections store them."""
    t = GRID.transform
    g = box(t.c + c0 * RES, t.f - r1 * RES, t.c + c1 * RES, t.f - r0 * RES)
    return MultiPolygon([to_crs(g, GRID.crs, "EPSG:4326")])


def _det(did: str, *, after=dt.date(2020, 10, 11), status="pending", confirmed=False, res=RES, model=None,
         geom=None) -> DetectionRecord:
    ev: dict = {"confirmed_by_next_clear_scene": confirmed, "grid_res_m": res}
    if model:
        ev["model"] = {"file": "m.onnx", "sha256": model}
    return DetectionRecord(detection_id=did, site_id="s1", kind="building_new", before_date=dt.date(2020, 5, 4),
                           after_date=after, before_scene_id="b", after_scene_id="a", area_m2=2400.0,
                           length_m=None, score=0.4, geometry=geom or _outline(2, 2, 8, 6), run_id="r",
                           status=status, evidence=ev)


def always(_d):
    return True


def test_a_refuted_pending_claim_is_withdrawn():
    assert withdrawals([], [_det("d1")], set(), always) == ["d1"]


@pytest.mark.parametrize("why, stored, reviewed, later", [
    ("reviewed, though still pending", _det("d1"), {"d1"}, always),
    ("confirmed by a reviewer", _det("d1", status="confirmed"), set(), always),
    ("rejected by a reviewer", _det("d1", status="rejected"), set(), always),
    ("confirmed by the next clear scene", _det("d1", confirmed=True), set(), always),
    ("no clear scene after it judged yet", _det("d1"), set(), lambda d: False),
])
def test_what_is_never_withdrawn(why, stored, reviewed, later):
    assert withdrawals([], [stored], reviewed, later) == [], why


def test_the_same_event_made_again_is_kept_or_superseded_not_withdrawn():
    old = _det("d1")
    again = withdrawals([old], [old], set(), always)
    moved = _det("d2", after=dt.date(2020, 9, 1), geom=_outline(2, 2, 8, 7))  # better dated, a pixel row more
    done = reconcile([moved], [old], set(), always)
    assert again == [] and done.withdraw == [] and done.better == {"d1": moved} and done.fresh == []
    elsewhere = _det("d3", geom=_outline(12, 12, 18, 18))  # another structure: old one is refuted, d3 is new
    done = reconcile([elsewhere], [old], set(), always)
    assert done.withdraw == ["d1"] and done.fresh == [elsewhere] and done.better == {}


def _obs(day: dt.date, observed: np.ndarray, kinds=("building",), model=None):
    info = {"model": {"file": "m.onnx", "sha256": model}} if model else {}
    maps = SimpleNamespace(grid=GRID, observed=observed, kinds=kinds, info=info)
    return SimpleNamespace(scene_id=str(day), acquired=dt.datetime.combine(day, dt.time(5)), maps=maps)


CLEAR = np.ones(GRID.shape, bool)
CLOUDED = CLEAR.copy()
CLOUDED[2:6, 2:8] = False  # cloud over the detection's outline only


def test_clear_share_reads_the_outline_on_the_grid():
    half = CLEAR.copy()
    half[2:4, 2:8] = False
    assert clear_share(_obs(dt.date(2021, 1, 1), half).maps, _outline(2, 2, 8, 6)) == pytest.approx(0.5)
    assert clear_share(_obs(dt.date(2021, 1, 1), CLOUDED).maps, _outline(12, 12, 18, 18)) == 1.0


@pytest.mark.parametrize("why, det, series, models, judged", [
    ("a clear scene after it, same series", _det("d"), {RES: [_obs(dt.date(2021, 6, 27), CLEAR)]}, (), True),
    ("the later scene is clouded over it", _det("d"), {RES: [_obs(dt.date(2021, 6, 27), CLOUDED)]}, (), False),
    ("only its own and earlier scenes", _det("d"), {RES: [_obs(dt.date(2020, 10, 11), CLEAR)]}, (), False),
    ("another resolution's series", _det("d", res=0.5), {RES: [_obs(dt.date(2021, 6, 27), CLEAR)]}, (), False),
    ("maps that cannot show buildings", _det("d"), {RES: [_obs(dt.date(2021, 6, 27), CLEAR, kinds=())]}, (), False),
    ("its model's maps, model run", _det("d", model="aa"),
     {RES: [_obs(dt.date(2021, 6, 27), CLEAR, kinds=(), model="aa")]}, ("aa",), True),
    ("its model not run this time", _det("d", model="aa"),
     {RES: [_obs(dt.date(2021, 6, 27), CLEAR, kinds=(), model="aa")]}, (), False),
    ("another model's maps", _det("d", model="aa"),
     {RES: [_obs(dt.date(2021, 6, 27), CLEAR, model="bb")]}, ("aa", "bb"), False),
])
def test_clear_after_only_where_this_judgement_could_have_made_it(why, det, series, models, judged):
    assert clear_after(series, models)(det) is judged, why
    assert (withdrawals([], [det], set(), clear_after(series, models)) == ["d"]) is judged, why


def test_an_unconfirmed_claim_with_its_confirmation_still_to_come_is_kept():
    """A stored claim marked unconfirmed whose event this run makes again (now confirmed) is not withdrawn."""
    stored = _det("d1")
    now = replace(stored, evidence={**stored.evidence, "confirmed_by_next_clear_scene": True})
    assert withdrawals([now], [stored], set(), always) == []


def test_a_withdrawn_claim_keeps_what_it_said():
    """The row goes; the run's summary keeps its kind, dates, scenes, outline and maker."""
    import json

    import shapely

    from sitewatch.events import claim

    d = replace(_det("det-x"), detector="sitewatch-structures/2")
    c = claim(d)
    assert json.loads(json.dumps(c)) == c  # JSON-safe, as runs.summary stores it
    assert (c["detection_id"], c["kind"], c["before_date"], c["after_date"], c["after_scene_id"], c["detector"]) == \
        ("det-x", "building_new", "2020-05-04", "2020-10-11", "a", "sitewatch-structures/2")
    assert shapely.from_wkt(c["outline_wkt"]).equals_exact(d.geometry, 1e-6)


def test_reconcile_asks_only_nearby_outlines_and_answers_as_asking_every_pair():
    """reconcile and withdrawals ask same_event only of outlines whose boxes meet (and of the same id):
    on many scattered, overlapping, touching and far-apart outlines (an empty one too), their answers
    are those of the plain double loop over every pair."""
    from sitewatch.events import Reconciled, same_event

    rng = np.random.default_rng(5)

    def scatter(prefix: str, n: int) -> list[DetectionRecord]:
        out = []
        for k in range(n):
            c0, r0 = (int(v) for v in rng.integers(0, 17, 2))
            c1, r1 = c0 + int(rng.integers(1, 4)), r0 + int(rng.integers(1, 4))
            out.append(_det(f"{prefix}{k}", after=dt.date(2020, 10, 11 + int(rng.integers(0, 3))),
                            confirmed=bool(rng.integers(0, 2)), geom=_outline(c0, r0, c1, r1)))
        return out

    records, stored = scatter("r", 40), scatter("s", 40)
    # records stored already (the same detection judged again), some of them overlapping other stored outlines
    stored += [replace(records[k], status="pending") for k in (3, 10, 21, 33)] + [_det("empty", geom=MultiPolygon())]
    stored.append(replace(records[10], detection_id="s-again", status="pending"))  # the same event under another id
    reviewed = {"s1", "s7"}

    def plain() -> Reconciled:
        out = Reconciled()
        for r in records:
            same = [s for s in stored if same_event(r, s)]
            if not same:
                out.fresh.append(r)
            elif not any(s.detection_id == r.detection_id for s in same):
                for s in same:
                    if s.status == "pending" and s.detection_id not in out.better:
                        out.better[s.detection_id] = r
        out.withdraw.extend(s.detection_id for s in stored if s.status == "pending" and s.detection_id not in reviewed
                            and not s.evidence.get("confirmed_by_next_clear_scene")
                            and not any(same_event(r, s) for r in records))
        return out

    got, want = reconcile(records, stored, reviewed, always), plain()
    assert got == want
    again = [r for r in records if any(s.detection_id == r.detection_id for s in stored)]
    assert len(again) == 4 and any(same_event(r, s) for r in again for s in stored if s.detection_id != r.detection_id)
    assert want.fresh and want.better and want.withdraw and len(want.fresh) < len(records)  # each rule had work


def test_same_event_skips_the_union_only_where_the_outlines_do_not_overlap():
    """same_event returns early when two outlines share no area: its answers are the plain IoU
    test's on overlapping, touching and apart outlines, at several thresholds (0 included)."""
    from sitewatch.events import same_event

    rng = np.random.default_rng(9)
    answers = set()
    for k in range(150):
        boxes = []
        for _ in range(2):
            c0, r0 = (int(v) for v in rng.integers(0, 8, 2))
            boxes.append((c0, r0, c0 + int(rng.integers(1, 6)), r0 + int(rng.integers(1, 6))))
        a, b = _det("a", geom=_outline(*boxes[0])), _det("b", geom=_outline(*boxes[1]))
        for t in (0.0, 0.3, 0.6):
            inter, union = a.geometry.intersection(b.geometry).area, a.geometry.union(b.geometry).area
            plain = union > 0 and inter / union >= t
            assert same_event(a, b, t) == plain
            answers.add((plain, inter == 0))
    assert answers == {(True, True), (True, False), (False, True), (False, False)}
