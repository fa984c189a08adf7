"""A local review page: the queue, before/after chips, and decisions, from the standard library.

Runs on the reviewer's own machine, yet a browser will send it requests from any page it
visits. So: loopback only, the Host header must name loopback (DNS rebinding), a token is
needed on every request, and decisions need a CSRF token bound to the page's session
cookie. Decisions go through :meth:`Store.add_review`, which serialises concurrent writers.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import InputError, NotFoundError, SitewatchError
from .reviews import DECISIONS, STATUSES, dispute_line, disputes

if TYPE_CHECKING:
    from .store import DetectionRecord, Store

#: Hostnames the Host header may carry: anything else is a rebinding attempt or a proxy.
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
STATIC = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
MAX_BODY = 64 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def _is_loopback(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def queue_rows(store: Store, dets: Iterable[DetectionRecord],
               row: Callable[[DetectionRecord], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Rows for ``review list`` and the review page (``row`` makes one; default
    :func:`detection_row`): each with ``score`` and ``rank_score``;
    best first by ``rank_score`` once a ranking was learnt (:mod:`sitewatch.rerank`; else in the
    order given)."""
    from .rerank import rank_scores

    if row is None:
        disputed = disputes(store.reviews())
        row = lambda d: detection_row(d, disputed=d.detection_id in disputed)  # noqa: E731

    dets = list(dets)
    rs = rank_scores(store, dets)
    rows = [{**row(d), "rank_score": r} for d, r in zip(dets, rs)]
    if any(r is not None for r in rs):
        rows.sort(key=lambda r: (-(r["rank_score"] or 0.0), -float(r["score"]), r["detection_id"]))
    return rows


def detection_row(d: Any, *, disputed: bool) -> dict[str, Any]:
    """A detection as JSON-safe facts (the list and the web queue share this).

    ``disputed``: its reviewers disagree (:func:`sitewatch.reviews.disputes`), which its
    status alone (the latest decision) does not say.
    """
    return {"detection_id": d.detection_id, "site_id": d.site_id, "kind": d.kind,
            "before_date": d.before_date.isoformat(), "after_date": d.after_date.isoformat(),
            "before_scene_id": d.before_scene_id, "after_scene_id": d.after_scene_id,
            "area_m2": None if d.area_m2 is None else round(d.area_m2, 1),
            "length_m": None if d.length_m is None else round(d.length_m, 1),
            "score": d.score, "status": d.status, "disputed": disputed, "run_id": d.run_id}


def _json_bytes(obj: Any) -> bytes:
    # "<" escaped too, so a note can never close a tag even if this JSON ends up in HTML
    return json.dumps(obj, ensure_ascii=False, default=str).replace("<", "\\u003c").encode("utf-8")


class ReviewServer(ThreadingHTTPServer):
    """The review page and its JSON API over one findings GeoPackage."""

    daemon_threads = True

    def __init__(self, store: Any, host: str = "127.0.0.1", port: int = 8765, token: str | None = None):
        if not _is_loopback(host):
            raise InputError(f"review serve: --host {host} is not a loopback address; the review page is "
                             "for this machine only (use 127.0.0.1 or localhost)")
        self.store = store
        self.token = token or secrets.token_urlsafe(24)
        self._secret = secrets.token_bytes(32)
        self._sessions: set[str] = set()
        self._chips: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return  # the browser dropped a request it no longer wanted (an image replaced mid-load)
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/?token={self.token}"

    @property
    def cookie_name(self) -> str:
        return f"sitewatch_session_{self.server_address[1]}"  # cookies ignore ports; names do not

    def new_session(self) -> tuple[str, str]:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions.add(sid)
        return sid, self.csrf_for(sid)

    def csrf_for(self, sid: str) -> str:
        return hmac.new(self._secret, sid.encode(), hashlib.sha256).hexdigest()

    def session_ok(self, sid: str | None, csrf: str | None) -> bool:
        if not sid or not csrf:
            return False
        with self._lock:
            known = sid in self._sessions
        return known and hmac.compare_digest(self.csrf_for(sid), csrf)

    def chips(self, detection_id: str) -> Any:
        """Chips of a detection, cached: they only depend on stored quicklooks."""
        from .chips import detection_chips

        with self._lock:
            if detection_id in self._chips:
                self._chips.move_to_end(detection_id)
                return self._chips[detection_id]
        c = detection_chips(self.store, detection_id)
        with self._lock:
            self._chips[detection_id] = c
            while len(self._chips) > 128:
                self._chips.popitem(last=False)
        return c


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"
    server_version = "sitewatch-review"
    sys_version = ""

    # --- plumbing ------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # request lines carry the token; keep them out of terminals and logs

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", CSP)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, _json_bytes(obj), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        if host.startswith("["):
            name = host[: host.find("]") + 1]
        else:
            name = host.rsplit(":", 1)[0] if ":" in host else host
        return _is_loopback(name)

    def _token_ok(self, query: dict[str, list[str]], form: dict[str, Any] | None = None) -> bool:
        given = self.headers.get("X-Sitewatch-Token") or (query.get("token") or [""])[0]
        if not given and form:
            given = str(form.get("token") or "")
        return bool(given) and hmac.compare_digest(given.encode(), self.server.token.encode())

    def _session(self) -> str | None:
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie") or "")
        except Exception:  # a malformed cookie header is simply no session
            return None
        morsel = cookie.get(self.server.cookie_name)
        return morsel.value if morsel else None

    def _guard(self, query: dict[str, list[str]], form: dict[str, Any] | None = None) -> bool:
        if not self._host_ok():
            self._error(HTTPStatus.FORBIDDEN, "Host header must be 127.0.0.1 or localhost")
            return False
        if not self._token_ok(query, form):
            self._error(HTTPStatus.FORBIDDEN, "missing or wrong token")
            return False
        return True

    # --- GET -----------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._guard(query):
            return
        parts = [unquote(p) for p in url.path.split("/") if p]
        try:
            if not parts or parts == ["index.html"]:
                self._page()
            elif len(parts) == 2 and parts[0] == "static" and parts[1] in STATIC:
                body = files("sitewatch").joinpath("static", parts[1]).read_bytes()
                self._send(200, body, STATIC[parts[1]])
            elif parts == ["api", "queue"]:
                self._queue(query)
            elif len(parts) == 3 and parts[:2] == ["api", "detection"]:
                self._detection(parts[2])
            elif len(parts) == 4 and parts[:2] == ["api", "chip"] and parts[3] in (
                    "before.png", "after.png", "context.png"):
                png = getattr(self.server.chips(parts[2]), parts[3][:-4])
                if png is None:
                    self._error(HTTPStatus.NOT_FOUND, "no quicklook stored for that scene")
                else:
                    self._send(200, png, "image/png")
            else:
                self._error(HTTPStatus.NOT_FOUND, "not found")
        except NotFoundError as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except SitewatchError as exc:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))

    def _page(self) -> None:
        sid, csrf = self.server.new_session()
        template = files("sitewatch").joinpath("static", "review.html").read_text("utf-8")
        values = {"token": self.server.token, "csrf": csrf, "db": self.server.store.path.name}
        for k, v in values.items():
            template = template.replace("{{%s}}" % k, html.escape(v, quote=True))
        cookie = f"{self.server.cookie_name}={sid}; Path=/; HttpOnly; SameSite=Strict"
        self._send(200, template.encode("utf-8"), "text/html; charset=utf-8", {"Set-Cookie": cookie})

    def _queue(self, query: dict[str, list[str]]) -> None:
        status = (query.get("status") or ["pending"])[0]
        if status not in (*STATUSES, "disputed", "all"):
            self._error(HTTPStatus.BAD_REQUEST, f"unknown status {status!r}")
            return
        site = (query.get("site") or [None])[0] or None
        kind = (query.get("kind") or [None])[0] or None
        store = self.server.store
        disputed = disputes(store.reviews())
        dets = store.detections(status=status if status in STATUSES else None, site_id=site, kind=kind)
        if status == "disputed":
            dets = [d for d in dets if d.detection_id in disputed]
        counts = {s: 0 for s in (*STATUSES, "disputed")}
        for d in store.detections():
            counts[d.status] = counts.get(d.status, 0) + 1
            counts["disputed"] += d.detection_id in disputed
        self._json({"detections": queue_rows(self.server.store, dets,
                                             row=lambda d: detection_row(d, disputed=d.detection_id in disputed)),
                    "counts": counts})

    def _detection(self, detection_id: str) -> None:
        store = self.server.store
        d = store.detection(detection_id)
        scenes = {}
        for role, scene_id in (("before", d.before_scene_id), ("after", d.after_scene_id)):
            try:
                s = store.scene(d.site_id, scene_id)
                scenes[role] = {"scene_id": s.scene_id, "acquired": s.acquired.isoformat(), "source": s.source,
                                "gsd_m": s.gsd_m, "cloud_fraction": s.cloud_fraction, "sha256": s.sha256,
                                "href": s.href}
            except NotFoundError:
                scenes[role] = {"scene_id": scene_id, "missing": True}
        metrics = {m.scene_id: {k: v for k, v in m.__dict__.items() if k not in ("site_id", "run_id", "acquired")}
                   for m in store.metrics(d.site_id) if m.scene_id in (d.before_scene_id, d.after_scene_id)}
        try:
            site_name = store.site(d.site_id).name
        except NotFoundError:
            site_name = None
        reviews = store.reviews(d.detection_id)
        dispute = disputes(reviews).get(d.detection_id)
        self._json({**detection_row(d, disputed=dispute is not None), "site_name": site_name,
                    "evidence": dict(d.evidence), "scenes": scenes, "metrics": metrics,
                    "reviews": [r.__dict__ for r in reviews], "dispute": dispute})

    # --- POST ----------------------------------------------------------------------------

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
            self.close_connection = True
            return
        raw = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        form: dict[str, Any] = {}
        try:
            if ctype == "application/json":
                form = json.loads(raw or b"{}")
                if not isinstance(form, dict):
                    raise ValueError("not an object")
            elif ctype == "application/x-www-form-urlencoded":
                form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
        except (ValueError, UnicodeDecodeError):
            if self._guard(query):
                self._error(HTTPStatus.BAD_REQUEST, "body must be a JSON object or a form")
            return
        if not self._guard(query, form):
            return
        csrf = self.headers.get("X-CSRF-Token") or str(form.get("csrf") or "")
        if not self.server.session_ok(self._session(), csrf):
            self._error(HTTPStatus.FORBIDDEN, "missing or wrong CSRF token (reload the page)")
            return
        if url.path.rstrip("/") != "/api/review":
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        decision = str(form.get("decision") or "")
        detection_id = str(form.get("detection_id") or "")
        reviewer = str(form.get("reviewer") or "").strip()
        note = str(form.get("note") or "")
        if decision not in DECISIONS or not detection_id or not reviewer or len(reviewer) > 200 or len(note) > 10000:
            self._error(HTTPStatus.BAD_REQUEST, "needs detection_id, decision (confirmed or rejected), "
                                                "reviewer (up to 200 characters) and an optional note")
            return
        try:
            store = self.server.store
            review = store.add_review(detection_id, reviewer, decision, note)
            dispute = disputes(store.reviews(detection_id)).get(detection_id)
        except NotFoundError as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
            return
        except SitewatchError as exc:
            self._error(HTTPStatus.CONFLICT, str(exc))
            return
        self._json({"review": review.__dict__, "status": decision,
                    "dispute": None if dispute is None else dispute_line(detection_id, dispute)})
