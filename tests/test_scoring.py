"""The benchmark arithmetic on cases whose answers are known by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from shapely.geometry import box

from sitewatch.testbed.scoring import Found, Truth, by_family, calibration, dates_valid, match, object_recall, pixel_score

D = dt.date


def truth(kind="building_new", g=box(0, 0, 10, 10), before=D(2018, 1, 1), after=D(2019, 1, 1), site="s"):
    return Truth(kind, g, before, after, site)


def found(kind="building_new", g=box(0, 0, 10, 10), before=D(2018, 1, 1), after=D(2019, 1, 1), score=0.9, site="s"):
    return Found(kind, g, before, after, score, site)


def test_match_counts_and_dates():
    truths = [truth(), truth(g=box(100, 100, 110, 110), before=D(2019, 1, 1), after=D(2020, 1, 1))]
    dets = [
        found(),  # exact
        found(g=box(101, 101, 111, 111), before=D(2018, 6, 1), after=D(2020, 6, 1)),  # valid, looser
        found(g=box(0, 0, 10, 10)),  # duplicate of the first: false
        found(g=box(500, 500, 510, 510)),  # nothing there: false
        found(kind="wall_new"),  # wrong kind: false in its own family
    ]
    m = match(dets[:4], truths)
    assert (m.tp, m.fp, m.fn) == (2, 2, 0)
    assert m.valid_dates == 2 and m.exact_dates == 1
    assert m.recall == 1.0 and m.precision == 0.5
    fams = by_family(dets, truths)
    assert fams["wall"].fp == 1 and fams["wall"].tp == 0 and fams["building"].tp == 2


def test_dating_validity_is_the_contracts_claim():
    t = truth(before=D(2018, 5, 1), after=D(2018, 9, 1))
    assert dates_valid(found(before=D(2018, 5, 1), after=D(2018, 9, 1)), t)
    assert dates_valid(found(before=D(2017, 1, 1), after=D(2019, 1, 1)), t)
    assert not dates_valid(found(before=D(2018, 6, 1), after=D(2018, 9, 1)), t)  # it was already there? unknown
    assert not dates_valid(found(before=D(2018, 5, 1), after=D(2018, 8, 1)), t)  # not yet built then


def test_thin_structures_match_by_overlap_of_the_smaller():
    wall = box(0, 0, 100, 1)
    wide = box(0, -2, 100, 3)  # IoU 0.2, but covers the whole wall
    assert match([found("wall_new", wide)], [truth("wall_new", wall)]).tp == 1
    assert match([found("wall_new", box(0, 5, 100, 6))], [truth("wall_new", wall)]).tp == 0


def test_calibration_bins_and_ece():
    scored = [(0.9, True)] * 9 + [(0.9, False)] + [(0.1, False)] * 9 + [(0.1, True)]
    cal = calibration(scored, n_bins=5)
    assert math.isclose(cal.ece, 0.0, abs_tol=1e-9)
    over = calibration([(0.9, False)] * 10)
    assert math.isclose(over.ece, 0.9)
    assert [b[2] for b in cal.bins] == [10, 0, 0, 0, 10]


def test_pixel_scores_and_object_recall():
    label = np.zeros((10, 10), bool)
    label[0:4, 0:4] = True  # 16 px object
    label[6:8, 6:8] = True  # 4 px object
    pred = np.zeros_like(label)
    pred[0:4, 0:2] = True  # half of the first: counts (>= 50 %)
    pred[9, 9] = True  # a false pixel
    s = pixel_score(pred, label)
    assert (s.tp, s.fp, s.fn) == (8, 1, 12)
    assert math.isclose(s.f1, 2 * 8 / (2 * 8 + 1 + 12))
    assert math.isclose(s.iou, 8 / 21)
    assert object_recall(pred, label) == (1, 2)
    assert object_recall(pred, np.zeros_like(label)) == (0, 0)
