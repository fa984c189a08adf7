"""A site's timeline for publication: what was built or removed, when, on which imagery.

Everything comes from the findings GeoPackage (stored quicklooks, metrics, maps, reviews),
so a timeline can be rebuilt when the original imagery is gone. Only reviewed findings are
shown as findings: confirmed changes always, pending ones only when asked and then marked
unverified, rejected ones never. The page is one self-contained HTML file: images are
embedded as ``data:`` URIs, there is no script and no external CSS, font or image, and a
Content-Security-Policy forbids loading anything, so opening it makes no network request
and nothing from the database can run in a reader's browser.

Files under ``OUT/SITE_ID/``: ``index.html``, ``metrics.png``, ``timelapse.gif``,
``findings.csv``, ``findings.geojson`` and ``provenance.csv``; ``OUT/index.html`` links them.

What a page must not claim: local paths are printed relative to the imagery source (a
user's home folder is nobody's business); a scene that saw only part of the site is a
partial view, marked, and never plotted or compared as a measurement of the whole site;
a change is pictured only on scenes clear over its outline; on the confirmed-only page an
estimated fall in security level shows only where a confirmed removal backs it.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from PIL import Image, ImageDraw, ImageFont
from shapely.geometry import mapping
from shapely.geometry.polygon import orient

from . import __version__
from .catalog import is_url
from .chips import scene_pair_chips
from .grid import Grid, to_crs
from .reviews import Review
from .security import RULE, DatedLevel, Desecuritisation, desecuritisation, site_levels
from .store import DetectionRecord, MetricsRecord, RunRecord, SceneRecord, Store

#: Columns of findings.csv (and properties of findings.geojson), in order.
FINDING_FIELDS = ("detection_id", "kind", "before_date", "after_date", "before_scene_id", "after_scene_id",
                  "area_m2", "length_m", "score", "status", "reviewer", "reviewed_at")
#: Columns of provenance.csv.
PROVENANCE_FIELDS = ("scene_id", "source", "collection", "acquired", "gsd_m", "cloud_fraction", "valid_fraction",
                     "sha256", "href")
#: Longest side of scene chips on the page and of time-lapse frames, pixels.
CHIP_SIDE = 260
FRAME_SIDE = 512
#: Outline colours in the time-lapse: new structures, removed structures.
NEW_RGB, REMOVED_RGB = (255, 40, 40), (255, 210, 0)
#: A scene that saw less than this fraction of the site as clear ground is a partial view:
#: shown and marked, never plotted as a measurement of the whole site nor used for level falls.
FULL_VIEW = 0.95
#: A scene pictures a change only if at least this fraction of the change's outline was clear in it.
CLEAR_OVER_OUTLINE = 0.99
#: Most scenes shown as chips on a page and as frames of the time-lapse; beyond it scenes are
#: sampled evenly in time (every shown change's scenes kept) and the page says so.
MAX_SCENES_SHOWN = 60
#: Kinds whose removal can back a fall in the estimated security level.
SECURITY_REMOVALS = ("wall_removed", "fence_removed", "tower_removed")

KIND_WORDS = {
    "building_new": "New building", "building_removed": "Building removed",
    "wall_new": "New wall", "wall_removed": "Wall removed",
    "fence_new": "New fence", "fence_removed": "Fence removed",
    "tower_new": "New watchtower", "tower_removed": "Watchtower removed",
}
LEVEL_WORDS = {None: "n/a (imagery too coarse)", 0: "0 no perimeter", 1: "1 perimeter", 2: "2", 3: "3", 4: "4"}

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


@dataclass(frozen=True)
class Finding:
    """A detection shown on the timeline, with the review that made it a finding (if any)."""

    detection: DetectionRecord
    review: Review | None

    @property
    def unverified(self) -> bool:
        return self.detection.status != "confirmed"

    def row(self) -> dict[str, Any]:
        d = self.detection
        return {"detection_id": d.detection_id, "kind": d.kind, "before_date": d.before_date.isoformat(),
                "after_date": d.after_date.isoformat(), "before_scene_id": d.before_scene_id,
                "after_scene_id": d.after_scene_id, "area_m2": d.area_m2, "length_m": d.length_m,
                "score": d.score, "status": d.status, "reviewer": self.review.reviewer if self.review else None,
                "reviewed_at": self.review.at if self.review else None}


@dataclass(frozen=True)
class SiteTimeline:
    """Everything a site's timeline shows, read once from the GeoPackage."""

    site_id: str
    name: str | None
    notes: str | None
    clear: list[SceneRecord]
    skipped: list[SceneRecord]
    findings: list[Finding]
    metrics: list[MetricsRecord]
    levels: list[DatedLevel]
    falls: list[Desecuritisation]
    runs: list[RunRecord]
    include_pending: bool = False
    #: level falls left off the confirmed-only page: no confirmed removal backs them
    unbacked_falls: int = 0
    shown: list[SceneRecord] = field(default_factory=list)

    @property
    def used(self) -> list[SceneRecord]:
        return self.clear

    @property
    def sampled(self) -> bool:
        return len(self.shown) < len(self.clear)


def is_partial(s: SceneRecord) -> bool:
    """The scene saw too little of the site as clear ground to stand for all of it."""
    return s.valid_fraction is not None and s.valid_fraction < FULL_VIEW


def _local(path: str) -> str:
    """A local path with forward slashes (a file may have been made on Windows)."""
    return path.replace("\\", "/")


def _is_absolute(path: str) -> bool:
    return path.startswith("/") or bool(re.match(r"^[A-Za-z]:/", path))


def public_source(source: str | None) -> str | None:
    """A scene's source as a page may print it: URLs as they are, local paths by their last name only."""
    if not source or is_url(source):
        return source
    return f"{PurePosixPath(_local(source)).name} (local)"


def public_href(source: str | None, href: str | None) -> str | None:
    """A scene's href as a page may print it: URLs as they are, local paths relative to the source."""
    if not href or is_url(href):
        return href
    h = _local(href)
    if not _is_absolute(h):
        return h
    if source and not is_url(source):
        root = _local(source).rstrip("/")
        if root.lower().endswith(".json"):  # a static catalog or collection file: its folder
            root = root.rsplit("/", 1)[0]
        if h.startswith(root + "/"):
            return h[len(root) + 1:]
    return PurePosixPath(h).name  # outside the source: the file's name alone, never the folders above it


def _sample(scenes: list[SceneRecord], keep: set[str], cap: int) -> list[SceneRecord]:
    """At most ``cap`` scenes, date order: those in ``keep`` first, the rest evenly spaced in time."""
    if len(scenes) <= cap:
        return list(scenes)
    must = [i for i, s in enumerate(scenes) if s.scene_id in keep or i in (0, len(scenes) - 1)]
    if len(must) >= cap:
        pick = {must[int(j)] for j in np.linspace(0, len(must) - 1, cap).round()}
    else:
        rest = [i for i in range(len(scenes)) if i not in set(must)]
        extra = cap - len(must)
        pick = set(must) | {rest[int(j)] for j in np.linspace(0, len(rest) - 1, extra).round()}
    return [scenes[i] for i in sorted(pick)]


def _backed(fall: Desecuritisation, findings: Sequence[Finding]) -> bool:
    """A confirmed removal of a wall, fence or tower dated within the fall backs it."""
    return any(not f.unverified and f.detection.kind in SECURITY_REMOVALS
               and f.detection.after_date > fall.date_from and f.detection.before_date < fall.date_to
               for f in findings)


def _e(v: Any) -> str:
    """HTML-escaped text of anything from the database (None shows as a dash)."""
    return "–" if v is None or v == "" else html.escape(str(v), quote=True)


def _site_dir(site_id: str) -> str:
    """A folder name for a site id; ids made only of dots ('.', '..') would leave the output folder."""
    return site_id if set(site_id) - {"."} else "_" * len(site_id)


def _latest_confirming(reviews: Sequence[Review]) -> Review | None:
    return next((r for r in reversed(reviews) if r.decision == "confirmed"), None)


def collect(store: Store, site_id: str, include_pending: bool = False) -> SiteTimeline:
    """Read what a site's timeline shows (NotFoundError for an unknown site)."""
    site = store.site(site_id)
    scenes = store.scenes(site_id)
    clear = [s for s in scenes if s.status == "observed"]
    wanted = ("confirmed", "pending") if include_pending else ("confirmed",)
    by_det: dict[str, list[Review]] = {}
    for r in store.reviews():
        by_det.setdefault(r.detection_id, []).append(r)
    findings = [Finding(d, _latest_confirming(by_det.get(d.detection_id, [])) if d.status == "confirmed" else None)
                for d in store.detections(site_id=site_id) if d.status in wanted]
    findings.sort(key=lambda f: (f.detection.after_date, f.detection.before_date, f.detection.kind,
                                 f.detection.detection_id))
    clear_ids = {s.scene_id for s in clear}
    full_ids = {s.scene_id for s in clear if not is_partial(s)}
    metrics = [m for m in store.metrics(site_id) if m.scene_id in clear_ids]
    levels = [x for x in site_levels(store, site_id) if x.scene_id in clear_ids]
    # a partial view's lower level is what it could not see, not a fall
    falls = desecuritisation([x for x in levels if x.scene_id in full_ids])
    unbacked = 0
    if not include_pending:  # levels are unreviewed estimates: only a confirmed removal lets one print
        backed = [f for f in falls if _backed(f, findings)]
        unbacked, falls = len(falls) - len(backed), backed
    used_runs = {s.run_id for s in clear} | {f.detection.run_id for f in findings}
    runs = [r for r in store.runs() if r.run_id in used_runs]
    keep = {f.detection.before_scene_id for f in findings} | {f.detection.after_scene_id for f in findings}
    return SiteTimeline(site_id, site.name, site.notes, clear, [s for s in scenes if s.status != "observed"],
                        findings, metrics, levels, falls, runs, include_pending, unbacked,
                        _sample(clear, keep, MAX_SCENES_SHOWN))


# --- images ----------------------------------------------------------------------------------


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


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
        ("Built area (m²)", [("built", [m.built_area_m2 for m in ms], "o", "-")]),
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


# --- tables ----------------------------------------------------------------------------------


def _write_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r.get(k) is None else r[k] for k in fields})


def provenance_rows(tl: SiteTimeline) -> list[dict[str, Any]]:
    return [{"scene_id": s.scene_id, "source": public_source(s.source), "collection": s.collection,
             "acquired": s.acquired.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "gsd_m": s.gsd_m,
             "cloud_fraction": s.cloud_fraction, "valid_fraction": s.valid_fraction, "sha256": s.sha256,
             "href": public_href(s.source, s.href)} for s in tl.used]


def findings_geojson(tl: SiteTimeline) -> dict[str, Any]:
    """RFC 7946 FeatureCollection (lon/lat, counter-clockwise outer rings, no ``crs`` member)."""
    feats = []
    for f in tl.findings:
        g = f.detection.geometry
        g = type(g)([orient(p, 1.0) for p in g.geoms]) if hasattr(g, "geoms") else orient(g, 1.0)
        feats.append({"type": "Feature", "id": f.detection.detection_id, "geometry": mapping(g),
                      "properties": {"site_id": tl.site_id, **f.row()}})
    return {"type": "FeatureCollection", "features": feats}


def citation(tl: SiteTimeline, accessed: dt.date) -> str:
    """One line to cite: confirmed changes counted apart from unverified detections, never as changes."""
    sources = sorted({f"{s.collection} ({public_source(s.source)})" if s.collection else str(public_source(s.source))
                      for s in tl.used})
    versions = sorted({r.version for r in tl.runs if r.version}) or [__version__]
    runs = ", ".join(r.run_id for r in tl.runs) or "none"
    name = f"{tl.name} ({tl.site_id})" if tl.name else tl.site_id
    confirmed = sum(1 for f in tl.findings if not f.unverified)
    pending = len(tl.findings) - confirmed
    partial = sum(1 for s in tl.used if is_partial(s))
    what = (f"{len(tl.used)} scenes" + (f" ({partial} partial view{'s' if partial != 1 else ''})" if partial else "")
            + f", {confirmed} confirmed change{'s' if confirmed != 1 else ''}"
            + (f" and {pending} unverified machine detection{'s' if pending != 1 else ''} (pending review)"
               if pending else ""))
    return (f"{name}: timeline of {what}. sitewatch "
            f"{', '.join(versions)} (timeline built with {__version__}); monitoring runs {runs}. "
            f"Imagery: {'; '.join(sources) or 'none'}. Accessed {accessed.isoformat()}.")


# --- page ------------------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.45 Georgia,'Times New Roman',serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #999}
.muted{color:#555} .note{background:#f4f4f4;border-left:4px solid #555;padding:.6em 1em}
.strip{display:flex;flex-wrap:wrap;gap:10px} figure{margin:0}
.chip{border:1px solid #999;padding:4px;width:%dpx} .chip img{width:100%%;display:block}
.chip figcaption{font-size:.85em}
.pair{border:1px solid #999;padding:.6em;margin:1em 0} .pair .imgs{display:flex;gap:8px;flex-wrap:wrap}
.pair figure{width:calc(50%% - 4px);min-width:260px} .pair img{width:100%%;image-rendering:pixelated}
.unverified{border:2px dashed #000} .tag{font-weight:bold;border:1px solid #000;padding:0 .3em;font-size:.85em}
table{border-collapse:collapse;font-size:.85em;width:100%%} td,th{border:1px solid #bbb;padding:3px 5px;text-align:left;
vertical-align:top} td.hash{font-family:monospace;word-break:break-all}
tr.fall td{font-weight:bold} .cite{font-family:monospace;background:#f4f4f4;padding:.6em;white-space:pre-wrap}
""" % (CHIP_SIDE + 10)


def _level(v: int | None) -> str:
    return "n/a" if v is None else str(v)


def _scene_chip(s: SceneRecord, q: tuple[bytes, dict[str, Any]] | None, level: DatedLevel | None) -> str:
    if q is not None:
        img = Image.open(io.BytesIO(q[0])).convert("RGB")
        img.thumbnail((CHIP_SIDE, CHIP_SIDE))
        pic = f'<img alt="{_e(s.scene_id)}" src="{_data_uri(_png_bytes(img), "image/png")}">'
    else:
        pic = '<p class="muted">no quicklook stored</p>'
    lv = f"security level {_level(level.level)}" if level else "security level n/a"
    part = (f'<br><span class="tag">partial view</span> only {(s.valid_fraction or 0):.0%} of the site seen clear'
            if is_partial(s) else "")
    cls = "chip partial" if is_partial(s) else "chip"
    return (f'<figure class="{cls}" data-scene-id="{_e(s.scene_id)}" data-date="{s.date.isoformat()}">{pic}'
            f'<figcaption><b>{s.date.isoformat()}</b> · {lv}{part}<br><span class="muted">{_e(s.scene_id)} · '
            f'{_e(s.gsd_m)} m</span></figcaption></figure>')


class ClearOver:
    """Which scenes saw a detection's outline as clear ground (from the stored observed masks)."""

    def __init__(self, store: Store, tl: SiteTimeline):
        self.store, self.tl = store, tl
        self._observed: dict[str, tuple[np.ndarray, Grid] | None] = {}

    def _mask(self, scene_id: str) -> tuple[np.ndarray, Grid] | None:
        if scene_id not in self._observed:
            from .structures import StructureMaps

            with self.store.read() as con:
                r = con.execute("SELECT maps FROM sitewatch_scene_maps WHERE site_id=? AND scene_id=?",
                                (self.tl.site_id, scene_id)).fetchone()
            try:
                m = StructureMaps.from_bytes(bytes(r[0])) if r is not None and r[0] else None
            except Exception:  # unreadable or foreign maps: judged by the scene's clear share instead
                m = None
            self._observed[scene_id] = None if m is None else (np.asarray(m.observed, bool), m.grid)
        return self._observed[scene_id]

    def fraction(self, d: DetectionRecord, s: SceneRecord) -> float:
        """Share of the outline seen clear in ``s``; without stored maps, the scene's clear share."""
        if s.valid_fraction is not None and s.valid_fraction >= 0.9999:
            return 1.0
        got = self._mask(s.scene_id)
        if got is None:
            return 0.0 if s.valid_fraction is None else float(s.valid_fraction)
        observed, grid = got
        from rasterio.features import rasterize

        inside = rasterize([to_crs(d.geometry, "EPSG:4326", grid.crs)], out_shape=observed.shape,
                           transform=grid.transform, all_touched=True, dtype="uint8").astype(bool)
        return float(observed[inside].mean()) if inside.any() else 0.0

    def pick(self, d: DetectionRecord, own: str, before: bool) -> SceneRecord | None:
        """The detection's own scene if clear over it, else the nearest one on the same side that is."""
        by_id = {s.scene_id: s for s in self.tl.clear}
        own_scene = by_id.get(own)
        if own_scene is not None and self.fraction(d, own_scene) >= CLEAR_OVER_OUTLINE:
            return own_scene
        when = d.before_date if before else d.after_date
        side = [s for s in self.tl.clear if (s.date <= when if before else s.date >= when) and s.scene_id != own]
        side.sort(key=lambda s: abs((s.date - when).days))
        return next((s for s in side if self.fraction(d, s) >= CLEAR_OVER_OUTLINE), None)


def _measure(d: DetectionRecord) -> str:
    parts = []
    if d.length_m is not None:
        parts.append(f"length about {d.length_m:,.0f} m")
    if d.area_m2 is not None:
        parts.append(f"area about {d.area_m2:,.0f} m²")
    text = ", ".join(parts)
    return text[:1].upper() + text[1:] + "." if text else ""


def _pair(store: Store, f: Finding, clear: ClearOver) -> str:
    d = f.detection
    sb = clear.pick(d, d.before_scene_id, before=True)
    sa = clear.pick(d, d.after_scene_id, before=False)
    ch = scene_pair_chips(store, d, sb.scene_id if sb else None, sa.scene_id if sa else None)
    removed = d.kind.endswith("_removed")
    word_b, word_a = ("present", "gone") if removed else ("absent", "present")
    figs = []
    for label, png, date, own, shown in (("before", ch.before, d.before_date, d.before_scene_id, sb),
                                         ("after", ch.after, d.after_date, d.after_scene_id, sa)):
        if shown is None:
            pic = '<p class="muted">no stored scene was clear over this outline</p>'
        elif png:
            pic = f'<img alt="{label}: {_e(shown.scene_id)}" src="{_data_uri(png, "image/png")}">'
        else:
            pic = '<p class="muted">no quicklook stored</p>'
        other = ("" if shown is None or shown.scene_id == own else
                 f'<br><span class="tag">pictured on {shown.date.isoformat()}</span> scene '
                 f'{_e(shown.scene_id)}: the dating scene was not clear over the outline')
        figs.append(f'<figure class="{label}" data-scene-id="{_e(shown.scene_id if shown else "")}">{pic}'
                    f'<figcaption>{label.capitalize()}: {date.isoformat()} '
                    f'({word_b if label == "before" else word_a}) · <span class="muted">{_e(own)}</span>{other}'
                    f'</figcaption></figure>')
    if f.review is not None:
        who = (f'Confirmed by <span class="reviewer">{_e(f.review.reviewer)}</span> on '
               f'{_e(f.review.at[:10])} ({_e(f.review.at)})')
        note = f'<br>Reviewer note: <q class="review-note">{_e(f.review.note)}</q>' if f.review.note else ""
    else:
        who, note = '<span class="tag">unverified</span> machine detection, not yet reviewed', ""
    cls = "pair unverified" if f.unverified else "pair"
    tag = ' <span class="tag">unverified</span>' if f.unverified else ""
    return (f'<section class="{cls}" data-detection-id="{_e(d.detection_id)}" data-status="{_e(d.status)}">'
            f'<h3>{_e(KIND_WORDS.get(d.kind, d.kind))}{tag}</h3>'
            f'<p>{word_b.capitalize()} on {d.before_date.isoformat()}, {word_a} on '
            f'{d.after_date.isoformat()}: it {"was removed" if removed else "appeared"} between these two clear '
            f'scenes. {_e(_measure(d))} Uncalibrated ranking score {d.score:.2f}.<br>{who}{note}<br>'
            f'<span class="muted">detection {_e(d.detection_id)}</span></p>'
            f'<div class="imgs">{"".join(figs)}</div></section>')


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: Sequence[str] | None = None,
           hash_cols: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, r in enumerate(rows):
        c = f' class="{cls[i]}"' if cls and cls[i] else ""
        td = ['<td class="hash">' if j in hash_cols else "<td>" for j in range(len(r))]
        body.append(f"<tr{c}>" + "".join(f"{td[j]}{v}</td>" for j, v in enumerate(r)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_page(store: Store, tl: SiteTimeline, quicklooks: Mapping[str, tuple[bytes, dict[str, Any]]],
                chart: bytes, gif: bytes | None, accessed: dt.date) -> str:
    """The timeline page: every value from the database escaped, images inline, no script."""
    levels = {x.scene_id: x for x in tl.levels}
    fall_to = {f.scene_to: f for f in tl.falls}
    confirmed = sum(1 for f in tl.findings if not f.unverified)
    pending = len(tl.findings) - confirmed
    title = f"{tl.name} ({tl.site_id})" if tl.name else tl.site_id
    files = " · ".join(f'<a href="{n}">{n}</a>' for n in
                       ("findings.csv", "findings.geojson", "provenance.csv", "metrics.png")
                       + (("timelapse.gif",) if gif else ()))
    out = [f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
           f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
           f'<meta name="viewport" content="width=device-width, initial-scale=1">'
           f'<meta name="referrer" content="no-referrer">'
           f'<title>{_e(title)} · sitewatch timeline</title><style>{_STYLE}</style></head><body>',
           f'<nav><a id="to-index" href="../index.html">← all site timelines</a> · data: {files}</nav>',
           f'<h1>{_e(title)}</h1><p class="muted">Site <code>{_e(tl.site_id)}</code>'
           f'{" · " + _e(tl.notes) if tl.notes else ""}</p>',
           f'<p class="note">{len(tl.clear)} scenes, {confirmed} confirmed change'
           f'{"s" if confirmed != 1 else ""}'
           + (f' and {pending} <b>unverified</b> machine detection{"s" if pending != 1 else ""} (marked; not findings '
              f'until a reviewer confirms them)' if pending else '')
           + '. Changes are machine detections confirmed by a named reviewer; each is dated by the clear scenes '
             'that bracket it: the structure was absent on the first date and present on the second (mirrored '
             'for removals), so it appeared somewhere in between.</p>']
    if tl.falls:
        items = "".join(f"<li>level {f.level_from} on {f.date_from.isoformat()} → level {f.level_to} on "
                        f"{f.date_to.isoformat()}</li>" for f in tl.falls)
        backing = ("each backed by a confirmed removal of a wall, fence or tower" if not tl.include_pending else
                   "<b>unreviewed estimates</b>, not findings")
        out.append(f'<p class="note" id="desecuritisation"><b>Desecuritisation (estimated):</b> the estimated '
                   f'security level fell between scenes of the whole site ({backing}):</p><ul>{items}</ul>')
    if tl.unbacked_falls:
        out.append(f'<p class="muted" id="unbacked-falls">{tl.unbacked_falls} estimated fall'
                   f'{"s" if tl.unbacked_falls != 1 else ""} in security level rest only on unreviewed estimates '
                   'and are not reported here.</p>')
    partial = sum(1 for s in tl.clear if is_partial(s))
    sampled = (f' <b id="sampled">Showing {len(tl.shown)} of {len(tl.clear)} scenes</b> here and in the '
               'time-lapse, evenly spread in time and keeping every shown change\'s scenes; provenance lists all.'
               if tl.sampled else "")
    out.append('<h2 id="scenes">Scenes</h2><p class="muted">Scenes in which the site was seen, in date order, as '
               'stored with the findings (one fixed colour stretch for all dates)'
               + (f'; {partial} marked <span class="tag">partial view</span> saw less than {FULL_VIEW:.0%} of the '
                  'site as clear ground (cloud or no data) and are not whole-site measurements' if partial else "")
               + f'.{sampled}</p><div class="strip">'
               + "".join(_scene_chip(s, quicklooks.get(s.scene_id), levels.get(s.scene_id)) for s in tl.shown)
               + "</div>")
    out.append('<h2 id="changes">Changes</h2>')
    if tl.findings:
        clear = ClearOver(store, tl)
        out += [_pair(store, f, clear) for f in tl.findings]
    else:
        out.append('<p>No confirmed changes at this site yet.</p>')
    if gif:
        out.append(f'<h2 id="timelapse">Time-lapse</h2><p class="muted">One frame per scene shown above, date in '
                   f'the corner; red outlines new structures, yellow where removed ones stood.</p>'
                   f'<img alt="time-lapse of the clear scenes" src="{_data_uri(gif, "image/gif")}" '
                   f'style="max-width:100%">')
    out.append(f'<h2 id="metrics">Measurements over time</h2><img alt="metrics chart" style="max-width:100%" '
               f'src="{_data_uri(chart, "image/png")}">')
    rows, cls = [], []
    for s in tl.clear:
        x = levels.get(s.scene_id)
        fall = fall_to.get(s.scene_id)
        rows.append([s.date.isoformat(), _e(s.scene_id),
                     _level(x.level if x else None) + (" (partial view)" if is_partial(s) else ""),
                     ("<b>fell from %d</b>" % fall.level_from) if fall else "", _e("; ".join(x.reasons) if x else "")])
        cls.append("fall" if fall else "")
    out.append('<h2 id="security">Security level (estimate)</h2>'
               f'<p class="note">This is an <b>estimate from imagery</b>, not an official classification. {_e(RULE)}'
               '</p>' + _table(["date", "scene", "level", "change", "features seen"], rows, cls))
    prov = [[_e(r["scene_id"]), _e(r["source"]), _e(r["collection"]), _e(r["acquired"]), _e(r["gsd_m"]),
             _e(r["cloud_fraction"]), _e(r["valid_fraction"]), _e(r["sha256"]), _e(r["href"])]
            for r in provenance_rows(tl)]
    out.append('<h2 id="provenance">Provenance</h2><p class="muted">Every scene used: where it came from and the '
               'SHA-256 of the pixels read, so the analysis can be checked against the source.</p>'
               + _table(list(PROVENANCE_FIELDS), prov, hash_cols=(7, 8)))
    if tl.skipped:
        out.append('<p class="muted">Scenes read but not used (cloud, no data or unreadable):</p>'
                   + _table(["scene", "acquired", "status", "why"],
                            [[_e(s.scene_id), s.date.isoformat(), _e(s.status), _e(s.error)] for s in tl.skipped]))
    runs = [[_e(r.run_id), _e(r.flow), _e(r.started_at), _e(r.finished_at), _e(r.status), _e(r.version)]
            for r in tl.runs]
    out.append('<h3>Runs</h3>' + _table(["run", "flow", "started", "finished", "status", "version"], runs))
    out.append(f'<h2 id="cite">Suggested citation</h2><p class="cite">{_e(citation(tl, accessed))}</p>')
    out.append(f'<p class="muted">Files beside this page: {files} (GeoJSON in EPSG:4326). '
               '<a href="../index.html">All site timelines</a>.</p></body></html>')
    return "\n".join(out)


# --- entry points ----------------------------------------------------------------------------


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_site(db: str | os.PathLike[str] | Store, site_id: str, out_dir: str | os.PathLike[str],
               include_pending: bool = False, *, accessed: dt.date | None = None, index: bool = True) -> Path:
    """Write a site's timeline under ``out_dir/SITE_ID/`` (and refresh ``out_dir/index.html``
    unless ``index`` is False); returns the page's path."""
    store = db if isinstance(db, Store) else Store(db, create=False)
    tl = collect(store, site_id, include_pending)
    folder = Path(out_dir) / _site_dir(site_id)
    folder.mkdir(parents=True, exist_ok=True)
    quicklooks = {s.scene_id: q for s in tl.clear if (q := store.quicklook(site_id, s.scene_id)) is not None}
    chart = metrics_chart(tl)
    gif = timelapse(tl, quicklooks)
    _write_bytes(folder / "metrics.png", chart)
    if gif is not None:
        _write_bytes(folder / "timelapse.gif", gif)
    else:  # no clear scene with a quicklook: a GIF from an earlier build would mislead
        (folder / "timelapse.gif").unlink(missing_ok=True)
    _write_csv(folder / "findings.csv", FINDING_FIELDS, [f.row() for f in tl.findings])
    _write_bytes(folder / "findings.geojson", json.dumps(findings_geojson(tl), indent=1).encode())
    _write_csv(folder / "provenance.csv", PROVENANCE_FIELDS, provenance_rows(tl))
    accessed = accessed or dt.datetime.now(dt.timezone.utc).date()
    page = render_page(store, tl, quicklooks, chart, gif, accessed)
    _write_bytes(folder / "index.html", page.encode("utf-8"))
    if index:  # the page links back to it
        write_index(store, out_dir, include_pending)
    return folder / "index.html"


def write_all(db: str | os.PathLike[str] | Store, out_dir: str | os.PathLike[str],
              include_pending: bool = False) -> Path:
    """Every site's timeline and an index page linking them; returns the index page's path."""
    store = db if isinstance(db, Store) else Store(db, create=False)
    for site in store.sites():
        write_site(store, site.site_id, out_dir, include_pending, index=False)
    return write_index(store, out_dir, include_pending)


def write_index(db: str | os.PathLike[str] | Store, out_dir: str | os.PathLike[str],
                include_pending: bool = False) -> Path:
    """The index page linking every site's timeline (written before, e.g. one task per site)."""
    store = db if isinstance(db, Store) else Store(db, create=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for site in store.sites():
        page = out / _site_dir(site.site_id) / "index.html"
        if not page.exists():  # a single site was built: the index lists what is there
            continue
        tl = collect(store, site.site_id, include_pending)
        last = next((x.level for x in reversed(tl.levels) if x.level is not None), None)
        href = html.escape(f"{_site_dir(site.site_id)}/index.html", quote=True)
        rows.append([f'<a href="{href}">{_e(site.site_id)}</a>', _e(site.name), str(len(tl.clear)),
                     str(sum(1 for f in tl.findings if not f.unverified)),
                     str(sum(1 for f in tl.findings if f.unverified)), _level(last),
                     "yes" if tl.falls else ""])
    head = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}"><title>sitewatch timelines</title>'
            f'<style>{_STYLE}</style></head><body><h1>Site timelines</h1>'
            f'<p class="muted">Built by sitewatch {__version__} from {_e(Path(store.path).name)}.'
            f'{" Unverified detections are shown, marked." if include_pending else ""}</p>')
    table = _table(["site", "name", "clear scenes", "confirmed changes", "unverified", "latest level (estimate)",
                    "desecuritisation"], rows)
    index = out / "index.html"
    _write_bytes(index, (head + table + "</body></html>").encode("utf-8"))
    return index


__all__ = ["write_site", "write_all", "write_index", "collect", "timelapse", "metrics_chart", "findings_geojson",
           "provenance_rows", "citation", "public_href", "public_source", "is_partial", "FINDING_FIELDS",
           "PROVENANCE_FIELDS"]
