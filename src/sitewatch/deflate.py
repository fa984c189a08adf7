"""Deflate for what a run stores (maps' .npz members, quicklook PNGs): ISA-L's when it is installed.

The deflate of the stored maps and quicklooks was the largest part of the pipeline's own CPU
beside a change model (≈100 ms of ≈330 a 1024 x 1024 scene, benchmarks/README.md section 9).
Intel's ISA-L (the ``isal`` package, in the ``[models]`` extra) writes the same format
(any inflater reads it) 6-8 times faster than zlib at its fastest level, for streams a few %
larger; without it zlib's level 1 is used, as before. Either way the stream inflates to the very
bytes given: what is stored says the same, only its compressed size and encoding time differ.
"""

from __future__ import annotations

import zlib

try:  # (optional: the [models] extra)
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - depends on the environment
    _isal = None

#: which encoder: "isal" or "zlib"
BACKEND = "isal" if _isal is not None else "zlib"
#: the level used: zlib's fastest (1); ISA-L's 2, whose streams are about zlib 1's size (+1-3 % on
#: xBD's bands and probabilities; ISA-L's 1 is +4 %, for 10 % less time)
LEVEL = 2 if _isal is not None else 1


def compress(data: bytes | bytearray | memoryview, *, raw: bool = False) -> bytes:
    """``data`` deflated at :data:`LEVEL`: a zlib stream (header and Adler-32, as a PNG's IDAT
    holds), or with ``raw`` a bare deflate stream (as a zip member holds)."""
    lib = _isal if _isal is not None else zlib
    c = lib.compressobj(LEVEL, lib.DEFLATED, -15 if raw else 15, 9)
    return c.compress(data) + c.flush()


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    return (_isal.crc32 if _isal is not None else zlib.crc32)(data, value)


__all__ = ["BACKEND", "LEVEL", "compress", "crc32"]
