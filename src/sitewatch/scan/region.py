"""The region a scan covers, and its plan: tiles on each scene's native grid.

A region is a lon/lat box, a named box or a vector file. It is cut into tiles on each
scene's *native* grid (no reprojection: the pixels are decoded once and compared as they
are); each :class:`TileJob` carries every scene that covers its tile, oldest first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from affine import Affine
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.prepared import prep
from shapely.strtree import STRtree

from ..errors import InputError, SceneError
from ..grid import Grid, to_crs
from ..scenes import SceneRef
from .datasets import scan_env

#: Tile side in pixels: ~1 M pixels keeps a tile's stack of dates well under 100 MB.
TILE_PX = 1024
#: Bounding box used for ``--region xinjiang`` (lon/lat; a box, not the border).
NAMED_REGIONS = {"xinjiang": (73.4, 34.3, 96.4, 49.2)}


def read_region(region: str) -> BaseGeometry:
    """A region as ``minlon,minlat,maxlon,maxlat``, a named box, or a vector file (union of its shapes)."""
    key = region.strip().lower()
    if key in NAMED_REGIONS:
        return box(*NAMED_REGIONS[key])
    parts = region.split(",")
    if len(parts) == 4:
        try:
            minx, miny, maxx, maxy = (float(p) for p in parts)
        except ValueError:
            raise InputError(f"region {region!r}: expected minlon,minlat,maxlon,maxlat as numbers") from None
        for lat in (miny, maxy):
            if not -90 <= lat <= 90:
                hint = ""
                if -90 <= minx <= 90 and -90 <= maxx <= 90 and -180 <= miny <= 180 and -180 <= maxy <= 180:
                    hint = (f"; it reads as minlat,minlon,maxlat,maxlon: for lon/lat order give "
                            f"{miny:g},{minx:g},{maxy:g},{maxx:g}")
                raise InputError(f"region {region!r}: latitude {lat:g} is outside -90..90{hint}")
        for lon in (minx, maxx):
            if not -180 <= lon <= 180:
                raise InputError(f"region {region!r}: longitude {lon:g} is outside -180..180")
        if not (minx < maxx and miny < maxy):
            raise InputError(f"region {region!r}: expected minlon,minlat,maxlon,maxlat with each min below its max")
        return box(minx, miny, maxx, maxy)
    path = Path(region)
    if not path.exists():
        raise InputError(f"region {region!r}: no such file, and not a minlon,minlat,maxlon,maxlat box")
    import pyogrio
    from shapely import from_wkb

    try:
        meta, _, geoms, _ = pyogrio.raw.read(path)
    except Exception as exc:  # pyogrio raises several DataSourceError flavours
        raise InputError(f"{path}: cannot read as a vector file ({exc})") from None
    shapes = [g for g in from_wkb([g for g in geoms if g is not None]) if g is not None and not g.is_empty]
    polys = [g for g in shapes if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        raise InputError(f"{path}: no polygon to scan")
    crs = meta.get("crs") or "EPSG:4326"
    return to_crs(unary_union(polys), crs, "EPSG:4326")



# --- planning ------------------------------------------------------------------------------


def pixel_key(g: Grid) -> tuple[str, float, float, float]:
    """Grids with the same key share pixel boundaries, so their scenes compare pixel by pixel."""
    r = g.res
    return (g.crs, round(r, 6), round(g.transform.c % r, 3), round(g.transform.f % r, 3))


@dataclass(frozen=True)
class TileJob:
    """One tile of one native grid, with every scene that covers it in date order.

    Attributes:
        tile_id: stable name, ``<epsg>-<res>m-<col>-<row>``; candidate sites are named after it.
        crs / transform / width / height: the tile's pixel grid (a window of the native grid).
        scenes: the scenes covering it, oldest first.
        area_km2: area of the tile inside the region (what the progress bar counts).
        region: the region in the tile's CRS; objects whose centre is outside are dropped.
    """

    tile_id: str
    crs: str
    transform: Affine
    width: int
    height: int
    scenes: tuple[SceneRef, ...]
    area_km2: float
    region: BaseGeometry | None = None

    @property
    def grid(self) -> Grid:
        return Grid(self.crs, self.transform, self.width, self.height)


def native_grid(ref: SceneRef) -> Grid:
    """The grid of the scene's red band (the band every scene has)."""
    import rasterio

    asset = ref.assets.get("red") or next(iter(ref.assets.values()), None)
    if asset is None:
        raise SceneError(f"scene {ref.scene_id}: no band to read")
    with scan_env():
        try:
            with rasterio.open(asset.href) as ds:
                crs = ds.crs.to_string() if ds.crs else None
                if not crs or ds.crs.is_geographic:
                    raise SceneError(f"scene {ref.scene_id}: {asset.href} is not on a projected grid")
                return Grid(crs, ds.transform, ds.width, ds.height)
        except rasterio.errors.RasterioIOError as exc:
            raise SceneError(f"scene {ref.scene_id}: cannot open {asset.href}: {exc}") from None


def plan(scenes: Sequence[SceneRef], region: BaseGeometry, tile_px: int = TILE_PX,
         grid_of: Callable[[SceneRef], Grid] = native_grid) -> tuple[list[TileJob], list[str]]:
    """Cut the region into tiles on each native grid; returns the tiles and the scenes that failed."""
    groups: dict[tuple[str, float, float, float], list[tuple[SceneRef, Grid]]] = {}
    failed: list[str] = []
    for ref in scenes:
        try:
            g = grid_of(ref)
        except SceneError as exc:
            failed.append(str(exc))
            continue
        groups.setdefault(pixel_key(g), []).append((ref, g))
    jobs: list[TileJob] = []
    for (crs, res, _, _), members in sorted(groups.items()):
        # tiles start on the pixel grid of the group's first file, so a tile of whole blocks
        # decodes each block once (a misaligned tile would decode up to nine blocks twice)
        t0 = min(members, key=lambda m: m[0].scene_id)[1].transform
        side0 = tile_px * res
        ox, oy = t0.c % side0, t0.f % side0
        reg = to_crs(region, "EPSG:4326", crs)
        covered = unary_union([box(*g.bounds) for _, g in members]).intersection(reg)
        if covered.is_empty:
            continue
        side = tile_px * res
        minx, miny, maxx, maxy = covered.bounds
        c0, c1 = math.floor((minx - ox) / side), math.ceil((maxx - ox) / side)
        r0, r1 = math.floor(-(maxy - oy) / side), math.ceil(-(miny - oy) / side)
        pcov = prep(covered)
        epsg = crs.split(":")[-1]
        # scenes by footprint in a tree: all of Xinjiang is ~16,000 tiles under thousands of scenes
        footprints = STRtree([box(*g.bounds) for _, g in members])
        for row in range(r0, r1):
            for col in range(c0, c1):
                left, top = ox + col * side, oy - row * side
                tile = box(left, top - side, left + side, top)
                if not pcov.intersects(tile):
                    continue
                inside = [members[int(i)] for i in footprints.query(tile, predicate="intersects")]
                refs = tuple(r for r, _ in sorted(inside, key=lambda m: (m[0].acquired, m[0].scene_id)))
                area = tile.intersection(covered).area / 1e6
                jobs.append(TileJob(f"{epsg}-{res:g}m-{col}-{row}", crs, Affine(res, 0, left, 0, -res, top),
                                    tile_px, tile_px, refs, round(area, 4), reg))
    return jobs, failed
