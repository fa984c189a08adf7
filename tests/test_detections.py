"""Outlines and ids of detections: the faster constructions give the very bytes the plain ones gave.

A detection's id hashes its outline's WKT rounded to the decimetre, and its stored outline is
the union of the mask's traced parts: both must not move by a bit when the way they are built
gets cheaper (stored ids are what reviews are bound to).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry import shape

from sitewatch.detections import _round_wkt, mask_polygons


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    out = [rng.random((48, 48)) < p for p in (0.3, 0.6, 0.8)]  # speckle: many parts, many holes
    out += [ndimage.binary_opening(m) for m in out]
    ring = np.zeros((40, 40), bool)
    ring[5:35, 5:35] = True
    ring[12:20, 12:20] = False  # one part with two holes
    ring[25:30, 22:31] = False
    return [*out, ring, np.zeros((8, 8), bool)]


@pytest.mark.parametrize("transform", [Affine(0.5, 0, 500000.0, 0, -0.5, 3500000.0),
                                       Affine(10.0, 0, 399960.3, 0, -10.0, 4400040.7),
                                       Affine(0.3, 0, 123456.789, 0, -0.3, 987654.321)])
def test_mask_polygons_are_the_polygons_shape_makes_of_rasterio_outlines(transform: Affine) -> None:
    holes = 0
    for m in _masks():
        plain = [shape(g) for g, v in shapes(m.astype(np.uint8), mask=m, transform=transform) if v]
        fast = mask_polygons(m, transform)
        assert [p.wkb for p in fast] == [p.wkb for p in plain]
        holes += sum(len(p.interiors) for p in fast)
    assert holes > 2  # the rings' holes were built too


def test_round_wkt_is_the_per_number_substitution() -> None:
    def plain(wkt: str) -> str:
        return re.sub(r"-?\d+\.\d+", lambda m: f"{float(m.group()):.1f}", wkt)

    m = _masks()[-2]
    wkts = [p.wkt for p in mask_polygons(m, Affine(0.3, 0, 123456.789, 0, -0.3, 987654.321))]
    wkts += ["", "POLYGON ((1 2, 3.45 -4.55, 0.05 0.15, -0.05 2.25, 1e-05 3, 1 2))",
             "MULTIPOLYGON (((500000 3500000, 500000.25 3499999.75, 500000.35 -0.95, 500000 3500000)))"]
    wkts += ["  POINT  (1.25  -0.35) ", "POINT (nan inf)", "POINT (-1.-2.3.4 5..6--7.8)"]
    rng = np.random.default_rng(3)  # any text: each space-separated token rounded alone, looked up
    wkts += ["".join(rng.choice(list("0123456789.- ,(e"), size=int(n))) for n in rng.integers(0, 80, 300)]
    for _ in range(2):  # the second time from the table of tokens already rounded
        for w in wkts:
            assert _round_wkt(w) == plain(w)
    assert _round_wkt("POINT (1.25 -0.04)") == "POINT (1.2 -0.0)"


@pytest.mark.parametrize("transform", [Affine(0.45, 0, 500000.4, 0, -0.45, 3500000.1),
                                       Affine(0.3, 0, 123456.789, 0, -0.3, 987654.321),
                                       Affine(0.45, 0.01, 500000.4, 0.02, -0.45, 3500000.1)])
def test_a_region_traced_on_its_crop_is_the_region_traced_on_the_whole_grid(transform: Affine) -> None:
    """mask_polygons traces only a mask's bounding box, and a caller may pass a crop and its offset:
    every vertex must be the one rasterio's trace of the whole grid puts there (GDAL's own
    pixel-to-ground arithmetic), region by region and for a whole speckled mask at once."""
    rng = np.random.default_rng(11)
    regions = 0
    for k in range(6):
        m = ndimage.binary_opening(rng.random((160, 170)) < 0.5 + 0.05 * k)
        whole = [shape(g) for g, v in shapes(m.astype(np.uint8), mask=m, transform=transform) if v]
        assert [p.wkb for p in mask_polygons(m, transform)] == [p.wkb for p in whole]
        lab, _ = ndimage.label(m, structure=np.ones((3, 3)))
        for j, sl in enumerate(ndimage.find_objects(lab), start=1):
            pad = tuple(slice(max(0, s.start - 3), s.stop + 3) for s in sl)
            full = np.zeros(m.shape, bool)
            full[pad] = lab[pad] == j
            plain = [shape(g) for g, v in shapes(full.astype(np.uint8), mask=full, transform=transform) if v]
            crop = mask_polygons(lab[pad] == j, transform, offset=(pad[0].start, pad[1].start))
            assert [p.wkb for p in crop] == [p.wkb for p in plain]
            regions += 1
    assert regions > 100


@pytest.mark.parametrize("transform", [Affine(0.45, 0, 500000.4, 0, -0.45, 3500000.1),
                                       Affine(0.45, 0.01, 500000.4, 0.02, -0.45, 3500000.1)])
def test_regions_traced_in_one_pass_are_each_region_traced_alone(transform: Affine) -> None:
    """label_polygons traces the kept regions of an 8-connected labelling in one pass: each region's
    polygons (vertices, rings, the parts' order) must be the bytes its own trace gives, with the
    other regions near it (even inside its holes) and the regions left out not changing a vertex."""
    from sitewatch.detections import label_polygons

    rng = np.random.default_rng(12)
    regions = parts = holes = 0
    for k in range(6):
        m = ndimage.binary_opening(rng.random((150, 180)) < 0.45 + 0.06 * k) | (rng.random((150, 180)) < 0.04)
        m[40:80, 40:80] = True  # a block with a hole holding another region
        m[50:70, 50:70] = False
        m[57:62, 57:62] = True
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        keep = [j for j in range(1, n + 1) if j % 4 != 1]  # some left out
        got = label_polygons(lab, keep, transform)
        assert list(got) == keep
        for j, sl in enumerate(ndimage.find_objects(lab), start=1):
            if j not in got:
                continue
            pad = tuple(slice(max(0, s.start - 3), s.stop + 3) for s in sl)
            alone = mask_polygons(lab[pad] == j, transform, offset=(pad[0].start, pad[1].start))
            assert [p.wkb for p in got[j]] == [p.wkb for p in alone]
            regions, parts = regions + 1, parts + (len(alone) > 1)
            holes += sum(len(p.interiors) for p in alone)
    assert regions > 300 and parts > 5 and holes > 5
    assert label_polygons(lab, [], transform) == {}


@pytest.mark.parametrize("transform", [Affine(0.45, 0, 500000.4, 0, -0.45, 3500000.1),
                                       Affine(10.0, 0, 399960.3, 0, -10.0, 4400040.7),
                                       Affine(0.45, 0.01, 500000.4, 0.02, -0.45, 3500000.1)])
def test_a_mask_without_a_gap_is_the_rectangle_rasterio_traces(transform: Affine) -> None:
    """A mask that is all True (a scene with data over the whole site) is outlined without a trace:
    the same polygon, vertex for vertex, as rasterio's trace of it, with or without an offset."""
    for h, w in ((1, 1), (1, 7), (6, 1), (3, 5), (64, 41), (300, 257)):
        m = np.ones((h, w), bool)
        for offset in ((0, 0), (5, 11)):
            full = np.zeros((h + offset[0], w + offset[1]), bool)
            full[offset[0]:, offset[1]:] = True
            plain = [shape(g) for g, v in shapes(full.astype(np.uint8), mask=full, transform=transform) if v]
            assert [p.wkb for p in mask_polygons(m, transform, offset)] == [p.wkb for p in plain]
