"""The ``site_metrics`` layer: one scene's measurements of a site (areas, lengths, towers, security level)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from ..errors import SchemaError
from ..records import MetricsRecord
from .db import Database
from .schema import iso_time, parse_time


def check_metrics(m: MetricsRecord) -> None:
    if m.security_level is not None and not 0 <= m.security_level <= 4:
        raise SchemaError(f"metrics of scene {m.scene_id}: security_level must be 0..4")


def insert_metrics(con: sqlite3.Connection, m: MetricsRecord) -> None:
    """Store (or replace) a scene's metrics; called inside the scene's own write."""
    con.execute(
        "INSERT OR REPLACE INTO site_metrics (site_id, scene_id, acquired, built_area_m2, wall_length_m, "
        "fence_length_m, tower_count, enclosed_area_m2, security_level, security_reasons, grid_res_m, "
        "run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (m.site_id, m.scene_id, iso_time(m.acquired), m.built_area_m2, m.wall_length_m,
         m.fence_length_m, m.tower_count, m.enclosed_area_m2, m.security_level, m.security_reasons,
         m.grid_res_m, m.run_id))


def metrics(db: Database, site_id: str | None = None) -> list[MetricsRecord]:
    sql, args = "SELECT * FROM site_metrics", []
    if site_id is not None:
        sql, args = sql + " WHERE site_id=?", [site_id]
    with db.read() as con:
        rows = con.execute(sql + " ORDER BY site_id, acquired, scene_id", args).fetchall()
    return [MetricsRecord(r["site_id"], r["scene_id"], parse_time(r["acquired"]), r["built_area_m2"],
                          r["wall_length_m"], r["fence_length_m"], r["tower_count"], r["enclosed_area_m2"],
                          r["run_id"], r["security_level"], r["security_reasons"], r["grid_res_m"])
            for r in rows]


def update_security(db: Database, site_id: str, levels: Mapping[str, tuple[int, str]]) -> None:
    """Set ``security_level`` and its reasons per scene_id."""
    with db.write() as con:
        con.executemany("UPDATE site_metrics SET security_level=?, security_reasons=? "
                        "WHERE site_id=? AND scene_id=?",
                        [(lvl, why, site_id, sid) for sid, (lvl, why) in levels.items()])
