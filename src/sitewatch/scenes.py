"""What a scene is, before and after its pixels are read.

A :class:`SceneRef` is what discovery finds (a STAC item, a GeoTIFF); a :class:`SceneRaster`
is that scene read over one site's window and reprojected onto the site's grid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from shapely.geometry.base import BaseGeometry

from .grid import Grid

#: Band common names sitewatch reads, in the order pixels are hashed.
BANDS = ("red", "green", "blue", "nir", "swir16")

#: Sentinel-2 scene classes that are never ground: no-data, cloud shadow, cloud medium and
#: high probability, thin cirrus, snow.
SCL_MASKED = (0, 3, 8, 9, 10, 11)


@dataclass(frozen=True)
class AssetRef:
    """Where one band's pixels live.

    Attributes:
        href: local path or http(s) URL of a (Cloud Optimized) GeoTIFF.
        band: 1-based band index inside that file.
        scale: multiply stored values by this to get reflectance in 0..1.
        offset: then add this.
        sas: ``account/container`` of a Planetary Computer SAS token the href needs (signed
            at read time: tokens expire), else None.
    """

    href: str
    band: int = 1
    scale: float = 1.0
    offset: float = 0.0
    sas: str | None = None


@dataclass(frozen=True)
class SceneRef:
    """One acquisition, as discovered.

    Attributes:
        scene_id: the item id (STAC) or file stem (folder); unique within a source.
        source: the catalog/API URL or folder it came from.
        collection: STAC collection id, if any.
        acquired: acquisition time, timezone-aware UTC.
        assets: band common name (``red``, ``nir``, ``scl``, ...) to where its pixels are.
        footprint: footprint in EPSG:4326, if the source states one.
        gsd_m: ground sample distance stated by the source, metres.
        href: where the original can be fetched again (item URL or file path).
        properties: anything else the source said (platform, sun angles, ...), JSON-safe.
    """

    scene_id: str
    source: str
    acquired: dt.datetime
    assets: Mapping[str, AssetRef]
    collection: str | None = None
    footprint: BaseGeometry | None = None
    gsd_m: float | None = None
    href: str | None = None
    properties: Mapping[str, object] = field(default_factory=dict)

    @property
    def date(self) -> dt.date:
        return self.acquired.astimezone(dt.timezone.utc).date()


@dataclass(frozen=True, eq=False)
class SceneRaster:
    """A scene read over one site and reprojected onto the site's grid.

    Attributes:
        scene: what was read.
        grid: the site grid the arrays are on.
        bands: common name to float32 reflectance (0..1), NaN outside valid data.
        valid: True where the ground was seen (inside the footprint, not cloud, shadow,
            snow or no-data).
        cloud: True where cloud, haze or cloud shadow was found (by ``scl`` or by sitewatch).
        sha256: SHA-256 of the source pixels read (before reprojection), hex.
        native_gsd_m: resolution of the source pixels, metres.
        shift_px: (dx, dy) co-registration shift applied, in pixels of ``grid``.
        scales: band to the (scale, offset) that turned its stored values into reflectance
            (a change model may want the stored values back: ``sitewatch.scale``).
    """

    scene: SceneRef
    grid: Grid
    bands: Mapping[str, np.ndarray]
    valid: np.ndarray
    cloud: np.ndarray
    sha256: str
    native_gsd_m: float
    shift_px: tuple[float, float] = (0.0, 0.0)
    scales: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean()) if self.valid.size else 0.0

    @property
    def cloud_fraction(self) -> float:
        return float(self.cloud.mean()) if self.cloud.size else 0.0
