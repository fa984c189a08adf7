"""HTTP for catalogs and COGs: every request has a timeout, every failure a bounded retry.

Imagery servers fail in ordinary ways (rate limits, 5xx, resets, stalls, truncated
bodies). A run must neither hang on one nor give up on the first: retries back off
exponentially (honouring ``Retry-After``), and after the last one the caller gets a
:class:`~sitewatch.errors.FetchError` naming the URL and what went wrong, so that scene is
recorded as failed and the run goes on.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import TYPE_CHECKING, Any

from .errors import FetchError

if TYPE_CHECKING:  # requests is imported when a request is made: a scan of local files never needs it
    import requests

#: Status codes worth retrying.
RETRY_STATUS = (429, 500, 502, 503, 504)
#: Attempts after the first.
MAX_RETRIES = 3
#: First backoff, seconds; doubles each retry.
BACKOFF_S = 0.5
#: Longest wait honoured from a ``Retry-After`` header.
MAX_RETRY_AFTER_S = 30.0
USER_AGENT = "sitewatch (+https://github.com/sitewatch/sitewatch)"


def timeout() -> tuple[float, float]:
    """(connect, read) seconds; ``SITEWATCH_HTTP_TIMEOUT`` sets the read timeout."""
    read = float(os.environ.get("SITEWATCH_HTTP_TIMEOUT", "30"))
    return (min(10.0, read), read)


def retries() -> int:
    return int(os.environ.get("SITEWATCH_HTTP_RETRIES", str(MAX_RETRIES)))


def session() -> requests.Session:
    """A Session that says it is sitewatch; pass it to :func:`request` to reuse connections.

    Timeouts and retries live in :func:`request`, not in the Session, so no request made
    through this module can go without them.
    """
    import requests

    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


def _retry_after(resp: requests.Response) -> float | None:
    v = resp.headers.get("Retry-After")
    if not v:
        return None
    try:
        return min(float(v), MAX_RETRY_AFTER_S)
    except ValueError:
        return None


def request(method: str, url: str, *, session: requests.Session | None = None, **kw: Any) -> requests.Response:
    """One HTTP request with timeouts and bounded, backed-off retries; FetchError at the end."""
    import requests

    s = session or requests.Session()
    kw.setdefault("timeout", timeout())
    headers = {"User-Agent": USER_AGENT, **kw.pop("headers", {})}
    last = "no attempt"
    n = retries()
    for attempt in range(n + 1):
        wait = BACKOFF_S * 2 ** attempt
        try:
            resp = s.request(method, url, headers=headers, **kw)
            if resp.status_code in RETRY_STATUS:
                last = f"HTTP {resp.status_code}"
                wait = _retry_after(resp) or wait
            elif resp.status_code >= 400:
                raise FetchError(f"{url}: HTTP {resp.status_code} {resp.reason}")
            else:
                body = resp.content  # read it all now, so a cut-off body is caught here
                expected = resp.headers.get("Content-Length")
                if expected is not None and "Content-Encoding" not in resp.headers and int(expected) != len(body):
                    last = f"truncated body ({len(body)} of {expected} bytes)"
                else:
                    return resp
        except FetchError:
            raise
        except requests.exceptions.Timeout:
            last = f"timed out after {kw['timeout'][1] if isinstance(kw['timeout'], tuple) else kw['timeout']} s"
        except requests.exceptions.ConnectionError as exc:
            last = f"connection failed ({_short(exc)})"
        except requests.exceptions.ChunkedEncodingError as exc:
            last = f"connection broken mid-body ({_short(exc)})"
        except requests.exceptions.RequestException as exc:
            raise FetchError(f"{url}: {_short(exc)}") from None
        if attempt < n:
            time.sleep(wait)
    raise FetchError(f"{url}: {last} (after {n + 1} attempts)")


def _short(exc: BaseException) -> str:
    s = str(exc)
    return s if len(s) < 160 else s[:157] + "..."


def get_json(url: str, session: requests.Session | None = None) -> Any:
    resp = request("GET", url, session=session)
    try:
        return resp.json()
    except (json.JSONDecodeError, ValueError):
        raise FetchError(f"{url}: response is not JSON") from None


def post_json(url: str, body: Any, session: requests.Session | None = None) -> Any:
    resp = request("POST", url, session=session, json=body)
    try:
        return resp.json()
    except (json.JSONDecodeError, ValueError):
        raise FetchError(f"{url}: response is not JSON") from None


def gdal_env() -> dict[str, Any]:
    """GDAL settings for reading remote COGs by range requests, with timeouts and retries."""
    t = timeout()
    return {
        "GDAL_HTTP_TIMEOUT": max(1, math.ceil(t[1])),  # curl reads 0 as "no timeout"
        "GDAL_HTTP_CONNECTTIMEOUT": max(1, math.ceil(t[0])),
        "GDAL_HTTP_MAX_RETRY": retries(),
        "GDAL_HTTP_RETRY_DELAY": BACKOFF_S,
        "GDAL_HTTP_RETRY_CODES": ",".join(str(c) for c in RETRY_STATUS),
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # never list a remote folder to open one file
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
        # a window's non-adjacent tiles one after another through /vsicurl/'s block cache: "YES" fetches
        # them in parallel but past the cache, so a reopened file or a neighbouring site fetched them
        # again. Latency is hidden by reading bands and scenes concurrently instead.
        "GDAL_HTTP_MULTIRANGE": "SERIAL",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",  # adjacent tiles in one request
        "GDAL_HTTP_MULTIPLEX": "YES",  # HTTP/2 servers: many ranges over one connection
        # /vsicurl/ keeps one block cache per process, keyed by URL (headers and file sizes too): a
        # file reopened in the same run (the red band's resolution, then its window; two sites in one
        # tile) is not fetched again while it fits. VSI_CACHE would add 25 MB per open file, local too.
        "CPL_VSIL_CURL_CACHE_SIZE": 128 * 1024 * 1024,
        "GDAL_HTTP_USERAGENT": USER_AGENT,
    }
