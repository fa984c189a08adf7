"""Turn published candidate lists into one checked sites GeoPackage, reproducibly.

The real lists are messy (a "CSV" that is tab-separated CP850, blank rows, a column name with a
trailing space, link cells damaged by a find-and-replace) and overlap: the same compound is a
BuzzFeed News point and an OpenStreetMap outline. The importer reads each as it is, keeps every
source id and its licence, gives a point the mapped outline it falls in (or lies within
``match_m`` of), and says what it skipped and why rather than failing on the first bad row.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from .errors import SitesError
from .osm import OSM_CREDIT, OSM_LICENCE, Outline, Skip, osm_record, read_osm
from .outline import local
from .sites import (DEFAULT_RADIUS_M, SITE_ID_RE, Site, buffer_point, decode_text, read_sites, record_site,
                    sniff_delimiter)

#: A point this close to a mapped outline (metres) is taken to be that compound.
MATCH_M = 400.0

BFN_CREDIT = "BuzzFeed News / Alison Killing, Megha Rajagopalan, Christo Buschek"
BFN_LICENCE = "CC BY 4.0"

#: The layer's string fields, in order (``lon``/``lat`` are the published point, when there is one).
FIELDS = ("site_id", "name", "name_zh", "notes", "bfn_id", "id_sub", "osm_id", "town", "prefecture",
          "facility_type", "corroboration", "etnam", "aspi_number", "shawn_zhang_number", "links", "source",
          "licence", "attribution", "geometry_source")
NUMBER_FIELDS = ("lon", "lat")

#: An old find-and-replace turned "camp" into this inside BuzzFeed's link cells; URLs hold no spaces.
_DAMAGE = "Pre-2016 programme - detention centre"

# BuzzFeed columns (lower-cased, stripped) -> our fields.
_BFN_COLUMNS = {
    "name": "name", "name_id": "name", "id_sub": "id_sub", "town": "town", "prefecture": "prefecture",
    "facility type": "facility_type", "corroboration level": "corroboration", "status": "corroboration",
    "etnam": "etnam", "aspi 2020 #": "aspi_number", "shawn zhang #": "shawn_zhang_number",
}
_BFN_NOTES = ("shawn zhang list", "xjvdb", "media reports", "researchers")


@dataclass
class ImportReport:
    """What an import read, skipped, matched and kept."""

    sites: list[Site] = field(default_factory=list)
    read: dict[str, int] = field(default_factory=dict)
    skipped: list[Skip] = field(default_factory=list)
    matched_points: int = 0
    matched_outlines: int = 0
    osm_only: int = 0
    buffered_points: int = 0

    def summary_lines(self) -> list[str]:
        lines = [f"{src}: {n} records read" for src, n in self.read.items()]
        lines += [f"skipped {s}" for s in self.skipped]
        lines.append(f"{self.matched_points} points matched {self.matched_outlines} OSM outlines; "
                     f"{self.buffered_points} points buffered; {self.osm_only} outlines without a point")
        return lines


# --- BuzzFeed-shaped tables ----------------------------------------------------------------


def read_table(path: str | Path) -> tuple[list[str], list[tuple[int, dict[str, str]]], str, str]:
    """Header (stripped, lower-case), non-blank rows with their line numbers, encoding and delimiter."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SitesError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in raw[:4096]:
        raise SitesError(f"{p}: binary data, not a text table")
    text, enc = decode_text(raw)
    delim = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            rows.append((reader.line_num, dict(zip(header, (c.strip() for c in cells)))))
    except csv.Error as exc:
        raise SitesError(f"{p}: line {reader.line_num}: not readable as a table ({exc})") from None
    return header, rows, enc, delim


def _is_bfn(header: Sequence[str]) -> bool:
    h = set(header)
    return "id" in h and bool(h & {"lat", "latitude"}) and bool(h & {"long", "lon", "longitude"}) \
        and "site_id" not in h


def _repair_link(cell: str) -> str:
    return cell.replace(_DAMAGE, "camp") if " " in cell else cell


def _float(v: str | None) -> float | None:
    try:
        x = float(v) if v not in (None, "") else None
    except ValueError:
        return None
    return x if x is not None and math.isfinite(x) else None


def read_bfn(path: str | Path) -> tuple[list[dict[str, Any]], list[Skip], int]:
    """Records of a BuzzFeed-shaped table (id, lat, long, ...), the rows skipped, and the column count."""
    p = Path(path)
    header, rows, _, _ = read_table(p)
    records: list[dict[str, Any]] = []
    skipped: list[Skip] = []
    seen: set[str] = set()
    link_cols = [h for h in header if h.startswith("links")]
    for line, row in rows:
        where = f"line {line}"
        bid = row.get("id", "")
        lat = _float(row.get("lat", row.get("latitude")))
        lon = _float(row.get("long", row.get("lon", row.get("longitude"))))
        if not bid:
            skipped.append(Skip(p.name, where, "no id"))
            continue
        if not SITE_ID_RE.match(f"bfn-{bid}"):
            skipped.append(Skip(p.name, where, f"id {bid[:40]!r} is not usable in a site_id"))
            continue
        if bid in seen:
            skipped.append(Skip(p.name, f"{where} (id {bid})", "repeats an id already read"))
            continue
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            skipped.append(Skip(p.name, f"{where} (id {bid})", "no usable lat/long"))
            continue
        seen.add(bid)
        rec: dict[str, Any] = {"site_id": f"bfn-{bid}", "bfn_id": bid, "lon": lon, "lat": lat,
                               "source": f"BuzzFeed News ({p.name})", "licence": BFN_LICENCE,
                               "attribution": f"{BFN_CREDIT} ({BFN_LICENCE})"}
        for col, key in _BFN_COLUMNS.items():
            if row.get(col):
                rec[key] = row[col]
        notes = [f"{c}: {row[c]}" for c in _BFN_NOTES if row.get(c)]
        if notes:
            rec["notes"] = "; ".join(notes)
        links = [_repair_link(row[c]) for c in link_cols if row.get(c)]
        if links:
            rec["links"] = " ".join(links)
        records.append(rec)
    return records, skipped, len(header)


# --- import --------------------------------------------------------------------------------


def import_sites(sources: Sequence[str | Path], *, radius_m: float = DEFAULT_RADIUS_M, match_m: float = MATCH_M,
                 progress: Callable[[str], None] | None = None) -> ImportReport:
    """Read every source, merge points with outlines, and return the checked sites (nothing written).

    BuzzFeed-shaped tables (``id`` plus lat/long columns) become ``bfn-<id>``; when several hold
    the same id the richest table (most columns, i.e. the newest release) wins and ids it lacks
    are skipped as withdrawn. OSM files give outlines; any other file is read with
    :func:`~sitewatch.sites.read_sites` and kept as it is.
    """
    say = progress or (lambda _m: None)
    rep = ImportReport()
    tables: list[tuple[int, str, list[dict[str, Any]]]] = []
    outlines: list[Outline] = []
    generic: list[Site] = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise SitesError(f"{p}: no such source file")
        if p.suffix.lower() == ".osm":
            got, skipped = read_osm(p)
            outlines += got
            rep.read[p.name] = len(got) + len([s for s in skipped if not s.record.startswith("node")])
        elif p.suffix.lower() in (".csv", ".tsv", ".txt") and _is_bfn(read_table(p)[0]):
            recs, skipped, ncols = read_bfn(p)
            tables.append((ncols, p.name, recs))
            rep.read[p.name] = len(recs) + len(skipped)
        else:
            got_sites = read_sites(p)
            generic += got_sites
            skipped = []
            rep.read[p.name] = len(got_sites)
        rep.skipped += skipped
        say(f"{p.name}: {rep.read[p.name]} records read, {len(skipped)} skipped")

    points = _merge_tables(tables, rep)
    rep.sites = _match(points, outlines, rep, radius_m, match_m)
    known = {s.site_id for s in rep.sites}
    for s in generic:
        if s.site_id in known:
            rep.skipped.append(Skip(str(s.properties.get("source", "input")), s.site_id, "site_id already imported"))
            continue
        known.add(s.site_id)
        rep.sites.append(s)
    if not rep.sites:
        raise SitesError(f"{', '.join(str(s) for s in sources)}: no usable sites in the sources")
    return rep


def _merge_tables(tables: list[tuple[int, str, list[dict[str, Any]]]], rep: ImportReport) -> list[dict[str, Any]]:
    tables.sort(key=lambda t: -t[0])  # richest first; stable for ties, so the order given breaks them
    merged: dict[str, dict[str, Any]] = {}
    for i, (_, name, recs) in enumerate(tables):
        for r in recs:
            if r["bfn_id"] in merged:
                continue
            if i > 0:
                rep.skipped.append(Skip(name, f"id {r['bfn_id']}", f"not in the fuller release {tables[0][1]} "
                                                                  "(withdrawn there)"))
                continue
            merged[r["bfn_id"]] = r
    return sorted(merged.values(), key=lambda r: (len(r["bfn_id"]), r["bfn_id"]))


def _match(points: list[dict[str, Any]], outlines: list[Outline], rep: ImportReport, radius_m: float,
           match_m: float) -> list[Site]:
    from shapely import STRtree

    from .grid import utm_crs_for

    tree = STRtree([o.polygon for o in outlines]) if outlines else None
    nearest: list[tuple[float, Outline] | None] = []
    for r in points:
        pt = Point(r["lon"], r["lat"])
        best: tuple[float, Outline] | None = None
        if tree is not None:
            margin = match_m / (111_320.0 * max(math.cos(math.radians(pt.y)), 0.01)) + 0.001
            crs = utm_crs_for(pt.x, pt.y)
            lp = local(pt, crs)
            for k in tree.query(pt.buffer(margin)):  # generous in degrees, exact in metres below
                d = lp.distance(local(outlines[int(k)].polygon, crs))
                if d <= match_m and (best is None or d < best[0]):
                    best = (d, outlines[int(k)])
        nearest.append(best)
    # A point inside an outline owns it (sub-compounds of one mapped complex share it); a point
    # merely near one takes it only when no point is inside and no nearer point claims it: a
    # neighbouring compound keeps its own circle rather than watching someone else's walls.
    owner: dict[str, int] = {}
    for i, b in enumerate(nearest):
        if b is not None and b[0] == 0:
            owner.setdefault(b[1].osm_id, -1)
    for i, b in sorted(enumerate(nearest), key=lambda ib: ib[1][0] if ib[1] else math.inf):
        if b is not None and b[0] > 0 and b[1].osm_id not in owner:
            owner[b[1].osm_id] = i
    used: set[str] = set()
    sites: list[Site] = []
    for i, (r, b) in enumerate(zip(points, nearest)):
        if b is not None and (b[0] == 0 or owner.get(b[1].osm_id) == i):
            d, o = b
            orec = osm_record(o)
            rec = {**r, "osm_id": o.osm_id, "name_zh": orec["name_zh"], "geometry_source": "osm_outline",
                   "source": f"{r['source']} + OpenStreetMap", "licence": f"{BFN_LICENCE}; {OSM_LICENCE}",
                   "attribution": f"{r['attribution']}; {OSM_CREDIT} ({OSM_LICENCE})"}
            if d > 0:
                rec["notes"] = "; ".join(x for x in (r.get("notes"), f"point {d:.0f} m outside the OSM outline") if x)
            sites.append(record_site(rec, o.polygon))
            used.add(o.osm_id)
            rep.matched_points += 1
            continue
        try:
            circle = buffer_point(r["lon"], r["lat"], radius_m)
        except ValueError as exc:
            rep.skipped.append(Skip(r["source"], r["site_id"], str(exc)))
            continue
        sites.append(record_site({**r, "geometry_source": "buffered_point"}, circle))
        rep.buffered_points += 1
    rep.matched_outlines = len(used)
    for o in sorted(outlines, key=lambda o: (o.osm_id.split("/")[0], int(o.osm_id.split("/")[1]))):
        if o.osm_id not in used:
            sites.append(record_site(osm_record(o), o.polygon))
            rep.osm_only += 1
    return sites


# --- writing -------------------------------------------------------------------------------


def write_sites(sites: Sequence[Site], out: str | Path, *, description: str = "") -> Path:
    """Write sites as a GeoPackage layer ``sites`` (EPSG:4326, Polygon), atomically: temp file, then rename."""
    import numpy as np
    import pyogrio.raw

    out = Path(out)
    if not out.parent.exists():
        raise SitesError(f"{out}: folder {out.parent} does not exist")
    extra = sorted({k for s in sites for k in s.properties} - set(FIELDS) - set(NUMBER_FIELDS))
    names = [*FIELDS, *extra]
    cols: dict[str, list[Any]] = {n: [] for n in [*names, *NUMBER_FIELDS]}
    for s in sites:
        row = {**s.properties, "site_id": s.site_id, "name": s.name, "notes": s.notes}
        for n in names:
            v = row.get(n)
            cols[n].append(None if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        for n in NUMBER_FIELDS:
            v = row.get(n)
            cols[n].append(float(v) if isinstance(v, (int, float)) else math.nan)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.gpkg")
    tmp.unlink(missing_ok=True)
    try:
        pyogrio.raw.write(
            str(tmp), np.array([shapely.to_wkb(s.geometry) for s in sites], dtype=object),
            fields=[*names, *NUMBER_FIELDS],
            field_data=[np.array(cols[n], dtype=object) for n in names]
            + [np.array(cols[n], dtype="float64") for n in NUMBER_FIELDS],
            layer="sites", driver="GPKG", crs="EPSG:4326", geometry_type="Polygon", encoding="UTF-8",
            layer_options={"DESCRIPTION": description} if description else None)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def description_for(rep: ImportReport) -> str:
    """Attribution for the layer's gpkg_contents description (what QGIS shows as the layer's abstract)."""
    parts = []
    if any(str(s.properties.get("licence", "")).startswith(BFN_LICENCE) for s in rep.sites):
        parts.append(f"Points: {BFN_CREDIT}, {BFN_LICENCE}.")
    if any(OSM_LICENCE in str(s.properties.get("licence", "")) for s in rep.sites):
        parts.append(f"Outlines: {OSM_CREDIT}, {OSM_LICENCE} (share-alike applies to derived databases).")
    return "Candidate sites for sitewatch. " + " ".join(parts)


# --- one more site -------------------------------------------------------------------------


def site_from_detection(det: Any, *, buffer_m: float = 200.0, site_id: str | None = None) -> Site:
    """A candidate site around a wide-area scan's detection: its outline grown by ``buffer_m`` on the ground."""
    from .grid import to_crs, utm_crs_for

    sid = site_id or f"site-{det.detection_id}"
    if not SITE_ID_RE.match(sid):
        raise SitesError(f"site_id {sid[:80]!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    g = det.geometry
    if g is None or g.is_empty:
        raise SitesError(f"detection {det.detection_id}: has no geometry")
    c = g.centroid
    crs = utm_crs_for(c.x, c.y)
    grown = to_crs(to_crs(g, "EPSG:4326", crs).buffer(buffer_m, quad_segs=8), crs, "EPSG:4326")
    if not isinstance(grown, Polygon):
        grown = grown.convex_hull  # parts of one detection further apart than twice the buffer
    props = {"detection_id": det.detection_id, "kind": det.kind, "found_near_site_id": det.site_id,
             "before_date": str(det.before_date), "after_date": str(det.after_date), "score": det.score,
             "buffer_m": buffer_m, "geometry_source": "detection_buffer"}
    name = f"{det.kind.replace('_', ' ')} seen {det.after_date}"
    return Site(sid, grown, name, f"from detection {det.detection_id} ({det.site_id})", props)


def append_site(path: str | Path, site: Site) -> Path:
    """Add one site to a GeoJSON or GeoPackage sites file atomically; the file must already read cleanly."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".geojson", ".json", ".gpkg"):
        raise SitesError(f"{p}: can only add polygon sites to a GeoJSON or GeoPackage file")
    existing = read_sites(p) if p.exists() else []
    if any(s.site_id == site.site_id for s in existing):
        raise SitesError(f"{p}: site_id {site.site_id!r} is already in the file")
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp{suffix}")
    tmp.unlink(missing_ok=True)
    try:
        if suffix == ".gpkg":
            _append_gpkg(p, tmp, site)
        else:
            _append_geojson(p, tmp, site)
        read_sites(tmp)  # what we leave behind must read as cleanly as what we found
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def _append_geojson(p: Path, tmp: Path, site: Site) -> None:
    from shapely.geometry import mapping

    doc = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {"type": "FeatureCollection", "features": []}
    if doc.get("type") == "Feature":
        doc = {"type": "FeatureCollection", "features": [doc]}
    if doc.get("crs"):
        raise SitesError(f"{p}: has a non-default crs member; add the site to an EPSG:4326 file")
    props = {"site_id": site.site_id, "name": site.name, "notes": site.notes, **site.properties}
    doc["features"].append({"type": "Feature", "properties": props, "geometry": mapping(site.geometry)})
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def _append_gpkg(p: Path, tmp: Path, site: Site) -> None:
    import shutil

    import numpy as np
    import pyogrio
    import pyogrio.raw
    from pyproj import CRS

    if not p.exists():
        write_sites([site], tmp)
        return
    layers = {name: gt for name, gt in pyogrio.list_layers(p)}
    layer = "sites" if "sites" in layers else next(iter(layers))
    info = pyogrio.read_info(p, layer=layer)
    if info["geometry_type"] not in ("Polygon", "MultiPolygon", "Unknown"):
        raise SitesError(f"{p}: layer {layer!r} holds {info['geometry_type']} geometries; cannot add a polygon")
    g: BaseGeometry = site.geometry
    crs = info.get("crs")
    if crs and not CRS.from_user_input(crs).equals(CRS.from_epsg(4326), ignore_axis_order=True):
        from .grid import to_crs

        g = to_crs(g, "EPSG:4326", crs)
    if info["geometry_type"] == "MultiPolygon":
        g = MultiPolygon([g])
    shutil.copyfile(p, tmp)
    row = {**site.properties, "site_id": site.site_id, "name": site.name, "notes": site.notes}
    new_cols = [k for k in row if k not in set(info["fields"]) and row[k] is not None]
    if new_cols:  # keep the site's own fields: add them as text columns rather than drop them
        import sqlite3

        con = sqlite3.connect(tmp)
        try:
            for k in new_cols:
                con.execute(f'ALTER TABLE "{layer.replace(chr(34), chr(34) * 2)}" ADD COLUMN '
                            f'"{k.replace(chr(34), chr(34) * 2)}" TEXT')
            con.commit()
        finally:
            con.close()
    names = [*info["fields"], *new_cols]
    dtypes = [*info["dtypes"], *(["object"] * len(new_cols))]
    fields = [f for f in names if f in row]
    data = []
    for f, dtype in zip(names, dtypes):
        if f not in row:
            continue
        v = row[f]
        if dtype == "object":
            data.append(np.array([None if v is None else str(v)], dtype=object))
        else:
            try:
                data.append(np.array([v], dtype=dtype))
            except (TypeError, ValueError):
                raise SitesError(f"{p}: field {f!r} is {dtype}; cannot store {v!r}") from None
    pyogrio.raw.write(str(tmp), np.array([shapely.to_wkb(g)], dtype=object), fields=fields, field_data=data,
                      layer=layer, driver="GPKG", append=True, crs=crs or "EPSG:4326",
                      geometry_type=info["geometry_type"] if info["geometry_type"] != "Unknown" else "Polygon")
