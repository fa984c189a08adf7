"""What kind of source ``--imagery`` is (a STAC API, a static catalog, a folder of GeoTIFFs), checked
as a whole by :func:`probe` before a run writes anything."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import httpio
from ..errors import FetchError, ImageryError
from .folder import _tiffs
from .items import LANDSAT_REFUSED
from .stacjson import is_url, read_json, resolve

#: What ``--collection`` means for a STAC API when not given (Earth Search's Sentinel-2 L2A).
DEFAULT_COLLECTION = "sentinel-2-l2a"
EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
_ITEM_SEARCH = re.compile(r"/item-search(#|$)")


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
