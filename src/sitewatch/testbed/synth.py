"""A seeded renderer of overhead imagery of compounds, for the demo and the benchmarks.

Structures are drawn in metres around a site's centre at a fine resolution, with the
shadows the sun casts, over textured ground with seasonal fields, then averaged down to
the sensor's pixel size (so a 100 x 30 m block shows at 10 m as mixed pixels, as it does
in Sentinel-2). Each date has its own conditions: season, sun, sensor gain, haze, a cloud
(with ``scl`` codes when the series is Sentinel-2-like), noise and misregistration. The
same seed gives the same pixels on every machine. :func:`truth` turns a schedule into the
changes a perfect detector would report, dated by the clear scenes that bracket them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from scipy import ndimage
from shapely import affinity
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

BANDS = ("red", "green", "blue", "nir", "swir16")
SOIL = (0.27, 0.22, 0.17, 0.31, 0.40)
SOIL_WET = (0.20, 0.17, 0.14, 0.25, 0.30)
FIELD_SUMMER = (0.05, 0.09, 0.05, 0.45, 0.22)
FIELD_WINTER = (0.22, 0.19, 0.15, 0.26, 0.33)
SNOW = (0.80, 0.82, 0.85, 0.78, 0.10)
ROOF_BLUE = (0.16, 0.27, 0.46, 0.33, 0.28)
ROOF_GREY = (0.40, 0.41, 0.43, 0.44, 0.42)
CONCRETE = (0.47, 0.45, 0.42, 0.48, 0.52)
STEEL = (0.09, 0.09, 0.10, 0.11, 0.12)  # dark painted mesh and posts
ROAD = (0.21, 0.20, 0.19, 0.22, 0.26)
CLOUD = (0.78, 0.79, 0.82, 0.80, 0.70)


# --- structures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Building:
    """A roofed block: centre (x, y) in metres east/north of the site centre, size w x h, rotated."""

    id: str
    x: float
    y: float
    w: float
    h: float
    angle: float = 0.0
    height: float = 12.0
    roof: tuple[float, ...] = ROOF_BLUE
    kind: str = "building"

    def footprint(self) -> Polygon:
        return affinity.rotate(box(self.x - self.w / 2, self.y - self.h / 2, self.x + self.w / 2, self.y + self.h / 2),
                               self.angle, origin=(self.x, self.y))


@dataclass(frozen=True)
class Wall:
    """A solid wall along a polyline (closed when the first point is repeated at the end)."""

    id: str
    points: tuple[tuple[float, float], ...]
    thickness: float = 0.6
    height: float = 5.0
    kind: str = "wall"

    def footprint(self) -> BaseGeometry:
        return LineString(self.points).buffer(self.thickness / 2, cap_style="flat", join_style="mitre")


@dataclass(frozen=True)
class Fence(Wall):
    """A thin, low-contrast fence along a polyline (wire mesh on posts)."""

    thickness: float = 0.15
    height: float = 3.0
    kind: str = "fence"


@dataclass(frozen=True)
class Tower:
    """A watchtower: a small square, tall enough to cast a long shadow."""

    id: str
    x: float
    y: float
    size: float = 3.0
    height: float = 10.0
    kind: str = "tower"

    def footprint(self) -> Polygon:
        s = self.size / 2
        return box(self.x - s, self.y - s, self.x + s, self.y + s)


Structure = Building | Wall | Fence | Tower


def shadow(s: Structure, sun_azimuth: float, sun_elevation: float) -> BaseGeometry:
    """The ground a structure shades: its footprint swept away from the sun by height / tan(elevation)."""
    length = s.height / math.tan(math.radians(max(sun_elevation, 5.0)))
    az = math.radians(sun_azimuth)
    dx, dy = -math.sin(az) * length, -math.cos(az) * length  # azimuth clockwise from north
    fp = s.footprint()
    if isinstance(s, Wall):
        pieces = [LineString(seg).buffer(s.thickness / 2, cap_style="flat")
                  for seg in zip(s.points[:-1], s.points[1:])]
    else:
        pieces = [fp]
    return unary_union([unary_union([p, affinity.translate(p, dx, dy)]).convex_hull for p in pieces])


# --- conditions and rendering ------------------------------------------------------------------


@dataclass(frozen=True)
class Cloud:
    """A soft cloud: centre and radius in metres, peak opacity; it casts a shadow offset by ``shadow_m``."""

    x: float
    y: float
    radius: float
    opacity: float = 0.95
    shadow_m: tuple[float, float] = (40.0, -30.0)


@dataclass(frozen=True)
class Conditions:
    """Everything about one acquisition that is not the structures.

    Attributes:
        season: 0 = deep winter, 1 = full summer (fields green, soil dry).
        sun_azimuth / sun_elevation: degrees; sets shadow direction and length.
        gain / offset: sensor radiometry (per band multiplier and additive haze).
        clouds: clouds over the site.
        snow: fraction of open ground under snow (0..1, in patches).
        shift_px: misregistration (dx, dy) in output pixels, sub-pixel allowed.
        noise: per-pixel noise, reflectance units.
    """

    season: float = 0.5
    sun_azimuth: float = 160.0
    sun_elevation: float = 45.0
    gain: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    offset: float = 0.0
    clouds: tuple[Cloud, ...] = ()
    snow: float = 0.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    noise: float = 0.006


@dataclass(frozen=True)
class Ground:
    """What never changes at a site: its size, texture, fields and roads."""

    size_m: float
    seed: int
    fields: tuple[tuple[float, float, float, float], ...] = ()  # x, y, w, h (m)
    roads: tuple[tuple[tuple[float, float], ...], ...] = ()


def _smooth(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    small = rng.standard_normal((shape[0] // cell + 2, shape[1] // cell + 2)).astype(np.float32)
    zoom = (shape[0] / (small.shape[0] - 1), shape[1] / (small.shape[1] - 1))
    return ndimage.zoom(small, zoom, order=1)[: shape[0], : shape[1]]


def _raster(geom: BaseGeometry, transform: Affine, shape: tuple[int, int], all_touched: bool = False) -> np.ndarray:
    """Fractional coverage would be nicer; at the fine resolution a boolean mask is enough."""
    from rasterio.features import rasterize

    if geom.is_empty:
        return np.zeros(shape, dtype=bool)
    return rasterize([(geom, 1)], out_shape=shape, transform=transform, fill=0, dtype="uint8",
                     all_touched=all_touched).astype(bool)


def fine_resolution(gsd: float) -> float:
    """Render finer than the sensor so its pixels mix what they cover (fences drawn touching)."""
    return gsd / 2 if gsd <= 1.0 else gsd / 5


@dataclass(frozen=True)
class Rendered:
    """One rendered acquisition on the output grid (origin at the site's north-west corner)."""

    bands: dict[str, np.ndarray]
    scl: np.ndarray
    cloud: np.ndarray


def render(ground: Ground, structures: Sequence[Structure], gsd: float, cond: Conditions, seed: int) -> Rendered:
    """Reflectance bands (float32 0..1), an ``scl`` layer and the true cloud mask at ``gsd``."""
    rng = np.random.default_rng(seed)
    n_out = int(round(ground.size_m / gsd))
    fine = fine_resolution(gsd)
    k = int(round(gsd / fine))
    n = n_out * k
    half = ground.size_m / 2
    t = Affine(fine, 0, -half, 0, -fine, half)
    shape = (n, n)
    grng = np.random.default_rng(ground.seed)
    tex = 1.0 + 0.06 * _smooth(grng, shape, max(2, int(20 / fine))) + 0.02 * _smooth(grng, shape, max(2, int(3 / fine)))
    soil = np.array(SOIL, np.float32) * (1 - 0.3 * (1 - cond.season)) + np.array(SOIL_WET, np.float32) * 0.3 * (
        1 - cond.season)
    img = soil[:, None, None] * tex[None].astype(np.float32)
    scl = np.full(shape, 5, np.uint8)
    field_col = (np.array(FIELD_SUMMER, np.float32) * cond.season
                 + np.array(FIELD_WINTER, np.float32) * (1 - cond.season))
    for (fx, fy, fw, fh) in ground.fields:
        m = _raster(box(fx, fy, fx + fw, fy + fh), t, shape)
        img[:, m] = field_col[:, None] * tex[m][None]
        if cond.season > 0.5:
            scl[m] = 4
    for road in ground.roads:
        m = _raster(LineString(road).buffer(3.0), t, shape)
        img[:, m] = np.array(ROAD, np.float32)[:, None]
    if cond.snow > 0:
        patches = _smooth(np.random.default_rng(ground.seed + 99), shape, max(2, int(30 / fine)))
        m = patches > np.quantile(patches, 1 - cond.snow)
        img[:, m] = np.array(SNOW, np.float32)[:, None]
        scl[m] = 11
    shade = np.zeros(shape, bool)
    mesh = np.zeros(shape, bool)  # a wire fence's shadow is faint: most light passes through
    for s in structures:
        (mesh if isinstance(s, Fence) else shade)[...] |= _raster(shadow(s, cond.sun_azimuth, cond.sun_elevation),
                                                                   t, shape)
    img[:, mesh & ~shade] *= np.float32(0.82)
    img[:, shade] *= np.array([0.30, 0.32, 0.40, 0.28, 0.26], np.float32)[:, None]
    for s in sorted(structures, key=lambda s: s.height):
        m = _raster(s.footprint(), t, shape, all_touched=isinstance(s, (Wall, Fence)))
        if isinstance(s, Fence):
            img[:, m] = 0.55 * img[:, m] + 0.45 * np.array(STEEL, np.float32)[:, None]
        elif isinstance(s, Building):
            img[:, m] = np.array(s.roof, np.float32)[:, None]
        else:
            img[:, m] = np.array(CONCRETE, np.float32)[:, None]
    # down to the sensor's pixels: area average
    out = img.reshape(5, n_out, k, n_out, k).mean(axis=(2, 4))
    scl_out = scl.reshape(n_out, k, n_out, k)[:, 0, :, 0].copy()
    # sun and sensor
    out = out * np.array(cond.gain, np.float32)[:, None, None] + np.float32(cond.offset)
    yy, xx = np.mgrid[0:n_out, 0:n_out]
    cx, cy = (xx + 0.5) * gsd - half, half - (yy + 0.5) * gsd
    cloud_mask = np.zeros((n_out, n_out), bool)
    for c in cond.clouds:
        sx, sy = c.shadow_m
        ds = np.hypot(cx - c.x - sx, cy - c.y - sy) / c.radius
        sh = np.exp(-2.5 * ds ** 2) * 0.55
        out *= (1 - sh)[None]
        scl_out[sh > 0.2] = 3
        d = np.hypot(cx - c.x, cy - c.y) / c.radius
        a = np.exp(-2.5 * d ** 2) * c.opacity  # soft-edged, as clouds are
        out = out * (1 - a)[None] + np.array(CLOUD, np.float32)[:, None, None] * a[None]
        scl_out[a > 0.1] = 8
        scl_out[a > 0.5] = 9
        cloud_mask |= (a > 0.05) | (sh > 0.2)
    if cond.shift_px != (0.0, 0.0):
        dx, dy = cond.shift_px
        out = np.stack([ndimage.shift(b, (dy, dx), order=1, mode="nearest") for b in out])
        scl_out = ndimage.shift(scl_out, (round(dy), round(dx)), order=0, mode="nearest")
        cloud_mask = ndimage.shift(cloud_mask, (round(dy), round(dx)), order=0, mode="nearest")
    out = out + rng.normal(0, cond.noise, out.shape).astype(np.float32)
    out = np.clip(out, 0.001, 1.0).astype(np.float32)
    return Rendered({b: out[i] for i, b in enumerate(BANDS)}, scl_out, cloud_mask)


# --- schedules and truth -------------------------------------------------------------------------


@dataclass(frozen=True)
class Epoch:
    """One acquisition: when, which structures stand, and under which conditions."""

    date: dt.date
    present: frozenset[str]
    conditions: Conditions = field(default_factory=Conditions)


@dataclass(frozen=True)
class TrueChange:
    """A change a perfect detector would report (geometry in metres around the site centre)."""

    structure: str
    kind: str
    last_before: dt.date
    first_after: dt.date
    geometry: BaseGeometry
    length_m: float | None = None


def _covered_by_cloud(geom: BaseGeometry, cond: Conditions) -> bool:
    """A structure counts as seen only when no cloud (or its shadow) reaches it."""
    for c in cond.clouds:
        for (ox, oy) in ((0.0, 0.0), c.shadow_m):
            if geom.intersects(Point(c.x + ox, c.y + oy).buffer(c.radius * 1.3 + 10)):
                return True
    return False


def truth(structures: Sequence[Structure], epochs: Sequence[Epoch]) -> list[TrueChange]:
    """Every appearance and disappearance, bracketed by the clear epochs around it."""
    out: list[TrueChange] = []
    for s in structures:
        fp = s.footprint()
        seen = [(e.date, s.id in e.present) for e in epochs if not _covered_by_cloud(fp, e.conditions)]
        for (d0, p0), (d1, p1) in zip(seen, seen[1:]):
            if p0 != p1:
                kind = f"{s.kind}_{'new' if p1 else 'removed'}"
                length = LineString(s.points).length if isinstance(s, Wall) else None
                out.append(TrueChange(s.id, kind, d0, d1, fp, length))
    return out


def compound(seed: int, size_m: float = 400.0, blocks: int = 4) -> tuple[list[Structure], dict[str, list[str]]]:
    """A typical compound: dormitory blocks, a perimeter wall, internal fences, corner towers.

    Returns the structures and their groups (``blocks``, ``wall``, ``fences``, ``towers``)
    so a schedule can build it up in the order investigations describe.
    """
    rng = np.random.default_rng(seed)
    half = size_m * 0.32
    ox, oy = rng.uniform(-size_m * 0.05, size_m * 0.05, 2)
    x0, x1, y0, y1 = ox - half, ox + half, oy - half * 0.8, oy + half * 0.8
    structs: list[Structure] = []
    groups: dict[str, list[str]] = {"blocks": [], "wall": [], "fences": [], "towers": []}
    roofs = (ROOF_BLUE, ROOF_GREY)
    for i in range(blocks):
        bx = x0 + (i + 0.5) * (x1 - x0) / blocks
        b = Building(f"block-{i}", float(bx), float(oy + (y1 - oy) * 0.45), w=float((x1 - x0) / blocks * 0.55),
                     h=float(rng.uniform(14, 20)), height=float(rng.uniform(10, 16)), roof=roofs[i % 2])
        structs.append(b)
        groups["blocks"].append(b.id)
    ring = ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))
    structs.append(Wall("perimeter", ring))
    groups["wall"].append("perimeter")
    for i in range(1, blocks):
        fx = x0 + i * (x1 - x0) / blocks
        f = Fence(f"fence-{i}", ((float(fx), y0 + 3), (float(fx), float(oy - 5))))
        structs.append(f)
        groups["fences"].append(f.id)
    f = Fence("fence-yard", ((x0 + 3, float(oy - 5)), (x1 - 3, float(oy - 5))))
    structs.append(f)
    groups["fences"].append(f.id)
    for j, (cx, cy) in enumerate(((x0, y0), (x1, y0), (x1, y1), (x0, y1))):
        t = Tower(f"tower-{j}", cx, cy)
        structs.append(t)
        groups["towers"].append(t.id)
    return structs, groups


def geometry_to_crs(geom: BaseGeometry, centre_xy: tuple[float, float]) -> BaseGeometry:
    """Local metres -> the site's projected CRS, given the site centre there."""
    return affinity.translate(geom, centre_xy[0], centre_xy[1])


def season_of(date: dt.date) -> float:
    """0 in mid-January, 1 in mid-July."""
    return 0.5 - 0.5 * math.cos(2 * math.pi * (date.timetuple().tm_yday - 15) / 365.25)


def sun_for(date: dt.date, lat: float, hour_utc: float = 5.0) -> tuple[float, float]:
    """A plausible late-morning sun (azimuth, elevation) for the date at this latitude."""
    decl = 23.44 * math.sin(2 * math.pi * (284 + date.timetuple().tm_yday) / 365)
    elev = 90 - lat + decl - 25  # late morning, below noon height
    return 150.0 + 5 * math.sin(date.toordinal()), max(18.0, min(70.0, elev))


def conditions_for(date: dt.date, lat: float, **kw: object) -> Conditions:
    az, el = sun_for(date, lat)
    base: dict[str, object] = {"season": season_of(date), "sun_azimuth": az, "sun_elevation": el}
    base.update(kw)
    return Conditions(**base)  # type: ignore[arg-type]


__all__ = ["Building", "Wall", "Fence", "Tower", "Cloud", "Conditions", "Ground", "Epoch", "TrueChange", "render",
           "truth", "compound", "shadow", "season_of", "conditions_for", "Mapping"]
