"""The ``reviews`` layer: append-only, hash-chained review decisions.

Each review's hash covers the previous hash, the decision and the claim the detection made when
it was judged (see :mod:`sitewatch.reviews`), so ``verify`` can name any later edit.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from .. import gpkg
from ..errors import NotFoundError, SchemaError
from ..reviews import DECISIONS, GENESIS, Review, claim_json, claim_of, review_hash
from .db import Database
from .schema import utc_now


def add_review(db: Database, detection_id: str, reviewer: str, decision: str, note: str = "") -> Review:
    """Append a review to the chain and set the detection's status, in one transaction."""
    if decision not in DECISIONS:
        raise SchemaError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    reviewer = reviewer.strip()
    if not reviewer:
        raise SchemaError("a review needs a reviewer name")
    with db.write() as con:
        claim = current_claim(con, detection_id)
        if claim is None:
            raise NotFoundError(f"{db.path}: no detection {detection_id!r}")
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


def reviews(db: Database, detection_id: str | None = None) -> list[Review]:
    sql, args = "SELECT * FROM reviews", []
    if detection_id is not None:
        sql, args = sql + " WHERE detection_id=?", [detection_id]
    with db.read() as con:
        rows = con.execute(sql + " ORDER BY fid", args).fetchall()
    return [Review(r["review_id"], r["detection_id"], r["reviewer"], r["decision"], r["note"] or "",
                   r["at"], r["prev_hash"], r["hash"], r["claim"] or "") for r in rows]


def reviewed_at(db: Database, site_id: str) -> set[str]:
    """Ids of a site's detections that anyone reviewed, in one query (not every review of the file)."""
    with db.read() as con:
        rows = con.execute("SELECT DISTINCT r.detection_id FROM reviews r JOIN detections d "
                           "ON d.detection_id = r.detection_id WHERE d.site_id=?", (site_id,)).fetchall()
    return {r[0] for r in rows}


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
