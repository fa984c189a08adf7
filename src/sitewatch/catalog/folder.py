"""A folder of GeoTIFFs as scenes: one multi-band file, or one file per band; dates from tags or names."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from ..scenes import AssetRef, SceneRef
from .items import TIFF_SUFFIXES, WANTED, Discovery, _in_range


def _tiffs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in TIFF_SUFFIXES and p.is_file())


_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?:[T_](\d{2})(\d{2})(\d{2}))?(?!\d)")
_BAND_SUFFIX = re.compile(r"^(.*?)[_.-](" + "|".join(WANTED) + r")$", re.IGNORECASE)


def _date_of(path: Path, tags: Mapping[str, str]) -> dt.datetime | None:
    v = tags.get("TIFFTAG_DATETIME")
    if v:
        try:
            return dt.datetime.strptime(v.strip(), "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    m = _DATE_IN_NAME.search(path.stem)
    if m:
        y, mo, d, hh, mm, ss = (int(x) if x else 0 for x in m.groups())
        try:
            return dt.datetime(y, mo, d, hh, mm, ss, tzinfo=dt.timezone.utc)
        except ValueError:
            return None
    return None


def _discover_folder(folder: Path, aoi: BaseGeometry, since: dt.date | None, until: dt.date | None) -> Discovery:
    """GeoTIFFs as scenes: one multi-band file, or one file per band named ``<scene>_<band>.tif``."""
    import rasterio

    out = Discovery()
    groups: dict[str, dict[str, tuple[Path, int]]] = {}
    meta: dict[str, tuple[dt.datetime | None, BaseGeometry | None, float | None]] = {}
    for p in _tiffs(folder):
        m = _BAND_SUFFIX.match(p.stem)
        scene_id, band = (m.group(1), m.group(2).lower()) if m else (p.stem, None)
        try:
            tags, fp, gsd, names = _tiff_header(p)
        except rasterio.errors.RasterioIOError as exc:
            out.problems.append(f"{p}: not a readable GeoTIFF ({str(exc)[:120]})")
            continue
        g = groups.setdefault(scene_id, {})
        if band:
            g[band] = (p, 1)
        else:
            for i, n in enumerate(names, start=1):
                if n:
                    g.setdefault(n, (p, i))
        if scene_id not in meta or meta[scene_id][0] is None:
            meta[scene_id] = (_date_of(p, tags), fp, gsd)
    for scene_id, bands in sorted(groups.items()):
        when, fp, gsd = meta[scene_id]
        where = f"{folder}: {scene_id}"
        if when is None:
            out.problems.append(f"{where}: no date (no TIFFTAG_DATETIME and no YYYY-MM-DD in the file name)")
            continue
        if not {"red", "green", "blue"} <= set(bands):
            out.problems.append(f"{where}: no usable bands (need red, green, blue: band descriptions or 3+ bands)")
            continue
        if fp is not None and not fp.intersects(aoi):
            continue
        if not _in_range(when, since, until):
            continue
        assets = {n: AssetRef(str(path), idx) for n, (path, idx) in bands.items()}
        first = next(iter(bands.values()))[0]
        out.scenes.append(SceneRef(scene_id, str(folder), when, assets, None, fp, gsd, str(first), {}))
    return out


def _tiff_header(p: Path) -> tuple[dict[str, str], BaseGeometry | None, float | None, list[str | None]]:
    """(tags, footprint in EPSG:4326, pixel size, band names) of one GeoTIFF, read once per version of
    the file per process: a run discovers a folder once per site, and opening every file again for
    each site was most of a folder's discovery time."""
    try:
        st = p.stat()
    except OSError as exc:  # gone since the folder was listed: unreadable, as rasterio would say
        import rasterio.errors

        raise rasterio.errors.RasterioIOError(str(exc)) from None
    return _tiff_header_of(str(p), st.st_mtime_ns, st.st_size, st.st_ino)


@functools.lru_cache(maxsize=8192)
def _tiff_header_of(path: str, mtime_ns: int, size: int, inode: int
                    ) -> tuple[dict[str, str], BaseGeometry | None, float | None, list[str | None]]:
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(path) as ds:
        tags = ds.tags()
        fp = box(*transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)) if ds.crs else None
        gsd = abs(ds.transform.a) if ds.crs and not ds.crs.is_geographic else None
        return tags, fp, gsd, _band_names(ds)


def _band_names(ds: Any) -> list[str | None]:
    """Common names of a file's bands: from descriptions or tags, else RGB(N) by position."""
    names: list[str | None] = []
    for i in range(1, ds.count + 1):
        d = (ds.descriptions[i - 1] or ds.tags(i).get("common_name") or "").strip().lower()
        names.append(d if d in WANTED else None)
    if not any(names) and ds.count >= 3:
        names = ["red", "green", "blue", "nir"][: ds.count] + [None] * max(0, ds.count - 4)
    return names
