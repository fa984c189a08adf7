"""The ``sites`` layer: the candidate sites watched, one Polygon each."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from shapely.geometry import Polygon

from .. import gpkg
from ..errors import NotFoundError, SchemaError
from ..sites import SITE_ID_RE, Site
from .db import Database
from .schema import check_geom, utc_now


def check_site(s: Site) -> None:
    """Refuse a site whose id or outline the layer cannot hold."""
    if not SITE_ID_RE.match(s.site_id):
        raise SchemaError(f"site_id {s.site_id!r} is not [A-Za-z0-9_.-]{{1,64}}")
    check_geom(s.geometry, (Polygon,), f"site {s.site_id}")


def upsert_sites(db: Database, sites: Sequence[Site]) -> int:
    """Add new sites and update names, notes and outlines of known ones."""
    for s in sites:
        check_site(s)
    now = utc_now()
    with db.write() as con:
        for s in sites:
            con.execute(
                'INSERT INTO sites (geom, site_id, name, notes, properties, added_at) VALUES (?,?,?,?,?,?) '
                "ON CONFLICT(site_id) DO UPDATE SET geom=excluded.geom, name=excluded.name, "
                "notes=excluded.notes, properties=excluded.properties",
                (gpkg.to_blob(s.geometry), s.site_id, s.name, s.notes,
                 json.dumps(dict(s.properties), default=str, ensure_ascii=False), now))
        gpkg.touch_contents(con, "sites")
    return len(sites)


def insert_new_site(con: sqlite3.Connection, s: Site, now: str) -> None:
    """Add a site unless one with its id is stored (a scan's candidate never rewrites a known site)."""
    con.execute(
        "INSERT INTO sites (geom, site_id, name, notes, properties, added_at) VALUES (?,?,?,?,?,?) "
        "ON CONFLICT(site_id) DO NOTHING",
        (gpkg.to_blob(s.geometry), s.site_id, s.name, s.notes,
         json.dumps(dict(s.properties), default=str, ensure_ascii=False), now))


def sites(db: Database) -> list[Site]:
    with db.read() as con:
        rows = con.execute("SELECT * FROM sites ORDER BY site_id").fetchall()
    return [Site(r["site_id"], gpkg.from_blob(r["geom"]), r["name"], r["notes"],  # type: ignore[arg-type]
                 json.loads(r["properties"] or "{}")) for r in rows]


def site(db: Database, site_id: str) -> Site:
    for s in sites(db):
        if s.site_id == site_id:
            return s
    raise NotFoundError(f"{db.path}: no site {site_id!r}")
