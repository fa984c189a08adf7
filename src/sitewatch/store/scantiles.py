"""The internal ``sitewatch_scan_tiles`` layer: wide-area scan tiles already done, so a killed
scan resumes where it stopped; a tile's candidates, scenes, detections and done mark land together."""

from __future__ import annotations

from collections.abc import Sequence

from .. import gpkg
from ..records import ScanTile
from .db import Database
from .detections import check_detection, insert_detection
from .scenes import check_scene, insert_scene
from .schema import utc_now
from .sites import check_site, insert_new_site


def done_scan_tiles(db: Database, scan_key: str) -> set[str]:
    with db.read() as con:
        rows = con.execute("SELECT tile_id FROM sitewatch_scan_tiles WHERE scan_key=?", (scan_key,)).fetchall()
    return {r[0] for r in rows}


def save_scan_tiles(db: Database, scan_key: str, run_id: str, tiles: Sequence[ScanTile]) -> int:
    """Scanned tiles' candidates, their scenes and detections, and the tiles' done marks, in one
    transaction: all or nothing. Batching matters: a commit costs more than scanning an empty tile."""
    for t in tiles:
        for s in t.sites:
            check_site(s)
        for sc in t.scenes:
            check_scene(sc)
        for d in t.detections:
            check_detection(d)
    if not tiles:
        return 0
    now = utc_now()
    added = 0
    with db.write() as con:
        for t in tiles:
            if con.execute("SELECT 1 FROM sitewatch_scan_tiles WHERE scan_key=? AND tile_id=?",
                           (scan_key, t.tile_id)).fetchone():
                continue
            for s in t.sites:
                insert_new_site(con, s, now)
            for sc in t.scenes:
                insert_scene(con, sc, " ON CONFLICT(site_id, scene_id) DO NOTHING")
            for d in t.detections:
                added += insert_detection(con, d, now)
            con.execute("INSERT INTO sitewatch_scan_tiles (scan_key, tile_id, run_id, area_km2, detections, "
                        "done_at) VALUES (?,?,?,?,?,?)",
                        (scan_key, t.tile_id, run_id, t.area_km2, len(t.detections), now))
        if any(t.sites for t in tiles):
            for table in ("sites", "scenes", "detections"):
                gpkg.touch_contents(con, table)
    return added
