"""phase_cross_correlation without scikit-image: the same shift, bit for bit, as scikit-image's.

align.phase_shift undoes the shift it returns on every scene of every site: a shift differing in
the last bit would move maps and so detections, so the returned arrays must be identical.
"""

import numpy as np
import pytest
from scipy import ndimage

from sitewatch.align import _filled, _highpass
from sitewatch.registration import phase_cross_correlation

reg = pytest.importorskip("skimage.registration")


def same(ref, img, **kw):
    want = reg.phase_cross_correlation(ref, img, **kw)
    got = phase_cross_correlation(ref, img, **kw)
    assert got[0].dtype == want[0].dtype and np.array_equal(got[0], want[0]), (got[0], want[0])
    assert np.array_equal(got[1], want[1], equal_nan=True) and np.array_equal(got[2], want[2], equal_nan=True)
    return got[0]


def shifted_pair(texture, n, dy, dx):
    """A window of ``texture`` and the same window moved by (dy, dx), sub-pixel."""
    moved = ndimage.shift(texture, (dy, dx), order=3, mode="nearest")
    return texture[8:8 + n, 8:8 + n], moved[8:8 + n, 8:8 + n]


@pytest.mark.parametrize("seed", range(6))
def test_random_textures_equal_skimage(seed):
    rng = np.random.default_rng(seed)
    for _ in range(12):
        n = int(rng.integers(8, 160))
        h = int(rng.integers(n, 2 * n)) if rng.random() < 0.3 else n  # some non-square
        tex = ndimage.gaussian_filter(rng.random((h + 16, n + 16)), rng.uniform(0.5, 3))
        tex -= tex.mean()  # detail only, as align correlates
        dtype = np.float32 if rng.random() < 0.7 else np.float64
        dy, dx = rng.uniform(-5, 5, 2)
        moved = ndimage.shift(tex, (dy, dx), order=3, mode="nearest")
        ref, img = tex[8:8 + h, 8:8 + n].astype(dtype), moved[8:8 + h, 8:8 + n].astype(dtype)
        shift = same(ref, img, upsample_factor=20, normalization=None)
        if min(h, n) >= 48:  # a real registration, not equal noise (unwindowed edges bias it a little)
            assert np.allclose(shift, (-dy, -dx), atol=0.5)
        same(ref, img, upsample_factor=int(rng.integers(2, 50)), normalization="phase")
        same(ref, img)  # whole pixels


def test_edge_cases_equal_skimage():
    rng = np.random.default_rng(1)
    row = rng.random((1, 40)).astype(np.float32)
    same(row, np.roll(row, 3, axis=1), upsample_factor=20, normalization=None)  # a single row: no shift across
    same(row.T.copy(), np.roll(row.T, -2, axis=0), upsample_factor=20, normalization=None)
    a = rng.random((33, 17)).astype(np.float32)  # odd sizes, whole-pixel shift across the wrap
    same(a, np.roll(a, (16, -8), axis=(0, 1)), upsample_factor=20, normalization=None)
    with pytest.raises(ValueError):
        phase_cross_correlation(a, a[:-1], upsample_factor=20, normalization=None)
    bad = a.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        phase_cross_correlation(a, bad, upsample_factor=20, normalization=None)


def test_real_scenes_as_align_sees_them_equal_skimage(shared_data):
    """Real 0.5 m LEVIR-CD tiles (256 px; A and B are two dates) high-passed as align.phase_shift does."""
    from PIL import Image

    a_files = sorted((shared_data / "levir-cd-samples" / "A").glob("*.png"))[:3]
    if not a_files:
        pytest.skip("no LEVIR-CD samples")
    rng = np.random.default_rng(5)
    for fa in a_files:
        fb = fa.parent.parent / "B" / fa.name
        ba = np.asarray(Image.open(fa).convert("RGB"), dtype=np.float32).mean(axis=2) / 255
        bb = np.asarray(Image.open(fb).convert("RGB"), dtype=np.float32).mean(axis=2) / 255
        for n in (48, 128, 220):
            r0, c0 = (int(v) for v in rng.integers(8, ba.shape[0] - n - 8, 2))
            dy, dx = rng.uniform(-3, 3, 2)
            for first, second in ((ba, ba), (ba, bb)):  # one date moved; the other date moved
                ref, img = shifted_pair(second[r0 - 8:r0 + n + 8, c0 - 8:c0 + n + 8], n, dy, dx)
                ref = first[r0:r0 + n, c0:c0 + n]
                same(_highpass(_filled(ref)), _highpass(_filled(img.astype(np.float32))),
                     upsample_factor=20, normalization=None)
