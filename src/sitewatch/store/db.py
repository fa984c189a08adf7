"""Connections to the findings GeoPackage: short reads, and writes that wait their turn.

Writes are short ``BEGIN IMMEDIATE`` transactions with a busy timeout and retries, so several
reviewers and a monitoring run can share one file; a write either commits whole or rolls back,
so a killed run leaves nothing half-written. A file is checked before it is touched: one that
is not a sitewatch GeoPackage, or needs ``verify --upgrade``, is refused.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import gpkg
from ..errors import NotAStoreError, SchemaError, StoreError, UpgradeNeededError
from . import schema
from .schema import ATTRIBUTES, FEATURES, guard_sql, missing_format_columns, missing_guards, upgrade_hint


class Database:
    """A findings GeoPackage file. Cheap to construct; every call opens a short connection."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._add_guards = False
        if not self.path.exists():
            if not create:
                raise NotAStoreError(f"{self.path}: no such GeoPackage")
            if not self.path.parent.exists():
                raise NotAStoreError(f"{self.path}: folder {self.path.parent} does not exist")
            schema.create(self.path)
        self._check()

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
                if self._add_guards:  # a file from before a guard trigger: add it with this write
                    for sql in guard_sql():
                        con.execute(sql)
                    self._add_guards = False
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
        missing = (set(FEATURES) | set(ATTRIBUTES)) - tables
        if missing:
            raise NotAStoreError(f"{self.path}: not a sitewatch findings GeoPackage (missing layers: "
                             f"{', '.join(sorted(missing))})")
        with self.read() as con:
            for table in FEATURES:
                row = con.execute("SELECT srs_id FROM gpkg_geometry_columns WHERE table_name=?", (table,)).fetchone()
                if row is None or row[0] != gpkg.SRS_ID:
                    raise StoreError(f"{self.path}: layer {table} is not in EPSG:4326")
            if missing_format_columns(con):
                raise UpgradeNeededError(upgrade_hint(self.path))
            self._add_guards = missing_guards(con)
