"""The skeleton of a binary mask: each object thinned to a line one pixel wide.

:mod:`sitewatch.changes` measures a wall's or fence's length along its skeleton and
:mod:`sitewatch.detect` takes a fence band's centre line from it. This is Zhang and Suen's
thinning exactly as ``skimage.morphology.skeletonize`` does it for 2-D images (scikit-image
0.26.0, ``skimage/morphology/_skeletonize.py`` and ``_skeletonize_various_cy.pyx``:
``_fast_skeletonize``), in NumPy instead of Cython, so that the core install does without
scikit-image and its dependencies (about 44 MB). Each sub-iteration is computed for all pixels
at once, as the Cython loop does (it reads the unchanged image and writes a copy), so the
result is bit-identical (``tests/test_morphology.py`` compares them on many shapes).

Ported from scikit-image 0.26.0:

Copyright (c) 2009-2022 the scikit-image team; BSD-3-Clause licence, whose full text and
conditions ship beside this module in ``LICENSE-scikit-image.txt``.
"""

from __future__ import annotations

import numpy as np

#: For each of the 256 neighbourhoods of a set pixel (bit k = the k-th neighbour, clockwise
#: from the top-left: 1 top-left, 2 top, 4 top-right, 8 right, 16 bottom-right, 32 bottom,
#: 64 bottom-left, 128 left), when it is removed: 1 in the first sub-iteration, 2 in the
#: second, 3 in both, 0 never. scikit-image's table, verbatim.
_LUT = np.array([
    0, 0, 0, 1, 0, 0, 1, 3, 0, 0, 3, 1, 1, 0, 1, 3, 0, 0, 0, 0, 0, 0,
    0, 0, 2, 0, 2, 0, 3, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 2, 2, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0,
    0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 0, 2, 0, 0, 0, 3, 1,
    0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 1, 3, 0, 0,
    1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 2, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3,
    0, 1, 0, 0, 0, 0, 2, 2, 0, 0, 2, 0, 0, 0], dtype=np.uint8)

#: Per sub-iteration, whether a neighbourhood code removes the pixel.
_REMOVE = ((_LUT == 1) | (_LUT == 3), (_LUT == 2) | (_LUT == 3))

#: (row offset, column offset, weight) of the eight neighbours in the code.
_NEIGHBOURS = ((-1, -1, 1), (-1, 0, 2), (-1, 1, 4), (0, 1, 8),
               (1, 1, 16), (1, 0, 32), (1, -1, 64), (0, -1, 128))


def skeletonize(image: np.ndarray) -> np.ndarray:
    """The skeleton of a 2-D mask (nonzero = foreground), as bool: ``skimage.morphology.skeletonize``.

    Only the mask's bounding box (plus a one-pixel margin) is thinned: beyond it nothing can
    change, and the pipeline's masks are mostly empty.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"skeletonize takes a 2-D image, got {image.ndim}-D")
    mask = image.astype(bool, copy=False)
    out = np.zeros(mask.shape, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return out
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    out[r0:r1, c0:c1] = _thin(mask[r0:r1, c0:c1])
    return out


def _thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning until no pixel is removed by either sub-iteration."""
    h, w = mask.shape
    sk = np.zeros((h + 2, w + 2), dtype=np.uint8)  # a zero border: every pixel has 8 neighbours
    sk[1:-1, 1:-1] = mask
    inner = sk[1:-1, 1:-1]
    code, term = np.empty((h, w), dtype=np.uint8), np.empty((h, w), dtype=np.uint8)
    gone = np.empty((h, w), dtype=bool)
    removed = True
    while removed:
        removed = False
        for remove in _REMOVE:
            code[...] = 0
            for dr, dc, weight in _NEIGHBOURS:
                np.multiply(sk[1 + dr:h + 1 + dr, 1 + dc:w + 1 + dc], np.uint8(weight), out=term)
                code += term
            np.take(remove, code, out=gone)
            gone &= inner.view(bool)
            if gone.any():
                inner[gone] = 0
                removed = True
    return inner.astype(bool)
