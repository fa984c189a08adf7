"""The findings GeoPackage's schema: its layers, the guards in the file, how it is created.

Also the one time form every time field holds, and the columns a file written by an earlier
sitewatch lacks (``verify --upgrade`` adds them). Values are checked before they are written
(:func:`check_geom` here, the rest beside each layer): SQLite and GDAL would accept nearly
anything, and a silently wrong row is worse than a refused one.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import uuid
from pathlib import Path

from shapely.geometry.base import BaseGeometry

from .. import gpkg, styles
from ..errors import SchemaError
from ..reviews import DECISIONS, STATUSES
from ..structures import CHANGE_KINDS

# --- times ---------------------------------------------------------------------------------


def utc_now() -> str:
    """Now, as the UTC ISO 8601 string every time field holds."""
    return iso_time(dt.datetime.now(dt.timezone.utc))


def iso_time(t: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.sssZ``: the GeoPackage DATETIME form (GDAL 3.6 / QGIS 3.22 warn
    "Non-conformant content" on any other)."""
    if t.tzinfo is None:
        raise SchemaError(f"time {t!r} has no timezone; sitewatch stores UTC only")
    u = t.astimezone(dt.timezone.utc)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def parse_time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


# --- layers --------------------------------------------------------------------------------

#: Feature layers (EPSG:4326): name -> (geometry type, description, columns).
FEATURES = {
    "sites": ("POLYGON", "Candidate sites watched (areas of interest)",
              '"site_id" TEXT NOT NULL UNIQUE, "name" TEXT, "notes" TEXT, "properties" TEXT, '
              '"added_at" DATETIME'),
    "scenes": ("POLYGON", "Scenes read over each site: footprint, date, quality and pixel hash",
               '"scene_id" TEXT NOT NULL, "site_id" TEXT NOT NULL, "source" TEXT, "collection" TEXT, '
               '"acquired" DATETIME NOT NULL, "gsd_m" REAL, "grid_res_m" REAL, "cloud_fraction" REAL, '
               '"valid_fraction" REAL, "sha256" TEXT, "run_id" TEXT, "status" TEXT NOT NULL, "error" TEXT, '
               '"href" TEXT, "shift_x_px" REAL, "shift_y_px" REAL, "properties" TEXT, "image_href" TEXT, '
               'UNIQUE ("site_id", "scene_id")'),
    "detections": ("MULTIPOLYGON", "Machine detections of new or removed structures, for review",
                   '"detection_id" TEXT NOT NULL UNIQUE, "site_id" TEXT NOT NULL, "kind" TEXT NOT NULL, '
                   '"before_date" DATE NOT NULL, "after_date" DATE NOT NULL, "before_scene_id" TEXT NOT NULL, '
                   '"after_scene_id" TEXT NOT NULL, "area_m2" REAL, "length_m" REAL, "score" REAL NOT NULL, '
                   '"status" TEXT NOT NULL, "run_id" TEXT, "evidence" TEXT, "created_at" DATETIME, "detector" TEXT'),
}

#: Attribute layers (no geometry): name -> (description, columns); ``sitewatch_*`` are internal.
ATTRIBUTES = {
    "site_metrics": ("Per-scene measurements of each site",
                     '"site_id" TEXT NOT NULL, "scene_id" TEXT NOT NULL, "acquired" DATETIME NOT NULL, '
                     '"built_area_m2" REAL, "wall_length_m" REAL, "fence_length_m" REAL, "tower_count" INTEGER, '
                     '"enclosed_area_m2" REAL, "security_level" INTEGER, "security_reasons" TEXT, '
                     '"grid_res_m" REAL, "run_id" TEXT, UNIQUE ("site_id", "scene_id")'),
    "reviews": ("Append-only, hash-chained review decisions",
                '"review_id" TEXT NOT NULL UNIQUE, "detection_id" TEXT NOT NULL, "reviewer" TEXT NOT NULL, '
                '"decision" TEXT NOT NULL, "note" TEXT, "at" DATETIME NOT NULL, "prev_hash" TEXT NOT NULL, '
                '"hash" TEXT NOT NULL, "claim" TEXT'),
    "runs": ("Flow runs: when, what version, with which parameters, how they ended",
             '"run_id" TEXT NOT NULL UNIQUE, "flow" TEXT NOT NULL, "started_at" DATETIME NOT NULL, '
             '"finished_at" DATETIME, "status" TEXT NOT NULL, "version" TEXT, "params" TEXT, "summary" TEXT'),
    "sitewatch_scene_maps": ("Per-scene structure maps (internal: lets later runs date new scenes)",
                             '"site_id" TEXT NOT NULL, "scene_id" TEXT NOT NULL, "grid_res_m" REAL NOT NULL, '
                             '"detector" TEXT, "maps" BLOB NOT NULL, "quicklook" BLOB, "grid" TEXT, UNIQUE ("site_id", "scene_id")'),
    "sitewatch_scan_tiles": ("Wide-area scan tiles already done (internal: lets a killed scan resume)",
                             '"scan_key" TEXT NOT NULL, "tile_id" TEXT NOT NULL, "run_id" TEXT, '
                             '"area_km2" REAL, "detections" INTEGER, "done_at" DATETIME, '
                             'UNIQUE ("scan_key", "tile_id")'),
}

#: Columns added since sitewatch 0.1's first files; a file without them needs ``verify --upgrade``.
FORMAT_COLUMNS = {"reviews": ("claim", "TEXT"), "detections": ("detector", "TEXT"), "scenes": ("image_href", "TEXT")}


def upgrade_hint(path: Path | str) -> str:
    """The one line every command gives for a file that needs ``verify --upgrade``."""
    return (f"{path}: written by an earlier sitewatch (its review hashes do not cover the detections they judged); "
            f"upgrade it with `sitewatch verify --db {path} --upgrade` (checks the old chain first, keeps every row)")


def missing_format_columns(con: sqlite3.Connection) -> list[str]:
    """``table.column`` of each :data:`FORMAT_COLUMNS` entry the file lacks."""
    out = []
    for table, (col, _) in FORMAT_COLUMNS.items():
        cols = {r[1] for r in con.execute(f'PRAGMA table_info("{table}")')}
        if cols and col not in cols:
            out.append(f"{table}.{col}")
    return out


#: The triggers :func:`guard_sql` installs (a file made before one of them gets it at its next write).
GUARD_TRIGGERS = ("sitewatch_detections_check_insert", "sitewatch_detections_check_update",
                  "sitewatch_reviews_check_insert", "sitewatch_reviews_no_update", "sitewatch_reviews_no_delete")
#: The two that keep ``reviews`` append-only; ``verify --upgrade`` lifts them while it re-chains.
APPEND_ONLY_TRIGGERS = GUARD_TRIGGERS[3:]


def guard_sql() -> list[str]:
    """Triggers in the file itself, so writers other than sitewatch (QGIS edits, sqlite3) cannot
    store an unknown kind, status or decision, nor edit or delete a review: a reviewer's decision
    is evidence, and an accidental edit in QGIS's attribute table must fail at once rather than be
    found later by ``verify`` (which still catches a writer that drops these triggers first)."""
    kinds = ",".join(f"'{k}'" for k in CHANGE_KINDS)
    statuses = ",".join(f"'{s}'" for s in STATUSES)
    decisions = ",".join(f"'{d}'" for d in DECISIONS)
    out = []
    for op in ("INSERT", "UPDATE"):
        out.append(
            f'CREATE TRIGGER IF NOT EXISTS "sitewatch_detections_check_{op.lower()}" BEFORE {op} ON "detections" '
            f"WHEN NEW.kind NOT IN ({kinds}) OR NEW.status NOT IN ({statuses}) "
            "OR NEW.score < 0 OR NEW.score > 1 OR NEW.before_date > NEW.after_date "
            "BEGIN SELECT RAISE(ABORT, 'sitewatch: detection has an unknown kind or status, a score "
            "outside 0..1, or before_date after after_date'); END")
    out.append(
        f'CREATE TRIGGER IF NOT EXISTS "sitewatch_reviews_check_insert" BEFORE INSERT ON "reviews" '
        f"WHEN NEW.decision NOT IN ({decisions}) "
        "BEGIN SELECT RAISE(ABORT, 'sitewatch: review decision must be confirmed or rejected'); END")
    for op, name in (("UPDATE", APPEND_ONLY_TRIGGERS[0]), ("DELETE", APPEND_ONLY_TRIGGERS[1])):
        out.append(
            f'CREATE TRIGGER IF NOT EXISTS "{name}" BEFORE {op} ON "reviews" '
            "BEGIN SELECT RAISE(ABORT, 'sitewatch: reviews are append-only; record a new review "
            "instead (sitewatch review)'); END")
    return out


def missing_guards(con: sqlite3.Connection) -> bool:
    """Whether the file lacks one of :data:`GUARD_TRIGGERS` (made by an earlier sitewatch)."""
    have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    return not set(GUARD_TRIGGERS) <= have


def create(path: Path) -> None:
    """Build a new, empty findings GeoPackage at a temporary path and move it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            gpkg.register_functions(con)
            con.execute("BEGIN")
            gpkg.create_core(con)
            for table, (gtype, desc, cols) in FEATURES.items():
                gpkg.add_features_table(con, table, gtype, cols, desc)
            for table, (desc, cols) in ATTRIBUTES.items():
                gpkg.add_attributes_table(con, table, cols, desc)
            con.execute('CREATE INDEX "detections_site_idx" ON "detections" ("site_id", "status")')
            con.execute('CREATE INDEX "reviews_detection_idx" ON "reviews" ("detection_id")')
            for sql in guard_sql():
                con.execute(sql)
            styles.install(con)
            gpkg.add_ogr_contents(con)
            con.execute("COMMIT")
        finally:
            con.close()
        if path.exists():  # another process created it meanwhile: keep theirs
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_geom(g: BaseGeometry | None, types: tuple[type, ...], what: str) -> None:
    """Refuse a geometry of the wrong type or not in longitude/latitude (None passes)."""
    if g is None:
        return
    if not isinstance(g, types):
        raise SchemaError(f"{what}: geometry must be {'/'.join(t.__name__ for t in types)}, not {g.geom_type}")
    if g.is_empty:
        return
    minx, miny, maxx, maxy = g.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise SchemaError(f"{what}: coordinates {g.bounds} are not longitude/latitude (EPSG:4326)")
