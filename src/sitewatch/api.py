"""The Python API behind ``import sitewatch``: GeoDataFrames in, GeoDataFrames out.

Researchers work in notebooks with geopandas; this module lets them hand a GeoDataFrame of
sites to a monitoring run and read the findings GeoPackage back as (Geo)DataFrames, with
the same checks the command line makes (a bad record is one :class:`~sitewatch.errors.SitesError`
naming the row). geopandas and pandas are imported on first use, so ``import sitewatch``
stays cheap.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, SitesError

if TYPE_CHECKING:
    import geopandas
    import pandas
    from shapely.geometry.base import BaseGeometry

    from .cost import SiteCost
    from .monitor import RunSummary
    from .scan import ScanSummary
    from .sites import Site
    from .store import Store
    from .structures import Detector

PathLike = str | os.PathLike[str]

#: Columns of :meth:`Findings.detections`, in the GeoPackage's order.
DETECTION_COLUMNS = ("detection_id", "site_id", "kind", "before_date", "after_date", "before_scene_id",
                     "after_scene_id", "area_m2", "length_m", "score", "status", "run_id", "created_at")
SCENE_COLUMNS = ("scene_id", "site_id", "source", "collection", "acquired", "gsd_m", "grid_res_m",
                 "cloud_fraction", "valid_fraction", "sha256", "status", "error", "href", "run_id")
METRIC_COLUMNS = ("site_id", "scene_id", "acquired", "built_area_m2", "wall_length_m", "fence_length_m",
                  "tower_count", "enclosed_area_m2", "security_level", "security_reasons", "grid_res_m", "run_id")
REVIEW_COLUMNS = ("review_id", "detection_id", "reviewer", "decision", "note", "at", "prev_hash", "hash")


# --- sites ---------------------------------------------------------------------------------


def sites_frame(sites: Sequence[Site]) -> geopandas.GeoDataFrame:
    """Sites as a GeoDataFrame (EPSG:4326): ``site_id``, ``name``, ``notes``, then the records' other fields."""
    import geopandas as gpd

    extra: list[str] = []
    for s in sites:
        extra += [k for k in s.properties if k not in extra and k not in ("site_id", "name", "notes", "geometry")]
    rows = [{"site_id": s.site_id, "name": s.name, "notes": s.notes, **{k: s.properties.get(k) for k in extra}}
            for s in sites]
    return gpd.GeoDataFrame(rows, columns=["site_id", "name", "notes", *extra],
                            geometry=[s.geometry for s in sites], crs="EPSG:4326")


def read_sites(path: PathLike) -> geopandas.GeoDataFrame:
    """A sites file (GeoPackage, GeoJSON, CSV, OSM) read and checked exactly as ``sitewatch monitor`` does."""
    from .sites import read_sites as read

    return sites_frame(read(path))


def sites_from_frame(frame: geopandas.GeoDataFrame, name: str = "GeoDataFrame") -> list[Site]:
    """Check a GeoDataFrame of sites record by record, as a sites file is checked.

    Any CRS is reprojected to EPSG:4326; a frame without a CRS is taken as lon/lat (as GeoJSON
    is). Points are buffered by ``radius_m`` (default 500 m). Errors name the row (0-based index label).
    """
    import geopandas as gpd

    from .sites import check_unique, make_site

    if not isinstance(frame, gpd.GeoDataFrame):
        raise SitesError(f"{name}: expected a path or a geopandas.GeoDataFrame, got {type(frame).__name__}")
    if "site_id" not in frame.columns:
        raise SitesError(f"{name}: no site_id column (columns: {', '.join(map(str, frame.columns))})")
    if len(frame) == 0:
        raise SitesError(f"{name}: no sites in the frame")
    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        try:
            frame = frame.to_crs("EPSG:4326")
        except Exception as exc:  # pyproj raises its own errors
            raise SitesError(f"{name}: cannot reproject from {frame.crs} to EPSG:4326 ({exc})") from None
    geom_col = frame.geometry.name
    out = []
    for label, row in frame.iterrows():
        record = {k: _plain(v) for k, v in row.items() if k != geom_col}
        out.append(make_site(record, row[geom_col], f"{name}: row {label}"))
    check_unique(out, Path(name))
    return out


def _plain(v: Any) -> Any:
    """pandas' missing values and numpy scalars as the plain Python values a sites file gives."""
    import pandas as pd

    if v is None or isinstance(v, (str, bytes)):
        return v
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):  # a list or array in a cell: not missing
        pass
    return v.item() if hasattr(v, "item") else v


# --- runs ----------------------------------------------------------------------------------


def _date(v: dt.date | str | None, what: str) -> dt.date | None:
    if v is None or isinstance(v, dt.date):
        return v.date() if isinstance(v, dt.datetime) else v
    try:
        return dt.date.fromisoformat(str(v))
    except ValueError:
        raise InputError(f"{what} {v!r} is not a date as YYYY-MM-DD") from None


def _dates(since: dt.date | str | None, until: dt.date | str | None) -> tuple[dt.date | None, dt.date | None]:
    s, u = _date(since, "since"), _date(until, "until")
    if s and u and s > u:
        raise InputError(f"since {s} is after until {u}")
    return s, u


def monitor(sites: PathLike | geopandas.GeoDataFrame, imagery: PathLike, db: PathLike = "findings.gpkg", *,
            collection: str | None = None, since: dt.date | str | None = None, until: dt.date | str | None = None,
            detector: Detector | None = None, change_model: PathLike | None = None,
            site_ids: Sequence[str] | None = None) -> RunSummary:
    """One monitoring run, as ``sitewatch monitor --no-prefect``: only scenes not yet in ``db`` are read.

    ``sites`` is a sites file or a GeoDataFrame (checked row by row first; nothing is written
    when one is bad). ``detector`` replaces the default structure detector; ``site_ids`` runs
    only those sites. ``change_model`` is passed to the run when this install supports it.
    """
    from .monitor import MonitorParams, run

    since_d, until_d = _dates(since, until)
    if isinstance(sites, (str, os.PathLike)):
        site_list, label = None, os.fspath(sites)
    else:
        site_list = sites_from_frame(sites)
        label = f"<GeoDataFrame: {len(site_list)} sites>"
    fields = {"sites": label, "imagery": os.fspath(imagery), "db": os.fspath(db), "collection": collection,
              "since": since_d, "until": until_d, "site_ids": tuple(site_ids) if site_ids else None}
    extra: dict[str, Any] = {}
    if change_model is not None:
        if "change_model" in inspect.signature(run).parameters:
            extra["change_model"] = os.fspath(change_model)
        elif "change_model" in getattr(MonitorParams, "__dataclass_fields__", {}):
            fields["change_model"] = os.fspath(change_model)
        else:
            raise InputError(f"change_model {os.fspath(change_model)}: this install cannot run a change model "
                             "(it needs the models extra: pip install 'sitewatch[models]')")
    return run(MonitorParams(**fields), sites=site_list, detector=detector, **extra)


def estimate(sites: PathLike | geopandas.GeoDataFrame, imagery: PathLike, db: PathLike = "findings.gpkg", *,
             collection: str | None = None, since: dt.date | str | None = None, until: dt.date | str | None = None,
             site_ids: Sequence[str] | None = None) -> list[SiteCost]:
    """What :func:`monitor` with the same arguments would read, as ``monitor --dry-run``: per site the
    scenes found and still to read, the bytes (from the files' tile indexes) and an estimated time.
    Reads no pixels and writes nothing (see :mod:`sitewatch.cost`)."""
    from .cost import dry_run
    from .monitor import MonitorParams

    since_d, until_d = _dates(since, until)
    site_list = None if isinstance(sites, (str, os.PathLike)) else sites_from_frame(sites)
    label = os.fspath(sites) if site_list is None else f"<GeoDataFrame: {len(site_list)} sites>"
    params = MonitorParams(sites=label, imagery=os.fspath(imagery), db=os.fspath(db), collection=collection,
                           since=since_d, until=until_d, site_ids=tuple(site_ids) if site_ids else None)
    return dry_run(params, site_list)


def _region_arg(region: PathLike | BaseGeometry | geopandas.GeoDataFrame, db: PathLike) -> str:
    """A region the scan can name in its parameters: strings and paths as given; a box as its bounds;
    any other shape written once beside ``db`` under a name from its content, so asking again resumes."""
    if isinstance(region, (str, os.PathLike)):
        return os.fspath(region)
    from shapely import to_geojson
    from shapely.geometry.base import BaseGeometry

    geom = region
    if not isinstance(region, BaseGeometry):
        frame = region if region.crs is None else region.to_crs("EPSG:4326")
        geom = frame.geometry.union_all()
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InputError(f"region: expected a polygon in lon/lat, got {geom.geom_type}")
    if geom.equals(geom.envelope):
        return ",".join(f"{v:.10g}" for v in geom.bounds)
    text = json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": json.loads(to_geojson(geom))}]})
    path = Path(db).resolve().parent / f".sitewatch-region-{hashlib.sha256(text.encode()).hexdigest()[:12]}.geojson"
    if not path.exists():
        path.write_text(text)
    return str(path)


def scan(region: PathLike | BaseGeometry | geopandas.GeoDataFrame, imagery: PathLike,
         db: PathLike = "findings.gpkg", *, collection: str | None = None, since: dt.date | str | None = None,
         until: dt.date | str | None = None, workers: int | None = None, tile_px: int | None = None,
         batch_tiles: int | None = None) -> ScanSummary:
    """A wide-area scan, as ``sitewatch scan --no-prefect``: ``region`` a box string, a named region,
    a polygon file, a shapely polygon or a GeoDataFrame (its union); ``workers`` > 1 forks processes."""
    from .scan import ScanParams, process_map, read_region, run, serial

    since_d, until_d = _dates(since, until)
    name = _region_arg(region, db)
    read_region(name)
    params = ScanParams(region=name, imagery=os.fspath(imagery), db=os.fspath(db), collection=collection,
                        since=since_d, until=until_d,
                        **({"tile_px": tile_px} if tile_px else {}), **({"batch_tiles": batch_tiles} if batch_tiles else {}))
    return run(params, process_map(workers) if workers and workers > 1 else serial)


# --- reading findings ----------------------------------------------------------------------


def _utc(values: Sequence[Any]) -> pandas.Series:
    import pandas as pd

    return pd.to_datetime(pd.Series(list(values), dtype=object), utc=True)


class Findings:
    """A findings GeoPackage, read as (Geo)DataFrames; it is never written through this object."""

    def __init__(self, db: PathLike):
        from .store import Store

        self.path = Path(db)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such findings GeoPackage")
        self.store: Store = Store(self.path, create=False)

    def __repr__(self) -> str:
        return f"Findings({str(self.path)!r})"

    def sites(self) -> geopandas.GeoDataFrame:
        """The watched sites (Polygons, EPSG:4326)."""
        return sites_frame(self.store.sites())

    def detections(self, status: str | None = None, site_id: str | None = None) -> geopandas.GeoDataFrame:
        """Detections (MultiPolygons, EPSG:4326), optionally one status (pending, confirmed, rejected) or site.
        ``before_date``/``after_date`` are dates (the clear scenes that bracket the change)."""
        import geopandas as gpd
        import pandas as pd

        from .reviews import STATUSES

        if status is not None and status not in STATUSES:
            raise InputError(f"status {status!r}: one of {', '.join(STATUSES)}")
        recs = self.store.detections(site_id=site_id, status=status)
        frame = gpd.GeoDataFrame([{c: getattr(r, c) for c in DETECTION_COLUMNS} for r in recs],
                                 columns=list(DETECTION_COLUMNS), geometry=[r.geometry for r in recs], crs="EPSG:4326")
        for c in ("before_date", "after_date"):
            frame[c] = pd.to_datetime(frame[c])
        return frame

    def scenes(self, site_id: str | None = None) -> geopandas.GeoDataFrame:
        """Scenes read over each site (footprint over the site, EPSG:4326; None where unread)."""
        import geopandas as gpd

        recs = sorted(self.store.scenes(site_id), key=lambda r: (r.site_id, r.acquired, r.scene_id))
        frame = gpd.GeoDataFrame([{c: getattr(r, c) for c in SCENE_COLUMNS} for r in recs],
                                 columns=list(SCENE_COLUMNS), geometry=[r.footprint for r in recs], crs="EPSG:4326")
        frame["acquired"] = _utc(frame["acquired"])
        return frame

    def metrics(self, site_id: str | None = None) -> pandas.DataFrame:
        """Per-scene measurements (built area, wall and fence length, towers, enclosed area, security level)."""
        import pandas as pd

        recs = sorted(self.store.metrics(site_id), key=lambda r: (r.site_id, r.acquired, r.scene_id))
        frame = pd.DataFrame([{c: getattr(r, c) for c in METRIC_COLUMNS} for r in recs], columns=list(METRIC_COLUMNS))
        frame["acquired"] = _utc(frame["acquired"])
        return frame

    def reviews(self) -> pandas.DataFrame:
        """The review log in file order, with its hash chain."""
        import pandas as pd

        recs = self.store.reviews()
        frame = pd.DataFrame([{c: getattr(r, c) for c in REVIEW_COLUMNS} for r in recs], columns=list(REVIEW_COLUMNS))
        frame["at"] = _utc(frame["at"])
        return frame

    def timeline(self, site_id: str, out: PathLike, include_pending: bool = False) -> Path:
        """Write the site's publication timeline under ``out/SITE_ID/``; returns its ``index.html``."""
        from .timeline import write_site

        return write_site(self.store, site_id, out, include_pending)


def open_findings(db: PathLike) -> Findings:
    """``sitewatch.open(db)``: a findings GeoPackage to read (it must exist; never created)."""
    return Findings(db)
