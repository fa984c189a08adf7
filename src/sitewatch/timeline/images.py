"""The timeline's pictures: the time-lapse GIF over stored quicklooks and the metrics chart."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..grid import Grid, to_crs
from .data import SiteTimeline, is_partial

#: Longest side of time-lapse frames, pixels (scene chips on the page: ``page.CHIP_SIDE``).
FRAME_SIDE = 512
#: Outline colours in the time-lapse: new structures, removed structures.
NEW_RGB, REMOVED_RGB = (255, 40, 40), (255, 210, 0)


def _view(png: bytes, grid: Mapping[str, Any], window: tuple[float, float, float, float],
          size: tuple[int, int]) -> Image.Image:
    """A stored quicklook resampled onto a ground window (grid CRS) at ``size``; outside is grey.

    Quicklooks may be downscaled against their grid, and scenes of other resolutions have
    other grids: mapping through each one's own grid puts every frame on the same ground.
    """
    img = Image.open(io.BytesIO(png)).convert("RGB")
    g = Grid.from_dict(dict(grid))
    sx, sy = img.width / g.width, img.height / g.height
    inv = ~g.transform
    c0, r0 = inv @ (window[0], window[3])
    c1, r1 = inv @ (window[2], window[1])
    box_px = (c0 * sx, r0 * sy, c1 * sx, r1 * sy)
    canvas = Image.new("RGB", (img.width + 2, img.height + 2), (96, 96, 96))
    canvas.paste(img, (1, 1))
    box_px = tuple(v + 1 for v in box_px)
    return canvas.transform(size, Image.EXTENT, box_px, Image.BILINEAR, fillcolor=(96, 96, 96))


def _fit(w: float, h: float, side: int) -> tuple[int, int]:
    f = side / max(w, h)
    return max(1, round(w * f)), max(1, round(h * f))


def _frame_grid(tl: SiteTimeline, quicklooks: Mapping[str, tuple[bytes, dict[str, Any]]]) -> Grid | None:
    """The grid the time-lapse is drawn on: the one most clear scenes share (the finer on ties)."""
    count: dict[str, int] = {}
    for q in quicklooks.values():
        key = json.dumps(q[1], sort_keys=True)
        count[key] = count.get(key, 0) + 1
    if not count:
        return None
    best = max(count, key=lambda k: (count[k], -float(json.loads(k)["transform"][0])))
    return Grid.from_dict(json.loads(best))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap default has one size
        return ImageFont.load_default()


def _outline(draw: ImageDraw.ImageDraw, geom_wgs84: Any, grid: Grid, window: tuple[float, float, float, float],
             size: tuple[int, int], colour: tuple[int, int, int], width: int) -> None:
    g = to_crs(geom_wgs84, "EPSG:4326", grid.crs)
    fx, fy = size[0] / (window[2] - window[0]), size[1] / (window[3] - window[1])
    for poly in getattr(g, "geoms", [g]):
        if poly.is_empty:
            continue
        pts = [((x - window[0]) * fx, (window[3] - y) * fy) for x, y in poly.exterior.coords]
        draw.line(pts, fill=colour, width=width)


def timelapse(tl: SiteTimeline, quicklooks: Mapping[str, tuple[bytes, dict[str, Any]]]) -> bytes | None:
    """Animated GIF: one frame per clear scene, date order, date burned in, changes outlined.

    Each frame outlines the shown changes dated by then: new structures in red, removed
    ones (where they stood) in yellow, dashed-free so it reads on any viewer.
    """
    grid = _frame_grid(tl, quicklooks)
    if grid is None:
        return None
    window = grid.bounds
    size = _fit(window[2] - window[0], window[3] - window[1], FRAME_SIDE)
    font = _font(max(14, size[1] // 22))
    width = max(2, size[0] // 240)
    frames = []
    for s in tl.shown:
        q = quicklooks.get(s.scene_id)
        img = _view(q[0], q[1], window, size) if q else Image.new("RGB", size, (96, 96, 96))
        draw = ImageDraw.Draw(img)
        for f in tl.findings:
            if f.detection.after_date <= s.date:
                colour = REMOVED_RGB if f.detection.kind.endswith("_removed") else NEW_RGB
                _outline(draw, f.detection.geometry, grid, window, size, colour, width)
        label = s.date.isoformat() + ("" if q else "  (no quicklook stored)") + (
            f"  partial view ({(s.valid_fraction or 0):.0%} clear)" if is_partial(s) else "")
        x0, y0, x1, y1 = draw.textbbox((8, 8), label, font=font)
        draw.rectangle((x0 - 5, y0 - 5, x1 + 5, y1 + 5), fill=(0, 0, 0))
        draw.text((8, 8), label, fill=(255, 255, 255), font=font)
        frames.append(img.convert("P", palette=Image.ADAPTIVE, colors=255))
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=1200, loop=0,
                   disposal=1, optimize=False)
    return buf.getvalue()


def metrics_chart(tl: SiteTimeline) -> bytes:
    """Small multiples of the site's metrics and security level over time, changes as vertical lines.

    Black and grey only, with a marker and line style per series, so it prints in black and white.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    partial = {s.scene_id for s in tl.clear if is_partial(s)}
    every = sorted(tl.metrics, key=lambda m: m.acquired)
    ms = [m for m in every if m.scene_id not in partial]  # whole-site measurements only
    part = [m for m in every if m.scene_id in partial]
    dates = [m.acquired.astimezone(dt.timezone.utc).date() for m in ms]
    lv = {x.scene_id: x.level for x in tl.levels}
    panels = [
        # (measured on real labelled tiles, the maps cover 2-28 % of the roofs: README, "The default detector")
        ("Built area mapped (m²; undercounts real roofs: read its changes, not its level)",
         [("built", [m.built_area_m2 for m in ms], "o", "-")]),
        ("Wall and fence length (m)", [("walls", [m.wall_length_m for m in ms], "s", "-"),
                                       ("fences", [m.fence_length_m for m in ms], "^", "--")]),
        ("Watchtowers", [("towers", [m.tower_count for m in ms], "D", "-")]),
        ("Enclosed area (m²)", [("enclosed", [m.enclosed_area_m2 for m in ms], "v", "-")]),
        ("Security level (estimate)", [("level", [lv.get(m.scene_id) for m in ms], "o", "-")]),
    ]
    fig = Figure(figsize=(7.5, 10.5), dpi=100)
    axes = fig.subplots(len(panels), 1, sharex=True)
    changes = sorted({f.detection.after_date for f in tl.findings})
    for ax, (title, series) in zip(axes, panels):
        for label, ys, marker, ls in series:
            pts = [(d, y) for d, y in zip(dates, ys) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, linestyle=ls, color="black",
                        markerfacecolor="white" if ls == "--" else "black", label=label)
        for label, ys, marker, ls in series:  # partial views: hollow grey, unjoined, never a drop
            key = {"built": "built_area_m2", "walls": "wall_length_m", "fences": "fence_length_m",
                   "towers": "tower_count", "enclosed": "enclosed_area_m2"}.get(label)
            pts = [(m.acquired.astimezone(dt.timezone.utc).date(), getattr(m, key)) for m in part
                   if key and getattr(m, key) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="x", linestyle="none", color="0.55",
                        label="partial view" if label in ("built", "walls") else None)
        for d in changes:
            ax.axvline(d, color="0.45", linestyle=":", linewidth=1.2)
        ax.set_title(title, fontsize=9, loc="left")
        ax.grid(True, color="0.88", linewidth=0.6)
        ax.tick_params(labelsize=8)
        if (len(series) > 1 or part) and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left", frameon=False)
    axes[-1].set_ylim(-0.3, 4.3)
    axes[-1].set_yticks(range(5))
    for f in tl.falls:
        axes[-1].axvspan(f.date_from, f.date_to, facecolor="none", edgecolor="0.7", hatch="//", linewidth=0)
    if not dates:
        axes[0].text(0.5, 0.5, "no clear scenes with metrics", transform=axes[0].transAxes, ha="center")
    axes[-1].set_xlabel("scene date (dotted lines: changes shown on this timeline; hatched: level fell; "
                        "x: partial view, not a whole-site measurement)", fontsize=8)
    fig.suptitle(f"{tl.site_id}: measurements per scene", fontsize=10)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
