"""The findings GeoPackage: every layer of the contract, typed reads and checked writes.

Writes are short ``BEGIN IMMEDIATE`` transactions with a busy timeout and retries, so
several reviewers and a monitoring run can share one file; each scene lands together with
its maps and metrics, so a killed run leaves nothing half-written. Values are checked
before they are written (CRS, geometry type, kind, status, dates): SQLite and GDAL would
accept nearly anything, and a silently wrong row is worse than a refused one.

Layout: :mod:`.schema` (layers, guards, creation, the time form), :mod:`.db` (connections
and the file check), one module per layer (:mod:`.sites`, :mod:`.scenes`, :mod:`.metrics`,
:mod:`.detections`, :mod:`.reviews`, :mod:`.runs`, :mod:`.scantiles`) and :class:`Store`
(:mod:`.facade`), the one object callers use. The records are :mod:`sitewatch.records`, run
parameters :mod:`sitewatch.runparams`; both are re-exported here.
"""

from __future__ import annotations

from ..records import (RUN_STATUSES, SCENE_STATUSES, DetectionRecord, MetricsRecord, RunRecord, ScanTile,
                       SceneRecord)
from ..runparams import RunParams
from .facade import Store
from .reviews import current_claim, reviewed_claims
from .schema import APPEND_ONLY_TRIGGERS, FORMAT_COLUMNS, guard_sql, iso_time, missing_format_columns, parse_time, upgrade_hint, utc_now

__all__ = [
    "Store", "SceneRecord", "DetectionRecord", "MetricsRecord", "RunRecord", "ScanTile", "RunParams",
    "SCENE_STATUSES", "RUN_STATUSES", "FORMAT_COLUMNS", "APPEND_ONLY_TRIGGERS", "guard_sql", "current_claim", "reviewed_claims",
    "missing_format_columns", "upgrade_hint", "utc_now", "iso_time", "parse_time",
]
