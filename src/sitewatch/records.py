"""The rows of the findings GeoPackage as typed, immutable records.

These are what the library passes around (detectors and change models make
:class:`DetectionRecord`; the monitoring run makes :class:`SceneRecord` and
:class:`MetricsRecord`); :mod:`sitewatch.store` checks and writes them. They hold no
connection, so code that only makes or reads records need not import the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from .sites import Site

#: Scene states: ``observed`` (read, maps stored), ``unusable`` (read, nothing visible:
#: all cloud or no data; never retried), ``failed`` (could not be read; retried next run).
SCENE_STATUSES = ("observed", "unusable", "failed")
RUN_STATUSES = ("running", "completed", "partial", "failed")


@dataclass(frozen=True)
class SceneRecord:
    """A row of ``scenes``: one scene as seen over one site.

    Attributes:
        scene_id / site_id: the scene and the site it was read for (unique together).
        source: catalog, API or folder it came from; ``collection``: STAC collection.
        acquired: acquisition time (UTC).
        gsd_m: resolution of the pixels read; ``grid_res_m``: the site grid they went onto.
        cloud_fraction / valid_fraction: over the site window, 0..1.
        sha256: SHA-256 of the source pixels read.
        footprint: where the scene has data over the site, EPSG:4326.
        status: one of :data:`SCENE_STATUSES`; ``error`` says why when not observed.
        href: where the original can be fetched again (STAC item or file).
        image_href: the image itself, to add as a raster layer in QGIS in one step: the file
            holding red, green and blue as bands 1-3, else a VRT of the separate band files
            (see :func:`sitewatch.vrt.image_href`).
        shift_x_px / shift_y_px: co-registration shift applied.
    """

    scene_id: str
    site_id: str
    source: str
    acquired: dt.datetime
    gsd_m: float | None
    cloud_fraction: float | None
    valid_fraction: float | None
    sha256: str | None
    run_id: str
    footprint: BaseGeometry | None = None
    collection: str | None = None
    href: str | None = None
    status: str = "observed"
    error: str | None = None
    grid_res_m: float | None = None
    shift_x_px: float | None = None
    shift_y_px: float | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    image_href: str | None = None

    @property
    def date(self) -> dt.date:
        return self.acquired.astimezone(dt.timezone.utc).date()


@dataclass(frozen=True)
class DetectionRecord:
    """A row of ``detections`` (geometry a MultiPolygon in EPSG:4326).

    ``detector`` names what made it (name and version, or a model file's SHA-256), so a
    review binds the method as well as the claim.
    """

    detection_id: str
    site_id: str
    kind: str
    before_date: dt.date
    after_date: dt.date
    before_scene_id: str
    after_scene_id: str
    area_m2: float
    length_m: float | None
    score: float
    geometry: MultiPolygon
    run_id: str
    status: str = "pending"
    evidence: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""
    detector: str = ""


@dataclass(frozen=True)
class MetricsRecord:
    """A row of ``site_metrics``: one scene's measurements of a site."""

    site_id: str
    scene_id: str
    acquired: dt.datetime
    built_area_m2: float
    wall_length_m: float | None
    fence_length_m: float | None
    tower_count: int | None
    enclosed_area_m2: float | None
    run_id: str
    security_level: int | None = None
    security_reasons: str | None = None
    grid_res_m: float | None = None


@dataclass(frozen=True)
class ScanTile:
    """One scanned tile to store: its candidate sites, the scenes that date them, their detections."""

    tile_id: str
    area_km2: float
    sites: Sequence[Site] = ()
    scenes: Sequence[SceneRecord] = ()
    detections: Sequence[DetectionRecord] = ()


@dataclass(frozen=True)
class RunRecord:
    """A row of ``runs``: one flow run and what it did."""

    run_id: str
    flow: str
    started_at: str
    finished_at: str | None
    status: str
    version: str
    params: Mapping[str, Any]
    summary: Mapping[str, Any] = field(default_factory=dict)
