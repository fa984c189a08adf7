"""Candidate sites: the areas of interest a run watches, read and checked.

Every problem with a sites file is reported as one line naming the file, the record and
what is wrong (:class:`~sitewatch.errors.SitesError`, exit 2), before anything is written:
a watch list with a silently dropped or misplaced site is worse than one that is refused.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from .errors import SitesError
from .outline import MAX_PART_SPREAD_M, part_spread_m

#: A site id is safe in file names, URLs and SQL literals.
SITE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

#: Points are buffered by this radius unless the record gives ``radius_m``.
DEFAULT_RADIUS_M = 500.0
#: Largest radius a point may ask for: beyond this it is a region, not a site (use ``scan``).
MAX_RADIUS_M = 25_000.0


@dataclass(frozen=True)
class Site:
    """One candidate site.

    Attributes:
        site_id: unique, matching ``[A-Za-z0-9_.-]{1,64}``.
        geometry: area of interest, a valid Polygon in EPSG:4326.
        name: human name, if given.
        notes: free text, if given.
        properties: any other fields of the input record (source ids, facility type, ...).
    """

    site_id: str
    geometry: Polygon
    name: str | None = None
    notes: str | None = None
    properties: Mapping[str, object] = field(default_factory=dict)


# --- geometry ------------------------------------------------------------------------------


def buffer_point(lon: float, lat: float, radius_m: float) -> Polygon:
    """A circle of ``radius_m`` metres around a lon/lat point, drawn in local UTM so it is round on the ground.

    UTM is the projection the site's pixel grid uses; beyond its range (|lat| > 84) an azimuthal
    equidistant projection centred on the point is used instead. A circle that would cross the
    antimeridian or a pole cannot be one lon/lat polygon and is refused (ValueError).
    """
    from .grid import to_crs, utm_crs_for

    crs = utm_crs_for(lon, lat) if -80 <= lat <= 84 else f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m"
    centre = to_crs(Point(lon, lat), "EPSG:4326", crs)
    circle = to_crs(centre.buffer(radius_m, quad_segs=16), crs, "EPSG:4326")
    minx, miny, maxx, maxy = circle.bounds
    if not all(math.isfinite(v) for v in circle.bounds) or not circle.is_valid or maxx - minx > 180 \
            or not circle.contains(Point(lon, lat)):
        raise ValueError(f"a {radius_m:g} m circle around {lon:.5f},{lat:.5f} crosses the antimeridian or a pole")
    return circle  # type: ignore[return-value]


def _check_lonlat(g: BaseGeometry, where: str) -> None:
    minx, miny, maxx, maxy = g.bounds
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise SitesError(f"{where}: coordinates are not finite numbers")
    hint = " (projected coordinates without a CRS?)" if max(abs(minx), abs(maxx), abs(miny), abs(maxy)) > 1000 else ""
    if not (-180 <= minx <= maxx <= 180):
        raise SitesError(f"{where}: longitude {minx if minx < -180 else maxx:g} is outside -180..180{hint}")
    if not (-90 <= miny <= maxy <= 90):
        if not hint and -90 <= minx <= maxx <= 90:
            hint = " (lon and lat swapped?)"
        raise SitesError(f"{where}: latitude {miny if miny < -90 else maxy:g} is outside -90..90{hint}")


def area_of_interest(g: BaseGeometry | None, where: str, radius_m: float = DEFAULT_RADIUS_M) -> Polygon:
    """The polygon a site is watched over, from what the record gave (EPSG:4326)."""
    if g is None or g.is_empty:
        raise SitesError(f"{where}: has no geometry")
    _check_lonlat(g, where)
    g = shapely.force_2d(g)
    if isinstance(g, Point):
        try:
            return buffer_point(g.x, g.y, radius_m)
        except ValueError as exc:
            raise SitesError(f"{where}: {exc}") from None
    if isinstance(g, (Polygon, MultiPolygon)):
        if not g.is_valid:
            raise SitesError(f"{where}: invalid polygon ({explain_validity(g)})")
        if isinstance(g, MultiPolygon):
            spread = part_spread_m(g)
            if spread > MAX_PART_SPREAD_M:
                raise SitesError(f"{where}: its parts lie {spread:,.0f} m apart; give each part its own site_id")
            g = g.convex_hull
        if g.area == 0:
            raise SitesError(f"{where}: polygon has no area")
        return g  # type: ignore[return-value]
    raise SitesError(f"{where}: geometry must be a Point or Polygon, not {g.geom_type}")


# --- records -------------------------------------------------------------------------------


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    s = str(v).strip()
    return s or None


def _number(v: Any, what: str, where: str) -> float | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise SitesError(f"{where}: {what} {str(v)[:40]!r} is not a number") from None
    if not math.isfinite(x):
        raise SitesError(f"{where}: {what} {v!r} is not a finite number")
    return x


def make_site(record: Mapping[str, Any], geometry: BaseGeometry | None, where: str) -> Site:
    """Check one record and turn it into a Site."""
    raw_id = record.get("site_id")
    site_id = _text(raw_id)
    if site_id is None:
        raise SitesError(f"{where}: missing site_id")
    if isinstance(raw_id, float) and raw_id.is_integer():
        site_id = str(int(raw_id))
    if not SITE_ID_RE.match(site_id):
        raise SitesError(f"{where}: site_id {site_id[:80]!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    where = f"{where} (site_id {site_id})"
    radius = _number(record.get("radius_m"), "radius_m", where)
    if radius is not None and not 0 < radius <= MAX_RADIUS_M:
        raise SitesError(f"{where}: radius_m {radius:g} must be above 0 and at most {MAX_RADIUS_M:,.0f} m")
    aoi = area_of_interest(geometry, where, radius or DEFAULT_RADIUS_M)
    props = {k: _json_safe(v) for k, v in record.items() if k not in ("site_id", "name", "notes", "geometry")}
    return Site(site_id, aoi, _text(record.get("name")), _text(record.get("notes")), props)


def _json_safe(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, bool)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return str(v)


def check_unique(sites: Sequence[Site], path: Path) -> None:
    seen: dict[str, int] = {}
    for i, s in enumerate(sites, start=1):
        if s.site_id in seen:
            raise SitesError(f"{path}: record {i}: duplicate site_id {s.site_id!r} (also record {seen[s.site_id]})")
        seen[s.site_id] = i


def record_site(rec: Mapping[str, Any], geom: Polygon) -> Site:
    """A Site from an imported record whose polygon is already the area of interest (fields kept as given)."""
    props = {k: v for k, v in rec.items() if k not in ("site_id", "name", "notes") and v is not None}
    return Site(rec["site_id"], geom, rec.get("name"), rec.get("notes"), props)


def read_osm_sites(path: str | Path) -> list[Site]:
    """OSM outlines as sites (``read_sites`` on a ``.osm`` file); any unusable outline is an error."""
    from .osm import osm_record, read_osm

    outlines, skipped = read_osm(path)
    if skipped:
        raise SitesError(f"{path}: {skipped[0].record}: {skipped[0].reason}")
    return [record_site(osm_record(o), o.polygon) for o in outlines]


# --- files ---------------------------------------------------------------------------------


def read_sites(path: str | Path) -> list[Site]:
    """Every site of a GeoPackage, GeoJSON or CSV file, checked; EPSG:4326 polygons."""
    p = Path(path)
    if not p.exists():
        raise SitesError(f"{p}: no such sites file")
    if p.is_dir():
        raise SitesError(f"{p}: is a folder, not a sites file")
    if p.stat().st_size == 0:
        raise SitesError(f"{p}: file is empty")
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        sites = _read_csv(p)
    elif suffix in (".geojson", ".json"):
        sites = _read_geojson(p)
    elif suffix == ".osm":
        sites = read_osm_sites(p)
    elif suffix in (".gpkg", ".shp", ".fgb", ".gml", ".kml"):
        sites = _read_vector(p)
    else:
        raise SitesError(f"{p}: unknown sites format {suffix or '(no extension)'!r}; use .gpkg, .geojson or .csv")
    if not sites:
        raise SitesError(f"{p}: no sites in the file")
    check_unique(sites, p)
    return sites


def decode_text(raw: bytes) -> tuple[str, str]:
    """Text and encoding of a table exported by some spreadsheet: UTF-8, else the 8-bit code page that reads best.

    Real lists arrive as CP850 or CP1252 as often as UTF-8. Among the 8-bit candidates the one
    whose non-ASCII characters are most often letters wins (``Ürümqi`` rather than ``šrümqi``).
    """
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    best: tuple[float, str, str] | None = None
    for enc in ("cp1252", "cp850", "latin-1"):
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        high = [c for c in text if ord(c) > 127]
        score = sum(c.isalpha() for c in high) / max(1, len(high))
        if best is None or score > best[0]:
            best = (score, text, enc)
    assert best is not None  # latin-1 decodes any bytes
    return best[1], best[2]


def sniff_delimiter(text: str) -> str:
    """The delimiter of a header line: whichever of tab, comma, semicolon and pipe it holds most of."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: header.count(d) for d in ("\t", ",", ";", "|")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _read_csv(p: Path) -> list[Site]:
    raw = p.read_bytes()
    if b"\x00" in raw[:4096]:
        raise SitesError(f"{p}: binary data, not a CSV text file")
    text, _ = decode_text(raw)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
    try:
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise SitesError(f"{p}: header not readable as CSV ({exc})") from None
    reader.fieldnames = fields
    missing = [f for f in ("site_id", "lon", "lat") if f not in fields]
    if missing and not ({"longitude", "latitude"} <= set(fields) and "site_id" in fields):
        raise SitesError(f"{p}: header {','.join(fields)[:120]!r} lacks {', '.join(missing)} "
                         "(expected site_id,name,lon,lat[,radius_m])")
    if len(set(fields)) != len(fields):
        raise SitesError(f"{p}: header repeats a column name ({','.join(fields)[:120]})")
    sites = []
    for row in _csv_rows(reader, p):
        i = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # blank line
        where = f"{p}: line {i}"
        if None in row:
            raise SitesError(f"{where}: {len(fields) + len(row[None])} fields but the header has {len(fields)}")
        lon = _number(row.get("lon", row.get("longitude")), "lon", where)
        lat = _number(row.get("lat", row.get("latitude")), "lat", where)
        if lon is None or lat is None:
            raise SitesError(f"{where}: needs both lon and lat")
        sites.append(make_site({k: v for k, v in row.items() if k not in ("lon", "lat", "longitude", "latitude")
                                and k is not None}, Point(lon, lat), where))
    return sites


def _csv_rows(reader: csv.DictReader, p: Path) -> Any:
    try:
        yield from reader
    except csv.Error as exc:
        raise SitesError(f"{p}: line {reader.line_num}: not readable as CSV ({exc})") from None


def _read_geojson(p: Path) -> list[Site]:
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SitesError(f"{p}: not UTF-8 text (GeoJSON must be UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise SitesError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict):
        raise SitesError(f"{p}: not a GeoJSON object")
    crs = _geojson_crs(doc, p)
    if doc.get("type") == "Feature":
        feats = [doc]
    elif doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
        feats = doc["features"]
    else:
        raise SitesError(f"{p}: not a GeoJSON FeatureCollection or Feature")
    sites = []
    for i, f in enumerate(feats, start=1):
        where = f"{p}: feature {i}"
        if not isinstance(f, dict):
            raise SitesError(f"{where}: not a GeoJSON Feature")
        props = f.get("properties") or {}
        if not isinstance(props, dict):
            raise SitesError(f"{where}: properties must be an object")
        g = f.get("geometry")
        geom = None
        if g is not None:
            try:
                geom = shape(g)
            except Exception as exc:  # shapely raises several types for malformed GeoJSON geometry
                raise SitesError(f"{where}: malformed geometry ({exc})") from None
            if crs:
                geom = _to_wgs84(geom, crs, where)
        sites.append(make_site(props, geom, where))
    return sites


def _geojson_crs(doc: dict[str, Any], p: Path) -> str | None:
    """Old-style GeoJSON may name a CRS; RFC 7946 says lon/lat WGS 84 otherwise."""
    crs = doc.get("crs")
    if not crs:
        return None
    name = (crs.get("properties") or {}).get("name") if isinstance(crs, dict) else None
    if not name:
        raise SitesError(f"{p}: crs member without a name")
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        c = CRS.from_user_input(name)
    except CRSError:
        raise SitesError(f"{p}: unknown CRS {name!r}") from None
    return None if c.equals(CRS.from_epsg(4326), ignore_axis_order=True) else c.to_string()


def _to_wgs84(g: BaseGeometry, crs: str, where: str) -> BaseGeometry:
    from .grid import to_crs

    try:
        out = to_crs(g, crs, "EPSG:4326")
    except Exception as exc:  # pyproj raises for impossible transforms
        raise SitesError(f"{where}: cannot transform from {crs} ({exc})") from None
    return out


def _read_vector(p: Path) -> list[Site]:
    import pyogrio
    from pyogrio.errors import DataSourceError
    from shapely import from_wkb

    with open(p, "rb") as fh:
        head = fh.read(16)
    if p.suffix.lower() == ".gpkg" and not head.startswith(b"SQLite format 3"):
        raise SitesError(f"{p}: not a GeoPackage (not an SQLite file)")
    try:
        with warnings.catch_warnings():  # GDAL's complaints become the one-line error below, not stderr noise
            warnings.simplefilter("ignore")
            layers = pyogrio.list_layers(p)
            layer = next((name for name, gt in layers if name == "sites"), layers[0][0] if len(layers) else None)
            if layer is None:
                raise SitesError(f"{p}: no layers")
            meta, _, geoms, values = pyogrio.raw.read(p, layer=layer)
    except SitesError:
        raise
    except (DataSourceError, Exception) as exc:  # pyogrio wraps GDAL errors in several classes
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SitesError(f"{p}: cannot read ({first[:160]})") from None
    if geoms is None:
        raise SitesError(f"{p}: layer {layer!r} has no geometry column")
    crs = meta.get("crs")
    if not crs:
        raise SitesError(f"{p}: layer {layer!r} has no CRS; sitewatch needs to know where the coordinates are")
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        to4326 = not CRS.from_user_input(crs).equals(CRS.from_epsg(4326), ignore_axis_order=True)
    except CRSError:
        raise SitesError(f"{p}: layer {layer!r} has an unknown CRS {str(crs)[:80]!r}") from None
    names = list(meta["fields"])
    if "site_id" not in names:
        raise SitesError(f"{p}: layer {layer!r} has no site_id field (fields: {', '.join(names)[:120]})")
    sites = []
    for i, wkb in enumerate(geoms):
        where = f"{p}: layer {layer} feature {i + 1}"
        record = {n: _numpy_scalar(values[j][i]) for j, n in enumerate(names)}
        try:
            g = from_wkb(wkb) if wkb is not None else None
        except Exception as exc:  # shapely.errors.GEOSException and friends for a corrupt blob
            raise SitesError(f"{where}: unreadable geometry ({str(exc)[:120]})") from None
        if g is not None and to4326:
            g = _to_wgs84(g, crs, where)
        sites.append(make_site(record, g, where))
    return sites


def _numpy_scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
