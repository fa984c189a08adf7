"""Finding scenes: a STAC API, a static STAC catalog (local or http), or a folder of GeoTIFFs.

All three end as the same :class:`~sitewatch.scenes.SceneRef` list, so everything after
discovery takes one code path whatever the source. :func:`probe` checks a source as a
whole before a run writes anything; :func:`discover` then finds one site's scenes, and
reports items it cannot use (no date, no usable band) as named problems instead of
dropping them silently.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from . import httpio
from .errors import FetchError, ImageryError
from .scenes import BANDS, AssetRef, SceneRef

#: What ``--collection`` means for a STAC API when not given (Earth Search's Sentinel-2 L2A).
DEFAULT_COLLECTION = "sentinel-2-l2a"
EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
#: Asset keys Earth Search uses for the bands sitewatch reads.
ASSET_KEYS = {"red": "red", "green": "green", "blue": "blue", "nir": "nir", "swir16": "swir16", "scl": "scl"}
WANTED = (*BANDS, "scl")
TIFF_SUFFIXES = (".tif", ".tiff")
_ITEM_SEARCH = re.compile(r"/item-search(#|$)")


@dataclass(frozen=True)
class Discovery:
    """Scenes found for one area, and the items that could not be used (named, with why)."""

    scenes: list[SceneRef] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[SceneRef]:
        return iter(self.scenes)

    def __len__(self) -> int:
        return len(self.scenes)


# --- reading JSON from a path or a URL -----------------------------------------------------


def is_url(s: str) -> bool:
    return urlparse(s).scheme in ("http", "https")


def read_json(href: str) -> Any:
    """A JSON document from a local path or an http(s) URL, with one-line errors."""
    if is_url(href):
        try:
            return httpio.get_json(href)
        except FetchError as exc:
            raise ImageryError(f"{exc}") from None
    p = Path(href)
    if not p.exists():
        raise ImageryError(f"{href}: no such file or folder")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ImageryError(f"{href}: not a text file (expected STAC JSON)") from None
    except json.JSONDecodeError as exc:
        raise ImageryError(f"{href}: broken JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def resolve(href: str, base: str) -> str:
    """An href relative to the document it appeared in."""
    if is_url(href) or Path(href).is_absolute():
        return href
    if is_url(base):
        return urljoin(base, href)
    return str((Path(base).parent / href).resolve())


# --- what kind of source ---------------------------------------------------------------------


def _is_api(doc: Mapping[str, Any]) -> bool:
    conforms = doc.get("conformsTo") or []
    if any(_ITEM_SEARCH.search(str(c)) for c in conforms):
        return True
    return any(link.get("rel") == "search" for link in doc.get("links", []) if isinstance(link, dict))


def _api_root(url: str) -> str:
    return url[: -len("/search")] if url.rstrip("/").endswith("/search") else url


def probe(imagery: str, collection: str | None = None) -> str:
    """``stac-api``, ``static`` or ``folder``; ImageryError (exit 2) when the source is unusable."""
    if not imagery or not imagery.strip():
        raise ImageryError("--imagery is empty")
    if not is_url(imagery):
        p = Path(imagery)
        if not p.exists():
            raise ImageryError(f"{imagery}: no such file or folder")
        if p.is_dir():
            if (p / "catalog.json").exists():
                imagery = str(p / "catalog.json")
            elif (p / "collection.json").exists():
                imagery = str(p / "collection.json")
            else:
                if not _tiffs(p):
                    raise ImageryError(f"{imagery}: folder holds no GeoTIFF (.tif/.tiff) and no catalog.json")
                return "folder"
    url = _api_root(imagery) if is_url(imagery) else imagery
    doc = read_json(url)
    if not isinstance(doc, dict):
        raise ImageryError(f"{imagery}: not a STAC catalog, collection or API (JSON is not an object)")
    if is_url(url) and _is_api(doc):
        coll = collection or DEFAULT_COLLECTION
        try:
            httpio.get_json(url.rstrip("/") + f"/collections/{coll}")
        except FetchError as exc:
            raise ImageryError(f"{imagery}: collection {coll!r} not available ({exc})") from None
        return "stac-api"
    kind = doc.get("type")
    if kind in ("Catalog", "Collection", "FeatureCollection", "Feature") and ("stac_version" in doc or
                                                                             kind == "FeatureCollection"):
        return "static"
    raise ImageryError(f"{imagery}: not a STAC catalog, collection or API (no STAC type/stac_version)")


def _tiffs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in TIFF_SUFFIXES and p.is_file())


# --- items to scenes -------------------------------------------------------------------------


def _parse_time(s: Any) -> dt.datetime | None:
    if not isinstance(s, str):
        return None
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)


def _is_tiff(asset: Mapping[str, Any], href: str) -> bool:
    t = str(asset.get("type") or "").lower()
    return "tiff" in t if t else href.lower().split("?")[0].endswith(TIFF_SUFFIXES)


def _scale_offset(rb: Any) -> tuple[float, float]:
    rb = rb if isinstance(rb, dict) else {}
    return float(rb.get("scale", 1.0) or 1.0), float(rb.get("offset", 0.0) or 0.0)


def _band_assets(assets: Mapping[str, Any], base: str) -> dict[str, AssetRef]:
    """Band common name -> where its pixels are: ``eo:bands`` first, then Earth Search keys, then ``visual``.

    Several assets can carry one common name (Earth Search lists a COG ``red`` and a JP2
    ``red-jp2``; ``visual`` also says red, green, blue): a GeoTIFF beats other formats, a
    single-band asset beats a band of a multi-band one, and the asset keyed by the name wins
    a tie, whatever order the JSON lists them in.
    """
    best: dict[str, tuple[tuple[int, int, int], AssetRef]] = {}

    def offer(name: str, rank: tuple[int, int, int], ref: AssetRef) -> None:
        if name not in best or rank < best[name][0]:
            best[name] = (rank, ref)

    for key, a in assets.items():
        if not isinstance(a, dict) or not a.get("href"):
            continue
        href = resolve(str(a["href"]), base)
        bands = a.get("eo:bands") or a.get("bands") or []
        bands = bands if isinstance(bands, list) else []
        raster = a.get("raster:bands") or []
        not_tiff = 0 if _is_tiff(a, href) else 1
        named = False
        for i, b in enumerate(bands):
            if not isinstance(b, dict):
                continue
            cn = b.get("common_name") or b.get("eo:common_name")
            if cn not in WANTED and str(b.get("name", "")).lower() == "scl":
                cn = "scl"
            if cn in WANTED:
                named = True
                rb = raster[i] if i < len(raster) and isinstance(raster[i], dict) else b
                offer(str(cn), (not_tiff, int(len(bands) > 1), int(key != cn)), AssetRef(href, i + 1, *_scale_offset(rb)))
        if key in ASSET_KEYS and not named:
            offer(ASSET_KEYS[key], (not_tiff, 0, 0), AssetRef(href, 1, *_scale_offset((raster or [{}])[0])))
    out = {name: ref for name, (_, ref) in best.items()}
    visual = assets.get("visual")
    if isinstance(visual, dict) and visual.get("href") and not {"red", "green", "blue"} <= set(out):
        href = resolve(str(visual["href"]), base)
        for i, name in enumerate(("red", "green", "blue")):
            out.setdefault(name, AssetRef(href, i + 1))
    return out


def _gsd(props: Mapping[str, Any], assets: Mapping[str, Any]) -> float | None:
    """Ground sample distance: ``properties.gsd``, else the red asset's ``gsd`` or ``raster:bands`` resolution."""
    candidates: list[Any] = [props.get("gsd")]
    red = next((a for k, a in assets.items() if isinstance(a, dict) and (k == "red" or any(
        isinstance(b, dict) and b.get("common_name") == "red" for b in (a.get("eo:bands") or [])))), None)
    if red is not None:
        candidates.append(red.get("gsd"))
        rb = (red.get("raster:bands") or [{}])[0]
        candidates.append(rb.get("spatial_resolution") if isinstance(rb, dict) else None)
    return next((float(v) for v in candidates if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0),
                None)


def _json_props(props: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("platform", "constellation", "instruments", "eo:cloud_cover", "view:sun_elevation", "view:sun_azimuth",
            "view:off_nadir", "proj:epsg", "proj:code", "gsd", "s2:mgrs_tile", "mgrs:utm_zone", "processing:software")
    return {k: props[k] for k in keep if k in props and isinstance(props[k], (str, int, float, bool))}


def scene_from_item(item: Mapping[str, Any], item_href: str, source: str,
                    collection: str | None = None) -> SceneRef | str:
    """A SceneRef, or a one-line reason the item cannot be used."""
    iid = item.get("id")
    if not isinstance(iid, str) or not iid:
        return f"{item_href}: item without an id"
    props = item.get("properties") or {}
    acquired = _parse_time(props.get("datetime")) or _parse_time(props.get("start_datetime"))
    if acquired is None:
        return f"{source}: item {iid}: no usable datetime ({str(props.get('datetime'))[:40]!r})"
    assets = _band_assets(item.get("assets") or {}, item_href)
    if not {"red", "green", "blue"} <= set(assets):
        return f"{source}: item {iid}: no usable bands (needs red, green and blue, by eo:bands common_name, " \
               f"asset key, or a 'visual' asset)"
    geom = None
    if item.get("geometry"):
        try:
            geom = shape(item["geometry"])
        except Exception:  # malformed geometry: treat as unknown footprint, the read will tell
            geom = None
    own = item.get("collection")
    return SceneRef(scene_id=iid, source=source, acquired=acquired, assets=assets,
                    collection=own if isinstance(own, str) and own else collection, footprint=geom,
                    gsd_m=_gsd(props, item.get("assets") or {}),
                    href=item_href, properties=_json_props(props))


def _in_range(t: dt.datetime, since: dt.date | None, until: dt.date | None) -> bool:
    d = t.date()
    return (since is None or d >= since) and (until is None or d <= until)


# --- the three sources -------------------------------------------------------------------------


def discover(imagery: str, *, collection: str | None = None, aoi: BaseGeometry, since: dt.date | None = None,
             until: dt.date | None = None) -> Discovery:
    """Scenes over ``aoi`` (EPSG:4326) in the date range, oldest first."""
    kind = probe(imagery, collection) if not is_url(imagery) else None
    if kind == "folder":
        found = _discover_folder(Path(imagery), aoi, since, until)
    else:
        url = imagery
        if not is_url(imagery) and Path(imagery).is_dir():
            p = Path(imagery)
            url = str(p / "catalog.json") if (p / "catalog.json").exists() else str(p / "collection.json")
        doc = read_json(_api_root(url) if is_url(url) else url)
        if is_url(url) and isinstance(doc, dict) and _is_api(doc):
            found = _discover_api(_api_root(url), collection or DEFAULT_COLLECTION, aoi, since, until, imagery)
        else:
            found = _discover_static(url, doc, aoi, since, until, imagery)
    found.scenes.sort(key=lambda s: (s.acquired, s.scene_id))
    return found


def _discover_static(url: str, doc: Any, aoi: BaseGeometry, since: dt.date | None, until: dt.date | None,
                     source: str) -> Discovery:
    out = Discovery()
    seen: set[str] = set()
    stack: list[tuple[str, Any, str | None]] = [(url, doc, None)]
    while stack:
        href, d, coll = stack.pop()
        if href in seen or not isinstance(d, dict):
            continue
        seen.add(href)
        t = d.get("type")
        if t == "Feature":
            _add_item(out, d, href, source, coll, aoi, since, until)
            continue
        if t == "FeatureCollection":
            for f in d.get("features") or []:
                if isinstance(f, dict):
                    _add_item(out, f, href, source, coll, aoi, since, until)
            continue
        if t == "Collection":
            coll = d.get("id") or coll
        for link in d.get("links") or []:
            if not isinstance(link, dict) or link.get("rel") not in ("child", "item") or not link.get("href"):
                continue
            child = resolve(str(link["href"]), href)
            if child in seen:
                continue
            try:
                stack.append((child, read_json(child), coll))
            except ImageryError as exc:
                out.problems.append(f"{source}: {exc}")
    return out


def _add_item(out: Discovery, item: Mapping[str, Any], href: str, source: str, coll: str | None,
              aoi: BaseGeometry, since: dt.date | None, until: dt.date | None) -> None:
    if item.get("bbox") and len(item["bbox"]) >= 4:
        b = item["bbox"]
        bb = box(b[0], b[1], b[2], b[3]) if len(b) == 4 else box(b[0], b[1], b[3], b[4])
        if not bb.intersects(aoi):
            return
    ref = scene_from_item(item, href, source, coll)
    if isinstance(ref, str):
        out.problems.append(ref)
        return
    if ref.footprint is not None and not ref.footprint.intersects(aoi):
        return
    if _in_range(ref.acquired, since, until):
        out.scenes.append(ref)


def _stac_io() -> Any:
    """pystac-client's IO with every request through :func:`sitewatch.httpio.request`: the same
    timeouts, backed-off retries (``Retry-After`` honoured) and checks for cut-off bodies as
    every other request; urllib3's own retries do not see a page truncated mid-body."""
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO

    class _IO(StacApiIO):  # type: ignore[misc]
        def request(self, href: str, method: str | None = None, headers: dict[str, str] | None = None,
                    parameters: dict[str, Any] | None = None) -> str:
            method = (method or "GET").upper()
            kw: dict[str, Any] = {"headers": dict(headers or {})}
            if method in ("POST", "PUT", "PATCH"):
                kw["json"] = parameters
            else:
                kw["params"] = dict(parameters or {})
            try:
                resp = httpio.request(method, href, session=self.session, **kw)
            except FetchError as exc:
                raise APIError(str(exc)) from None
            try:
                return resp.content.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise APIError(f"{href}: response is not UTF-8 text ({exc})") from None

    return _IO(timeout=httpio.timeout())


def _discover_api(root: str, collection: str, aoi: BaseGeometry, since: dt.date | None, until: dt.date | None,
                  source: str) -> Discovery:
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    io = _stac_io()
    when = f"{since.isoformat() if since else '..'}/{until.isoformat() + 'T23:59:59Z' if until else '..'}"
    out = Discovery()
    try:
        client = Client.open(root, stac_io=io)
        search = client.search(collections=[collection], intersects=aoi.__geo_interface__,
                               datetime=None if when == "../.." else when, limit=100)
        for item in search.items_as_dicts():
            self_href = next((lk["href"] for lk in item.get("links", []) if lk.get("rel") == "self"),
                             f"{root.rstrip('/')}/collections/{collection}/items/{item.get('id')}")
            ref = scene_from_item(item, self_href, source, collection)
            if isinstance(ref, str):
                out.problems.append(ref)
            elif _in_range(ref.acquired, since, until):
                out.scenes.append(ref)
    except APIError as exc:
        raise FetchError(f"{root}: STAC API error: {str(exc)[:200]}") from None
    except Exception as exc:  # requests/urllib3 errors after retries, malformed pages
        if isinstance(exc, FetchError):
            raise
        raise FetchError(f"{root}: search failed: {type(exc).__name__}: {str(exc)[:200]}") from None
    return out


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
    from rasterio.warp import transform_bounds

    out = Discovery()
    groups: dict[str, dict[str, tuple[Path, int]]] = {}
    meta: dict[str, tuple[dt.datetime | None, BaseGeometry | None, float | None]] = {}
    for p in _tiffs(folder):
        m = _BAND_SUFFIX.match(p.stem)
        scene_id, band = (m.group(1), m.group(2).lower()) if m else (p.stem, None)
        try:
            with rasterio.open(p) as ds:
                tags = ds.tags()
                fp = box(*transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)) if ds.crs else None
                gsd = abs(ds.transform.a) if ds.crs and not ds.crs.is_geographic else None
                names = _band_names(ds)
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


def _band_names(ds: Any) -> list[str | None]:
    """Common names of a file's bands: from descriptions or tags, else RGB(N) by position."""
    names: list[str | None] = []
    for i in range(1, ds.count + 1):
        d = (ds.descriptions[i - 1] or ds.tags(i).get("common_name") or "").strip().lower()
        names.append(d if d in WANTED else None)
    if not any(names) and ds.count >= 3:
        names = ["red", "green", "blue", "nir"][: ds.count] + [None] * max(0, ds.count - 4)
    return names
