"""Connected components without SciPy: the same objects, sizes and boxes as scipy.ndimage."""

import numpy as np
import pytest
from scipy import ndimage

from sitewatch.components import components


def label(mask):
    """``scipy.ndimage.label(mask)`` by :func:`components`: the label image and the count."""
    c = components(np.flatnonzero(mask), mask.shape[1])
    out = np.zeros(mask.size, dtype=np.int32)
    out[c.pixels] = c.labels
    return out.reshape(mask.shape), c.n


@pytest.mark.parametrize("seed", range(6))
def test_labels_sizes_and_boxes_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        mask = rng.random((h, w)) < rng.random()
        want, n = ndimage.label(mask)
        got, m = label(mask)
        assert m == n and np.array_equal(got, want)
        c = components(np.flatnonzero(mask), w)
        assert np.array_equal(c.sizes, np.bincount(want.ravel(), minlength=n + 1)[1:])
        for k, sl in enumerate(ndimage.find_objects(want)):
            assert tuple(c.boxes[k]) == (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
        big = np.flatnonzero(c.sizes >= 3)
        wins = c.windows(3)
        assert len(wins) == big.size
        for (win, part), k in zip(wins, big):
            assert np.array_equal(part, want[win] == k + 1)


def test_shapes_that_join_late():
    """A comb and a spiral: runs that meet only far from where they start are one object."""
    comb = np.zeros((40, 41), dtype=bool)
    comb[:, ::4] = True
    comb[-1] = True
    spiral = np.zeros((31, 31), dtype=bool)
    r0, c0, r1, c1 = 0, 0, 30, 30
    while r0 <= r1 and c0 <= c1:  # a square spiral of 1-pixel walls, 1-pixel corridors
        spiral[r0, c0:c1 + 1] = spiral[r0:r1 + 1, c1] = spiral[r1, c0:c1 + 1] = True
        spiral[r0 + 2:r1 + 1, c0] = True
        if r0 + 2 <= r1:
            spiral[r0 + 2, c0:c1 - 1] = True
        r0, c0, r1, c1 = r0 + 2, c0 + 2, r1 - 2, c1 - 2
    for mask in (comb, spiral, np.eye(9, dtype=bool), np.ones((5, 7), dtype=bool)):
        want, n = ndimage.label(mask)
        got, m = label(mask)
        assert m == n and np.array_equal(got, want)
    assert label(comb)[1] == 1 and label(np.eye(9, dtype=bool))[1] == 9  # diagonals do not join


def test_nothing():
    c = components(np.zeros(0, dtype=np.int64), 10)
    assert c.n == 0 and c.windows() == []
    lab, n = label(np.zeros((3, 4), dtype=bool))
    assert n == 0 and not lab.any()


def test_dense_label_joins_corners_only_when_asked_and_agrees_with_the_sparse_form():
    from sitewatch.components import find_objects
    from sitewatch.components import label as dense

    diag = np.eye(4, dtype=bool)  # four pixels touching only at corners
    assert dense(diag)[1] == 4
    lab, n = dense(diag, corners=True)
    assert n == 1 and find_objects(lab) == [(slice(0, 4), slice(0, 4))]
    rng = np.random.default_rng(3)
    mask = rng.random((40, 50)) < 0.4
    lab, n = dense(mask)
    c = components(np.flatnonzero(mask), mask.shape[1])
    assert n == c.n and np.array_equal(lab.ravel()[c.pixels], c.labels)
