"""One pixel grid per site: local UTM, north up, snapped to whole pixels.

Every scene of a site is reprojected onto the same grid so that pixels can be compared
across dates without further resampling. The grid's pixel size is chosen once, from the
site's first scene, and kept: a later scene whose pixels are a little larger or smaller
(OSCD saclay_e: 8.44 m and 8.55 m) goes onto the same grid, else its maps could never be
compared with the others'. Only imagery of another class of resolution (0.5 m beside 10 m)
gets a grid of its own.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid.

    Attributes:
        crs: the grid's CRS as an ``EPSG:`` string (a local UTM zone for site grids).
        transform: affine from pixel (col, row) to CRS coordinates of the pixel's corner.
        width: columns.
        height: rows.
    """

    crs: str
    transform: Affine
    width: int
    height: int

    @property
    def res(self) -> float:
        """Pixel size in metres (grids are square-pixelled)."""
        return float(self.transform.a)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        return (left, top - self.height * self.res, left + self.width * self.res, top)

    @property
    def pixel_area_m2(self) -> float:
        return self.res * self.res

    def to_dict(self) -> dict[str, object]:
        t = self.transform
        return {"crs": self.crs, "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
                "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Grid:
        a, b, c, dd, e, f = (float(v) for v in d["transform"])  # type: ignore[union-attr]
        return cls(str(d["crs"]), Affine(a, b, c, dd, e, f), int(d["width"]), int(d["height"]))  # type: ignore[call-overload]

    def footprint(self) -> Polygon:
        """The grid's outline in its own CRS."""
        return box(*self.bounds)


#: Pixel sizes within this factor of a site's grid are resampled onto it rather than given a new grid.
SAME_GRID_FACTOR = 1.5


def nice_resolution(metres: float) -> float:
    """A grid resolution from a native one: 10.0 for 9.98, 0.5 for 0.4999, 0.3 for 0.31."""
    if metres >= 5:
        return float(round(metres))
    return max(0.05, round(metres, 1 if metres >= 0.5 else 2))


def site_resolution(native_m: float, known: Sequence[float] = ()) -> float:
    """The grid resolution for a scene of ``native_m`` pixels at a site whose scenes are already on
    grids of ``known`` resolutions (first chosen first): the first within :data:`SAME_GRID_FACTOR`
    of the scene, else a new one from :func:`nice_resolution`."""
    for r in known:
        if r > 0 and 1 / SAME_GRID_FACTOR <= native_m / r <= SAME_GRID_FACTOR:
            return float(r)
    return nice_resolution(native_m)


def utm_crs_for(lon: float, lat: float) -> str:
    """The WGS 84 UTM zone containing a point, as ``EPSG:326xx`` / ``EPSG:327xx``."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


_local = threading.local()


def _transformer(src: str, dst: str) -> Transformer | None:
    """Building a transformer costs milliseconds and a run needs the same few again and again;
    pyproj transformers are not thread-safe, so each thread keeps its own."""
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    key = (src, dst)
    if key not in cache:
        same = CRS.from_user_input(src) == CRS.from_user_input(dst)
        cache[key] = None if same else Transformer.from_crs(src, dst, always_xy=True)
    return cache[key]


def to_crs(geom: BaseGeometry, src: str, dst: str) -> BaseGeometry:
    """Reproject a shapely geometry (always_xy: lon/lat order for geographic CRSs)."""
    tr = _transformer(str(src), str(dst))
    if tr is None:
        return geom
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def grid_for(aoi_wgs84: BaseGeometry, res_m: float, crs: str | None = None) -> Grid:
    """The grid covering an area of interest at ``res_m``.

    The origin is snapped to a multiple of ``res_m`` so that grids of the same site at the
    same resolution coincide exactly from run to run, which is what makes stored per-scene
    maps comparable with new scenes.
    """
    if res_m <= 0:
        raise ValueError(f"resolution must be positive, got {res_m}")
    c = aoi_wgs84.centroid
    crs = crs or utm_crs_for(c.x, c.y)
    minx, miny, maxx, maxy = to_crs(aoi_wgs84, "EPSG:4326", crs).bounds
    left = math.floor(minx / res_m) * res_m
    bottom = math.floor(miny / res_m) * res_m
    right = math.ceil(maxx / res_m) * res_m
    top = math.ceil(maxy / res_m) * res_m
    width = max(1, int(round((right - left) / res_m)))
    height = max(1, int(round((top - bottom) / res_m)))
    return Grid(crs, Affine(res_m, 0.0, left, 0.0, -res_m, top), width, height)
