""":class:`Store`: the findings GeoPackage as one object, each method one layer's read or write.

The work is in the per-layer modules (:mod:`.sites`, :mod:`.scenes`, :mod:`.metrics`,
:mod:`.detections`, :mod:`.reviews`, :mod:`.runs`, :mod:`.scantiles`); connections, locking and
the file check are in :class:`~sitewatch.store.db.Database`, which ``Store`` extends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..records import DetectionRecord, MetricsRecord, RunRecord, ScanTile, SceneRecord
from ..reviews import Review
from ..sites import Site
from . import detections as _detections
from . import metrics as _metrics
from . import reviews as _reviews
from . import runs as _runs
from . import scantiles as _scantiles
from . import scenes as _scenes
from . import sites as _sites
from .db import Database


class Store(Database):
    """A findings GeoPackage. Cheap to construct; every call opens a short connection.

    ``Store(path)`` creates the file when missing (``create=False`` refuses instead) and refuses
    a file that is not a sitewatch GeoPackage or needs ``verify --upgrade``.
    """

    # sites

    def upsert_sites(self, sites: Sequence[Site]) -> int:
        """Add new sites and update names, notes and outlines of known ones."""
        return _sites.upsert_sites(self, sites)

    def sites(self) -> list[Site]:
        return _sites.sites(self)

    def site(self, site_id: str) -> Site:
        return _sites.site(self, site_id)

    # runs

    def start_run(self, flow: str, params: Mapping[str, Any], run_id: str | None = None) -> str:
        return _runs.start_run(self, flow, params, run_id)

    def finish_run(self, run_id: str, status: str, summary: Mapping[str, Any]) -> None:
        _runs.finish_run(self, run_id, status, summary)

    def runs(self) -> list[RunRecord]:
        return _runs.runs(self)

    # scenes and their maps

    def done_scene_ids(self, site_id: str) -> set[str]:
        """Scenes that need no more work for this site (observed or unusable; failed ones retry)."""
        return _scenes.done_scene_ids(self, site_id)

    def save_scene(self, scene: SceneRecord, maps: bytes | None = None, detector: str | None = None,
                   metrics: MetricsRecord | None = None, quicklook: bytes | None = None,
                   grid: Mapping[str, Any] | None = None) -> None:
        """A scene with its maps, quicklook and metrics, all or nothing."""
        _scenes.save_scene(self, scene, maps, detector, metrics, quicklook, grid)

    def scenes(self, site_id: str | None = None, *, status: str | None = None) -> list[SceneRecord]:
        return _scenes.scenes(self, site_id, status=status)

    def scene(self, site_id: str, scene_id: str) -> SceneRecord:
        return _scenes.scene(self, site_id, scene_id)

    def scene_maps(self, site_id: str) -> list[tuple[SceneRecord, bytes]]:
        """Stored maps of a site's observed scenes, oldest first."""
        return _scenes.scene_maps(self, site_id)

    def scene_detectors(self, site_id: str) -> dict[str, str]:
        """scene_id to the detector (name and version) that made its stored maps."""
        return _scenes.scene_detectors(self, site_id)

    def quicklook(self, site_id: str, scene_id: str) -> tuple[bytes, dict[str, Any]] | None:
        """The scene's RGB quicklook (PNG) over the site and the grid it is on, if stored."""
        return _scenes.quicklook(self, site_id, scene_id)

    # metrics

    def metrics(self, site_id: str | None = None) -> list[MetricsRecord]:
        return _metrics.metrics(self, site_id)

    def update_security(self, site_id: str, levels: Mapping[str, tuple[int, str]]) -> None:
        """Set ``security_level`` and its reasons per scene_id."""
        _metrics.update_security(self, site_id, levels)

    # detections

    def save_detections(self, detections: Sequence[DetectionRecord]) -> int:
        """Insert detections not stored yet; those already stored (and their reviews) stay as they are."""
        return _detections.save_detections(self, detections)

    def supersede_detections(self, replaced: Mapping[str, DetectionRecord]) -> int:
        """Swap pending, unreviewed detections for better-dated versions of the same event, atomically;
        returns how many were replaced (see :func:`sitewatch.store.detections.supersede_detections`)."""
        return _detections.supersede_detections(self, replaced)

    def withdraw_detections(self, ids: Sequence[str]) -> int:
        """Remove pending detections no one reviewed that a later run refutes, all or nothing; a reviewed
        or decided one is refused (see :func:`sitewatch.store.detections.withdraw_detections`)."""
        return _detections.withdraw_detections(self, ids)

    def detections(self, *, site_id: str | None = None, status: str | None = None,
                   kind: str | None = None) -> list[DetectionRecord]:
        return _detections.detections(self, site_id=site_id, status=status, kind=kind)

    def detection(self, detection_id: str) -> DetectionRecord:
        return _detections.detection(self, detection_id)

    # wide-area scans

    def done_scan_tiles(self, scan_key: str) -> set[str]:
        return _scantiles.done_scan_tiles(self, scan_key)

    def save_scan_tiles(self, scan_key: str, run_id: str, tiles: Sequence[ScanTile]) -> int:
        """Scanned tiles' candidates, scenes, detections and done marks in one transaction: all or nothing."""
        return _scantiles.save_scan_tiles(self, scan_key, run_id, tiles)

    # reviews

    def add_review(self, detection_id: str, reviewer: str, decision: str, note: str = "") -> Review:
        """Append a review to the chain and set the detection's status, in one transaction."""
        return _reviews.add_review(self, detection_id, reviewer, decision, note)

    def reviews(self, detection_id: str | None = None) -> list[Review]:
        return _reviews.reviews(self, detection_id)

    def reviewed_at(self, site_id: str) -> set[str]:
        """Ids of the site's detections that anyone reviewed."""
        return _reviews.reviewed_at(self, site_id)
