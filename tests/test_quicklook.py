"""The quicklook's display levels, made in place: the very levels of the plain formula."""

from __future__ import annotations

import numpy as np

from sitewatch import quicklook


def _plain(x: np.ndarray) -> np.ndarray:
    lo, hi = quicklook.STRETCH
    v = np.clip((np.nan_to_num(x.astype(np.float32), nan=0.0) - lo) / (hi - lo), 0, 1) ** quicklook.GAMMA
    return (v * 255 + 0.5).astype(np.uint8)


def test_display_levels_are_the_plain_formulas_for_every_kind_of_value() -> None:
    rng = np.random.default_rng(3)
    x = (rng.random((300, 310)) * 0.6 - 0.1).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    big = np.finfo(np.float32).max
    x[0, :7] = [np.inf, -np.inf, big, -big, 1e-30, 0.35, 0.0]
    with np.errstate(over="ignore"):
        for a in (x, x.astype(np.float64), (rng.random((40, 50)) * 3000).astype(np.uint16)):
            before = a.copy()
            got = quicklook._display(a)
            assert got.dtype == np.uint8 and np.array_equal(got, _plain(a))
            assert np.array_equal(a, before, equal_nan=a.dtype.kind == "f")  # the bands are left as they were


def test_rgb8_dims_only_where_the_ground_was_not_seen() -> None:
    rng = np.random.default_rng(4)
    bands = {k: rng.random((20, 30)).astype(np.float32) * 0.4 for k in ("red", "green", "blue")}
    valid = rng.random((20, 30)) > 0.3
    plain = np.stack([np.where(valid, v, v // np.uint8(3) + np.uint8(90))
                      for v in (_plain(bands[k]) for k in ("red", "green", "blue"))], axis=-1)
    assert np.array_equal(quicklook.rgb8(bands, valid), plain)
    everywhere = np.ones((20, 30), bool)
    assert np.array_equal(quicklook.rgb8(bands, everywhere), quicklook.rgb8(bands))
    assert not np.array_equal(quicklook.rgb8(bands, valid), quicklook.rgb8(bands))
