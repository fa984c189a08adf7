"""The ``scenes`` layer and the internal ``sitewatch_scene_maps``: each scene read over a site,
with the structure maps and quicklook that let later runs date new scenes against it.

A scene lands together with its maps and metrics in one transaction, so a killed run never
leaves a scene that looks done without the maps later runs compare against.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from typing import Any

from shapely.geometry import Polygon

from .. import gpkg
from ..errors import NotFoundError, SchemaError
from ..records import SCENE_STATUSES, MetricsRecord, SceneRecord
from .db import Database
from .metrics import check_metrics, insert_metrics
from .schema import check_geom, iso_time, parse_time


def check_scene(s: SceneRecord) -> None:
    what = f"scene {s.scene_id} of site {s.site_id}"
    if s.status not in SCENE_STATUSES:
        raise SchemaError(f"{what}: unknown status {s.status!r}")
    check_geom(s.footprint, (Polygon,), what)
    for name in ("cloud_fraction", "valid_fraction"):
        v = getattr(s, name)
        if v is not None and not 0.0 <= v <= 1.0:
            raise SchemaError(f"{what}: {name} {v} is outside 0..1")
    if s.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", s.sha256):
        raise SchemaError(f"{what}: sha256 is not 64 hex digits")


def insert_scene(con: sqlite3.Connection, sc: SceneRecord, conflict: str = "") -> None:
    con.execute(
        "INSERT INTO scenes (geom, scene_id, site_id, source, collection, acquired, gsd_m, grid_res_m, "
        "cloud_fraction, valid_fraction, sha256, run_id, status, error, href, shift_x_px, shift_y_px, "
        "properties, image_href) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)" + conflict,
        (gpkg.to_blob(sc.footprint), sc.scene_id, sc.site_id, sc.source, sc.collection, iso_time(sc.acquired),
         sc.gsd_m, sc.grid_res_m, sc.cloud_fraction, sc.valid_fraction, sc.sha256, sc.run_id, sc.status, sc.error,
         sc.href, sc.shift_x_px, sc.shift_y_px, json.dumps(dict(sc.properties), default=str, ensure_ascii=False),
         sc.image_href))


def scene_of_row(r: sqlite3.Row) -> SceneRecord:
    return SceneRecord(
        scene_id=r["scene_id"], site_id=r["site_id"], source=r["source"], acquired=parse_time(r["acquired"]),
        gsd_m=r["gsd_m"], cloud_fraction=r["cloud_fraction"], valid_fraction=r["valid_fraction"],
        sha256=r["sha256"], run_id=r["run_id"], footprint=gpkg.from_blob(r["geom"]), collection=r["collection"],
        href=r["href"], status=r["status"], error=r["error"], grid_res_m=r["grid_res_m"],
        shift_x_px=r["shift_x_px"], shift_y_px=r["shift_y_px"], properties=json.loads(r["properties"] or "{}"),
        image_href=r["image_href"])


def done_scene_ids(db: Database, site_id: str) -> set[str]:
    """Scenes that need no more work for this site (observed or unusable; failed ones retry)."""
    with db.read() as con:
        rows = con.execute("SELECT scene_id FROM scenes WHERE site_id=? AND status != 'failed'",
                           (site_id,)).fetchall()
    return {r[0] for r in rows}


def save_scene(db: Database, scene: SceneRecord, maps: bytes | None = None, detector: str | None = None,
               metrics: MetricsRecord | None = None, quicklook: bytes | None = None,
               grid: Mapping[str, Any] | None = None) -> None:
    """A scene with its maps, quicklook and metrics, all or nothing."""
    check_scene(scene)
    if metrics is not None:
        check_metrics(metrics)
    with db.write() as con:
        con.execute("DELETE FROM scenes WHERE site_id=? AND scene_id=?", (scene.site_id, scene.scene_id))
        insert_scene(con, scene)
        if maps is not None:
            con.execute("INSERT OR REPLACE INTO sitewatch_scene_maps (site_id, scene_id, grid_res_m, detector, "
                        "maps, quicklook, grid) VALUES (?,?,?,?,?,?,?)",
                        (scene.site_id, scene.scene_id, scene.grid_res_m, detector, maps, quicklook,
                         json.dumps(dict(grid)) if grid else None))
        if metrics is not None:
            insert_metrics(con, metrics)
        gpkg.touch_contents(con, "scenes")


def scenes(db: Database, site_id: str | None = None, *, status: str | None = None) -> list[SceneRecord]:
    sql, args = "SELECT * FROM scenes WHERE 1=1", []
    if site_id is not None:
        sql, args = sql + " AND site_id=?", [*args, site_id]
    if status is not None:
        sql, args = sql + " AND status=?", [*args, status]
    with db.read() as con:
        rows = con.execute(sql + " ORDER BY acquired, scene_id", args).fetchall()
    return [scene_of_row(r) for r in rows]


def scene(db: Database, site_id: str, scene_id: str) -> SceneRecord:
    with db.read() as con:
        r = con.execute("SELECT * FROM scenes WHERE site_id=? AND scene_id=?", (site_id, scene_id)).fetchone()
    if r is None:
        raise NotFoundError(f"{db.path}: no scene {scene_id!r} for site {site_id!r}")
    return scene_of_row(r)


def scene_maps(db: Database, site_id: str) -> list[tuple[SceneRecord, bytes]]:
    """Stored maps of a site's observed scenes, oldest first."""
    with db.read() as con:
        rows = con.execute(
            "SELECT s.*, m.maps AS maps FROM scenes s JOIN sitewatch_scene_maps m "
            "ON s.site_id = m.site_id AND s.scene_id = m.scene_id WHERE s.site_id=? AND s.status='observed' "
            "ORDER BY s.acquired, s.scene_id", (site_id,)).fetchall()
    return [(scene_of_row(r), bytes(r["maps"])) for r in rows]


def scene_detectors(db: Database, site_id: str) -> dict[str, str]:
    """scene_id to the detector (name and version) that made its stored maps."""
    with db.read() as con:
        rows = con.execute("SELECT scene_id, detector FROM sitewatch_scene_maps WHERE site_id=?",
                           (site_id,)).fetchall()
    return {r[0]: r[1] or "" for r in rows}


def quicklook(db: Database, site_id: str, scene_id: str) -> tuple[bytes, dict[str, Any]] | None:
    """The scene's RGB quicklook (PNG) over the site and the grid it is on, if stored."""
    with db.read() as con:
        r = con.execute("SELECT quicklook, grid FROM sitewatch_scene_maps WHERE site_id=? AND scene_id=?",
                        (site_id, scene_id)).fetchone()
    if r is None or r["quicklook"] is None:
        return None
    return bytes(r["quicklook"]), json.loads(r["grid"] or "{}")
