"""The demo's check against what it planted: each planted change found right, with other dates,
in pieces or missed; each detection near nothing planted of its kind a false alarm."""

from __future__ import annotations

import datetime as dt
import json

from shapely.geometry import box, mapping

from sitewatch.testbed.truthcheck import Found, Planted, check, read_truth, write

D = dt.date.fromisoformat
M = 1 / 111_000  # about a metre of latitude, in degrees


def _box(x_m, y_m, w_m, h_m):
    lon, lat = 88.33, 43.36
    k = 1 / (111_000 * 0.7266)  # a metre of longitude at 43.36 N, in degrees
    return box(lon + x_m * k, lat + y_m * M, lon + (x_m + w_m) * k, lat + (y_m + h_m) * M)


HALL = Planted("s", "building_new", "hall-0", D("2019-03-30"), D("2019-09-21"), _box(0, 0, 30, 100))
FENCE = Planted("s", "fence_new", "fence-1", D("2018-04-05"), D("2018-07-18"), _box(100, 0, 1, 250))
FENCE_GONE = Planted("s", "fence_removed", "fence-1", D("2018-10-02"), D("2019-09-14"), _box(100, 0, 1, 250))
TOWER = Planted("s", "tower_new", "tower-2", D("2018-04-05"), D("2018-10-02"), _box(200, 200, 4, 4))


def test_each_planted_change_and_each_detection_gets_one_verdict():
    found = [
        Found("d1", "s", "building_new", D("2019-03-30"), D("2019-09-21"), _box(1, 2, 28, 96), 2800, 0.9),
        # one fence as two pieces with different dates
        Found("d2", "s", "fence_new", D("2018-04-05"), D("2018-07-18"), _box(100.5, 0, 1, 120), 120, 0.8),
        Found("d3", "s", "fence_new", D("2018-07-18"), D("2018-10-02"), _box(100.5, 130, 1, 120), 120, 0.8),
        # the fence's removal dated a year late
        Found("d4", "s", "fence_removed", D("2019-09-14"), D("2020-08-30"), _box(100, 0, 1, 250), 250, 0.7),
        # a cloud's edge called a building, and a building where a fence stands (wrong kind)
        Found("d5", "s", "building_new", D("2019-03-30"), D("2019-07-08"), _box(-400, -400, 250, 250), 63_400, 0.997),
        Found("d6", "s", "building_new", D("2018-04-05"), D("2018-07-18"), _box(100, 0, 1, 250), 250, 0.5),
    ]
    res = check([HALL, FENCE, FENCE_GONE, TOWER], found)
    assert res.right == [HALL]
    assert [(p, d.detection_id) for p, d in res.misdated] == [(FENCE_GONE, "d4")]
    assert [(p, [d.detection_id for d in ds]) for p, ds in res.pieces] == [(FENCE, ["d2", "d3"])]
    assert res.missed == [TOWER]
    assert [d.detection_id for d in res.false] == ["d5", "d6"]
    assert not res.ok
    lines = res.lines()
    assert lines[0] == ("check against the planted truth: 1 of 4 planted changes found with their dates, "
                        "1 with other dates, 1 in pieces, 1 missed; 2 false alarm(s)")
    assert any(ln.startswith("  missed: s tower_new tower-2 (absent 2018-04-05, present 2018-10-02)") for ln in lines)
    assert any("in 2 pieces: s fence_new fence-1" in ln and "2018-07-18..2018-10-02 (d3)" in ln for ln in lines)
    assert any("other dates: s fence_removed fence-1 (present 2018-10-02, gone 2019-09-14)" in ln for ln in lines)
    assert any(ln.startswith("  false alarm: s building_new 2019-03-30..2019-07-08, 63,400 m², score 0.997 (d5)")
               for ln in lines)


def test_a_detection_a_little_off_the_footprint_is_it_and_one_far_off_is_not():
    near = Found("n", "s", "tower_new", TOWER.before_date, TOWER.after_date, _box(205, 200, 4, 4))
    far = Found("f", "s", "tower_new", TOWER.before_date, TOWER.after_date, _box(215, 200, 4, 4))
    assert check([TOWER], [near]).ok
    res = check([TOWER], [far])
    assert res.missed == [TOWER] and [d.detection_id for d in res.false] == ["f"]
    other_site = Found("o", "t", "tower_new", TOWER.before_date, TOWER.after_date, TOWER.geometry)
    assert check([TOWER], [other_site]).missed == [TOWER]


def test_truth_file_round_trip_and_report(tmp_path):
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps([{"site_id": "s", "kind": "tower_new", "structure": "tower-2",
                                  "before_date": "2018-04-05", "after_date": "2018-10-02", "length_m": None,
                                  "geometry": mapping(TOWER.geometry)}]))
    (p,) = read_truth(truth)
    assert (p.site_id, p.kind, p.structure, p.before_date, p.after_date) == ("s", "tower_new", "tower-2",
                                                                             D("2018-04-05"), D("2018-10-02"))
    report = json.loads(write(check([p], []), tmp_path / "check.json").read_text())
    assert report["ok"] is False and report["planted"][0]["verdict"] == "missed" and report["false_alarms"] == []


def test_one_detection_of_a_whole_block_finds_each_hall_and_a_crossing_fence_is_not_a_piece():
    halls = [Planted("s", "building_new", f"hall-{i}", D("2019-03-30"), D("2019-09-21"), _box(45 * i, 0, 30, 100))
             for i in range(4)]
    block = Found("b", "s", "building_new", D("2019-03-30"), D("2019-09-21"), _box(-2, -2, 170, 104), 14_000, 1.0)
    assert check(halls, [block]).right == halls
    yard = Planted("s", "fence_new", "yard", D("2018-04-05"), D("2018-07-18"), _box(0, 300, 250, 1))
    cross = Planted("s", "fence_new", "fence-1", D("2018-04-05"), D("2018-07-18"), _box(100, 200, 1, 100))
    piece = Found("f", "s", "fence_new", D("2018-04-05"), D("2018-07-18"), _box(100, 200, 1, 101), 100, 0.9)
    res = check([yard, cross], [piece])
    assert res.right == [cross] and res.missed == [yard]
