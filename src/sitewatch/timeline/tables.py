"""The timeline's data files (findings.csv, findings.geojson, provenance.csv) and its citation line."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shapely.geometry import mapping
from shapely.geometry.polygon import orient

from .. import __version__
from .data import SiteTimeline, is_partial, public_href, public_source

#: Columns of findings.csv (and properties of findings.geojson), in order.
FINDING_FIELDS = ("detection_id", "kind", "before_date", "after_date", "before_scene_id", "after_scene_id",
                  "area_m2", "length_m", "score", "status", "reviewer", "reviewed_at")
#: Columns of provenance.csv.
PROVENANCE_FIELDS = ("scene_id", "source", "collection", "acquired", "gsd_m", "cloud_fraction", "valid_fraction",
                     "sha256", "href")


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
