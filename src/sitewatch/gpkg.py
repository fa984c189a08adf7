"""GeoPackage plumbing over plain sqlite3: geometry blobs, core tables, spatial indexes.

sitewatch writes its findings with sqlite3 directly rather than through GDAL so that a
scene, its maps, its metrics and its detections land in one transaction (a killed run
leaves nothing half-written) and so that many reviewers can write at once with busy
timeouts. The layout follows OGC GeoPackage 1.4 exactly as GDAL writes it, so QGIS and
``validate_gpkg`` read the file as their own.
"""

from __future__ import annotations

import sqlite3
import struct

import shapely
from shapely.geometry.base import BaseGeometry

#: 'GPKG' as a 32-bit integer, and GeoPackage 1.4.
APPLICATION_ID = 0x47504B47
USER_VERSION = 10400
SRS_ID = 4326

_WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)

CORE_SQL = [
    "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL,srs_id INTEGER NOT NULL PRIMARY KEY,"
    "organization TEXT NOT NULL,organization_coordsys_id INTEGER NOT NULL,definition  TEXT NOT NULL,"
    "description TEXT)",
    "CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY,data_type TEXT NOT NULL,"
    "identifier TEXT UNIQUE,description TEXT DEFAULT '',last_change DATETIME NOT NULL DEFAULT "
    "(strftime('%Y-%m-%dT%H:%M:%fZ','now')),min_x DOUBLE, min_y DOUBLE,max_x DOUBLE, max_y DOUBLE,"
    "srs_id INTEGER,CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))",
    "CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL,column_name TEXT NOT NULL,"
    "geometry_type_name TEXT NOT NULL,srs_id INTEGER NOT NULL,z TINYINT NOT NULL,m TINYINT NOT NULL,"
    "CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),CONSTRAINT uk_gc_table_name "
    "UNIQUE (table_name),CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES "
    "gpkg_contents(table_name),CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES "
    "gpkg_spatial_ref_sys (srs_id))",
    "CREATE TABLE gpkg_extensions (table_name TEXT,column_name TEXT,extension_name TEXT NOT NULL,"
    "definition TEXT NOT NULL,scope TEXT NOT NULL,CONSTRAINT ge_tce UNIQUE (table_name, column_name, "
    "extension_name))",
]

_SRS_ROWS = [
    ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
    ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
    ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84_WKT, "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid"),
]


def to_blob(geom: BaseGeometry | None) -> bytes | None:
    """GeoPackage binary geometry: header with SRS id and XY envelope, then ISO WKB."""
    if geom is None:
        return None
    if geom.is_empty:
        return b"GP" + bytes([0, 0x01 | 0x10]) + struct.pack("<i", SRS_ID) + shapely.to_wkb(geom, byte_order=1)
    minx, miny, maxx, maxy = geom.bounds
    header = b"GP" + bytes([0, 0x03]) + struct.pack("<i4d", SRS_ID, minx, maxx, miny, maxy)
    return header + shapely.to_wkb(geom, byte_order=1, flavor="iso")


def _header_len(blob: bytes) -> int:
    flags = blob[3]
    env = (flags >> 1) & 0x07
    return 8 + {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}.get(env, 0)


def from_blob(blob: bytes | None) -> BaseGeometry | None:
    """Read a GeoPackage geometry blob back into shapely."""
    if blob is None:
        return None
    if blob[:2] != b"GP":
        raise ValueError("not a GeoPackage geometry blob")
    return shapely.from_wkb(bytes(blob[_header_len(blob):]))


def _envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    if blob is None or len(blob) < 8 or blob[3] & 0x10:
        return None
    flags = blob[3]
    order = "<" if flags & 1 else ">"
    if (flags >> 1) & 0x07:
        minx, maxx, miny, maxy = struct.unpack(order + "4d", blob[8:40])
        return minx, maxx, miny, maxy
    g = from_blob(blob)
    if g is None or g.is_empty:
        return None
    x0, y0, x1, y1 = g.bounds
    return x0, x1, y0, y1


def register_functions(con: sqlite3.Connection) -> None:
    """The SQL functions GeoPackage R-tree triggers call (GDAL and SpatiaLite provide them too)."""
    con.create_function("ST_IsEmpty", 1, lambda b: 1 if _envelope(b) is None else 0, deterministic=True)
    for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        con.create_function(name, 1, lambda b, i=i: (e := _envelope(b)) and e[i], deterministic=True)


def create_core(con: sqlite3.Connection) -> None:
    """Core GeoPackage tables and the SRS rows every GeoPackage carries."""
    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    con.execute(f"PRAGMA user_version = {USER_VERSION}")
    for sql in CORE_SQL:
        con.execute(sql)
    con.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", _SRS_ROWS)


def add_features_table(con: sqlite3.Connection, table: str, geom_type: str, columns_sql: str,
                       description: str) -> None:
    """A features table with an R-tree index and its triggers, as GDAL makes them."""
    con.execute(f'CREATE TABLE "{table}" ("fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
                f'"geom" {geom_type}, {columns_sql})')
    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) "
                "VALUES (?, 'features', ?, ?, ?)", (table, table, description, SRS_ID))
    con.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)", (table, geom_type, SRS_ID))
    rt = f"rtree_{table}_geom"
    con.execute("INSERT INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', "
                "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')", (table,))
    con.execute(f'CREATE VIRTUAL TABLE "{rt}" USING rtree(id, minx, maxx, miny, maxy)')
    vals = 'NEW."fid",ST_MinX(NEW."geom"), ST_MaxX(NEW."geom"),ST_MinY(NEW."geom"), ST_MaxY(NEW."geom")'
    t, r = f'"{table}"', f'"{rt}"'
    nonempty_new = '(NEW."geom" NOTNULL AND NOT ST_IsEmpty(NEW."geom"))'
    triggers = {
        "insert": f'AFTER INSERT ON {t} WHEN (new."geom" NOT NULL AND NOT ST_IsEmpty(NEW."geom")) '
                  f"BEGIN INSERT OR REPLACE INTO {r} VALUES ({vals}); END",
        "update6": f'AFTER UPDATE OF "geom" ON {t} WHEN OLD."fid" = NEW."fid" AND {nonempty_new} AND '
                   f'(OLD."geom" NOTNULL AND NOT ST_IsEmpty(OLD."geom")) BEGIN UPDATE {r} SET '
                   'minx = ST_MinX(NEW."geom"), maxx = ST_MaxX(NEW."geom"),miny = ST_MinY(NEW."geom"), '
                   'maxy = ST_MaxY(NEW."geom") WHERE id = NEW."fid";END',
        "update7": f'AFTER UPDATE OF "geom" ON {t} WHEN OLD."fid" = NEW."fid" AND {nonempty_new} AND '
                   f'(OLD."geom" ISNULL OR ST_IsEmpty(OLD."geom")) BEGIN INSERT INTO {r} VALUES ({vals}); END',
        "update2": f'AFTER UPDATE OF "geom" ON {t} WHEN OLD."fid" = NEW."fid" AND '
                   f'(NEW."geom" ISNULL OR ST_IsEmpty(NEW."geom")) BEGIN DELETE FROM {r} WHERE id = OLD."fid"; END',
        "update5": f'AFTER UPDATE ON {t} WHEN OLD."fid" != NEW."fid" AND {nonempty_new} BEGIN DELETE FROM {r} '
                   f'WHERE id = OLD."fid"; INSERT OR REPLACE INTO {r} VALUES ({vals}); END',
        "update4": f'AFTER UPDATE ON {t} WHEN OLD."fid" != NEW."fid" AND (NEW."geom" ISNULL OR '
                   f'ST_IsEmpty(NEW."geom")) BEGIN DELETE FROM {r} WHERE id IN (OLD."fid", NEW."fid"); END',
        "delete": f'AFTER DELETE ON {t} WHEN old."geom" NOT NULL BEGIN DELETE FROM {r} WHERE id = OLD."fid"; END',
    }
    for name, body in triggers.items():
        con.execute(f'CREATE TRIGGER "{rt}_{name}" {body}')


def add_attributes_table(con: sqlite3.Connection, table: str, columns_sql: str, description: str) -> None:
    """A table without geometry, registered so QGIS lists it as a layer."""
    con.execute(f'CREATE TABLE "{table}" ("fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, {columns_sql})')
    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description) "
                "VALUES (?, 'attributes', ?, ?)", (table, table, description))


def touch_contents(con: sqlite3.Connection, table: str) -> None:
    """Refresh a layer's extent and last_change so QGIS zooms to the right place."""
    row = con.execute(f'SELECT min(minx), min(miny), max(maxx), max(maxy) FROM "rtree_{table}_geom"').fetchone()
    con.execute("UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now'), "
                "min_x = ?, min_y = ?, max_x = ?, max_y = ? WHERE table_name = ?", (*row, table))


def _count_triggers(table: str) -> dict[str, str]:
    """GDAL's feature-count triggers for ``table``, by name (as GDAL writes them)."""
    return {
        f"trigger_{op}_feature_count_{table}":
            f'CREATE TRIGGER "trigger_{op}_feature_count_{table}" AFTER {op.upper()} ON "{table}" '
            f"BEGIN UPDATE gpkg_ogr_contents SET feature_count = feature_count {sign} 1 "
            f"WHERE lower(table_name) = lower('{table}'); END;"
        for op, sign in (("insert", "+"), ("delete", "-"))
    }


def add_ogr_contents(con: sqlite3.Connection) -> None:
    """``gpkg_ogr_contents`` with exact counts and GDAL's triggers, as GDAL makes a new file.

    QGIS (through GDAL) takes layer feature counts from this table; a file that has it keeps
    them right for every writer that leaves the triggers in place.
    """
    con.execute("CREATE TABLE IF NOT EXISTS gpkg_ogr_contents(table_name TEXT NOT NULL PRIMARY KEY,"
                "feature_count INTEGER DEFAULT NULL)")
    for (table,) in con.execute("SELECT table_name FROM gpkg_contents WHERE data_type IN ('features', 'attributes')"
                                ).fetchall():
        n = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        con.execute("INSERT OR REPLACE INTO gpkg_ogr_contents (table_name, feature_count) VALUES (?, ?)", (table, n))
        have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name=?",
                                          (table,))}
        for name, sql in _count_triggers(table).items():
            if name not in have:
                con.execute(sql)


def repair_feature_counts(con: sqlite3.Connection) -> None:
    """Recount the layers whose count triggers are missing, inside the caller's write.

    GDAL drops the triggers while it edits a layer (QGIS in edit mode) and puts them back
    when it is done; sitewatch writing meanwhile would leave the count stale. The triggers
    themselves are left to GDAL, which recreates them.
    """
    rows = con.execute("SELECT table_name FROM gpkg_ogr_contents").fetchall() if con.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='gpkg_ogr_contents'").fetchone() else []
    if not rows:
        return
    triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger' "
                                          "AND name LIKE 'trigger_%_feature_count_%'")}
    for (table,) in rows:
        if not set(_count_triggers(table)) <= triggers:
            con.execute("UPDATE gpkg_ogr_contents SET feature_count = (SELECT count(*) FROM "
                        f'"{table}") WHERE table_name = ?', (table,))
