"""Changes between dates: new and removed structures as dated objects.

Prefect-free and pure: given every observation of a site on one grid in date order, the
same changes come out, whichever run stored which scene.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shapely.geometry import MultiPolygon

from .structures import StructureMaps


@dataclass(frozen=True, eq=False)
class Observation:
    """One scene's maps with its identity and date."""

    scene_id: str
    acquired: dt.datetime
    maps: StructureMaps


@dataclass(frozen=True)
class Change:
    """A structure that appeared or disappeared between two clear scenes.

    Attributes:
        kind: one of :data:`sitewatch.structures.CHANGE_KINDS`.
        geometry: outline in the grid's CRS (metres).
        before_scene_id / before_date: last clear scene without it (with it, for ``_removed``).
        after_scene_id / after_date: first clear scene with it (without it, for ``_removed``).
        area_m2: footprint area.
        length_m: centre-line length for walls and fences, else None.
        score: calibrated confidence in 0..1.
        evidence: JSON-safe facts a reviewer needs: which maps fired, change magnitude.
    """

    kind: str
    geometry: MultiPolygon
    before_scene_id: str
    before_date: dt.date
    after_scene_id: str
    after_date: dt.date
    area_m2: float
    length_m: float | None
    score: float
    evidence: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Metrics:
    """Per-scene measurements of a site (the ``site_metrics`` layer)."""

    built_area_m2: float
    wall_length_m: float | None
    fence_length_m: float | None
    tower_count: int | None
    enclosed_area_m2: float | None


def track(observations: Sequence[Observation]) -> list[Change]:
    """All changes in a site's history, each dated by the clear scenes that bracket it."""
    raise NotImplementedError


def measure(maps: StructureMaps) -> Metrics:
    """Metrics of one scene's maps."""
    raise NotImplementedError
