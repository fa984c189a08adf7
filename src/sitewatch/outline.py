"""A mapped outline as the one polygon a site is watched over.

A multi-part outline (a compound mapped as several buildings, a relation with several outer
rings) is watched as the hull of its parts when they lie within :data:`MAX_PART_SPREAD_M` of
each other; further apart they are separate compounds and each needs its own site. The rule
is here once, for sites files (:func:`sitewatch.sites.area_of_interest`) and OpenStreetMap
outlines (:mod:`sitewatch.osm`) alike.
"""

from __future__ import annotations

from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

#: A multi-part outline is watched as the hull of its parts when they lie this close together.
MAX_PART_SPREAD_M = 2000.0


def local(g: BaseGeometry, crs: str | None = None) -> BaseGeometry:
    """``g`` (EPSG:4326) in metres: in ``crs``, else the UTM zone of its centre."""
    from .grid import to_crs, utm_crs_for

    c = g.centroid
    return to_crs(g, "EPSG:4326", crs or utm_crs_for(c.x, c.y))


def part_spread_m(g: MultiPolygon) -> float:
    """The largest gap between two parts of ``g`` (EPSG:4326), in metres on the ground."""
    parts = list(local(g).geoms)  # type: ignore[attr-defined]
    return max(a.distance(b) for a in parts for b in parts)
