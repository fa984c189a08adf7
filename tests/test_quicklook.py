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


def _decoded(blob: bytes) -> tuple[str, np.ndarray]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(blob)) as img:
        img.verify()  # chunks' CRCs, the stream's structure
    with Image.open(io.BytesIO(blob)) as img:
        return img.mode, np.asarray(img)


def test_png_decodes_to_the_very_pixels_it_was_given() -> None:
    """The stored quicklook's own encoder (one Up filter, zlib) is lossless: PIL reads back each
    pixel, for noise (every byte difference, wrapping modulo 256), flat and graded images, single
    rows and columns, and a view that is not contiguous."""
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (67, 45, 3), dtype=np.uint8)
    edges = np.zeros((9, 8, 3), np.uint8)
    edges[1::2] = 255  # 0 under 255 and 255 under 0: the filter's byte wraps both ways
    graded = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None, None], (256, 3, 3)).copy()
    for rgb in (noise, edges, graded, noise[:1], noise[:, :1], noise[:1, :1], noise[::2, ::3],
                np.full((5, 7, 3), 128, np.uint8)):
        mode, back = _decoded(quicklook.png(rgb))
        assert mode == "RGB" and np.array_equal(back, rgb)


def test_png_too_large_is_scaled_as_before_and_then_kept_exactly() -> None:
    from PIL import Image

    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    small = np.asarray(Image.fromarray(rgb).resize((30, 20), Image.LANCZOS))
    mode, back = _decoded(quicklook.png(rgb, max_side=30))
    assert mode == "RGB" and np.array_equal(back, small)
    assert np.array_equal(_decoded(quicklook.png(rgb, max_side=90))[1], rgb)  # (not larger: not scaled)


def test_png_refuses_what_is_not_an_rgb_image() -> None:
    import pytest

    for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8),
                np.zeros((4, 4, 3), np.int64)):
        with pytest.raises(ValueError):
            quicklook.encode_png(bad)
