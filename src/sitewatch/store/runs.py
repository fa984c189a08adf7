"""The ``runs`` layer: one row per flow run, with its parameters, version and how it ended."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from .. import __version__
from ..errors import SchemaError
from ..records import RUN_STATUSES, RunRecord
from .db import Database
from .schema import utc_now


def start_run(db: Database, flow: str, params: Mapping[str, Any], run_id: str | None = None) -> str:
    run_id = run_id or uuid.uuid4().hex
    with db.write() as con:
        con.execute("INSERT INTO runs (run_id, flow, started_at, status, version, params) VALUES (?,?,?,?,?,?)",
                    (run_id, flow, utc_now(), "running", __version__, json.dumps(dict(params), default=str)))
    return run_id


def finish_run(db: Database, run_id: str, status: str, summary: Mapping[str, Any]) -> None:
    if status not in RUN_STATUSES:
        raise SchemaError(f"unknown run status {status!r}")
    with db.write() as con:
        con.execute("UPDATE runs SET finished_at=?, status=?, summary=? WHERE run_id=?",
                    (utc_now(), status, json.dumps(dict(summary), default=str), run_id))


def runs(db: Database) -> list[RunRecord]:
    with db.read() as con:
        rows = con.execute("SELECT * FROM runs ORDER BY fid").fetchall()
    return [RunRecord(r["run_id"], r["flow"], r["started_at"], r["finished_at"], r["status"], r["version"],
                      json.loads(r["params"] or "{}"), json.loads(r["summary"] or "{}")) for r in rows]
