"""OpenStreetMap facility outlines: closed ways and multipolygon relations tagged as these camps.

An outline becomes one polygon by the sites rule (:mod:`sitewatch.outline`: a multi-part
outline is watched as the hull of its parts when they lie close together); an unusable
outline is skipped with its reason, never silently dropped. Read by :func:`sitewatch.sites.read_sites`
for a ``.osm`` file and by the importer (:mod:`sitewatch.siteimport`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import polygonize, unary_union

from .errors import SitesError
from .outline import MAX_PART_SPREAD_M, part_spread_m

OSM_CREDIT = "© OpenStreetMap contributors"
OSM_LICENCE = "ODbL 1.0"


@dataclass
class Skip:
    """A record left out, and why."""

    source: str
    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.record}: {self.reason}"


@dataclass
class Outline:
    """A mapped facility footprint from OpenStreetMap."""

    osm_id: str  # "way/123" or "relation/456"
    polygon: Polygon
    tags: dict[str, str]

    @property
    def site_id(self) -> str:
        kind, num = self.osm_id.split("/")
        return f"osm-{kind}-{num}"


def _is_camp(tags: dict[str, str]) -> bool:
    """OSM's tagging for these facilities: ``prison_camp=re-education`` (amenity prison, sometimes school)."""
    return tags.get("prison_camp") == "re-education" and tags.get("amenity") in ("prison", "school")


def read_osm(path: str | Path) -> tuple[list[Outline], list[Skip]]:
    """Facility outlines of an OSM XML file: closed ways and multipolygon relations."""
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise SitesError(f"{p}: not OSM XML ({exc})") from None
    except OSError as exc:
        raise SitesError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if root.tag != "osm":
        raise SitesError(f"{p}: not OSM XML (root element <{root.tag}>)")
    nodes: dict[str, tuple[float, float]] = {}
    ways: dict[str, tuple[list[str], dict[str, str]]] = {}
    relations: list[tuple[str, list[tuple[str, str, str]], dict[str, str]]] = []
    skipped: list[Skip] = []
    for el in root:
        tags = {t.get("k", ""): t.get("v", "") for t in el.findall("tag")}
        if el.tag == "node":
            try:
                nodes[el.get("id", "")] = (float(el.get("lon", "")), float(el.get("lat", "")))
            except ValueError:
                skipped.append(Skip(p.name, f"node {el.get('id')}", "lon/lat are not numbers"))
        elif el.tag == "way":
            ways[el.get("id", "")] = ([n.get("ref", "") for n in el.findall("nd")], tags)
        elif el.tag == "relation":
            members = [(m.get("type", ""), m.get("ref", ""), m.get("role", "")) for m in el.findall("member")]
            relations.append((el.get("id", ""), members, tags))

    def line(way_id: str) -> LineString | None:
        refs = ways.get(way_id, ([], {}))[0]
        if len(refs) < 2 or any(r not in nodes for r in refs):
            return None
        return LineString([nodes[r] for r in refs])

    outlines: list[Outline] = []
    for wid, (refs, tags) in ways.items():
        if not _is_camp(tags):
            continue
        ln = line(wid)
        if ln is None:
            skipped.append(Skip(p.name, f"way {wid}", "refers to nodes missing from the file"))
        elif len(refs) < 4 or refs[0] != refs[-1]:
            skipped.append(Skip(p.name, f"way {wid}", "is not a closed ring"))
        else:
            _add_outline(outlines, skipped, p.name, f"way/{wid}", Polygon(ln.coords), tags)
    for rid, members, tags in relations:
        if not _is_camp(tags) or tags.get("type") != "multipolygon":
            continue
        lines = {role: [line(ref) for typ, ref, r in members if typ == "way" and (r or "outer") == role]
                 for role in ("outer", "inner")}
        if any(ln is None for ls in lines.values() for ln in ls) or not lines["outer"]:
            skipped.append(Skip(p.name, f"relation {rid}", "has member ways missing from the file"))
            continue
        outer = unary_union(list(polygonize(unary_union(lines["outer"]))))
        inner = unary_union(list(polygonize(unary_union(lines["inner"])))) if lines["inner"] else None
        poly = outer.difference(inner) if inner is not None else outer
        _add_outline(outlines, skipped, p.name, f"relation/{rid}", poly, tags)
    return outlines, skipped


def _add_outline(out: list[Outline], skipped: list[Skip], src: str, osm_id: str, g: BaseGeometry,
                 tags: dict[str, str]) -> None:
    if not g.is_valid:
        g = shapely.make_valid(g)
        g = unary_union([x for x in getattr(g, "geoms", [g]) if isinstance(x, (Polygon, MultiPolygon))])
    if isinstance(g, MultiPolygon):
        if part_spread_m(g) > MAX_PART_SPREAD_M:
            skipped.append(Skip(src, osm_id, f"parts lie more than {MAX_PART_SPREAD_M:,.0f} m apart"))
            return
        g = g.convex_hull
    if not isinstance(g, Polygon) or g.is_empty or g.area == 0:
        skipped.append(Skip(src, osm_id, "outline has no area"))
        return
    out.append(Outline(osm_id, g, tags))


def osm_record(o: Outline) -> dict[str, Any]:
    """An outline as a site record: its names, note, OSM id, source and licence."""
    t = o.tags
    return {"site_id": o.site_id, "name": t.get("name:en") or t.get("name"),
            "name_zh": t.get("name:zh-Hans") or t.get("name:zh") or (t.get("name") if t.get("name:en") else None),
            "notes": t.get("note"), "osm_id": o.osm_id, "source": "OpenStreetMap", "licence": OSM_LICENCE,
            "attribution": OSM_CREDIT, "geometry_source": "osm_outline"}
