"""Image chips for reviewers: the ground around one detection, before and after.

Cut from the quicklooks stored with each scene, so a detection can be judged even when
the original imagery is gone. Before and after chips cover the same ground window and
come out at the same size, so they can be swiped or blinked against each other.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw
from shapely.geometry.base import BaseGeometry

from .grid import Grid, to_crs

#: Colour of the detection outline, and of the site outline on the context chip.
OUTLINE = (255, 40, 40)
SITE_OUTLINE = (255, 210, 0)
#: Chips whose window is smaller than this (pixels, longest side) are enlarged, nearest
#: neighbour, so a few-pixel building stays a few sharp squares rather than a blur.
MIN_SIDE = 320
MAX_SIDE = 640
#: Ground kept around a detection: this fraction of its size, at least MARGIN_MIN_PX pixels.
MARGIN_FRACTION = 0.5
MARGIN_MIN_PX = 12


@dataclass(frozen=True)
class Chips:
    """PNG bytes of the before, after and context chips (None where no quicklook is stored)."""

    before: bytes | None
    after: bytes | None
    context: bytes | None


class _Layer:
    """A stored quicklook and the mapping from grid CRS coordinates to its pixels.

    Quicklooks may be downscaled from the grid (long sides capped), hence the scale.
    Before and after scenes of a site share the site grid's CRS, so one ground window
    (in that CRS) serves both.
    """

    def __init__(self, png: bytes, grid: Mapping[str, Any]):
        self.image = Image.open(io.BytesIO(png)).convert("RGB")
        self.grid = Grid.from_dict(dict(grid))
        self.sx = self.image.width / self.grid.width
        self.sy = self.image.height / self.grid.height

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        col, row = ~self.grid.transform @ (x, y)
        return col * self.sx, row * self.sy

    def window_px(self, bounds: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        """Pixel box (left, top, right, bottom) of a ground box in the grid CRS."""
        x0, y0 = self.to_px(bounds[0], bounds[3])
        x1, y1 = self.to_px(bounds[2], bounds[1])
        return (math.floor(min(x0, x1)), math.floor(min(y0, y1)), math.ceil(max(x0, x1)), math.ceil(max(y0, y1)))


def _rings(geom: BaseGeometry) -> list[list[tuple[float, float]]]:
    polys = list(getattr(geom, "geoms", [geom]))
    out = []
    for p in polys:
        if p.is_empty or not hasattr(p, "exterior"):
            continue
        out.append(list(p.exterior.coords))
        out += [list(r.coords) for r in p.interiors]
    return out


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _out_size(w: int, h: int) -> tuple[int, int]:
    """Enlarge small windows by a whole factor (crisp pixels), shrink big ones to MAX_SIDE."""
    side = max(w, h, 1)
    if side < MIN_SIDE:
        f = math.ceil(MIN_SIDE / side)
        return w * f, h * f
    if side > MAX_SIDE:
        f = MAX_SIDE / side
        return max(1, round(w * f)), max(1, round(h * f))
    return w, h


def _draw(img: Image.Image, rings: list[list[tuple[float, float]]], colour: tuple[int, int, int],
          to_px: Any, width: int) -> None:
    draw = ImageDraw.Draw(img)
    for ring in rings:
        pts = [to_px(x, y) for x, y in ring]
        if len(pts) >= 2:
            draw.line(pts + [pts[0]], fill=colour, width=width, joint="curve")


def _halo(geometry_wgs84: BaseGeometry, crs: str, pad: float) -> BaseGeometry:
    """The outline drawn just outside the detection, so thin walls and fences stay visible."""
    return to_crs(geometry_wgs84, "EPSG:4326", crs).buffer(pad, join_style=2)


def ground_window(geometry_wgs84: BaseGeometry, grid: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """The ground box (grid CRS) shown around a detection: its bounds plus a margin."""
    g = Grid.from_dict(dict(grid))
    minx, miny, maxx, maxy = to_crs(geometry_wgs84, "EPSG:4326", g.crs).bounds
    margin = max(max(maxx - minx, maxy - miny) * MARGIN_FRACTION, MARGIN_MIN_PX * g.res)
    return (minx - margin, miny - margin, maxx + margin, maxy + margin)


def chip(png: bytes, grid: Mapping[str, Any], geometry_wgs84: BaseGeometry,
         window: tuple[float, float, float, float] | None = None,
         size: tuple[int, int] | None = None) -> bytes:
    """The quicklook cropped to ``window`` (grid CRS; default around the detection), outlined.

    ``size`` forces the output size so that chips of two scenes line up pixel for pixel.
    """
    layer = _Layer(png, grid)
    window = window or ground_window(geometry_wgs84, grid)
    left, top, right, bottom = layer.window_px(window)
    w, h = max(1, right - left), max(1, bottom - top)
    crop = Image.new("RGB", (w, h), (96, 96, 96))  # ground outside the quicklook shows grey
    crop.paste(layer.image.crop((max(left, 0), max(top, 0), min(right, layer.image.width),
                                 min(bottom, layer.image.height))), (max(0, -left), max(0, -top)))
    ow, oh = size or _out_size(w, h)
    img = crop.resize((ow, oh), Image.NEAREST if ow >= w else Image.LANCZOS)
    fx, fy = ow / w, oh / h

    def to_px(x: float, y: float) -> tuple[float, float]:
        px, py = layer.to_px(x, y)
        return (px - left) * fx, (py - top) * fy

    width = max(2, round(min(ow, oh) / 160))
    _draw(img, _rings(_halo(geometry_wgs84, layer.grid.crs, (width + 1) * (window[2] - window[0]) / ow)),
          OUTLINE, to_px, width)
    return _png(img)


def context_chip(png: bytes, grid: Mapping[str, Any], geometry_wgs84: BaseGeometry,
                 site_wgs84: BaseGeometry | None = None) -> bytes:
    """The whole site quicklook with the site outline and a box around the detection."""
    layer = _Layer(png, grid)
    ow, oh = _out_size(layer.image.width, layer.image.height)
    img = layer.image.resize((ow, oh), Image.NEAREST if ow >= layer.image.width else Image.LANCZOS)
    f = ow / layer.image.width

    def to_px(x: float, y: float) -> tuple[float, float]:
        px, py = layer.to_px(x, y)
        return px * f, py * f

    width = max(2, round(min(ow, oh) / 200))
    if site_wgs84 is not None:
        _draw(img, _rings(to_crs(site_wgs84, "EPSG:4326", layer.grid.crs)), SITE_OUTLINE, to_px, width)
    _draw(img, _rings(_halo(geometry_wgs84, layer.grid.crs, (width + 1) * layer.grid.res / f / layer.sx)),
          OUTLINE, to_px, width)
    x0, y0, x1, y1 = ground_window(geometry_wgs84, grid)
    (a, b), (c, d) = to_px(x0, y1), to_px(x1, y0)
    ImageDraw.Draw(img).rectangle((min(a, c), min(b, d), max(a, c), max(b, d)), outline=OUTLINE, width=width)
    return _png(img)


def detection_chips(store: Any, detection_id: str) -> Chips:
    """Before, after and context chips of a stored detection, from its scenes' quicklooks."""
    det = store.detection(detection_id)
    return scene_pair_chips(store, det, det.before_scene_id, det.after_scene_id)


def scene_pair_chips(store: Any, det: Any, before_scene_id: str | None, after_scene_id: str | None) -> Chips:
    """Chips of a detection's ground from two chosen scenes of its site (None: no chip).

    A publication may picture a detection on other scenes than the ones that dated it,
    when those were not clear over its outline.
    """
    before = store.quicklook(det.site_id, before_scene_id) if before_scene_id else None
    after = store.quicklook(det.site_id, after_scene_id) if after_scene_id else None
    ref = after or before
    if ref is None:
        return Chips(None, None, None)
    window = ground_window(det.geometry, ref[1])
    sizes = []
    for ql in (before, after):
        if ql is not None:
            layer = _Layer(ql[0], ql[1])
            l, t, r, b = layer.window_px(window)
            sizes.append(_out_size(max(1, r - l), max(1, b - t)))
    size = max(sizes)  # the finer scene sets the size; the coarser one is enlarged to match
    try:
        site = store.site(det.site_id).geometry
    except Exception:  # a detection whose site row is gone still gets its chips
        site = None
    return Chips(
        before=chip(before[0], before[1], det.geometry, window, size) if before else None,
        after=chip(after[0], after[1], det.geometry, window, size) if after else None,
        context=context_chip(ref[0], ref[1], det.geometry, site))
