"""Checks a findings GeoPackage: the review hash chain, what each review judged, statuses, the file.

Each review stores and hashes the claim it judged; a reviewed detection whose kind, dates,
scenes, pixel hashes, outline, measures or detector differ from that claim is named with the
field. :func:`upgrade` re-chains a file written before claims were hashed.

Reads the file with a plain SQLite connection, not through :class:`~sitewatch.store.Store`,
so that a damaged or tampered file is described rather than refused at the door.
Problems are listed in file order; the first one is what a failing ``verify`` names.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, gpkg
from .errors import ChainError, InputError, StoreError, UpgradeNeededError
from .reviews import (GENESIS, Review, chain_problems, claim_changes, claim_json, latest_decisions, review_hash,
                      review_hash_v1)
from .store import APPEND_ONLY_TRIGGERS, FORMAT_COLUMNS, current_claim, guard_sql, missing_format_columns, reviewed_claims, upgrade_hint, utc_now


@dataclass
class Report:
    """What ``verify`` found.

    Attributes:
        reviews / detections / scenes: rows checked in each layer.
        gpkg_problems: the file is not a sound GeoPackage (integrity, application_id).
        chain_problems: breaks in the review hash chain, file order.
        claim_problems: reviewed detections that no longer say what their reviews judged.
        status_problems: detections whose status is not their latest decision.
        rehash: one line per scene whose source was re-read (``--rehash``), and counts.
    """

    path: Path
    reviews: int = 0
    detections: int = 0
    scenes: int = 0
    gpkg_problems: list[str] = field(default_factory=list)
    chain_problems: list[str] = field(default_factory=list)
    claim_problems: list[str] = field(default_factory=list)
    status_problems: list[str] = field(default_factory=list)
    rehash_lines: list[str] = field(default_factory=list)
    rehash_counts: dict[str, int] = field(default_factory=dict)
    head: str = ""

    @property
    def ok(self) -> bool:
        return not (self.gpkg_problems or self.chain_problems or self.claim_problems or self.status_problems)

    def summary(self) -> str:
        return (f"OK: {self.path}: {self.reviews} reviews, hash chain intact (head {self.head}); "
                f"{self.detections} detections, each reviewed one as it was judged and each status its latest "
                f"review; {self.scenes} scenes; "
                "GeoPackage integrity ok")

    def raise_for_problems(self) -> None:
        """One line naming the first problem (and how many more), as the CLI prints it."""
        problems = self.gpkg_problems + self.chain_problems + self.claim_problems + self.status_problems
        if not problems:
            return
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        if self.gpkg_problems:
            raise StoreError(f"{self.path}: {problems[0]}{more}")
        raise ChainError(f"{self.path}: {problems[0]}{more}")


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise InputError(f"{path}: no such GeoPackage")
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60.0)
    con.row_factory = sqlite3.Row
    gpkg.register_functions(con)
    return con


def verify(path: str | Path, expect_head: str | None = None) -> Report:
    """Check the file, the review chain and every detection's status.

    The chain alone cannot show that its newest reviews were cut off, or that the whole
    chain was rewritten; ``expect_head`` (a head hash noted down earlier, or a prefix of
    it) catches both.
    """
    path = Path(path)
    rep = Report(path)
    con = _connect(path)
    try:
        try:
            integrity = [r[0] for r in con.execute("PRAGMA integrity_check")]
            app = con.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a GeoPackage ({exc})") from exc
        if integrity != ["ok"]:
            rep.gpkg_problems.append(f"SQLite integrity_check failed: {'; '.join(integrity[:3])}")
        if app != gpkg.APPLICATION_ID:
            rep.gpkg_problems.append(f"not a GeoPackage (application_id {app:#x}, expected {gpkg.APPLICATION_ID:#x})")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = {"reviews", "detections", "scenes"} - tables
        if missing:
            rep.gpkg_problems.append("not a sitewatch findings GeoPackage "
                                     f"(missing layers: {', '.join(sorted(missing))})")
            return rep
        if missing_format_columns(con):
            raise UpgradeNeededError(upgrade_hint(path))
        reviews = _reviews(con)
        dets = con.execute("SELECT detection_id, status FROM detections ORDER BY fid").fetchall()
        rep.scenes = con.execute("SELECT count(*) FROM scenes").fetchone()[0]
        rep.claim_problems = _claim_problems(con, reviews)
    finally:
        con.close()
    rep.reviews, rep.detections = len(reviews), len(dets)
    rep.chain_problems = chain_problems(reviews)
    rep.head = reviews[-1].hash if reviews else GENESIS
    if expect_head and not any(r.hash.startswith(expect_head.lower()) for r in reviews):
        rep.chain_problems.append(f"the chain does not hold the expected head {expect_head} "
                                  f"(now {rep.head[:16]}...): reviews were removed or the chain was rewritten")
    latest = latest_decisions(reviews)
    known = {d[0] for d in dets}
    for det_id, status in dets:
        want = latest.get(det_id, "pending")
        if status != want:
            why = f"its latest review says {want!r}" if det_id in latest else "it has no review"
            rep.status_problems.append(f"detection {det_id}: status is {status!r} but {why}")
    for i, r in enumerate(reviews, start=1):
        if r.detection_id not in known:
            rep.status_problems.append(f"reviews record {i} (review_id={r.review_id}): "
                                       f"detection {r.detection_id!r} is not in detections")
    return rep


def _reviews(con: sqlite3.Connection, with_claim: bool = True) -> list[Review]:
    claim = ", claim" if with_claim else ""
    rows = con.execute("SELECT review_id, detection_id, reviewer, decision, note, at, prev_hash, hash"
                       f"{claim} FROM reviews ORDER BY fid").fetchall()
    return [Review(r[0], r[1], r[2], r[3], r[4] or "", r[5], r[6], r[7], (r[8] or "") if with_claim else "")
            for r in rows]


def _claim_problems(con: sqlite3.Connection, reviews: list[Review]) -> list[str]:
    """One line per reviewed detection that differs from what a review of it judged (first such review)."""
    out: list[str] = []
    now = reviewed_claims(con)
    named: set[str] = set()
    for i, r in enumerate(reviews, start=1):
        if r.detection_id in named:
            continue
        current = now.get(r.detection_id)
        if current is None:
            continue  # a missing detection is named with the statuses
        where = f"reviews record {i} (review_id={r.review_id}, {r.decision} by {r.reviewer})"
        try:
            judged = json.loads(r.claim)
        except ValueError:
            judged = None
        if not isinstance(judged, dict):
            out.append(f"{where}: its claim is not readable (the review was edited)")
            continue
        changed = claim_changes(judged, current)
        if changed:
            named.add(r.detection_id)
            out.append(f"detection {r.detection_id}: {'; '.join(changed)}: changed after {where}")
    return out


def upgrade(path: str | Path) -> str:
    """Re-chain a file written before claims were hashed, in one transaction; say what was done.

    Checks the old (version 1) chain and the statuses first and refuses to upgrade a file
    that does not verify. Adds the new columns, binds each review to its detection as the
    file holds it now, writes milliseconds into DATETIME values (same instants), adds
    ``gpkg_ogr_contents``, and records the old and new chain heads in ``runs``. Every row is kept.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such GeoPackage")
    con = sqlite3.connect(path, isolation_level=None, timeout=60.0)
    con.row_factory = sqlite3.Row
    gpkg.register_functions(con)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            msg = _upgrade(con, path)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return msg
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: upgrade failed, nothing changed: {exc}") from exc
    finally:
        con.close()


def _upgrade(con: sqlite3.Connection, path: Path) -> str:
    try:
        app = con.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a GeoPackage ({exc})") from exc
    if app != gpkg.APPLICATION_ID or not {"reviews", "detections", "scenes", "runs"} <= tables:
        raise StoreError(f"{path}: not a sitewatch findings GeoPackage; nothing to upgrade")
    missing = missing_format_columns(con)
    if not missing:
        return f"{path}: already current; nothing to upgrade"
    reviews = _reviews(con, with_claim="reviews.claim" not in missing)
    old = chain_problems(reviews, hasher=review_hash_v1)
    if old:
        raise ChainError(f"{path}: not upgraded: the existing review chain does not verify: {old[0]}")
    statuses = dict(con.execute("SELECT detection_id, status FROM detections").fetchall())
    for det_id, want in latest_decisions(reviews).items():
        if det_id not in statuses or statuses[det_id] != want:
            raise ChainError(f"{path}: not upgraded: detection {det_id} does not match its latest review "
                             f"({want!r}); the file was changed outside sitewatch")
    old_head = reviews[-1].hash if reviews else GENESIS
    for item in missing:
        table, col = item.split(".")
        con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{col}" {FORMAT_COLUMNS[table][1]}')
    if "detections.detector" in missing:
        con.execute("UPDATE detections SET detector = coalesce(json_extract(evidence, '$.detector'), "
                    "(SELECT m.detector FROM sitewatch_scene_maps m WHERE m.site_id = detections.site_id "
                    "AND m.scene_id = detections.after_scene_id))")
    for name in APPEND_ONLY_TRIGGERS:  # the re-chaining below rewrites each review's hashes and time
        con.execute(f'DROP TRIGGER IF EXISTS "{name}"')
    _millisecond_times(con)
    prev = GENESIS
    for r in _reviews(con, with_claim=False):
        claim = current_claim(con, r.detection_id)
        fields = {**r.__dict__, "prev_hash": prev, "claim": claim_json(claim or {})}
        h = review_hash(fields)
        con.execute("UPDATE reviews SET prev_hash=?, hash=?, claim=? WHERE review_id=?",
                    (prev, h, fields["claim"], r.review_id))
        prev = h
    for sql in guard_sql():
        con.execute(sql)
    gpkg.add_ogr_contents(con)
    now = utc_now()
    con.execute("INSERT INTO runs (run_id, flow, started_at, finished_at, status, version, params, summary) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (uuid.uuid4().hex, "upgrade", now, now, "completed", __version__,
                 json.dumps({"added_columns": missing}),
                 json.dumps({"reviews": len(reviews), "old_head": old_head, "new_head": prev})))
    return (f"upgraded {path}: {len(reviews)} reviews re-chained over the detections as they are now "
            f"(old chain verified, head {old_head[:16]}...; new head {prev}); added {', '.join(missing)}")


#: A DATETIME without milliseconds, as sitewatch wrote them before.
_NO_MS = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z"


def _millisecond_times(con: sqlite3.Connection) -> None:
    """``...SSZ`` to ``...SS.000Z`` in every DATETIME column of every layer: the same instant."""
    for (table,) in con.execute("SELECT table_name FROM gpkg_contents").fetchall():
        for col in con.execute(f'PRAGMA table_info("{table}")').fetchall():
            if str(col[2]).upper() == "DATETIME":
                c = col[1]
                con.execute(f'UPDATE "{table}" SET "{c}" = substr("{c}", 1, 19) || \'.000Z\' '
                            f'WHERE "{c}" GLOB \'{_NO_MS}\'')


def rehash(path: str | Path, report: Report, progress: Callable[[str], None] | None = None) -> Report:
    """Re-read each scene's source pixels and compare their SHA-256 with the stored one.

    Needs the imagery reader; without it (or without rasterio) says rehash is unavailable.
    Unreachable sources are reported, not failed: imagery can move; changed pixels cannot
    be explained away and are counted as ``changed``.
    """
    counts = {"unchanged": 0, "changed": 0, "unreachable": 0, "skipped": 0}
    report.rehash_counts = counts
    try:
        from .reader import read_scene  # imports rasterio; optional for a verify of reviews only
        from .store import Store
    except ImportError as exc:
        report.rehash_lines.append(f"rehash unavailable: the imagery reader cannot be loaded ({exc})")
        counts["skipped"] = report.scenes
        return report
    store = Store(path, create=False)
    sites = {s.site_id: s for s in store.sites()}
    cache: dict[tuple[Any, ...], Any] = {}
    for sc in store.scenes():
        what = f"scene {sc.scene_id} (site {sc.site_id})"
        if sc.status != "observed" or not sc.sha256 or not sc.href or sc.site_id not in sites:
            counts["skipped"] += 1
            continue
        if progress:
            progress(what)
        site = sites[sc.site_id]
        try:
            from .catalog import find_again

            ref = find_again(sc, site.geometry, cache)
            if ref is None:
                raise LookupError(f"no longer listed by {sc.source}")
            now = read_scene(ref, site.geometry, sc.grid_res_m).sha256
        except Exception as exc:  # any failure to fetch is "unreachable": report it, go on
            counts["unreachable"] += 1
            why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            report.rehash_lines.append(f"{what}: unreachable: {why}")
            continue
        if now == sc.sha256:
            counts["unchanged"] += 1
        else:
            counts["changed"] += 1
            report.rehash_lines.append(f"{what}: CHANGED: stored sha256 {sc.sha256[:16]}..., source now {now[:16]}... "
                                       f"({sc.href})")
    return report
