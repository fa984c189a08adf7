"""Real HTTP servers on 127.0.0.1 for tests: files with Range support, faults, a small STAC API.

Nothing here is a mock: GDAL's ``/vsicurl/``, requests and pystac-client talk to a real
socket. Each server records the requests it saw (method, path, Range header) so tests can
assert that remote COGs were read by range requests, and can be told to misbehave on given
paths a number of times (HTTP 500, 429 with ``Retry-After``, a stall, a connection reset, a
truncated body) and then recover, which is how retries and timeouts are tested.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlparse

from shapely.geometry import box, shape

FAULTS = ("500", "429", "stall", "reset", "truncate")


@dataclass
class Fault:
    """How a path misbehaves: ``kind`` for the next ``times`` requests (None: for ever)."""

    kind: str
    times: int | None = 1
    retry_after: float = 1.0
    stall_s: float = 5.0


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    method: str
    path: str
    range: str | None
    at: float


@dataclass
class Server:
    """A running test server: its base URL, what it saw, and the faults it will inject."""

    url: str
    requests: list[Seen] = field(default_factory=list)
    faults: dict[str, Fault] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path: str, kind: str, times: int | None = 1, *, retry_after: float = 1.0,
             stall_s: float = 5.0) -> None:
        """Make requests for ``path`` (e.g. ``/a.tif``) fail ``times`` times with ``kind``."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self.lock:
            self.faults["/" + path.lstrip("/")] = Fault(kind, times, retry_after, stall_s)

    def seen(self, path: str | None = None) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == "/" + path.lstrip("/")]

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            f = self.faults.get(path)
            if f is None:
                return None
            if f.times is not None:
                f.times -= 1
                if f.times <= 0:
                    del self.faults[path]
            return f


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: Server  # set on the subclass per server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    # --- plumbing ---------------------------------------------------------------------

    def _record(self) -> tuple[str, dict[str, list[str]]]:
        u = urlparse(self.path)
        path = unquote(u.path)
        with self.server_state.lock:
            self.server_state.requests.append(Seen(self.command, path, self.headers.get("Range"), time.monotonic()))
        return path, parse_qs(u.query)

    def _fault(self, path: str) -> bool:
        """Inject a fault for ``path`` if one is set; True when the response has been dealt with."""
        with self.server_state.lock:
            f = self.server_state.faults.get(path)
        if f is None or f.kind == "truncate":
            return False  # a truncation is done by the body writer, which needs the real body
        self.server_state._take_fault(path)
        if f.kind == "500":
            self._send(500, b"boom", "text/plain")
        elif f.kind == "429":
            self._send(429, b"slow down", "text/plain", {"Retry-After": f"{f.retry_after:g}"})
        elif f.kind == "stall":
            time.sleep(f.stall_s)
            self.close_connection = True
        elif f.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        return True

    def _send(self, code: int, body: bytes, ctype: str, headers: Mapping[str, str] | None = None,
              truncate: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body[: len(body) // 2] if truncate else body)
        if truncate:
            self.wfile.flush()
            self.close_connection = True

    def _send_json(self, doc: Any, code: int = 200, truncate: bool = False) -> None:
        self._send(code, json.dumps(doc).encode(), "application/json", truncate=truncate)

    def _truncating(self, path: str) -> bool:
        with self.server_state.lock:
            f = self.server_state.faults.get(path)
        if f is not None and f.kind == "truncate":
            self.server_state._take_fault(path)
            return True
        return False

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else {}


# --- static files with Range ---------------------------------------------------------------


def _ranges(spec: str, size: int) -> list[tuple[int, int]] | None:
    """``bytes=a-b,c-`` as inclusive (start, end) pairs; None when unsatisfiable or malformed."""
    if not spec.startswith("bytes="):
        return None
    out = []
    for part in spec[6:].split(","):
        a, _, b = part.strip().partition("-")
        if a == "":
            n = int(b)
            start, end = max(0, size - n), size - 1
        else:
            start, end = int(a), (int(b) if b else size - 1)
        end = min(end, size - 1)
        if start > end or start >= size:
            return None
        out.append((start, end))
    return out


def _file_handler(root: Path, state: Server) -> type[_Handler]:
    class H(_Handler):
        server_state = state

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path, _ = self._record()
            if self._fault(path):
                return
            p = (root / path.lstrip("/")).resolve()
            if root not in p.parents and p != root or not p.is_file():
                self._send(404, b"not found", "text/plain")
                return
            data = p.read_bytes()
            ctype = "application/json" if p.suffix == ".json" else "image/tiff" if p.suffix in (".tif", ".tiff") \
                else "application/octet-stream"
            trunc = self._truncating(path)
            rng = self.headers.get("Range")
            if not rng:
                self._send(200, data, ctype, {"Accept-Ranges": "bytes"}, truncate=trunc)
                return
            ranges = _ranges(rng, len(data))
            if ranges is None:
                self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
                return
            if len(ranges) == 1:
                a, b = ranges[0]
                self._send(206, data[a:b + 1], ctype, {"Accept-Ranges": "bytes",
                                                        "Content-Range": f"bytes {a}-{b}/{len(data)}"},
                           truncate=trunc)
                return
            boundary = "SITEWATCHBOUNDARY"
            parts = []
            for a, b in ranges:
                parts.append(f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {a}-{b}/{len(data)}"
                             f"\r\n\r\n".encode() + data[a:b + 1] + b"\r\n")
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            self._send(206, body, f"multipart/byteranges; boundary={boundary}", {"Accept-Ranges": "bytes"},
                       truncate=trunc)

    return H


@contextmanager
def _serve(handler_for: Any) -> Iterator[Server]:
    state = Server(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def serve_dir(path: str | Path) -> Iterator[Server]:
    """Serve the files under ``path`` (with HTTP Range) at ``server.url`` until the block ends."""
    root = Path(path).resolve()
    with _serve(lambda state: _file_handler(root, state)) as s:
        yield s


# --- a minimal STAC API ----------------------------------------------------------------------

CONFORMS = (
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
)


def _parse_time(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _in_interval(when: str, interval: str | None) -> bool:
    if not interval:
        return True
    t = _parse_time(when)
    if "/" not in interval:
        return t == _parse_time(interval)
    a, b = interval.split("/", 1)
    if a not in ("", "..") and t < _parse_time(a):
        return False
    if b not in ("", ".."):
        end = _parse_time(b)
        if len(b) == 10:  # a bare date ends at the end of that day
            end += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
        if t > end:
            return False
    return True


def _query_area(q: Mapping[str, Any]) -> tuple[list[str] | None, Any]:
    """A search's ``collections`` and area (``intersects``, else a 2D or 3D ``bbox``), GET or POST."""
    want = q.get("collections")
    if isinstance(want, str):
        want = want.split(",")
    geom = None
    if q.get("intersects"):
        g = q["intersects"]
        geom = shape(json.loads(g) if isinstance(g, str) else g)
    elif q.get("bbox"):
        b = q["bbox"]
        b = [float(x) for x in (b.split(",") if isinstance(b, str) else b)]
        geom = box(*b[:4]) if len(b) == 4 else box(b[0], b[1], b[3], b[4])
    return want, geom


def _api_handler(items: Sequence[Mapping[str, Any]], collections: Sequence[Mapping[str, Any]],
                 state: Server, max_limit: int) -> type[_Handler]:
    colls = {str(c["id"]): dict(c) for c in collections}

    class H(_Handler):
        server_state = state

        def _landing(self) -> dict[str, Any]:
            u = state.url
            return {"type": "Catalog", "id": "test-api", "stac_version": "1.0.0", "description": "sitewatch test API",
                    "conformsTo": list(CONFORMS),
                    "links": [{"rel": "self", "href": u + "/", "type": "application/json"},
                              {"rel": "root", "href": u + "/", "type": "application/json"},
                              {"rel": "conformance", "href": u + "/conformance"},
                              {"rel": "data", "href": u + "/collections"},
                              {"rel": "search", "href": u + "/search", "method": "GET",
                               "type": "application/geo+json"},
                              {"rel": "search", "href": u + "/search", "method": "POST",
                               "type": "application/geo+json"},
                              *({"rel": "child", "href": f"{u}/collections/{c}"} for c in colls)]}

        def _coll(self, cid: str) -> dict[str, Any]:
            u = state.url
            return {"type": "Collection", "stac_version": "1.0.0", "description": cid, "license": "proprietary",
                    "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
                    **colls[cid], "id": cid,
                    "links": [{"rel": "self", "href": f"{u}/collections/{cid}"}, {"rel": "root", "href": u + "/"},
                              {"rel": "items", "href": f"{u}/collections/{cid}/items"}]}

        def _search(self, q: Mapping[str, Any], method: str) -> dict[str, Any]:
            want, geom = _query_area(q)
            hits = [it for it in items
                    if (not want or it.get("collection") in want)
                    and (geom is None or shape(it["geometry"]).intersects(geom))
                    and _in_interval(it["properties"]["datetime"], q.get("datetime"))]
            limit = min(int(q.get("limit") or 10), max_limit)  # real APIs cap page size too
            start = int(q.get("token") or 0)
            page = hits[start:start + limit]
            links: list[dict[str, Any]] = [{"rel": "root", "href": state.url + "/"}]
            if start + limit < len(hits):
                nq = {k: v for k, v in q.items() if k != "token"}
                if method == "POST":
                    links.append({"rel": "next", "href": state.url + "/search", "method": "POST",
                                  "body": {**nq, "token": str(start + limit)}, "merge": False,
                                  "type": "application/geo+json"})
                else:
                    qs = urlencode({k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in nq.items()})
                    links.append({"rel": "next", "href": f"{state.url}/search?{qs}&token={start + limit}",
                                  "method": "GET", "type": "application/geo+json"})
            return {"type": "FeatureCollection", "features": [dict(it) for it in page], "links": links,
                    "numberMatched": len(hits), "numberReturned": len(page)}

        def do_GET(self) -> None:
            path, qs = self._record()
            if self._fault(path):
                return
            trunc = self._truncating(path)
            parts = [p for p in path.split("/") if p]
            if not parts:
                self._send_json(self._landing(), truncate=trunc)
            elif parts == ["conformance"]:
                self._send_json({"conformsTo": list(CONFORMS)}, truncate=trunc)
            elif parts == ["collections"]:
                self._send_json({"collections": [self._coll(c) for c in colls], "links": []}, truncate=trunc)
            elif len(parts) == 2 and parts[0] == "collections":
                if parts[1] in colls:
                    self._send_json(self._coll(parts[1]), truncate=trunc)
                else:
                    self._send_json({"code": "NotFound", "description": f"collection {parts[1]} not found"}, 404)
            elif parts == ["search"]:
                q = {k: v[-1] for k, v in qs.items()}
                self._send_json(self._search(q, "GET"), truncate=trunc)
            else:
                self._send_json({"code": "NotFound", "description": path}, 404)

        def do_POST(self) -> None:
            path, _ = self._record()
            body = self._body()
            if self._fault(path):
                return
            if path.rstrip("/") == "/search":
                self._send_json(self._search(body, "POST"), truncate=self._truncating(path))
            else:
                self._send_json({"code": "NotFound", "description": path}, 404)

    return H


@contextmanager
def stac_api(items: Sequence[Mapping[str, Any]], collections: Sequence[Mapping[str, Any]] | Sequence[str] = (
        "sentinel-2-l2a",), max_limit: int = 100) -> Iterator[Server]:
    """A STAC API over ``items`` at ``server.url``: landing page, /conformance, /collections, /search.

    ``max_limit`` caps the page size whatever the client asks, so paging can be tested with
    a handful of items.
    """
    colls = [{"id": c} if isinstance(c, str) else c for c in collections]
    with _serve(lambda state: _api_handler(items, colls, state, max_limit)) as s:
        yield s


# --- items shaped like Earth Search's ----------------------------------------------------------

_S2 = {"blue": ("B02", 0.49), "green": ("B03", 0.56), "red": ("B04", 0.665), "nir": ("B08", 0.842),
       "swir16": ("B11", 1.61)}


def earth_search_item(item_id: str, when: str, bbox: Sequence[float], hrefs: Mapping[str, str], *,
                      collection: str = "sentinel-2-l2a", scale: float | None = 0.0001, offset: float = -0.1,
                      self_href: str | None = None, cloud_cover: float = 5.0, epsg: int = 32645) -> dict[str, Any]:
    """An item as Earth Search v1 writes them: one asset per band keyed ``red``, ``scl``...

    ``hrefs`` maps asset keys to hrefs; bands get ``eo:bands`` with ``common_name`` and
    ``raster:bands`` with ``scale``/``offset`` (left out when ``scale`` is None); ``scl`` and
    ``visual`` get no scale.
    """
    assets: dict[str, Any] = {}
    for key, href in hrefs.items():
        a: dict[str, Any] = {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                             "roles": ["data"]}
        if key in _S2:
            name, wl = _S2[key]
            a["eo:bands"] = [{"name": name, "common_name": key, "center_wavelength": wl}]
            rb: dict[str, Any] = {"nodata": 0, "data_type": "uint16", "spatial_resolution": 10}
            if scale is not None:
                rb.update(scale=scale, offset=offset)
            a["raster:bands"] = [rb]
        elif key == "scl":
            a["raster:bands"] = [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}]
        elif key == "visual":
            a["eo:bands"] = [{"name": n, "common_name": c} for n, c in (("B04", "red"), ("B03", "green"),
                                                                         ("B02", "blue"))]
            a["roles"] = ["visual"]
        assets[key] = a
    links = [{"rel": "collection", "href": "./collection.json"}]
    if self_href:
        links.insert(0, {"rel": "self", "href": self_href})
    w, s, e, n = bbox
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "bbox": [w, s, e, n],
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
            "properties": {"datetime": when, "platform": "sentinel-2b" if item_id.startswith("S2B") else "sentinel-2a", "constellation": "sentinel-2",
                           "eo:cloud_cover": cloud_cover, "proj:epsg": epsg, "view:sun_elevation": 40.5,
                           "gsd": 10, "s2:unused": {"nested": True}},
            "assets": assets, "links": links}


# --- files to serve ------------------------------------------------------------------------------


def write_cog(path: str | Path, data: Any, crs: str, transform: Any, *, nodata: float | None = 0,
              descriptions: Sequence[str | None] | None = None, tags: Mapping[str, str] | None = None,
              blocksize: int = 256) -> Path:
    """A real Cloud Optimized GeoTIFF (tiled, internal overviews) from a (bands, rows, cols) array."""
    import numpy as np
    import rasterio.shutil
    from rasterio.io import MemoryFile

    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    profile = {"driver": "GTiff", "count": arr.shape[0], "height": arr.shape[1], "width": arr.shape[2],
               "dtype": str(arr.dtype), "crs": crs, "transform": transform, "nodata": nodata}
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(arr)
            for i, d in enumerate(descriptions or [], start=1):
                if d:
                    ds.set_band_description(i, d)
            if tags:
                ds.update_tags(**tags)
        with mem.open() as src:
            rasterio.shutil.copy(src, str(path), driver="COG", blocksize=blocksize, compress="DEFLATE",
                                 overview_resampling="average")
    return Path(path)


# --- recorded responses of the real services, replayed ------------------------------------------

#: The recordings, in shared/ beside the repository (as tests/conftest.py finds the reference data).
RECORDED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "stac-recorded"
#: Where each provider's API lived when recorded (replaced by the replay server's URL).
REAL_ROOTS = {"earth-search-v1": "https://earth-search.aws.element84.com/v1",
              "earth-search-v0": "https://earth-search.aws.element84.com/v0",
              "planetary-computer": "https://planetarycomputer.microsoft.com/api/stac/v1"}


def recorded(rel: str) -> Any:
    """One recorded response body (see shared/data/stac-recorded/README.md), as recorded."""
    return json.loads((RECORDED / rel).read_text(encoding="utf-8"))


def _rewrite(doc: Any, old: str, new: str) -> Any:
    if isinstance(doc, str):
        return new + doc[len(old):] if doc.startswith(old) else doc
    if isinstance(doc, list):
        return [_rewrite(x, old, new) for x in doc]
    if isinstance(doc, dict):
        return {k: _rewrite(v, old, new) for k, v in doc.items()}
    return doc


def localize_assets(item: Mapping[str, Any], files_url: str) -> dict[str, Any]:
    """The recorded item with each https asset href moved to ``files_url/<host>/<path>`` (nothing else changed)."""
    it = json.loads(json.dumps(item))
    for a in it.get("assets", {}).values():
        u = urlparse(a.get("href", ""))
        if u.scheme == "https":
            a["href"] = f"{files_url}/{u.netloc}{u.path}" + (f"?{u.query}" if u.query else "")
    return it


@dataclass
class SasState:
    """Tokens a blob-like file server accepts; ``revoke()`` makes every issued one expire now."""

    valid: set[str] = field(default_factory=set)
    issued: int = 0
    ttl_s: float = 3600.0

    def revoke(self) -> None:
        self.valid.clear()


def _replay_handler(provider: str, items: Sequence[Mapping[str, Any]], state: Server, files: Path | None,
                    sas: SasState | None, sas_hosts: Sequence[str], honour_collections: bool,
                    page_size: int) -> type[_Handler]:
    real = REAL_ROOTS[provider]
    base = urlparse(real).path.rstrip("/")  # the API lives under the same path as the real one
    landing = recorded(f"{provider}/root.json")
    coll_docs: dict[str, Any] = {}
    if provider == "earth-search-v1":
        coll_docs = {c["id"]: c for c in recorded("earth-search-v1/collections.json")["collections"]}
    elif provider == "planetary-computer":
        for p in (RECORDED / provider).glob("collection-*.json"):
            c = json.loads(p.read_text())
            coll_docs[c["id"]] = c
    children = [lk["href"].rsplit("/", 1)[-1] for lk in landing.get("links", []) if lk.get("rel") == "child"]

    class H(_Handler):
        server_state = state

        def _api(self) -> str:
            return state.url + base

        def _out(self, doc: Any, code: int = 200) -> None:
            self._send_json(_rewrite(doc, real, self._api()), code)

        def _search(self, q: Mapping[str, Any], method: str, path: str) -> dict[str, Any]:
            want, geom = _query_area(q)
            when = q.get("datetime")
            hits = []
            for it in items:
                p = it["properties"]
                t = p.get("datetime") or p.get("start_datetime")
                if want and honour_collections and it.get("collection") not in want:
                    continue
                if geom is not None and not shape(it["geometry"]).intersects(geom):
                    continue
                if when and not (_in_interval(t, when) or (p.get("end_datetime") and _overlaps(p, when))):
                    continue
                hits.append(it)
            start = int(q.get("page", 1)) - 1 if provider == "earth-search-v0" else 0
            tok = q.get("next") or q.get("token")
            if tok:  # ES v1 "<datetime>,<id>,<collection>"; PC "next:<collection>:<id>"
                last = str(tok).split(",")[1] if provider == "earth-search-v1" else str(tok).rsplit(":", 1)[-1]
                start = next(i + 1 for i, it in enumerate(hits) if it["id"] == last)
            elif provider == "earth-search-v0":
                start *= page_size
            page = hits[start:start + page_size]
            links: list[dict[str, Any]] = []
            more = start + page_size < len(hits) or (provider == "earth-search-v1" and page)  # ES: an empty last page
            if more and page:
                nq = {k: v for k, v in q.items() if k not in ("next", "token", "page")}
                last = page[-1]
                if provider == "earth-search-v1":
                    links.append({"rel": "next", "method": "POST", "href": real + "/search", "merge": False,
                                  "body": {**nq, "next": f"{last['properties']['datetime']},{last['id']},"
                                                         f"{last['collection']}"}})
                elif provider == "earth-search-v0":
                    links.append({"rel": "next", "method": "POST", "href": real + "/search", "merge": False,
                                  "body": {**nq, "page": start // page_size + 2}})
                elif method == "POST":
                    links.append({"rel": "next", "method": "POST", "href": real + "/search", "merge": False,
                                  "body": {**nq, "token": f"next:{last['collection']}:{last['id']}"}})
                else:
                    qs = urlencode({k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in nq.items()})
                    links.append({"rel": "next", "method": "GET",
                                  "href": f"{real}/search?{qs}&token=next:{last['collection']}:{last['id']}"})
            return {"type": "FeatureCollection", "features": [dict(it) for it in page], "links": links}

        def _file(self, path: str, qs: Mapping[str, list[str]]) -> None:
            rel = path[len("/files/"):]
            host = rel.split("/", 1)[0]
            if sas is not None and host in sas_hosts:
                sig = (qs.get("sig") or [""])[-1]
                if sig not in sas.valid:
                    self._send(403, b"<Error><Code>AuthenticationFailed</Code></Error>", "application/xml")
                    return
            assert files is not None
            p = (files / rel).resolve()
            if files not in p.parents or not p.is_file():
                self._send(404, b"not found", "text/plain")
                return
            data = p.read_bytes()
            rng = self.headers.get("Range")
            ranges = _ranges(rng, len(data)) if rng else None
            if not ranges:
                self._send(200, data, "image/tiff", {"Accept-Ranges": "bytes"})
                return
            a, b = ranges[0]
            self._send(206, data[a:b + 1], "image/tiff",
                       {"Accept-Ranges": "bytes", "Content-Range": f"bytes {a}-{b}/{len(data)}"})

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path, qs = self._record()
            if self._fault(path):
                return
            if path.startswith("/files/"):
                self._file(path, qs)
                return
            if path.startswith("/sas/token/") and sas is not None:
                sas.issued += 1
                sig = f"tok{sas.issued}"
                sas.valid.add(sig)
                exp = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=sas.ttl_s)
                self._send_json({"msft:expiry": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "token": f"st=2025-01-01T00%3A00%3A00Z&se={exp:%Y-%m-%dT%H}%3A00%3A00Z&sp=rl"
                                          f"&sv=2024-05-04&sr=c&sig={sig}"})
                return
            rest = path[len(base):].rstrip("/") if path.startswith(base) else None
            parts = [p for p in (rest or "").split("/") if p]
            if rest is None:
                self._send_json({"code": "NotFound", "description": path}, 404)
            elif not parts:
                self._out(landing)
            elif parts[0] == "collections" and len(parts) == 2:
                cid = parts[1]
                if cid in coll_docs:
                    self._out(coll_docs[cid])
                elif cid in children:  # listed by the recorded landing page, its document not recorded
                    self._out({"type": "Collection", "id": cid, "stac_version": landing.get("stac_version"),
                               "links": [{"rel": "root", "href": real + "/"},
                                         {"rel": "items", "href": f"{real}/collections/{cid}/items"}]})
                else:
                    self._out(recorded("earth-search-v1/collection-foo-404.json"), 404)
            elif parts == ["search"]:
                self._out(self._search({k: v[-1] for k, v in qs.items()}, "GET", path))
            else:
                self._send_json({"code": "NotFound", "description": path}, 404)

        def do_POST(self) -> None:
            path, _ = self._record()
            body = self._body()
            if self._fault(path):
                return
            if path.rstrip("/") == base + "/search":
                self._out(self._search(body, "POST", path))
            else:
                self._send_json({"code": "NotFound", "description": path}, 404)

    return H


def _overlaps(props: Mapping[str, Any], interval: str) -> bool:
    """An item's start..end interval meets a search interval."""
    a, _, b = interval.partition("/")
    s, e = _parse_time(props["start_datetime"]), _parse_time(props["end_datetime"])
    return (a in ("", "..") or e >= _parse_time(a)) and (b in ("", "..") or s <= _parse_time(b))


@contextmanager
def replay_api(provider: str, items: Sequence[Mapping[str, Any]] = (), *, files: str | Path | None = None,
               sas: SasState | None = None, sas_hosts: Sequence[str] = (), honour_collections: bool = True,
               page_size: int = 2) -> Iterator[Server]:
    """A provider's recorded API replayed on 127.0.0.1 at ``server.url + <the real path>``.

    The landing page and collections are the recorded ones; /search answers with the given
    recorded ``items`` (already moved to ``server.url + "/files/..."`` by :func:`localize_assets`)
    paged the way that provider pages (ES v1 ``next`` tokens in POST bodies ending on an empty
    page, v0 page numbers, PC ``token=next:...``). ``files`` serves COGs at ``/files/``; with
    ``sas``, paths under ``sas_hosts`` answer 403 unless signed with a live token from
    ``/sas/token/{account}/{container}`` (PC's token endpoint, pointed here).
    ``honour_collections=False`` answers a search with every collection's items, as a
    search without collections does.
    """
    root = Path(files).resolve() if files else None
    with _serve(lambda st: _replay_handler(provider, items, st, root, sas, sas_hosts, honour_collections,
                                           page_size)) as s:
        yield s
