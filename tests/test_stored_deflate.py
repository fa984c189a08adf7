"""Stored maps and quicklooks deflated by ``sitewatch.deflate`` (ISA-L's when installed, else zlib):
the zip the maps are laid out in here reads back, with ``np.load`` and ``zipfile``, as the very
arrays ``numpy.savez_compressed``'s layout holds, and a quicklook PNG as its pixels, with either
encoder."""

from __future__ import annotations

import io
import zipfile
import zlib

import numpy as np
import pytest

from sitewatch import deflate, quicklook, structures


@pytest.fixture(params=["zlib", "isal"])
def backend(request, monkeypatch):
    if request.param == "isal":
        if deflate._isal is None:
            pytest.skip("isal is not installed (the [models] extra)")
        monkeypatch.setattr(deflate, "LEVEL", 2)
    else:
        monkeypatch.setattr(deflate, "_isal", None)
        monkeypatch.setattr(deflate, "LEVEL", 1)
    return request.param


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "observed": rng.random((130, 70)) > 0.2,
        "feature.model.band.red": rng.integers(0, 256, (130, 70), dtype=np.uint8),
        "feature.model.probability": rng.random((130, 70)).astype(np.float16),
        "feature.f32": rng.standard_normal((3, 5, 7)).astype(np.float32),
        "feature.flat": np.zeros((600, 500), np.uint16),  # long runs: a stream far shorter than its data
        "feature.empty": np.zeros((0, 4), np.uint8),
        "strided": rng.integers(0, 9, (40, 30), dtype=np.int64)[::3, ::2],
        "meta": np.frombuffer(b'{"grid": {}, "kinds": []}', dtype=np.uint8),
    }


def test_maps_zip_reads_back_as_the_arrays_numpy_lays_out(backend) -> None:
    arrays = _arrays()
    blob = structures._savez(arrays)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert zf.testzip() is None  # every member's CRC
        assert zf.namelist() == [f"{n}.npy" for n in arrays]
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    with np.load(io.BytesIO(blob), allow_pickle=False) as got, \
            np.load(io.BytesIO(structures._savez_zipfile(arrays)), allow_pickle=False) as numpys:
        assert got.files == numpys.files
        for n in got.files:
            a, b = got[n], numpys[n]
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
            assert np.array_equal(a, arrays[n])
    assert structures._savez(arrays) == blob  # the same maps, the same bytes (no clock in them)
    assert len(blob) < sum(a.nbytes for a in arrays.values()) // 2


def test_deflate_streams_inflate_to_their_data(backend) -> None:
    data = np.random.default_rng(8).integers(0, 40, 200_000, dtype=np.uint8).tobytes()
    assert deflate.BACKEND in ("isal", "zlib")
    assert zlib.decompress(deflate.compress(data)) == data
    assert zlib.decompress(deflate.compress(data, raw=True), -15) == data
    assert deflate.crc32(data) == zlib.crc32(data)
    assert deflate.crc32(data[1000:], deflate.crc32(data[:1000])) == zlib.crc32(data)


def test_quicklook_png_with_either_encoder(backend) -> None:
    from PIL import Image

    rgb = np.random.default_rng(9).integers(0, 256, (33, 41, 3), dtype=np.uint8)
    blob = quicklook.png(rgb)
    with Image.open(io.BytesIO(blob)) as img:
        img.verify()
    with Image.open(io.BytesIO(blob)) as img:
        assert img.mode == "RGB" and np.array_equal(np.asarray(img), rgb)
