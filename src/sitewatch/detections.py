"""A change as the detection a reviewer sees: its stable id and its outline in EPSG:4326.

Kept apart from :mod:`sitewatch.changes` (how changes are found) so that the wide-area scan,
which finds its own, writes detections without importing the monitor's detectors.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from .grid import Grid, to_crs
from .records import DetectionRecord


@dataclass(frozen=True)
class Change:
    """A structure that appeared or disappeared between two clear scenes.

    Attributes:
        kind: one of :data:`sitewatch.structures.CHANGE_KINDS`.
        geometry: outline in the grid's CRS (metres).
        before_scene_id / before_date: last clear scene without it (with it, for ``_removed``).
        after_scene_id / after_date: first clear scene with it (without it, for ``_removed``).
        area_m2: footprint area.
        length_m: centre-line length for walls and fences, else None.
        score: uncalibrated ranking score in 0..1 (higher first; not a probability, see benchmarks/README.md).
        evidence: JSON-safe facts a reviewer needs: which maps fired, change magnitude.
    """

    kind: str
    geometry: MultiPolygon
    before_scene_id: str
    before_date: dt.date
    after_scene_id: str
    after_date: dt.date
    area_m2: float
    length_m: float | None
    score: float
    evidence: Mapping[str, object] = field(default_factory=dict)



def detection_id(site_id: str, change: Change) -> str:
    """Stable across runs: the same change of the same site always gets the same id."""
    geom = change.geometry.normalize().wkt if not change.geometry.is_empty else ""
    key = "|".join([site_id, change.kind, change.before_scene_id, change.after_scene_id,
                    _round_wkt(geom)])
    return "det-" + hashlib.sha256(key.encode()).hexdigest()[:16]


_DECIMAL = re.compile(r"(-?\d+\.\d+)")


def _round_wkt(wkt: str) -> str:
    # Coordinates to the decimetre: enough to tell objects apart, immune to float noise. Each
    # space-separated token rounded alone (no number spans a space, so its numbers are the whole
    # text's) and looked up: a site's outlines share their grid's few column and row values, so a
    # token is rounded once and then looked up, where a regular expression scanned every outline's
    # text (≈0.2 ms a Joplin outline of ≈8,500 characters).
    global _ROUNDED
    table = _ROUNDED
    if len(table) > 100_000:  # (≈15 MB; a new table, not a cleared one: another thread may be reading it)
        table = _ROUNDED = {}
    tokens = wkt.split(" ")
    for t in set(tokens).difference(table):
        table[t] = _round_numbers(t)
    return " ".join(map(table.__getitem__, tokens))


_ROUNDED: dict[str, str] = {}


def _round_numbers(text: str) -> str:
    """Every decimal number in ``text`` to one decimal ("%.1f"); the rest as it is."""
    parts = _DECIMAL.split(text)
    parts[1::2] = ["%.1f" % float(x) for x in parts[1::2]]
    return "".join(parts)


def mask_polygons(mask: np.ndarray, transform: Affine, offset: tuple[int, int] = (0, 0)) -> list[Polygon]:
    """The outlines of a mask's 4-connected parts (rasterio's ``shapes``), in ``transform``'s
    coordinates. Each polygon is built from its rings as arrays: the same polygon as
    ``shapely.geometry.shape`` makes of the GeoJSON's lists of tuples, which it walks vertex by
    vertex in Python, at a cost greater than tracing the outlines.

    ``offset``: (row, column) on ``transform``'s grid of ``mask``'s first pixel, for a mask that is
    a crop of the grid. Only the mask's bounding box (and one pixel around it) is traced, in pixel
    units, and the vertices are put on the ground as GDAL's polygonize does it (``c + col * a +
    row * b``, in that order, in double precision): the very coordinates a trace of the whole grid
    gives, while a trace's cost grows with every pixel it scans (a region of a 1024 x 1024 px site
    traced on the whole grid cost 5 ms; tests/test_detections.py compares the two)."""
    from rasterio.features import shapes

    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return []
    r0, r1, c0, c1 = _box(m)
    crop = m[r0:r1, c0:c1]
    dr, dc = float(offset[0] + r0), float(offset[1] + c0)
    if crop.all():  # a whole grid of data (a scene's footprint, mostly): the rectangle GDAL's trace gives
        h, w = (float(n) for n in crop.shape)
        box = {"coordinates": [[(0.0, 0.0), (0.0, h), (w, h), (w, 0.0), (0.0, 0.0)]]}
        return [_on_ground(box, transform, dr, dc)]
    return [_on_ground(g, transform, dr, dc) for g, v in shapes(crop.astype(np.uint8), mask=crop, transform=_PIXELS)
            if v]


def label_polygons(labels: np.ndarray, keep: Sequence[int], transform: Affine) -> dict[int, list[Polygon]]:
    """:func:`mask_polygons` of ``labels == j`` for each ``j`` in ``keep``, all traced in one pass
    over the labels' bounding box: label -> its polygons, the very polygons (vertices, their order,
    the parts' order) each mask's own trace gives, for labels of 8-connected objects (no two
    objects touch, not even at a corner, so each object's outline is traced against background
    alone). One trace of a 1024 x 1024 px site for its ≈130 regions costs a third of tracing each
    region's crop in turn (a rasterio call per region); tests/test_detections.py compares them."""
    from rasterio.features import shapes

    if not len(keep):
        return {}
    wanted = np.zeros(int(labels.max()) + 1, bool)
    wanted[np.asarray(keep, dtype=np.intp)] = True
    sel = wanted[labels]
    if not sel.any():  # (none of ``keep`` on the labels)
        return {int(j): [] for j in keep}
    r0, r1, c0, c1 = _box(sel)
    crop = sel[r0:r1, c0:c1]
    img = np.where(crop, labels[r0:r1, c0:c1], 0).astype(np.int32)
    out: dict[int, list[Polygon]] = {int(j): [] for j in keep}
    traced = [(int(v), g["coordinates"]) for g, v in shapes(img, mask=crop, transform=_PIXELS)]
    for (v, _), poly in zip(traced, _all_on_ground([r for _, r in traced], transform, float(r0), float(c0))):
        out[v].append(poly)
    return out


def _all_on_ground(polys: Sequence[Sequence[Any]], t: Affine, dr: float, dc: float) -> list[Polygon]:
    """:func:`_on_ground` of many traced polygons (each a list of rings) at once: every vertex put
    on the ground by the same operations in the same order, in one numpy pass, and the polygons
    built from the rings in one shapely call (the same coordinates; a Python loop per polygon and
    ring cost ≈0.1 ms a Joplin region)."""
    import shapely

    if not polys:
        return []
    rings = [r for rs in polys for r in rs]
    counts = np.fromiter((len(r) for r in rings), dtype=np.intp, count=len(rings))
    px = np.asarray([xy for r in rings for xy in r], dtype=float).reshape(-1, 2)
    col, row = px[:, 0] + dc, px[:, 1] + dr
    xy = np.column_stack([t.c + col * t.a + row * t.b, t.f + col * t.d + row * t.e])
    ring_offsets = np.concatenate([[0], np.cumsum(counts)])
    geom_offsets = np.concatenate([[0], np.cumsum([len(rs) for rs in polys])])
    return list(shapely.from_ragged_array(shapely.GeometryType.POLYGON, xy, (ring_offsets, geom_offsets)))


def _box(m: np.ndarray) -> tuple[int, int, int, int]:
    """Rows r0:r1 and columns c0:c1 of a non-empty mask's bounding box and one pixel around it (a
    trace needs background on every side), within the mask."""
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    return (max(0, int(rows[0]) - 1), min(m.shape[0], int(rows[-1]) + 2),
            max(0, int(cols[0]) - 1), min(m.shape[1], int(cols[-1]) + 2))


def _on_ground(g: Mapping[str, Any], t: Affine, dr: float, dc: float) -> Polygon:
    """A traced polygon (pixel units, ``dr`` rows and ``dc`` columns into ``t``'s grid) on the ground,
    as GDAL's polygonize puts a vertex there: ``c + col * a + row * b``, in that order."""
    rings = []
    for r in g["coordinates"]:
        px = np.asarray(r, dtype=float)
        col, row = px[:, 0] + dc, px[:, 1] + dr
        rings.append(np.column_stack([t.c + col * t.a + row * t.b, t.f + col * t.d + row * t.e]))
    return Polygon(rings[0], rings[1:])


#: Pixel coordinates: a trace's vertices, as whole column and row numbers.
_PIXELS = Affine.identity()


def as_multipolygon(g: BaseGeometry) -> MultiPolygon:
    """A detection's outline as the MultiPolygon the store keeps: a polygon as one part, a
    collection as its polygons (lines and points dropped), anything else empty."""
    if isinstance(g, MultiPolygon):
        return g
    if isinstance(g, Polygon):
        return MultiPolygon([g])
    return MultiPolygon([p for p in getattr(g, "geoms", []) if isinstance(p, Polygon)])


def to_wgs84_multipolygon(geom: BaseGeometry, crs: str) -> MultiPolygon:
    return as_multipolygon(to_crs(geom, crs, "EPSG:4326"))


def wgs84_outlines(changes: Sequence[Change], crs: str) -> list[MultiPolygon]:
    """:func:`to_wgs84_multipolygon` of each change's outline, all reprojected in one call: the same
    coordinates (each vertex is transformed alone either way), one pyproj call instead of one per
    change."""
    if not changes:
        return []
    geoms = np.empty(len(changes), dtype=object)
    geoms[:] = [c.geometry for c in changes]
    return [as_multipolygon(g) for g in to_crs(geoms, crs, "EPSG:4326")]  # type: ignore[arg-type]


def detection_record(site_id: str, change: Change, grid: Grid, run_id: str, detector: str = "",
                     wgs84: MultiPolygon | None = None) -> DetectionRecord:
    """``detector``: what made the change (else the change's ``evidence["detector"]``), bound into its
    reviews; ``wgs84``: its outline already reprojected (:func:`wgs84_outlines`)."""
    return DetectionRecord(
        detection_id=detection_id(site_id, change), site_id=site_id, kind=change.kind,
        before_date=change.before_date, after_date=change.after_date,
        before_scene_id=change.before_scene_id, after_scene_id=change.after_scene_id,
        area_m2=round(float(change.area_m2), 1),
        length_m=None if change.length_m is None else round(float(change.length_m), 1),
        score=float(np.clip(change.score, 0.0, 1.0)),
        geometry=wgs84 if wgs84 is not None else to_wgs84_multipolygon(change.geometry, grid.crs),
        run_id=run_id, evidence={**dict(change.evidence), "grid_res_m": grid.res, "grid_crs": grid.crs},
        detector=detector or str(change.evidence.get("detector") or ""),
    )
