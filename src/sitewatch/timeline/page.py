"""The timeline page: one self-contained HTML file, every value from the database escaped.

Images are embedded as ``data:`` URIs, there is no script and no external CSS, font or image,
and a Content-Security-Policy forbids loading anything, so opening it makes no network request
and nothing from the database can run in a reader's browser. A change is pictured only on
scenes clear over its outline (:class:`ClearOver`).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..chips import scene_pair_chips
from ..grid import Grid, to_crs
from ..records import DetectionRecord, SceneRecord
from ..security import RULE, DatedLevel
from ..store import Store
from .data import FULL_VIEW, Finding, SiteTimeline, is_partial
from .tables import PROVENANCE_FIELDS, citation, provenance_rows

#: Longest side of scene chips on the page, pixels (time-lapse frames: ``images.FRAME_SIDE``).
CHIP_SIDE = 260
#: A scene pictures a change only if at least this fraction of the change's outline was clear in it.
CLEAR_OVER_OUTLINE = 0.99

KIND_WORDS = {
    "building_new": "New building", "building_removed": "Building removed",
    "wall_new": "New wall", "wall_removed": "Wall removed",
    "fence_new": "New fence", "fence_removed": "Fence removed",
    "tower_new": "New watchtower", "tower_removed": "Watchtower removed",
}
LEVEL_WORDS = {None: "n/a (imagery too coarse)", 0: "0 no perimeter", 1: "1 perimeter", 2: "2", 3: "3", 4: "4"}

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


def _e(v: Any) -> str:
    """HTML-escaped text of anything from the database (None shows as a dash)."""
    return "–" if v is None or v == "" else html.escape(str(v), quote=True)


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


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
            from ..structures import StructureMaps

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
            f'scenes. {_e(_measure(d))} {_score_words(d)}.<br>{who}{note}<br>'
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


def _score_words(d: DetectionRecord) -> str:
    """A score fitted on real labelled detections is a share right; any other only ranks (README, the score)."""
    if d.evidence.get("score_model") == "real":
        return f"Score {d.score:.2f} (share right of such detections on real labelled pairs)"
    return f"Uncalibrated ranking score {d.score:.2f}"
