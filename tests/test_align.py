"""Co-registration and radiometric fits: a known shift and a known gain must come back.

Scenes are drawn with numpy: smooth texture plus a few sharp rectangles (what edges a
compound gives), so phase correlation has something to lock on to, as on real ground.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sitewatch import align


def _scene(seed: int = 0, n: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = 0.25 + 0.05 * ndimage.gaussian_filter(rng.standard_normal((n, n)), 3).astype(np.float32)
    a[40:60, 30:90] += 0.2
    a[80:84, 10:110] -= 0.1
    a[20:26, 100:106] += 0.3
    return a.astype(np.float32)


def test_phase_shift_recovers_a_known_subpixel_shift_despite_gain_and_haze():
    ref = _scene()
    # move the scene by (+1.5, -0.7) px; phase_shift returns the shift that undoes it
    moved = ndimage.shift(ref, (-0.7, 1.5), order=3, mode="nearest") * np.float32(1.3) + np.float32(0.05)
    moved += np.random.default_rng(1).normal(0, 0.003, moved.shape).astype(np.float32)
    dx, dy, _ = align.phase_shift(ref, moved)
    assert abs(dx - (-1.5)) < 0.2 and abs(dy - 0.7) < 0.2, (dx, dy)
    back = (align.apply_shift(moved, dx, dy) - np.float32(0.05)) / np.float32(1.3)
    inner = (slice(10, -10), slice(10, -10))
    before = np.abs(((moved - 0.05) / 1.3 - ref)[inner]).mean()
    after = np.nanmean(np.abs((back - ref)[inner]))
    assert after < 0.5 * before, (before, after)


def test_phase_shift_ignores_missing_data():
    ref = _scene(2)
    moved = ndimage.shift(ref, (-0.7, 1.5), order=3, mode="nearest")
    moved[:40, :50] = np.nan  # a cloud masked out, or the edge of the swath
    dx, dy, _ = align.phase_shift(ref, moved)
    assert abs(dx + 1.5) < 0.25 and abs(dy - 0.7) < 0.25, (dx, dy)


def test_phase_shift_of_identical_images_is_zero():
    ref = _scene(3)
    dx, dy, _ = align.phase_shift(ref, ref.copy())
    assert abs(dx) < 0.05 and abs(dy) < 0.05


def test_apply_shift_keeps_masks_boolean_and_values_nan_safe():
    m = np.zeros((20, 20), bool)
    m[5:10, 5:10] = True
    s = align.apply_shift(m, 2.0, 1.0)
    assert s.dtype == bool and s[6:11, 7:12].all() and s.sum() == 25
    a = np.ones((20, 20), np.float32)
    a[10, 10] = np.nan
    b = align.apply_shift(a, 0.5, 0.0)
    assert np.isnan(b[10, 10]) and np.isnan(b[10, 11])  # the hole spreads, never filled with 0
    assert np.isnan(b[:, 0]).all()  # no data shifted in from outside
    assert np.allclose(b[2:8, 2:8], 1.0)
    assert align.apply_shift(a, 0.0, 0.0) is a


def _regained(field_rows: int) -> tuple[np.ndarray, np.ndarray]:
    ref = _scene(4)
    image = ((ref - 0.02) / 1.25).copy()  # this date's sensor: reference = 1.25 * image + 0.02
    image[90:120, 90:120] = 0.6  # a new roof: a real change, not radiometry
    image[0:field_rows, :] *= 1.6  # a field that greened up
    return image, ref


def test_gain_fit_recovers_known_gain_and_offset_despite_real_change():
    image, ref = _regained(field_rows=5)  # ~9% of the pixels changed
    g, o = align.fit_gain(image, ref, np.isfinite(image))
    assert abs(g - 1.25) < 0.02 and abs(o - 0.02) < 0.005, (g, o)


def test_gain_fit_survives_a_large_changed_share():
    image, ref = _regained(field_rows=15)  # ~17% changed
    g, o = align.fit_gain(image, ref, np.isfinite(image))
    assert abs(g - 1.25) < 0.02 and abs(o - 0.02) < 0.005, (g, o)


def test_ground_levels_and_normalisation_cancel_a_gain_change():
    rng = np.random.default_rng(5)
    bands = {k: (v + 0.01 * rng.standard_normal((64, 64))).astype(np.float32)
             for k, v in {"red": 0.27, "green": 0.22, "blue": 0.17, "nir": 0.31}.items()}
    bands["red"][10:20, 10:40] = 0.45  # a roof does not move the ground level
    valid = np.ones((64, 64), bool)
    rel = align.relative_to_ground(bands, align.ground_levels(bands, valid))
    rel2 = align.relative_to_ground({k: v * 1.4 for k, v in bands.items()},
                           align.ground_levels({k: v * 1.4 for k, v in bands.items()}, valid))
    for k in bands:
        assert abs(float(np.median(rel[k])) - 1.0) < 0.02
        assert np.allclose(rel[k], rel2[k], atol=1e-4)


def test_normalise_returns_the_fit_and_the_image_in_reference_radiometry():
    image, ref = _regained(field_rows=15)
    out, fit = align.normalise(image, ref, np.isfinite(image))
    assert isinstance(fit, align.Fit) and fit.to_dict()["gain"] == pytest.approx(1.25, abs=0.02)
    unchanged = np.ones(ref.shape, bool)
    unchanged[90:120, 90:120] = False
    unchanged[0:15] = False
    assert np.abs(out - ref)[unchanged].max() < 1e-3
    assert fit.used < ref.size - 900  # the roof and the field were left out of the fit


def test_gain_fit_is_not_shrunk_by_noise_on_narrow_ground():
    rng = np.random.default_rng(9)
    truth = (0.25 + 0.01 * ndimage.gaussian_filter(rng.standard_normal((128, 128)), 4) * 8).astype(np.float32)
    ref = truth + rng.normal(0, 0.004, truth.shape).astype(np.float32)
    image = truth / 1.1 + rng.normal(0, 0.004, truth.shape).astype(np.float32)
    assert align.fit_linear(image, ref).gain == pytest.approx(1.1, abs=0.08)


def test_phase_shift_valid_mask_and_quality():
    ref = _scene(6)
    moved = ndimage.shift(ref, (-0.7, 1.5), order=3, mode="nearest")
    valid = np.ones(ref.shape, bool)
    valid[:40, :50] = False
    moved[~valid] = 0.9  # garbage under the mask (a cloud) must not matter
    dx, dy, q = align.phase_shift(ref, moved, valid)
    assert abs(dx + 1.5) < 0.25 and abs(dy - 0.7) < 0.25 and q > 0.5
    noise = np.random.default_rng(0).random(ref.shape).astype(np.float32)
    assert align.phase_shift(ref, noise)[2] < 0.2
