"""Candidate sites: the areas of interest a run watches."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shapely.geometry import Polygon

#: A site id is safe in file names, URLs and SQL literals.
SITE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

#: Points are buffered by this radius unless the record gives ``radius_m``.
DEFAULT_RADIUS_M = 500.0


@dataclass(frozen=True)
class Site:
    """One candidate site.

    Attributes:
        site_id: unique, matching ``[A-Za-z0-9_.-]{1,64}``.
        geometry: area of interest, a valid Polygon in EPSG:4326.
        name: human name, if given.
        notes: free text, if given.
        properties: any other fields of the input record (source ids, facility type, ...).
    """

    site_id: str
    geometry: Polygon
    name: str | None = None
    notes: str | None = None
    properties: Mapping[str, object] = field(default_factory=dict)
