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

Layout: :mod:`.data` (what a timeline shows: :func:`collect`), :mod:`.images` (time-lapse and
metrics chart), :mod:`.tables` (CSV, GeoJSON, citation), :mod:`.page` (the HTML page) and
:mod:`.publish` (:func:`write_site`, :func:`write_all`, :func:`write_index`).
"""

from __future__ import annotations

from .data import collect, is_partial, public_href, public_source
from .data import FULL_VIEW, MAX_SCENES_SHOWN, SECURITY_REMOVALS, Finding, SiteTimeline  # noqa: F401
from .images import metrics_chart, timelapse
from .images import FRAME_SIDE, NEW_RGB, REMOVED_RGB  # noqa: F401
from .page import CHIP_SIDE, CLEAR_OVER_OUTLINE, KIND_WORDS, LEVEL_WORDS, ClearOver, render_page  # noqa: F401
from .publish import write_all, write_index, write_site
from .tables import FINDING_FIELDS, PROVENANCE_FIELDS, citation, findings_geojson, provenance_rows

__all__ = ["write_site", "write_all", "write_index", "collect", "timelapse", "metrics_chart", "findings_geojson",
           "provenance_rows", "citation", "public_href", "public_source", "is_partial", "FINDING_FIELDS",
           "PROVENANCE_FIELDS"]
