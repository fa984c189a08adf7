"""Discovery over the three sources, and finding a stored scene again as its source describes it now."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from .. import httpio
from ..errors import FetchError, ImageryError
from ..scenes import SceneRef
from .acquisitions import one_per_acquisition
from .folder import _discover_folder
from .items import Discovery, _ref_in_range, scene_from_item
from .sources import ApiTarget, _api_root, api_target, probe
from .stacjson import is_url, read_json, resolve


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


def find_again(sc: Any, aoi: BaseGeometry, cache: dict[tuple[Any, ...], dict[str, SceneRef]] | None = None
               ) -> SceneRef | None:
    """A stored scene (``href``, ``source``, ``collection``, ``scene_id``, ``site_id``) as its source describes
    it now: its STAC item at ``href``, else re-discovered over ``aoi``; None when no longer listed.

    ``cache`` keeps one discovery per source and site for callers walking many scenes (verify).
    """
    from ..errors import SceneError

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
