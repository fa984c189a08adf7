"""The findings GeoPackage: every layer of the contract, typed reads and checked writes.

Writes are short ``BEGIN IMMEDIATE`` transactions with a busy timeout and retries, so
several reviewers and a monitoring run can share one file; each scene lands together with
its maps and metrics, so a killed run leaves nothing half-written. Values are checked
before they are written (CRS, geometry type, kind, status, dates): SQLite and GDAL would
accept nearly anything, and a silently wrong row is worse than a refused one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from . import __version__, gpkg, styles
from .errors import NotAStoreError, NotFoundError, SchemaError, StoreError, UpgradeNeededError
from .reviews import DECISIONS, GENESIS, STATUSES, Review, claim_json, claim_of, review_hash
from .records import (RUN_STATUSES, SCENE_STATUSES, DetectionRecord, MetricsRecord, RunRecord, ScanTile,
                      SceneRecord)
from .runparams import RunParams
from .sites import SITE_ID_RE, Site
from .structures import CHANGE_KINDS

__all__ = ["Store", "SceneRecord", "DetectionRecord", "MetricsRecord", "RunRecord", "ScanTile", "RunParams",
           "SCENE_STATUSES", "RUN_STATUSES"]


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


# --- schema --------------------------------------------------------------------------------

_FEATURES = {
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

_ATTRIBUTES = {
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

#: Guards in the file itself, so writers other than sitewatch (QGIS edits, sqlite3) cannot
#: store an unknown kind, status or decision, nor rewrite the review log.
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


def _guard_sql() -> list[str]:
    kinds = ",".join(f"'{k}'" for k in CHANGE_KINDS)
    statuses = ",".join(f"'{s}'" for s in STATUSES)
    decisions = ",".join(f"'{d}'" for d in DECISIONS)
    out = []
    for op in ("INSERT", "UPDATE"):
        out.append(
            f'CREATE TRIGGER "sitewatch_detections_check_{op.lower()}" BEFORE {op} ON "detections" '
            f"WHEN NEW.kind NOT IN ({kinds}) OR NEW.status NOT IN ({statuses}) "
            "OR NEW.score < 0 OR NEW.score > 1 OR NEW.before_date > NEW.after_date "
            "BEGIN SELECT RAISE(ABORT, 'sitewatch: detection has an unknown kind or status, a score "
            "outside 0..1, or before_date after after_date'); END")
    out.append(
        f'CREATE TRIGGER "sitewatch_reviews_check_insert" BEFORE INSERT ON "reviews" '
        f"WHEN NEW.decision NOT IN ({decisions}) "
        "BEGIN SELECT RAISE(ABORT, 'sitewatch: review decision must be confirmed or rejected'); END")
    return out


def _create(path: Path) -> None:
    """Build a new, empty findings GeoPackage at a temporary path and move it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            gpkg.register_functions(con)
            con.execute("BEGIN")
            gpkg.create_core(con)
            for table, (gtype, desc, cols) in _FEATURES.items():
                gpkg.add_features_table(con, table, gtype, cols, desc)
            for table, (desc, cols) in _ATTRIBUTES.items():
                gpkg.add_attributes_table(con, table, cols, desc)
            con.execute('CREATE INDEX "detections_site_idx" ON "detections" ("site_id", "status")')
            con.execute('CREATE INDEX "reviews_detection_idx" ON "reviews" ("detection_id")')
            for sql in _guard_sql():
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


# --- the store -----------------------------------------------------------------------------


class Store:
    """A findings GeoPackage. Cheap to construct; every call opens a short connection."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        if not self.path.exists():
            if not create:
                raise NotAStoreError(f"{self.path}: no such GeoPackage")
            if not self.path.parent.exists():
                raise NotAStoreError(f"{self.path}: folder {self.path.parent} does not exist")
            _create(self.path)
        self._check()

    # connections

    def connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        gpkg.register_functions(con)
        return con

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        con = self.connect()
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; retried when another writer holds the lock."""
        con = self.connect()
        try:
            deadline = time.monotonic() + self.busy_timeout_s
            while True:
                try:
                    con.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    if time.monotonic() > deadline:
                        raise StoreError(f"{self.path}: still locked by another writer after "
                                         f"{self.busy_timeout_s:.0f} s") from exc
                    time.sleep(0.05)
            try:
                yield con
                gpkg.repair_feature_counts(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            try:
                con.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                con.execute("ROLLBACK")
                raise SchemaError(f"{self.path}: {exc}") from exc
        except sqlite3.IntegrityError as exc:
            raise SchemaError(f"{self.path}: write refused: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise StoreError(f"{self.path}: database is locked: {exc}") from exc
            raise StoreError(f"{self.path}: {exc}") from exc
        finally:
            con.close()

    def _check(self) -> None:
        """Refuse files that are not a sitewatch GeoPackage before touching them."""
        try:
            with self.read() as con:
                app = con.execute("PRAGMA application_id").fetchone()[0]
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise NotAStoreError(f"{self.path}: not a GeoPackage ({exc})") from exc
        if app != gpkg.APPLICATION_ID:
            raise NotAStoreError(f"{self.path}: not a GeoPackage (application_id {app:#x})")
        missing = (set(_FEATURES) | set(_ATTRIBUTES)) - tables
        if missing:
            raise NotAStoreError(f"{self.path}: not a sitewatch findings GeoPackage (missing layers: "
                             f"{', '.join(sorted(missing))})")
        with self.read() as con:
            for table in _FEATURES:
                row = con.execute("SELECT srs_id FROM gpkg_geometry_columns WHERE table_name=?", (table,)).fetchone()
                if row is None or row[0] != gpkg.SRS_ID:
                    raise StoreError(f"{self.path}: layer {table} is not in EPSG:4326")
            if missing_format_columns(con):
                raise UpgradeNeededError(upgrade_hint(self.path))

    # sites

    def upsert_sites(self, sites: Sequence[Site]) -> int:
        """Add new sites and update names, notes and outlines of known ones."""
        for s in sites:
            if not SITE_ID_RE.match(s.site_id):
                raise SchemaError(f"site_id {s.site_id!r} is not [A-Za-z0-9_.-]{{1,64}}")
            _check_geom(s.geometry, (Polygon,), f"site {s.site_id}")
        now = utc_now()
        with self.write() as con:
            for s in sites:
                con.execute(
                    'INSERT INTO sites (geom, site_id, name, notes, properties, added_at) VALUES (?,?,?,?,?,?) '
                    "ON CONFLICT(site_id) DO UPDATE SET geom=excluded.geom, name=excluded.name, "
                    "notes=excluded.notes, properties=excluded.properties",
                    (gpkg.to_blob(s.geometry), s.site_id, s.name, s.notes,
                     json.dumps(dict(s.properties), default=str, ensure_ascii=False), now))
            gpkg.touch_contents(con, "sites")
        return len(sites)

    def sites(self) -> list[Site]:
        with self.read() as con:
            rows = con.execute("SELECT * FROM sites ORDER BY site_id").fetchall()
        return [Site(r["site_id"], gpkg.from_blob(r["geom"]), r["name"], r["notes"],  # type: ignore[arg-type]
                     json.loads(r["properties"] or "{}")) for r in rows]

    def site(self, site_id: str) -> Site:
        for s in self.sites():
            if s.site_id == site_id:
                return s
        raise NotFoundError(f"{self.path}: no site {site_id!r}")

    # runs

    def start_run(self, flow: str, params: Mapping[str, Any], run_id: str | None = None) -> str:
        run_id = run_id or uuid.uuid4().hex
        with self.write() as con:
            con.execute("INSERT INTO runs (run_id, flow, started_at, status, version, params) VALUES (?,?,?,?,?,?)",
                        (run_id, flow, utc_now(), "running", __version__, json.dumps(dict(params), default=str)))
        return run_id

    def finish_run(self, run_id: str, status: str, summary: Mapping[str, Any]) -> None:
        if status not in RUN_STATUSES:
            raise SchemaError(f"unknown run status {status!r}")
        with self.write() as con:
            con.execute("UPDATE runs SET finished_at=?, status=?, summary=? WHERE run_id=?",
                        (utc_now(), status, json.dumps(dict(summary), default=str), run_id))

    def runs(self) -> list[RunRecord]:
        with self.read() as con:
            rows = con.execute("SELECT * FROM runs ORDER BY fid").fetchall()
        return [RunRecord(r["run_id"], r["flow"], r["started_at"], r["finished_at"], r["status"], r["version"],
                          json.loads(r["params"] or "{}"), json.loads(r["summary"] or "{}")) for r in rows]

    # scenes, maps and metrics

    def done_scene_ids(self, site_id: str) -> set[str]:
        """Scenes that need no more work for this site (observed or unusable; failed ones retry)."""
        with self.read() as con:
            rows = con.execute("SELECT scene_id FROM scenes WHERE site_id=? AND status != 'failed'",
                               (site_id,)).fetchall()
        return {r[0] for r in rows}

    def save_scene(self, scene: SceneRecord, maps: bytes | None = None, detector: str | None = None,
                   metrics: MetricsRecord | None = None, quicklook: bytes | None = None,
                   grid: Mapping[str, Any] | None = None) -> None:
        """A scene with its maps, quicklook and metrics, all or nothing."""
        _check_scene(scene)
        if metrics is not None:
            _check_metrics(metrics)
        with self.write() as con:
            con.execute("DELETE FROM scenes WHERE site_id=? AND scene_id=?", (scene.site_id, scene.scene_id))
            _insert_scene(con, scene)
            if maps is not None:
                con.execute("INSERT OR REPLACE INTO sitewatch_scene_maps (site_id, scene_id, grid_res_m, detector, "
                            "maps, quicklook, grid) VALUES (?,?,?,?,?,?,?)",
                            (scene.site_id, scene.scene_id, scene.grid_res_m, detector, maps, quicklook,
                             json.dumps(dict(grid)) if grid else None))
            if metrics is not None:
                m = metrics
                con.execute(
                    "INSERT OR REPLACE INTO site_metrics (site_id, scene_id, acquired, built_area_m2, wall_length_m, "
                    "fence_length_m, tower_count, enclosed_area_m2, security_level, security_reasons, grid_res_m, "
                    "run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (m.site_id, m.scene_id, iso_time(m.acquired), m.built_area_m2, m.wall_length_m,
                     m.fence_length_m, m.tower_count, m.enclosed_area_m2, m.security_level, m.security_reasons,
                     m.grid_res_m, m.run_id))
            gpkg.touch_contents(con, "scenes")

    def scenes(self, site_id: str | None = None, *, status: str | None = None) -> list[SceneRecord]:
        sql, args = "SELECT * FROM scenes WHERE 1=1", []
        if site_id is not None:
            sql, args = sql + " AND site_id=?", [*args, site_id]
        if status is not None:
            sql, args = sql + " AND status=?", [*args, status]
        with self.read() as con:
            rows = con.execute(sql + " ORDER BY acquired, scene_id", args).fetchall()
        return [_scene(r) for r in rows]

    def scene(self, site_id: str, scene_id: str) -> SceneRecord:
        with self.read() as con:
            r = con.execute("SELECT * FROM scenes WHERE site_id=? AND scene_id=?", (site_id, scene_id)).fetchone()
        if r is None:
            raise NotFoundError(f"{self.path}: no scene {scene_id!r} for site {site_id!r}")
        return _scene(r)

    def scene_maps(self, site_id: str) -> list[tuple[SceneRecord, bytes]]:
        """Stored maps of a site's observed scenes, oldest first."""
        with self.read() as con:
            rows = con.execute(
                "SELECT s.*, m.maps AS maps FROM scenes s JOIN sitewatch_scene_maps m "
                "ON s.site_id = m.site_id AND s.scene_id = m.scene_id WHERE s.site_id=? AND s.status='observed' "
                "ORDER BY s.acquired, s.scene_id", (site_id,)).fetchall()
        return [(_scene(r), bytes(r["maps"])) for r in rows]

    def scene_detectors(self, site_id: str) -> dict[str, str]:
        """scene_id to the detector (name and version) that made its stored maps."""
        with self.read() as con:
            rows = con.execute("SELECT scene_id, detector FROM sitewatch_scene_maps WHERE site_id=?",
                               (site_id,)).fetchall()
        return {r[0]: r[1] or "" for r in rows}

    def quicklook(self, site_id: str, scene_id: str) -> tuple[bytes, dict[str, Any]] | None:
        """The scene's RGB quicklook (PNG) over the site and the grid it is on, if stored."""
        with self.read() as con:
            r = con.execute("SELECT quicklook, grid FROM sitewatch_scene_maps WHERE site_id=? AND scene_id=?",
                            (site_id, scene_id)).fetchone()
        if r is None or r["quicklook"] is None:
            return None
        return bytes(r["quicklook"]), json.loads(r["grid"] or "{}")

    def metrics(self, site_id: str | None = None) -> list[MetricsRecord]:
        sql, args = "SELECT * FROM site_metrics", []
        if site_id is not None:
            sql, args = sql + " WHERE site_id=?", [site_id]
        with self.read() as con:
            rows = con.execute(sql + " ORDER BY site_id, acquired, scene_id", args).fetchall()
        return [MetricsRecord(r["site_id"], r["scene_id"], parse_time(r["acquired"]), r["built_area_m2"],
                              r["wall_length_m"], r["fence_length_m"], r["tower_count"], r["enclosed_area_m2"],
                              r["run_id"], r["security_level"], r["security_reasons"], r["grid_res_m"])
                for r in rows]

    def update_security(self, site_id: str, levels: Mapping[str, tuple[int, str]]) -> None:
        """Set ``security_level`` and its reasons per scene_id."""
        with self.write() as con:
            con.executemany("UPDATE site_metrics SET security_level=?, security_reasons=? "
                            "WHERE site_id=? AND scene_id=?",
                            [(lvl, why, site_id, sid) for sid, (lvl, why) in levels.items()])

    # detections

    def save_detections(self, detections: Sequence[DetectionRecord]) -> int:
        """Insert detections not stored yet; those already stored (and their reviews) stay as they are."""
        for d in detections:
            _check_detection(d)
        added = 0
        now = utc_now()
        with self.write() as con:
            for d in detections:
                added += _insert_detection(con, d, now)
            if added:
                gpkg.touch_contents(con, "detections")
        return added

    def supersede_detections(self, replaced: Mapping[str, DetectionRecord]) -> int:
        """Swap pending detections for better-dated versions of the same event, atomically.

        Only detections still ``pending`` with no review are replaced (a scene that failed in an
        earlier run and arrived later can tighten a change's dates); a reviewed detection is
        never touched. Returns how many were replaced.
        """
        for d in replaced.values():
            _check_detection(d)
        now = utc_now()
        n = 0
        with self.write() as con:
            for old_id, d in replaced.items():
                row = con.execute("SELECT status FROM detections WHERE detection_id=?", (old_id,)).fetchone()
                reviewed = con.execute("SELECT 1 FROM reviews WHERE detection_id=? LIMIT 1", (old_id,)).fetchone()
                if row is None or row[0] != "pending" or reviewed:
                    continue
                con.execute("DELETE FROM detections WHERE detection_id=?", (old_id,))
                n += _insert_detection(con, replace(d, evidence={**dict(d.evidence), "supersedes": old_id}), now)
            if n:
                gpkg.touch_contents(con, "detections")
        return n

    def detections(self, *, site_id: str | None = None, status: str | None = None,
                   kind: str | None = None) -> list[DetectionRecord]:
        sql, args = "SELECT * FROM detections WHERE 1=1", []
        for col, val in (("site_id", site_id), ("status", status), ("kind", kind)):
            if val is not None:
                sql, args = sql + f" AND {col}=?", [*args, val]
        with self.read() as con:
            rows = con.execute(sql + " ORDER BY site_id, after_date, kind, detection_id", args).fetchall()
        return [_detection(r) for r in rows]

    def detection(self, detection_id: str) -> DetectionRecord:
        with self.read() as con:
            r = con.execute("SELECT * FROM detections WHERE detection_id=?", (detection_id,)).fetchone()
        if r is None:
            raise NotFoundError(f"{self.path}: no detection {detection_id!r}")
        return _detection(r)

    # wide-area scans

    def done_scan_tiles(self, scan_key: str) -> set[str]:
        with self.read() as con:
            rows = con.execute("SELECT tile_id FROM sitewatch_scan_tiles WHERE scan_key=?", (scan_key,)).fetchall()
        return {r[0] for r in rows}

    def save_scan_tiles(self, scan_key: str, run_id: str, tiles: Sequence[ScanTile]) -> int:
        """Scanned tiles' candidates, their scenes and detections, and the tiles' done marks, in one
        transaction: all or nothing. Batching matters: a commit costs more than scanning an empty tile."""
        for t in tiles:
            for s in t.sites:
                if not SITE_ID_RE.match(s.site_id):
                    raise SchemaError(f"site_id {s.site_id!r} is not [A-Za-z0-9_.-]{{1,64}}")
                _check_geom(s.geometry, (Polygon,), f"site {s.site_id}")
            for sc in t.scenes:
                _check_scene(sc)
            for d in t.detections:
                _check_detection(d)
        if not tiles:
            return 0
        now = utc_now()
        added = 0
        with self.write() as con:
            for t in tiles:
                if con.execute("SELECT 1 FROM sitewatch_scan_tiles WHERE scan_key=? AND tile_id=?",
                               (scan_key, t.tile_id)).fetchone():
                    continue
                for s in t.sites:
                    con.execute(
                        "INSERT INTO sites (geom, site_id, name, notes, properties, added_at) VALUES (?,?,?,?,?,?) "
                        "ON CONFLICT(site_id) DO NOTHING",
                        (gpkg.to_blob(s.geometry), s.site_id, s.name, s.notes,
                         json.dumps(dict(s.properties), default=str, ensure_ascii=False), now))
                for sc in t.scenes:
                    _insert_scene(con, sc, " ON CONFLICT(site_id, scene_id) DO NOTHING")
                for d in t.detections:
                    added += _insert_detection(con, d, now)
                con.execute("INSERT INTO sitewatch_scan_tiles (scan_key, tile_id, run_id, area_km2, detections, "
                            "done_at) VALUES (?,?,?,?,?,?)",
                            (scan_key, t.tile_id, run_id, t.area_km2, len(t.detections), now))
            if any(t.sites for t in tiles):
                for table in ("sites", "scenes", "detections"):
                    gpkg.touch_contents(con, table)
        return added

    # reviews

    def add_review(self, detection_id: str, reviewer: str, decision: str, note: str = "") -> Review:
        """Append a review to the chain and set the detection's status, in one transaction."""
        if decision not in DECISIONS:
            raise SchemaError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        reviewer = reviewer.strip()
        if not reviewer:
            raise SchemaError("a review needs a reviewer name")
        with self.write() as con:
            claim = current_claim(con, detection_id)
            if claim is None:
                raise NotFoundError(f"{self.path}: no detection {detection_id!r}")
            last = con.execute("SELECT hash FROM reviews ORDER BY fid DESC LIMIT 1").fetchone()
            fields = {"review_id": uuid.uuid4().hex, "detection_id": detection_id, "reviewer": reviewer,
                      "decision": decision, "note": note or "", "at": utc_now(),
                      "prev_hash": last[0] if last else GENESIS, "claim": claim_json(claim)}
            review = Review(**fields, hash=review_hash(fields))  # type: ignore[arg-type]
            con.execute("INSERT INTO reviews (review_id, detection_id, reviewer, decision, note, at, prev_hash, hash, "
                        "claim) VALUES (?,?,?,?,?,?,?,?,?)",
                        (review.review_id, review.detection_id, review.reviewer, review.decision, review.note,
                         review.at, review.prev_hash, review.hash, review.claim))
            con.execute("UPDATE detections SET status=? WHERE detection_id=?", (decision, detection_id))
        return review

    def reviews(self, detection_id: str | None = None) -> list[Review]:
        sql, args = "SELECT * FROM reviews", []
        if detection_id is not None:
            sql, args = sql + " WHERE detection_id=?", [detection_id]
        with self.read() as con:
            rows = con.execute(sql + " ORDER BY fid", args).fetchall()
        return [Review(r["review_id"], r["detection_id"], r["reviewer"], r["decision"], r["note"] or "",
                       r["at"], r["prev_hash"], r["hash"], r["claim"] or "") for r in rows]


def reviewed_claims(con: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """The claim each reviewed detection makes now, in two queries (what ``verify`` compares)."""
    cur = con.execute("SELECT * FROM detections WHERE detection_id IN (SELECT detection_id FROM reviews)")
    cols = [c[0] for c in cur.description]
    dets = [dict(zip(cols, tuple(r))) for r in cur.fetchall()]
    shas = {(str(r[0]), str(r[1])): r[2] for r in con.execute(
        "SELECT site_id, scene_id, sha256 FROM scenes WHERE site_id IN "
        "(SELECT site_id FROM detections WHERE detection_id IN (SELECT detection_id FROM reviews))")}
    out = {}
    for d in dets:
        mine = {sid: shas.get((d["site_id"], sid)) for sid in (d["before_scene_id"], d["after_scene_id"])}
        out[d["detection_id"]] = claim_of(d, gpkg.from_blob(d["geom"]), {k: v for k, v in mine.items() if v})
    return out


def current_claim(con: sqlite3.Connection, detection_id: str) -> dict[str, Any] | None:
    """The claim a detection makes now (see :func:`sitewatch.reviews.claim_of`), or None if it is not stored."""
    cur = con.execute("SELECT * FROM detections WHERE detection_id=?", (detection_id,))
    row = cur.fetchone()
    if row is None:
        return None
    d = dict(zip([c[0] for c in cur.description], tuple(row)))
    shas = {str(r[0]): r[1] for r in con.execute(
        "SELECT scene_id, sha256 FROM scenes WHERE site_id=? AND scene_id IN (?, ?)",
        (d["site_id"], d["before_scene_id"], d["after_scene_id"]))}
    return claim_of(d, gpkg.from_blob(d["geom"]), shas)


# --- row conversion and checks -------------------------------------------------------------


def _insert_scene(con: sqlite3.Connection, sc: SceneRecord, conflict: str = "") -> None:
    con.execute(
        "INSERT INTO scenes (geom, scene_id, site_id, source, collection, acquired, gsd_m, grid_res_m, "
        "cloud_fraction, valid_fraction, sha256, run_id, status, error, href, shift_x_px, shift_y_px, "
        "properties, image_href) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)" + conflict,
        (gpkg.to_blob(sc.footprint), sc.scene_id, sc.site_id, sc.source, sc.collection, iso_time(sc.acquired),
         sc.gsd_m, sc.grid_res_m, sc.cloud_fraction, sc.valid_fraction, sc.sha256, sc.run_id, sc.status, sc.error,
         sc.href, sc.shift_x_px, sc.shift_y_px, json.dumps(dict(sc.properties), default=str, ensure_ascii=False),
         sc.image_href))


def _insert_detection(con: sqlite3.Connection, d: DetectionRecord, now: str) -> int:
    """Insert as pending unless stored already (a stored detection keeps its status and reviews)."""
    cur = con.execute(
        "INSERT INTO detections (geom, detection_id, site_id, kind, before_date, after_date, "
        "before_scene_id, after_scene_id, area_m2, length_m, score, status, run_id, evidence, created_at, detector) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,'pending',?,?,?,?) ON CONFLICT(detection_id) DO NOTHING",
        (gpkg.to_blob(d.geometry), d.detection_id, d.site_id, d.kind, d.before_date.isoformat(),
         d.after_date.isoformat(), d.before_scene_id, d.after_scene_id, d.area_m2, d.length_m,
         round(float(d.score), 4), d.run_id, json.dumps(dict(d.evidence), default=str), now, d.detector or None))
    return cur.rowcount


def _scene(r: sqlite3.Row) -> SceneRecord:
    return SceneRecord(
        scene_id=r["scene_id"], site_id=r["site_id"], source=r["source"], acquired=parse_time(r["acquired"]),
        gsd_m=r["gsd_m"], cloud_fraction=r["cloud_fraction"], valid_fraction=r["valid_fraction"],
        sha256=r["sha256"], run_id=r["run_id"], footprint=gpkg.from_blob(r["geom"]), collection=r["collection"],
        href=r["href"], status=r["status"], error=r["error"], grid_res_m=r["grid_res_m"],
        shift_x_px=r["shift_x_px"], shift_y_px=r["shift_y_px"], properties=json.loads(r["properties"] or "{}"),
        image_href=r["image_href"])


def _detection(r: sqlite3.Row) -> DetectionRecord:
    return DetectionRecord(
        detection_id=r["detection_id"], site_id=r["site_id"], kind=r["kind"],
        before_date=dt.date.fromisoformat(r["before_date"]), after_date=dt.date.fromisoformat(r["after_date"]),
        before_scene_id=r["before_scene_id"], after_scene_id=r["after_scene_id"], area_m2=r["area_m2"],
        length_m=r["length_m"], score=r["score"], geometry=gpkg.from_blob(r["geom"]),  # type: ignore[arg-type]
        run_id=r["run_id"], status=r["status"], evidence=json.loads(r["evidence"] or "{}"),
        created_at=r["created_at"] or "", detector=r["detector"] or "")


def _check_geom(g: BaseGeometry | None, types: tuple[type, ...], what: str) -> None:
    if g is None:
        return
    if not isinstance(g, types):
        raise SchemaError(f"{what}: geometry must be {'/'.join(t.__name__ for t in types)}, not {g.geom_type}")
    if g.is_empty:
        return
    minx, miny, maxx, maxy = g.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise SchemaError(f"{what}: coordinates {g.bounds} are not longitude/latitude (EPSG:4326)")


def _check_scene(s: SceneRecord) -> None:
    what = f"scene {s.scene_id} of site {s.site_id}"
    if s.status not in SCENE_STATUSES:
        raise SchemaError(f"{what}: unknown status {s.status!r}")
    _check_geom(s.footprint, (Polygon,), what)
    for name in ("cloud_fraction", "valid_fraction"):
        v = getattr(s, name)
        if v is not None and not 0.0 <= v <= 1.0:
            raise SchemaError(f"{what}: {name} {v} is outside 0..1")
    if s.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", s.sha256):
        raise SchemaError(f"{what}: sha256 is not 64 hex digits")


def _check_metrics(m: MetricsRecord) -> None:
    if m.security_level is not None and not 0 <= m.security_level <= 4:
        raise SchemaError(f"metrics of scene {m.scene_id}: security_level must be 0..4")


def _check_detection(d: DetectionRecord) -> None:
    what = f"detection {d.detection_id}"
    if d.kind not in CHANGE_KINDS:
        raise SchemaError(f"{what}: unknown kind {d.kind!r}")
    if d.status not in STATUSES:
        raise SchemaError(f"{what}: unknown status {d.status!r}")
    if not 0.0 <= float(d.score) <= 1.0:
        raise SchemaError(f"{what}: score {d.score} is outside 0..1")
    if not isinstance(d.before_date, dt.date) or not isinstance(d.after_date, dt.date):
        raise SchemaError(f"{what}: dates must be dates")
    if d.before_date > d.after_date:
        raise SchemaError(f"{what}: before_date {d.before_date} is after after_date {d.after_date}")
    if not SITE_ID_RE.match(d.site_id):
        raise SchemaError(f"{what}: bad site_id {d.site_id!r}")
    _check_geom(d.geometry, (MultiPolygon,), what)
