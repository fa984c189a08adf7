"""skeletonize without scikit-image: bit-identical to ``skimage.morphology.skeletonize`` (2-D).

The pipeline measures wall and fence lengths along skeletons and takes fence centre lines
from them; a different pixel would change stored metrics and detections, so nothing less
than equality is accepted, on random shapes, edge cases and masks from real imagery.
"""

import numpy as np
import pytest
from scipy import ndimage

from sitewatch.morphology import skeletonize

sk = pytest.importorskip("skimage.morphology")


def same(mask):
    want = sk.skeletonize(mask)
    got = skeletonize(mask)
    assert got.dtype == want.dtype == bool and got.shape == want.shape
    assert np.array_equal(got, want), f"differs on a {mask.shape} mask of {int(mask.sum())} px"
    return got


@pytest.mark.parametrize("seed", range(8))
def test_random_blobs_equal_skimage(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 96, 2))
        smooth = ndimage.gaussian_filter(rng.random((h, w)), rng.uniform(0.3, 5))
        same(smooth > np.quantile(smooth, rng.uniform(0.05, 0.95)))
        same(rng.random((h, w)) < rng.random())  # salt and pepper: every neighbourhood code


def test_lines_rings_and_edges_equal_skimage():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:80, :90]
    shapes = []
    for _ in range(30):  # straight bands at any angle and width, like walls and fences
        a, w = rng.uniform(0, np.pi), rng.uniform(0.5, 6)
        d = (yy - rng.uniform(0, 80)) * np.cos(a) - (xx - rng.uniform(0, 90)) * np.sin(a)
        shapes.append(np.abs(d) <= w)
    for r0, r1 in ((5, 8), (10, 12), (20, 30), (3, 4)):  # rings, some cut by the array's edge
        r = np.hypot(yy - 40, xx - 70)
        shapes.append((r >= r0) & (r <= r1))
    full = np.ones((12, 17), dtype=bool)
    frame = full.copy()
    frame[2:-2, 2:-2] = False
    shapes += [full, frame, np.ones((1, 30), bool), np.ones((30, 1), bool), np.ones((2, 30), bool),
               np.ones((30, 3), bool), np.eye(20, dtype=bool), np.eye(20, dtype=bool)[::-1] | np.eye(20, dtype=bool)]
    for m in shapes:
        same(m)
        same(m.T.copy())


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (1, 1), (1, 7), (7, 1), (3, 3), (50, 60)])
def test_empty_single_pixel_and_thin_arrays(shape):
    assert not same(np.zeros(shape, dtype=bool)).any()
    if 0 in shape:
        return
    one = np.zeros(shape, dtype=bool)
    one[shape[0] // 2, shape[1] // 2] = True
    assert same(one).sum() == 1
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for _ in range(20):
        same(rng.random(shape) < 0.6)


def test_input_types_equal_skimage():
    """Non-bool masks are binarised as scikit-image does: nonzero is foreground; non-contiguous views work."""
    rng = np.random.default_rng(3)
    m = ndimage.gaussian_filter(rng.random((60, 70)), 2) > 0.5
    for a in (m.astype(np.uint8) * 7, m.astype(np.float32), m.astype(np.int64) * -1, m[::-1, ::2], m.T):
        same(a)
    with pytest.raises(ValueError):
        skeletonize(np.ones((3, 3, 3), bool))


def test_masks_from_real_imagery_equal_skimage(shared_data):
    """Dark and bright parts of real LEVIR-CD tiles (0.5 m suburbs): the shapes the detector sees."""
    from PIL import Image

    files = sorted((shared_data / "levir-cd-samples").glob("[AB]/*.png"))[:4]
    if not files:
        pytest.skip("no LEVIR-CD samples")
    for f in files:
        b = np.asarray(Image.open(f).convert("L"), dtype=np.float32)[:384, :384]
        lo, hi = np.quantile(b, [0.15, 0.85])
        for m in (b < lo, b > hi, ndimage.binary_opening(b > hi, iterations=2)):
            same(m)
