"""The ``detections`` layer: machine detections of new or removed structures, for review.

A detection is written ``pending`` once and then belongs to its reviewers: storing it again
changes nothing, and only a pending, unreviewed one may be swapped for a better-dated version
or withdrawn (later clear imagery refutes it before anyone reviewed it).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import replace

from shapely.geometry import MultiPolygon

from .. import gpkg
from ..errors import NotFoundError, SchemaError, StoreError
from ..records import DetectionRecord
from ..reviews import STATUSES
from ..sites import SITE_ID_RE
from ..structures import CHANGE_KINDS
from .db import Database
from .schema import check_geom, utc_now


def check_detection(d: DetectionRecord) -> None:
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
    check_geom(d.geometry, (MultiPolygon,), what)


def insert_detection(con: sqlite3.Connection, d: DetectionRecord, now: str) -> int:
    """Insert as pending unless stored already (a stored detection keeps its status and reviews)."""
    cur = con.execute(
        "INSERT INTO detections (geom, detection_id, site_id, kind, before_date, after_date, "
        "before_scene_id, after_scene_id, area_m2, length_m, score, status, run_id, evidence, created_at, detector) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,'pending',?,?,?,?) ON CONFLICT(detection_id) DO NOTHING",
        (gpkg.to_blob(d.geometry), d.detection_id, d.site_id, d.kind, d.before_date.isoformat(),
         d.after_date.isoformat(), d.before_scene_id, d.after_scene_id, d.area_m2, d.length_m,
         round(float(d.score), 4), d.run_id, json.dumps(dict(d.evidence), default=str), now, d.detector or None))
    return cur.rowcount


def detection_of_row(r: sqlite3.Row) -> DetectionRecord:
    return DetectionRecord(
        detection_id=r["detection_id"], site_id=r["site_id"], kind=r["kind"],
        before_date=dt.date.fromisoformat(r["before_date"]), after_date=dt.date.fromisoformat(r["after_date"]),
        before_scene_id=r["before_scene_id"], after_scene_id=r["after_scene_id"], area_m2=r["area_m2"],
        length_m=r["length_m"], score=r["score"], geometry=gpkg.from_blob(r["geom"]),  # type: ignore[arg-type]
        run_id=r["run_id"], status=r["status"], evidence=json.loads(r["evidence"] or "{}"),
        created_at=r["created_at"] or "", detector=r["detector"] or "")


def save_detections(db: Database, detections: Sequence[DetectionRecord]) -> int:
    """Insert detections not stored yet; those already stored (and their reviews) stay as they are."""
    for d in detections:
        check_detection(d)
    added = 0
    now = utc_now()
    with db.write() as con:
        for d in detections:
            added += insert_detection(con, d, now)
        if added:
            gpkg.touch_contents(con, "detections")
    return added


def _standing(con: sqlite3.Connection, detection_id: str) -> tuple[str | None, bool]:
    """(status or None when there is no such detection, whether anyone reviewed it): what decides
    whether a run may still replace or withdraw it (only pending and unreviewed)."""
    row = con.execute("SELECT status FROM detections WHERE detection_id=?", (detection_id,)).fetchone()
    reviewed = con.execute("SELECT 1 FROM reviews WHERE detection_id=? LIMIT 1", (detection_id,)).fetchone()
    return (None if row is None else row[0]), reviewed is not None


def supersede_detections(db: Database, replaced: Mapping[str, DetectionRecord]) -> int:
    """Swap pending detections for better-dated versions of the same event, atomically.

    Only detections still ``pending`` with no review are replaced (a scene that failed in an
    earlier run and arrived later can tighten a change's dates); a reviewed detection is
    never touched. Returns how many were replaced.
    """
    for d in replaced.values():
        check_detection(d)
    now = utc_now()
    n = 0
    with db.write() as con:
        for old_id, d in replaced.items():
            status, reviewed = _standing(con, old_id)
            if status != "pending" or reviewed:
                continue
            con.execute("DELETE FROM detections WHERE detection_id=?", (old_id,))
            n += insert_detection(con, replace(d, evidence={**dict(d.evidence), "supersedes": old_id}), now)
        if n:
            gpkg.touch_contents(con, "detections")
    return n


def withdraw_detections(db: Database, ids: Sequence[str]) -> int:
    """Remove pending, unreviewed detections a later run's judgement refutes, atomically.

    All or nothing: a detection that is missing, not ``pending`` or has any review is refused
    (:class:`~sitewatch.errors.StoreError`, nothing removed), as a reviewed one belongs to its
    reviewers. Returns how many were removed.
    """
    ids = list(dict.fromkeys(ids))
    n = 0
    with db.write() as con:
        for i in ids:
            status, reviewed = _standing(con, i)
            if status is None:
                raise NotFoundError(f"{db.path}: no detection {i!r} to withdraw")
            if status != "pending" or reviewed:
                raise StoreError(f"{db.path}: detection {i!r} is {status}{' and reviewed' if reviewed else ''}: "
                                  "only a pending detection no one reviewed may be withdrawn")
            n += con.execute("DELETE FROM detections WHERE detection_id=?", (i,)).rowcount
        if n:
            gpkg.touch_contents(con, "detections")
    return n


def detections(db: Database, *, site_id: str | None = None, status: str | None = None,
               kind: str | None = None) -> list[DetectionRecord]:
    sql, args = "SELECT * FROM detections WHERE 1=1", []
    for col, val in (("site_id", site_id), ("status", status), ("kind", kind)):
        if val is not None:
            sql, args = sql + f" AND {col}=?", [*args, val]
    with db.read() as con:
        rows = con.execute(sql + " ORDER BY site_id, after_date, kind, detection_id", args).fetchall()
    return [detection_of_row(r) for r in rows]


def detection(db: Database, detection_id: str) -> DetectionRecord:
    with db.read() as con:
        r = con.execute("SELECT * FROM detections WHERE detection_id=?", (detection_id,)).fetchone()
    if r is None:
        raise NotFoundError(f"{db.path}: no detection {detection_id!r}")
    return detection_of_row(r)
