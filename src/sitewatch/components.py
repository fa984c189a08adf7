"""Connected components: the one place that says which pixels make one object.

Two connectivities are in use: 4 (pixels sharing an edge; the scan's new blocks, the
detector's towers and buildings, clouds) and 8 (an edge or a corner; walls, fences, the
change tracker's objects). :func:`label` labels a dense mask either way; :func:`components`
labels a sparse set of pixels, 4-connected, in NumPy alone.

The scan labels the few changed pixels of a tile, not the tile: pixels come in as sorted
flat indices, are cut into runs along rows, and runs that share a column with a run in the
row above are joined (vectorised union-find over runs). The work grows with the number of
changed pixels, not with the tile. Labels and sizes equal ``scipy.ndimage.label`` with its
default (cross-shaped) structure (the tests compare them), numbered in raster order of each
object's first pixel; the scan does without SciPy, whose import alone took a third of a
second of every scan's start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Components:
    """Objects of a set of pixels of a ``height`` x ``width`` image.

    Attributes:
        pixels: the pixels, as ascending flat indices (``row * width + col``).
        labels: each pixel's object, 1..n, in raster order of each object's first pixel.
        sizes: pixels per object (``sizes[k - 1]`` for label k).
        boxes: per object ``(row0, col0, row1, col1)``, ends exclusive.
        width: the image's width.
    """

    pixels: np.ndarray
    labels: np.ndarray
    sizes: np.ndarray
    boxes: np.ndarray
    width: int

    @property
    def n(self) -> int:
        return int(self.sizes.size)

    def windows(self, min_px: int = 1) -> list[tuple[tuple[slice, slice], np.ndarray]]:
        """Each object of at least ``min_px`` pixels as (its bounding window, its mask in that window)."""
        big = np.flatnonzero(self.sizes >= min_px)
        if not big.size:
            return []
        keep = np.zeros(self.n + 1, dtype=bool)
        keep[big + 1] = True
        sel = keep[self.labels]
        px, lab = self.pixels[sel], self.labels[sel]
        order = np.argsort(lab, kind="stable")
        px, lab = px[order], lab[order]
        cuts = np.flatnonzero(np.diff(lab)) + 1
        out = []
        for k, part_px in zip(big, np.split(px, cuts)):
            r0, c0, r1, c1 = (int(v) for v in self.boxes[k])
            mask = np.zeros((r1 - r0, c1 - c0), dtype=bool)
            rows = part_px // self.width
            mask[rows - r0, part_px - rows * self.width - c0] = True
            out.append(((slice(r0, r1), slice(c0, c1)), mask))
        return out


def components(pixels: np.ndarray, width: int) -> Components:
    """Label pixels given as ascending flat indices into an image ``width`` wide."""
    px = np.asarray(pixels, dtype=np.int64)
    if not px.size:
        empty = np.zeros(0, dtype=np.int64)
        return Components(px, empty.astype(np.int32), empty, np.zeros((0, 4), dtype=np.int64), width)
    rows = px // width
    cols = px - rows * width
    # runs: consecutive pixels of one row
    brk = np.ones(px.size, dtype=bool)
    brk[1:] = (np.diff(px) != 1) | (rows[1:] != rows[:-1])
    first = np.flatnonzero(brk)
    run_len = np.diff(np.append(first, px.size))
    run_row, run_c0 = rows[first], cols[first]
    run_c1 = run_c0 + run_len
    # a run touches the runs of the row above that share a column with it: with keys that
    # order runs by (row, column), those are one slice of the (sorted) runs
    span = width + 1
    key0, key1 = run_row * span + run_c0, run_row * span + run_c1
    above = (run_row - 1) * span
    lo = np.searchsorted(key1, above + run_c0, side="right")
    hi = np.searchsorted(key0, above + run_c1, side="left")
    count = np.maximum(hi - lo, 0)
    total = int(count.sum())
    parent = np.arange(first.size)
    if total:
        a = np.repeat(np.arange(first.size), count)
        b = np.repeat(lo, count) + (np.arange(total) - np.repeat(np.cumsum(count) - count, count))
        parent = _union(parent, a, b)
    # the root of an object is its first run (hooks go to the smaller root): raster order
    roots, run_label = np.unique(parent, return_inverse=True)
    run_label = run_label.astype(np.int32) + 1
    n = roots.size
    sizes = np.bincount(run_label, weights=run_len, minlength=n + 1)[1:].astype(np.int64)
    boxes = np.empty((n, 4), dtype=np.int64)
    boxes[:, 0] = run_row[roots]
    r1 = np.zeros(n + 1, dtype=np.int64)
    np.maximum.at(r1, run_label, run_row + 1)
    c0 = np.full(n + 1, width, dtype=np.int64)
    np.minimum.at(c0, run_label, run_c0)
    c1 = np.zeros(n + 1, dtype=np.int64)
    np.maximum.at(c1, run_label, run_c1)
    boxes[:, 1], boxes[:, 2], boxes[:, 3] = c0[1:], r1[1:], c1[1:]
    return Components(px, np.repeat(run_label, run_len), sizes, boxes, width)


def _union(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Join the sets of ``a[i]`` and ``b[i]``: each round hooks every root to the smallest root
    it touches, then compresses paths, until every edge lies within one set."""
    while True:
        ra, rb = parent[a], parent[b]
        split = ra != rb
        if not split.any():
            return parent
        a, b, ra, rb = a[split], b[split], ra[split], rb[split]
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # every run straight to its root
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up


#: 8-connectivity: pixels touching at an edge or a corner are one object.
_CORNERS = np.ones((3, 3), dtype=bool)


def label(mask: np.ndarray, *, corners: bool = False) -> tuple[np.ndarray, int]:
    """Objects of a dense mask, labelled 1..n in raster order (0 outside), and n.

    ``corners``: pixels touching only at a corner are one object (8-connected); else only
    pixels sharing an edge are (4-connected, as :func:`components`). ``scipy.ndimage.label``,
    imported here only, so the scan, which needs no dense labelling, starts without SciPy.
    """
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=_CORNERS if corners else None)
    return lab, int(n)


def find_objects(labels: np.ndarray) -> list[tuple[slice, ...] | None]:
    """Each label's bounding window (``labels`` from :func:`label`), in label order."""
    from scipy import ndimage

    return ndimage.find_objects(labels)
