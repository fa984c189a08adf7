"""Where the input lies: the lon/lat extent of sites or a region, and coordinates that look swapped.

Latitude and longitude swapped are still valid numbers (Xinjiang's 87.6 E, 43.0 N read as
lon 43.0, lat 87.6 is near the North Pole), so no range check stops them: a run over the wrong
place finds no scene and, unless told, says nothing. These helpers let every command print where
it is looking and say when a place looks swapped, before a run and after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shapely.geometry.base import BaseGeometry
from shapely.ops import transform, unary_union

#: Sentinel-2 and Landsat image land from about 56-80 S to 82-84 N, and UTM (the grid a site is
#: read on) stops at 84 N and 80 S: a place beyond these latitudes has no such imagery.
IMAGED_LAT = (-80.0, 84.0)


def bounds(geoms: Iterable[BaseGeometry]) -> tuple[float, float, float, float]:
    """(minlon, minlat, maxlon, maxlat) over every geometry (EPSG:4326)."""
    return tuple(unary_union(list(geoms)).bounds)  # type: ignore[return-value]


def extent_text(geoms: Iterable[BaseGeometry]) -> str:
    """``lon 87.55..87.66, lat 42.95..43.05``: what a user checks against a map."""
    minx, miny, maxx, maxy = bounds(geoms)
    return f"lon {minx:.4f}..{maxx:.4f}, lat {miny:.4f}..{maxy:.4f}"


def swap(g: BaseGeometry) -> BaseGeometry:
    """The geometry with its x and y exchanged (lon read as lat and the other way round)."""
    return transform(lambda x, y, *z: (y, x, *z), g)


def looks_swapped(lon: float, lat: float) -> bool:
    """A point beyond the imaged latitudes that would be inside them with lon and lat exchanged."""
    lo, hi = IMAGED_LAT
    return not (lo <= lat <= hi) and lo <= lon <= hi and -180 <= lat <= 180


def swap_warning(named: Sequence[tuple[str, BaseGeometry]], what: str = "site") -> str | None:
    """One line naming the places (``what`` id, geometry) whose centre looks swapped; None when none does."""
    odd = [(n, g.centroid) for n, g in named if looks_swapped(g.centroid.x, g.centroid.y)]
    if not odd:
        return None
    lo, hi = IMAGED_LAT
    first = ", ".join(f"{n} (lon {c.x:.4f}, lat {c.y:.4f})" for n, c in odd[:5])
    more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
    return (f"warning: {len(odd)} of {len(named)} {what}(s) lie beyond latitude {lo:g}..{hi:g}, where Sentinel-2 "
            f"and Landsat take no images: are lon and lat swapped? {first}{more}")


def swapped_matches(imagery: str, geom: BaseGeometry, *, collection: str | None = None, since: object = None,
                    until: object = None) -> int:
    """How many scenes the imagery has over ``geom`` with lon and lat exchanged (0 when that is not
    a place, or the search fails): asked only for a place that matched no scene, to tell a user
    who swapped the columns why."""
    from .catalog import discover
    from .errors import SitewatchError

    flipped = swap(geom)
    minx, miny, maxx, maxy = flipped.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        return 0
    try:
        return len(discover(imagery, collection=collection, aoi=flipped, since=since, until=until))  # type: ignore[arg-type]
    except SitewatchError:
        return 0


def no_scene_note(what: str, geom: BaseGeometry, imagery: str, **search: object) -> str:
    """The line that names a place (``site X``, ``region R``) that matched no scene, with where it is
    and, when the imagery has scenes there with lon and lat exchanged, that they look swapped."""
    line = f"no scene: {what} ({extent_text([geom])}) matched no scene in {imagery}"
    n = swapped_matches(imagery, geom, **search)  # type: ignore[arg-type]
    if n:
        line += f"; with lon and lat swapped it would match {n} scene(s): are they swapped?"
    return line
