"""What a site's timeline shows, read once from the findings GeoPackage (:func:`collect`).

Only reviewed findings are findings: confirmed changes always, pending ones only when asked
(then marked unverified), rejected ones never. Also how a page may print where a scene came
from (:func:`public_source`, :func:`public_href`): local paths relative to the imagery source.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from ..catalog import is_url
from ..records import DetectionRecord, MetricsRecord, RunRecord, SceneRecord
from ..reviews import Review
from ..security import DatedLevel, Desecuritisation, desecuritisation, site_levels
from ..store import Store

#: A scene that saw less than this fraction of the site as clear ground is a partial view:
#: shown and marked, never plotted as a measurement of the whole site nor used for level falls.
FULL_VIEW = 0.95
#: Most scenes shown as chips on a page and as frames of the time-lapse; beyond it scenes are
#: sampled evenly in time (every shown change's scenes kept) and the page says so.
MAX_SCENES_SHOWN = 60
#: Kinds whose removal can back a fall in the estimated security level.
SECURITY_REMOVALS = ("wall_removed", "fence_removed", "tower_removed")
#: Kinds whose removal can back a fall in the estimated security level.
SECURITY_REMOVALS = ("wall_removed", "fence_removed", "tower_removed")


@dataclass(frozen=True)
class Finding:
    """A detection shown on the timeline, with the review that made it a finding (if any)."""

    detection: DetectionRecord
    review: Review | None

    @property
    def unverified(self) -> bool:
        return self.detection.status != "confirmed"

    def row(self) -> dict[str, Any]:
        d = self.detection
        return {"detection_id": d.detection_id, "kind": d.kind, "before_date": d.before_date.isoformat(),
                "after_date": d.after_date.isoformat(), "before_scene_id": d.before_scene_id,
                "after_scene_id": d.after_scene_id, "area_m2": d.area_m2, "length_m": d.length_m,
                "score": d.score, "status": d.status, "reviewer": self.review.reviewer if self.review else None,
                "reviewed_at": self.review.at if self.review else None}


@dataclass(frozen=True)
class SiteTimeline:
    """Everything a site's timeline shows, read once from the GeoPackage."""

    site_id: str
    name: str | None
    notes: str | None
    clear: list[SceneRecord]
    skipped: list[SceneRecord]
    findings: list[Finding]
    metrics: list[MetricsRecord]
    levels: list[DatedLevel]
    falls: list[Desecuritisation]
    runs: list[RunRecord]
    include_pending: bool = False
    #: level falls left off the confirmed-only page: no confirmed removal backs them
    unbacked_falls: int = 0
    shown: list[SceneRecord] = field(default_factory=list)

    @property
    def used(self) -> list[SceneRecord]:
        return self.clear

    @property
    def sampled(self) -> bool:
        return len(self.shown) < len(self.clear)


def is_partial(s: SceneRecord) -> bool:
    """The scene saw too little of the site as clear ground to stand for all of it."""
    return s.valid_fraction is not None and s.valid_fraction < FULL_VIEW


def _local(path: str) -> str:
    """A local path with forward slashes (a file may have been made on Windows)."""
    return path.replace("\\", "/")


def _is_absolute(path: str) -> bool:
    return path.startswith("/") or bool(re.match(r"^[A-Za-z]:/", path))


def public_source(source: str | None) -> str | None:
    """A scene's source as a page may print it: URLs as they are, local paths by their last name only."""
    if not source or is_url(source):
        return source
    return f"{PurePosixPath(_local(source)).name} (local)"


def public_href(source: str | None, href: str | None) -> str | None:
    """A scene's href as a page may print it: URLs as they are, local paths relative to the source."""
    if not href or is_url(href):
        return href
    h = _local(href)
    if not _is_absolute(h):
        return h
    if source and not is_url(source):
        root = _local(source).rstrip("/")
        if root.lower().endswith(".json"):  # a static catalog or collection file: its folder
            root = root.rsplit("/", 1)[0]
        if h.startswith(root + "/"):
            return h[len(root) + 1:]
    return PurePosixPath(h).name  # outside the source: the file's name alone, never the folders above it


def _sample(scenes: list[SceneRecord], keep: set[str], cap: int) -> list[SceneRecord]:
    """At most ``cap`` scenes, date order: those in ``keep`` first, the rest evenly spaced in time."""
    if len(scenes) <= cap:
        return list(scenes)
    must = [i for i, s in enumerate(scenes) if s.scene_id in keep or i in (0, len(scenes) - 1)]
    if len(must) >= cap:
        pick = {must[int(j)] for j in np.linspace(0, len(must) - 1, cap).round()}
    else:
        rest = [i for i in range(len(scenes)) if i not in set(must)]
        extra = cap - len(must)
        pick = set(must) | {rest[int(j)] for j in np.linspace(0, len(rest) - 1, extra).round()}
    return [scenes[i] for i in sorted(pick)]


def _backed(fall: Desecuritisation, findings: Sequence[Finding]) -> bool:
    """A confirmed removal of a wall, fence or tower dated within the fall backs it."""
    return any(not f.unverified and f.detection.kind in SECURITY_REMOVALS
               and f.detection.after_date > fall.date_from and f.detection.before_date < fall.date_to
               for f in findings)


def _latest_confirming(reviews: Sequence[Review]) -> Review | None:
    return next((r for r in reversed(reviews) if r.decision == "confirmed"), None)


def collect(store: Store, site_id: str, include_pending: bool = False) -> SiteTimeline:
    """Read what a site's timeline shows (NotFoundError for an unknown site)."""
    site = store.site(site_id)
    scenes = store.scenes(site_id)
    clear = [s for s in scenes if s.status == "observed"]
    wanted = ("confirmed", "pending") if include_pending else ("confirmed",)
    by_det: dict[str, list[Review]] = {}
    for r in store.reviews():
        by_det.setdefault(r.detection_id, []).append(r)
    findings = [Finding(d, _latest_confirming(by_det.get(d.detection_id, [])) if d.status == "confirmed" else None)
                for d in store.detections(site_id=site_id) if d.status in wanted]
    findings.sort(key=lambda f: (f.detection.after_date, f.detection.before_date, f.detection.kind,
                                 f.detection.detection_id))
    clear_ids = {s.scene_id for s in clear}
    full_ids = {s.scene_id for s in clear if not is_partial(s)}
    metrics = [m for m in store.metrics(site_id) if m.scene_id in clear_ids]
    levels = [x for x in site_levels(store, site_id) if x.scene_id in clear_ids]
    # a partial view's lower level is what it could not see, not a fall
    falls = desecuritisation([x for x in levels if x.scene_id in full_ids])
    unbacked = 0
    if not include_pending:  # levels are unreviewed estimates: only a confirmed removal lets one print
        backed = [f for f in falls if _backed(f, findings)]
        unbacked, falls = len(falls) - len(backed), backed
    used_runs = {s.run_id for s in clear} | {f.detection.run_id for f in findings}
    runs = [r for r in store.runs() if r.run_id in used_runs]
    keep = {f.detection.before_scene_id for f in findings} | {f.detection.after_scene_id for f in findings}
    return SiteTimeline(site_id, site.name, site.notes, clear, [s for s in scenes if s.status != "observed"],
                        findings, metrics, levels, falls, runs, include_pending, unbacked,
                        _sample(clear, keep, MAX_SCENES_SHOWN))
