"""Writing timelines: a site's folder (page, chart, time-lapse, data files) and the index page."""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from pathlib import Path

from .. import __version__
from ..store import Store
from .data import collect
from .images import metrics_chart, timelapse
from .page import _CSP, _STYLE, _e, _level, _table, render_page
from .tables import FINDING_FIELDS, PROVENANCE_FIELDS, _write_csv, findings_geojson, provenance_rows


def _site_dir(site_id: str) -> str:
    """A folder name for a site id; ids made only of dots ('.', '..') would leave the output folder."""
    return site_id if set(site_id) - {"."} else "_" * len(site_id)


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
