"""Finding scenes: a STAC API, a static STAC catalog (local or http), or a folder of GeoTIFFs.

All three end as the same :class:`~sitewatch.scenes.SceneRef` list, so everything after
discovery takes one code path whatever the source. :func:`probe` checks a source as a
whole before a run writes anything; :func:`discover` then finds one site's scenes, and
reports items it cannot use (no date, no usable band, Landsat) as named problems instead of
dropping them silently. What an item's numbers mean is decided here, per item, from what the
provider says (:func:`reflectance_rule`), and recorded with the scene: providers disagree about
the -0.1 offset of Sentinel-2 baseline 04.00, and a wrong guess shifts every reflectance by 0.1.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
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
#: Asset keys (matched case-insensitively) that name a band when the asset has no ``eo:bands``:
#: Earth Search v1's names; Sentinel-2 band numbers (Earth Search v0, Planetary Computer); the
#: scene classification as ``scl`` (ES v1), ``SCL`` (PC, ES v0) or ``SCL-20m`` (PC's older items).
ASSET_KEYS = {"red": "red", "green": "green", "blue": "blue", "nir": "nir", "swir16": "swir16", "scl": "scl",
              "b04": "red", "b03": "green", "b02": "blue", "b08": "nir", "b11": "swir16", "scl-20m": "scl"}
#: Above this ``eo:cloud_cover`` (percent of the tile) an item is stored as unusable without being
#: read: at most 1 % of the tile is clear, and a site is rarely in it (a read costs several requests).
MAX_CLOUD_COVER = 99.0
#: ESA's L2A digital numbers carry BOA_ADD_OFFSET = -1000 from processing baseline 04.00 (25 Jan 2022).
OFFSET_BASELINE = (4, 0)
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


@dataclass(frozen=True)
class ApiTarget:
    """A STAC API and the collection to search in it (with the collection's own document)."""

    root: str
    collection: str
    doc: Mapping[str, Any]


def api_target(imagery: str, collection: str | None = None, doc: Any = None) -> ApiTarget | None:
    """The API and collection behind ``--imagery``, or None when it is not an API.

    Takes the API's root (or its ``/search``) and also an API's collection URL
    (``.../collections/sentinel-2-l2a``): a Collection without ``item``/``child`` links holds
    nothing when walked as a static catalog, so it is searched through its API instead.
    ImageryError when the collection does not exist or cannot be used.
    """
    if not is_url(imagery):
        return None
    url = _api_root(imagery)
    doc = read_json(url) if doc is None else doc
    if not isinstance(doc, dict):
        return None
    if _is_api(doc):
        root, coll = url, collection or DEFAULT_COLLECTION
    elif doc.get("type") == "Collection" and not any(
            isinstance(lk, dict) and lk.get("rel") in ("item", "child") for lk in doc.get("links") or []):
        links = {lk.get("rel"): lk.get("href") for lk in doc.get("links") or [] if isinstance(lk, dict)}
        if not links.get("root") or not links.get("items"):
            return None
        root = resolve(str(links["root"]), url)
        try:
            root_doc = read_json(root)
        except ImageryError:
            return None
        if not isinstance(root_doc, dict) or not _is_api(root_doc):
            return None
        coll = str(doc.get("id") or "")
        if collection and collection != coll:
            raise ImageryError(f"{imagery}: is the API collection {coll!r}, but --collection says {collection!r}")
    else:
        return None
    if coll.lower().startswith("landsat"):
        raise ImageryError(f"{imagery}: collection {coll!r}: {LANDSAT_REFUSED}")
    try:
        cdoc = httpio.get_json(root.rstrip("/") + f"/collections/{coll}")
    except FetchError as exc:
        raise ImageryError(f"{imagery}: collection {coll!r} not available ({exc})") from None
    return ApiTarget(root.rstrip("/"), coll, cdoc if isinstance(cdoc, dict) else {})


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
                if collection is not None:
                    raise ImageryError(f"{imagery}: a folder of GeoTIFFs has no collections; drop "
                                       f"--collection {collection}")
                return "folder"
    url = _api_root(imagery) if is_url(imagery) else imagery
    doc = read_json(url)
    if not isinstance(doc, dict):
        raise ImageryError(f"{imagery}: not a STAC catalog, collection or API (JSON is not an object)")
    if api_target(imagery, collection, doc) is not None:
        return "stac-api"
    kind = doc.get("type")
    if kind in ("Catalog", "Collection", "FeatureCollection", "Feature") and ("stac_version" in doc or
                                                                             kind == "FeatureCollection"):
        if collection is not None:  # refused as a STAC API refuses it, not ignored (a typo read everything)
            have = static_collections(url, doc)
            if collection not in have:
                held = ", ".join(sorted(have)) if have else "none"
                raise ImageryError(f"{imagery}: collection {collection!r} is not in this static catalog "
                                   f"(its collections: {held})")
        return "static"
    raise ImageryError(f"{imagery}: not a STAC catalog, collection or API (no STAC type/stac_version)")


def static_collections(url: str, doc: Mapping[str, Any]) -> set[str]:
    """Ids of the collections a static catalog holds: its Collections (by child links; items are
    not opened) and the ``collection`` of the items or features it embeds."""
    out: set[str] = set()
    seen: set[str] = set()
    stack: list[tuple[str, Any]] = [(url, doc)]
    while stack:
        href, d = stack.pop()
        if href in seen or not isinstance(d, dict):
            continue
        seen.add(href)
        if d.get("type") == "Collection" and isinstance(d.get("id"), str):
            out.add(d["id"])
        for f in ([d] if d.get("type") == "Feature" else d.get("features") or []):
            if isinstance(f, dict) and isinstance(f.get("collection"), str):
                out.add(f["collection"])
        for link in d.get("links") or []:
            if isinstance(link, dict) and link.get("rel") == "child" and link.get("href"):
                child = resolve(str(link["href"]), href)
                if child not in seen:
                    try:
                        stack.append((child, read_json(child)))
                    except ImageryError:
                        continue  # discovery names a child it cannot read
    return out


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
        k = key.lower()
        if k in ASSET_KEYS and not named:
            offer(ASSET_KEYS[k], (not_tiff, 0, int(k != ASSET_KEYS[k])),
                  AssetRef(href, 1, *_scale_offset((raster or [{}])[0])))
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
            "view:off_nadir", "proj:epsg", "proj:code", "gsd", "s2:mgrs_tile", "mgrs:utm_zone", "processing:software",
            "s2:datatake_id", "s2:nodata_pixel_percentage", "start_datetime", "end_datetime")
    return {k: props[k] for k in keep if k in props and isinstance(props[k], (str, int, float, bool))}


# --- what the numbers mean: reflectance scale and offset, decided per item ---------------------

_BASELINE_IN_NAME = re.compile(r"_N(\d{2})\.?(\d{2})(?:_|$)")


def processing_baseline(props: Mapping[str, Any], item_id: str = "") -> str | None:
    """Sentinel-2 processing baseline (``"04.00"``): the property (``s2:`` or v0's ``sentinel:``), else
    the ``_Nxxyy`` part of the product or datatake name."""
    for k in ("s2:processing_baseline", "sentinel:processing_baseline"):
        v = props.get(k)
        if isinstance(v, str) and re.fullmatch(r"\d{1,2}\.\d{2}", v.strip()):
            return v.strip().zfill(5)
    for v in (props.get("s2:product_uri"), props.get("sentinel:product_id"), props.get("s2:datatake_id"), item_id):
        m = _BASELINE_IN_NAME.search(str(v or ""))
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    return None


@dataclass(frozen=True)
class Reflectance:
    """How an item's band numbers become reflectance, and on what authority."""

    scale: float
    offset: float
    rule: str
    baseline: str | None = None

    def properties(self) -> dict[str, Any]:
        return {"processing_baseline": self.baseline, "reflectance_scale": self.scale,
                "reflectance_offset": self.offset, "offset_rule": self.rule}


def reflectance_rule(props: Mapping[str, Any], band_refs: Mapping[str, AssetRef], item_id: str = "",
                     collection: str | None = None) -> Reflectance | None:
    """Per item, whether the -0.1 BOA offset of baseline >= 04.00 is still in the numbers.

    - ``earthsearch:boa_offset_applied`` / v0's ``sentinel:boa_offset_applied`` true: Element84
      already removed it, and its ``raster:bands`` offset -0.1 is wrong (Element84/earth-search#9:
      "the boa_offset_applied is the truth").
    - else the item's own ``raster:bands`` scale/offset (Earth Search ``sentinel-2-c1-l2a``,
      where -0.1 is right: Element84/earth-search#41; Landsat).
    - else, a Sentinel-2 L2A item without ``raster:bands`` (Planetary Computer): baseline >= 04.00
      means DN = reflectance x 10000 + 1000 (PC dataset page, "Baseline Change";
      microsoft/PlanetaryComputer#134), older baselines have no offset.
    None when the item says nothing either way (the reader's default per data type then applies).
    """
    baseline = processing_baseline(props, item_id)
    flag = props.get("earthsearch:boa_offset_applied", props.get("sentinel:boa_offset_applied"))
    given = [r for r in band_refs.values() if r.scale != 1.0 or r.offset != 0.0]
    scale = given[0].scale if given else 1e-4
    if flag is True:
        said = " (its raster:bands offset %g ignored)" % given[0].offset if given and given[0].offset else ""
        return Reflectance(scale, 0.0, "boa_offset_applied=true: offset already removed by the provider"
                                       + said + " [Element84/earth-search#9]", baseline)
    if given:
        return Reflectance(given[0].scale, given[0].offset, "the item's raster:bands scale/offset"
                           + (" [Element84/earth-search#41]" if "c1" in str(collection or "") else ""), baseline)
    if baseline is None:
        return None
    if tuple(int(x) for x in baseline.split(".")) >= OFFSET_BASELINE:
        return Reflectance(1e-4, -0.1, f"baseline {baseline} >= 04.00 without raster:bands: DN = reflectance x 10000"
                                       " + 1000 [ESA BOA_ADD_OFFSET; Planetary Computer sentinel-2-l2a 'Baseline "
                                       "Change', microsoft/PlanetaryComputer#134]", baseline)
    return Reflectance(1e-4, 0.0, f"baseline {baseline} < 04.00: DN = reflectance x 10000, no offset", baseline)


_BLOB = ".blob.core.windows.net"


def sas_target(href: str, collection_doc: Mapping[str, Any] | None) -> str | None:
    """``account/container`` whose Planetary Computer SAS token an href needs, else None.

    From the href itself on Azure blob storage, else from the collection's ``msft:storage_account``
    and ``msft:container`` (what PC's token endpoint is asked for)."""
    u = urlparse(href)
    if u.netloc.endswith(_BLOB):
        parts = u.path.lstrip("/").split("/", 1)
        return f"{u.netloc.split('.')[0]}/{parts[0]}" if parts and parts[0] else None
    if collection_doc and collection_doc.get("msft:storage_account") and collection_doc.get("msft:container") \
            and is_url(href):
        return f"{collection_doc['msft:storage_account']}/{collection_doc['msft:container']}"
    return None


def _is_landsat(item: Mapping[str, Any], collection: str | None) -> bool:
    props = item.get("properties") or {}
    names = (str(item.get("collection") or collection or ""), str(props.get("platform") or ""))
    return any(n.lower().startswith("landsat") for n in names) or "qa_pixel" in (item.get("assets") or {})


LANDSAT_REFUSED = ("Landsat Collection 2 is not supported (30 m, NIR as nir08, clouds in qa_pixel bit flags, "
                   "requester-pays s3:// on Earth Search): use a Sentinel-2 L2A collection")


def scene_from_item(item: Mapping[str, Any], item_href: str, source: str,
                    collection: str | None = None, collection_doc: Mapping[str, Any] | None = None) -> SceneRef | str:
    """A SceneRef, or a one-line reason the item cannot be used."""
    iid = item.get("id")
    if not isinstance(iid, str) or not iid:
        return f"{item_href}: item without an id"
    props = item.get("properties") or {}
    acquired = _parse_time(props.get("datetime")) or _parse_time(props.get("start_datetime"))
    if acquired is None:
        return f"{source}: item {iid}: no usable datetime ({str(props.get('datetime'))[:40]!r})"
    if _is_landsat(item, collection):
        return f"{source}: item {iid}: {LANDSAT_REFUSED}"
    raw_assets = item.get("assets") or {}
    assets = _band_assets(raw_assets, item_href)
    if not {"red", "green", "blue"} <= set(assets):
        return f"{source}: item {iid}: no usable bands (needs red, green and blue, by eo:bands common_name, " \
               f"asset key, or a 'visual' asset)"
    s3 = sorted(n for n, a in assets.items() if a.href.startswith("s3://"))
    if s3:
        return f"{source}: item {iid}: band(s) {', '.join(s3)} only on s3:// (requester-pays buckets need AWS " \
               f"credentials; sitewatch reads http(s) COGs)"
    visual = raw_assets.get("visual") if isinstance(raw_assets.get("visual"), dict) else {}
    vhref = resolve(str(visual["href"]), item_href) if visual.get("href") else None
    measured = {n: a for n, a in assets.items() if n != "scl" and a.href != vhref}
    extra: dict[str, Any] = {}
    rule = reflectance_rule(props, measured, iid, item.get("collection") or collection) if measured else None
    if rule is not None:
        assets = {n: (replace(a, scale=rule.scale, offset=rule.offset) if n in measured else a)
                  for n, a in assets.items()}
        extra = {k: v for k, v in rule.properties().items() if v is not None}
    assets = {n: replace(a, sas=sas_target(a.href, collection_doc)) for n, a in assets.items()}
    if any(a.sas for a in assets.values()):
        extra["signing"] = "planetary-computer SAS"
    geom = None
    if item.get("geometry"):
        try:
            geom = shape(item["geometry"])
        except Exception:  # malformed geometry: treat as unknown footprint, the read will tell
            geom = None
    own = item.get("collection")
    return SceneRef(scene_id=iid, source=source, acquired=acquired, assets=assets,
                    collection=own if isinstance(own, str) and own else collection, footprint=geom,
                    gsd_m=_gsd(props, raw_assets),
                    href=item_href, properties={**_json_props(props), **extra})


def _in_range(t: dt.datetime, since: dt.date | None, until: dt.date | None,
              end: dt.datetime | None = None) -> bool:
    """Whether a time (or the interval ``t``..``end``) meets the days ``since``..``until``, both whole."""
    first, last = t.date(), (end or t).date()
    return (since is None or last >= since) and (until is None or first <= until)


def _ref_in_range(ref: SceneRef, since: dt.date | None, until: dt.date | None) -> bool:
    end = _parse_time(ref.properties.get("end_datetime")) if ref.properties.get("start_datetime") else None
    return _in_range(ref.acquired, since, until, end)


# --- one scene per acquisition -------------------------------------------------------------------

#: Scenes of one platform closer in time than this are one acquisition (overlapping MGRS tiles of
#: one datatake are seconds apart; the same platform's next pass is days later).
SAME_ACQUISITION_S = 120.0


def _platform(ref: SceneRef) -> str | None:
    p = ref.properties.get("platform")
    return re.sub(r"[^a-z0-9]", "", str(p).lower()) if p else None


def same_acquisition(a: SceneRef, b: SceneRef) -> bool:
    """Same platform, same pass: overlapping tiles, reprocessed ``_0_``/``_1_`` copies, ``l2a``/``c1-l2a``."""
    pa, pb = _platform(a), _platform(b)
    return pa is not None and pa == pb and abs((a.acquired - b.acquired).total_seconds()) <= SAME_ACQUISITION_S


def _coverage(ref: SceneRef, aoi: BaseGeometry) -> float:
    if ref.footprint is None or aoi.area == 0:
        return 1.0
    try:
        return float(ref.footprint.intersection(aoi).area / aoi.area)
    except Exception:  # invalid footprint: unknown, rank last among known ones
        return 0.0


def _tile_rank(ref: SceneRef, aoi: BaseGeometry) -> tuple[Any, ...]:
    """Best tile first: covers most of the site, newest processing (baseline, then the ``_1_`` copy)."""
    base = str(ref.properties.get("processing_baseline") or "00.00")
    seq = re.search(r"_(\d+)_L2A$", ref.scene_id)
    return (-round(_coverage(ref, aoi), 3), tuple(-int(x) for x in base.split(".")), -int(seq.group(1)) if seq else 0,
            ref.scene_id)


def one_per_acquisition(scenes: list[SceneRef], aoi: BaseGeometry) -> list[SceneRef]:
    """One scene per acquisition over ``aoi``: the best tile, with the others named on it.

    Counting each tile of one pass as a scene reports every change two or three times and
    breaks "the next clear scene still shows it". The best tile is the one covering most of
    the site (then the newest processing); the choice is recorded in its properties.
    """
    groups: list[list[SceneRef]] = []
    for ref in sorted(scenes, key=lambda s: (s.acquired, s.scene_id)):
        for g in groups:
            if same_acquisition(g[0], ref):
                g.append(ref)
                break
        else:
            groups.append([ref])
    out: list[SceneRef] = []
    for g in groups:
        if len(g) == 1:
            out.append(g[0])
            continue
        ranked = sorted(g, key=lambda s: _tile_rank(s, aoi))
        best = ranked[0]
        note = {"acquisition_tiles": ",".join(s.scene_id for s in ranked),
                "tile_choice": f"best of {len(g)} scenes of one acquisition: covers {_coverage(best, aoi):.0%} "
                               f"of the site, newest processing"}
        out.append(replace(best, properties={**best.properties, **note}))
    return out


# --- the three sources -------------------------------------------------------------------------


def discover(imagery: str, *, collection: str | None = None, aoi: BaseGeometry, since: dt.date | None = None,
             until: dt.date | None = None, per_acquisition: bool = False) -> Discovery:
    """Scenes over ``aoi`` (EPSG:4326) in the date range, oldest first.

    ``per_acquisition``: one scene per acquisition (:func:`one_per_acquisition`), for watching a
    site; a region scan needs every tile of a pass, so it is off by default.
    """
    kind = probe(imagery, collection) if not is_url(imagery) else None
    if kind == "folder":
        found = _discover_folder(Path(imagery), aoi, since, until)
    else:
        url = imagery
        if not is_url(imagery) and Path(imagery).is_dir():
            p = Path(imagery)
            url = str(p / "catalog.json") if (p / "catalog.json").exists() else str(p / "collection.json")
        doc = read_json(_api_root(url) if is_url(url) else url)
        target = api_target(url, collection, doc) if is_url(url) else None
        if target is not None:
            found = _discover_api(target, aoi, since, until, imagery)
        else:
            found = _discover_static(url, doc, aoi, since, until, imagery, collection)
    scenes = one_per_acquisition(found.scenes, aoi) if per_acquisition else list(found.scenes)
    scenes.sort(key=lambda s: (s.acquired, s.scene_id))
    return Discovery(scenes, found.problems)


def _discover_static(url: str, doc: Any, aoi: BaseGeometry, since: dt.date | None, until: dt.date | None,
                     source: str, collection: str | None = None) -> Discovery:
    """Every item under the catalog over ``aoi``; of ``collection`` only, when one is asked for."""
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
            _add_item(out, d, href, source, coll, aoi, since, until, collection)
            continue
        if t == "FeatureCollection":
            for f in d.get("features") or []:
                if isinstance(f, dict):
                    _add_item(out, f, href, source, coll, aoi, since, until, collection)
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
              aoi: BaseGeometry, since: dt.date | None, until: dt.date | None, wanted: str | None = None) -> None:
    if wanted is not None and (item.get("collection") if isinstance(item.get("collection"), str) else coll) != wanted:
        return
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
    if _ref_in_range(ref, since, until):
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


def _discover_api(target: ApiTarget, aoi: BaseGeometry, since: dt.date | None, until: dt.date | None,
                  source: str) -> Discovery:
    import warnings

    from pystac_client import Client
    from pystac_client.exceptions import APIError

    root, collection = target.root, target.collection
    io = _stac_io()
    # STAC intervals are closed: the last day runs to its last microsecond (an item at 23:59:59.5 is in it)
    when = f"{since.isoformat() + 'T00:00:00Z' if since else '..'}/" \
           f"{until.isoformat() + 'T23:59:59.999999Z' if until else '..'}"
    out = Discovery()
    try:
        with warnings.catch_warnings():
            # pystac-client warns about what is handled here (NoConformsTo; a v0 search link without a
            # "method"): users are not shown a library's warning about their imagery source
            warnings.simplefilter("ignore")
            client = Client.open(root, stac_io=io)
            if not client.has_conforms_to():
                # an API older than conformance classes (Earth Search v0: STAC API 0.9) that links a search
                client.add_conforms_to("ITEM_SEARCH")
            search = client.search(collections=[collection], intersects=aoi.__geo_interface__,
                                   datetime=None if when == "../.." else when, limit=100)
            for item in search.items_as_dicts():
                own = item.get("collection")
                if own and own != collection:  # an API may answer with other collections' items too
                    continue
                self_href = next((lk["href"] for lk in item.get("links", []) if lk.get("rel") == "self"),
                                 f"{root.rstrip('/')}/collections/{collection}/items/{item.get('id')}")
                ref = scene_from_item(item, self_href, source, collection, target.doc)
                if isinstance(ref, str):
                    out.problems.append(ref)
                elif _ref_in_range(ref, since, until):
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


def find_again(sc: Any, aoi: BaseGeometry, cache: dict[tuple[Any, ...], dict[str, SceneRef]] | None = None
               ) -> SceneRef | None:
    """A stored scene (``href``, ``source``, ``collection``, ``scene_id``, ``site_id``) as its source describes
    it now: its STAC item at ``href``, else re-discovered over ``aoi``; None when no longer listed.

    ``cache`` keeps one discovery per source and site for callers walking many scenes (verify).
    """
    from .errors import SceneError

    href = sc.href or ""
    if href.lower().endswith(".json") or "/items/" in href:
        ref = scene_from_item(read_json(href), href, sc.source, sc.collection)
        if isinstance(ref, str):
            raise SceneError(ref)
        return ref
    cache = {} if cache is None else cache
    key = (sc.source, sc.site_id, sc.collection)
    if key not in cache:
        found = discover(sc.source, collection=sc.collection, aoi=aoi)
        cache[key] = {r.scene_id: r for r in found.scenes}
    return cache[key].get(sc.scene_id)
