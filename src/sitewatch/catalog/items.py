"""STAC items to scenes: dates, band assets, resolution, signing; what cannot be used, named.

:func:`scene_from_item` turns one item into a :class:`~sitewatch.scenes.SceneRef` or a one-line
reason it cannot be used (no date, no usable band, Landsat, bands only on ``s3://``);
:class:`Discovery` holds what a search over any source found.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlparse

from shapely.geometry import shape

from ..scenes import BANDS, AssetRef, SceneRef
from .reflectance import reflectance_rule
from .stacjson import is_url, resolve

#: Asset keys (matched case-insensitively) that name a band when the asset has no ``eo:bands``:
#: Earth Search v1's names; Sentinel-2 band numbers (Earth Search v0, Planetary Computer); the
#: scene classification as ``scl`` (ES v1), ``SCL`` (PC, ES v0) or ``SCL-20m`` (PC's older items).
ASSET_KEYS = {"red": "red", "green": "green", "blue": "blue", "nir": "nir", "swir16": "swir16", "scl": "scl",
              "b04": "red", "b03": "green", "b02": "blue", "b08": "nir", "b11": "swir16", "scl-20m": "scl"}
#: Above this ``eo:cloud_cover`` (percent of the tile) an item is stored as unusable without being
#: read: at most 1 % of the tile is clear, and a site is rarely in it (a read costs several requests).
#: Callers read it as ``sitewatch.catalog.MAX_CLOUD_COVER`` at call time (where a test may lower it).
MAX_CLOUD_COVER = 99.0
WANTED = (*BANDS, "scl")
TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Discovery:
    """Scenes found for one area, and the items that could not be used (named, with why)."""

    scenes: list[SceneRef] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[SceneRef]:
        return iter(self.scenes)

    def __len__(self) -> int:
        return len(self.scenes)


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
