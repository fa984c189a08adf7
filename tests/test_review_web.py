"""The local review page: guarded API (token, CSRF, Host) and a real browser session."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fixtures_review import build_findings

from sitewatch.reviewweb import ReviewServer, _Handler
from sitewatch.verify import verify

CHROMIUM = "/usr/bin/chromium"
NOTE = "<script>alert(1)</script>"


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[ReviewServer, object]]:
    fx = build_findings(tmp_path / "f.gpkg")
    server = ReviewServer(fx.store, port=0, token="t0k3n")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, fx
    finally:
        server.shutdown()
        server.server_close()


def request(server: ReviewServer, method: str, path: str, body: object = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = server.server_address[:2]
    con = http.client.HTTPConnection(host, port, timeout=10)
    data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    h = {"Content-Type": "application/json"} if body is not None and not isinstance(body, str) else {}
    if isinstance(body, str):
        h["Content-Type"] = "application/x-www-form-urlencoded"
    con.request(method, path, body=data, headers={**h, **(headers or {})})
    r = con.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    con.close()
    return out


def session(server: ReviewServer) -> tuple[str, str]:
    """Load the page like a browser: its session cookie and the CSRF token bound to it."""
    status, headers, body = request(server, "GET", "/?token=t0k3n")
    assert status == 200
    cookie = headers["set-cookie"].split(";")[0]
    csrf = body.decode().split('name="sitewatch-csrf" content="')[1].split('"')[0]
    return cookie, csrf


def test_api_guards(served):
    server, fx = served
    for path in ("/", "/static/review.js", "/api/queue", "/api/detection/det-b1", "/api/chip/det-b1/before.png"):
        assert request(server, "GET", path)[0] == 403, path
        assert request(server, "GET", path + "?token=wrong")[0] == 403, path
    assert request(server, "GET", "/api/queue", headers={"X-Sitewatch-Token": "t0k3n"})[0] == 200
    # DNS rebinding: right token, foreign Host
    assert request(server, "GET", "/?token=t0k3n", headers={"Host": "evil.example:8765"})[0] == 403
    assert request(server, "GET", "/?token=t0k3n", headers={"Host": "localhost:1"})[0] == 200

    cookie, csrf = session(server)
    review = {"detection_id": "det-b1", "decision": "confirmed", "reviewer": "ana"}
    tok = {"X-Sitewatch-Token": "t0k3n"}
    assert request(server, "POST", "/api/review", review, {**tok, "Cookie": cookie})[0] == 403  # no CSRF
    assert request(server, "POST", "/api/review", review, {**tok, "X-CSRF-Token": csrf})[0] == 403  # no session
    other_cookie, _ = session(server)
    assert request(server, "POST", "/api/review", review,
                   {**tok, "Cookie": other_cookie, "X-CSRF-Token": csrf})[0] == 403  # CSRF of another session
    assert request(server, "POST", "/api/review", review, {"Cookie": cookie, "X-CSRF-Token": csrf})[0] == 403
    assert fx.store.reviews() == []
    # a form post needs the same: token and csrf as fields, plus the session cookie
    form = f"detection_id=det-w1&decision=rejected&reviewer=bo&note=x&token=t0k3n&csrf={csrf}"
    assert request(server, "POST", "/api/review", form, {"Cookie": cookie})[0] == 200
    status, _, body = request(server, "POST", "/api/review", review, {**tok, "Cookie": cookie, "X-CSRF-Token": csrf})
    assert status == 200 and json.loads(body)["status"] == "confirmed"
    assert fx.store.detection("det-b1").status == "confirmed"
    assert request(server, "POST", "/api/review", {**review, "detection_id": "nope"},
                   {**tok, "Cookie": cookie, "X-CSRF-Token": csrf})[0] == 404
    assert request(server, "POST", "/api/review", {**review, "decision": "maybe"},
                   {**tok, "Cookie": cookie, "X-CSRF-Token": csrf})[0] == 400
    assert len(fx.store.reviews()) == 2 and verify(fx.path).ok


def test_page_escapes_and_sets_headers(served):
    server, _ = served
    status, headers, body = request(server, "GET", "/?token=t0k3n")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer" and "HttpOnly" in headers["set-cookie"]
    assert b"http://" not in body and b"https://" not in body  # nothing from elsewhere
    status, headers, body = request(server, "GET", "/api/detection/det-b1?token=t0k3n")
    assert b"<b>" not in body and json.loads(body)["evidence"]["label"] == "<b>bold</b>"


def test_refuses_non_loopback_host(tmp_path):
    from sitewatch.errors import InputError

    fx = build_findings(tmp_path / "f.gpkg")
    with pytest.raises(InputError, match="loopback"):
        ReviewServer(fx.store, host="0.0.0.0", port=0)


def _playwright() -> Any:
    """Playwright's sync API for the real Chromium, or a skip saying which of the two is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect.set_options(timeout=15_000)  # a loaded shared machine can take seconds per chip
    return sync_api


@pytest.mark.browser
def test_review_in_the_browser(served):
    sync_api = _playwright()
    expect = sync_api.expect
    server, fx = served
    host, port = server.server_address[:2]
    base = f"http://{host}:{port}"
    seen: list[str] = []
    dialogs: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)

            def record(route: object) -> None:
                url = route.request.url  # type: ignore[attr-defined]
                seen.append(url)
                if urlsplit(url).hostname == "127.0.0.1":
                    route.continue_()  # type: ignore[attr-defined]
                else:
                    route.abort()  # type: ignore[attr-defined]

            page.route("**/*", record)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            assert page.goto(base + "/").status == 403  # no token, no page
            page.goto(f"{base}/?token=t0k3n")
            # asked once who is reviewing
            page.locator("#identity-input").fill("Ana Reviewer")
            page.locator("#identity-form button").click()
            expect(page.locator("#queue li")).to_have_count(4)
            first = page.locator("#queue li.current").get_attribute("data-id")
            # the fixture's scores were fitted on nothing: the page must not present them as a share right
            expect(page.locator("#facts")).to_contain_text("uncalibrated ranking score")
            for img in ("#img-before", "#img-after", "#img-context"):
                # an <img> with its src removed (the page blanks chips while a detection loads) is
                # "complete" too: wait until the page shows it, which it does only once it has loaded
                expect(page.locator(img)).to_be_visible()
                expect(page.locator(img)).to_have_js_property("complete", True)
                assert page.locator(img).evaluate("e => e.naturalWidth") > 0, img
            # n / p move through the queue
            page.keyboard.press("n")
            expect(page.locator("#queue li.current")).not_to_have_attribute("data-id", first)
            page.keyboard.press("p")
            expect(page.locator("#title")).to_contain_text(f"({first})")
            # confirm with the keyboard, once the pictures are in (the buttons wait for them)
            expect(page.locator("#confirm")).to_be_enabled()
            page.keyboard.press("c")
            expect(page.locator("#queue li")).to_have_count(3)
            second = page.locator("#queue li.current").get_attribute("data-id")
            expect(page.locator("#title")).to_contain_text(f"({second})")
            # reject with a hostile note, also by keyboard (Esc leaves the note field)
            page.locator("#note").fill(NOTE)
            page.keyboard.press("Escape")
            expect(page.locator("#reject")).to_be_enabled()
            page.keyboard.press("r")
            expect(page.locator("#queue li")).to_have_count(2)

            assert fx.store.detection(first).status == "confirmed"
            assert fx.store.detection(second).status == "rejected"
            (r1,), (r2,) = fx.store.reviews(first), fx.store.reviews(second)
            assert (r1.reviewer, r1.decision, r1.note) == ("Ana Reviewer", "confirmed", "")
            assert (r2.reviewer, r2.decision, r2.note) == ("Ana Reviewer", "rejected", NOTE)
            assert verify(fx.path).ok

            # the note shows as text in the history, and nothing was injected or run
            page.select_option("#filter", "rejected")
            expect(page.locator("#history .note")).to_have_count(1)
            assert page.locator("#history .note").text_content() == NOTE
            expect(page.locator("script")).to_have_count(1)  # review.js only
            expect(page.locator("#history script")).to_have_count(0)
            assert dialogs == []

            # the page's own API refuses a POST without the CSRF token
            status = page.evaluate("""async () => (await fetch('/api/review', {method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-Sitewatch-Token': 't0k3n'},
                body: JSON.stringify({detection_id: 'det-w1', decision: 'confirmed', reviewer: 'x'})})).status""")
            assert status == 403
            status = page.evaluate("""async () => (await fetch('/api/queue')).status""")  # no token
            assert status == 403
            assert fx.store.detection("det-w1").status == "pending"

            # asked once: a reload remembers the reviewer
            page.reload()
            expect(page.locator("#queue li")).to_have_count(2)
            expect(page.locator("#identity")).to_be_hidden()
            expect(page.locator("#reviewer-name")).to_have_text("Ana Reviewer")
            expect(page.locator("#detail")).to_be_visible()
            expect(page.locator("#img-after")).to_be_visible()
            expect(page.locator("#img-after")).to_have_js_property("complete", True)
            page.screenshot(path=str(fx.path.parent / "review.png"))

            # swipe and blink work without errors
            page.keyboard.press("v")
            assert page.locator("#compare").get_attribute("class") == "swipe"
            page.keyboard.press("b")
            assert "blink" in (page.locator("#compare").get_attribute("class") or "")
        finally:
            browser.close()
    assert seen and all(urlsplit(u).hostname == "127.0.0.1" for u in seen), seen


class _SlowHandler(_Handler):
    """The real handler, with a detection's facts held back (to deliver responses out of order)."""

    def _detection(self, detection_id: str) -> None:
        time.sleep(self.server.json_delay.get(detection_id, 0.0))  # type: ignore[attr-defined]
        super()._detection(detection_id)

    def _queue(self, query: dict[str, list[str]]) -> None:
        time.sleep(self.server.queue_delay.get(query.get("status", [""])[0], 0.0))  # type: ignore[attr-defined]
        super()._queue(query)


class _SlowServer(ReviewServer):
    """The real review server whose chips of chosen detections come slowly, as from a slow disk."""

    def __init__(self, *args: object, **kw: object):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.chip_delay: dict[str, float] = {}
        self.json_delay: dict[str, float] = {}
        self.queue_delay: dict[str, float] = {}  # by the queue's status filter
        self.RequestHandlerClass = _SlowHandler

    def chips(self, detection_id: str) -> object:
        time.sleep(self.chip_delay.get(detection_id, 0.0))
        return super().chips(detection_id)


#: Pictures on the page that are visible but are not a fully loaded chip of the detection in the title.
_STALE = """(id) => [...document.querySelectorAll('#compare img, .more img')]
  .filter((i) => i.offsetParent !== null && i.getClientRects().length > 0)
  .filter((i) => !(i.complete && i.naturalWidth > 0 && decodeURIComponent(i.src).includes('/' + id + '/')))
  .map((i) => i.id)"""


@pytest.mark.browser
def test_no_decision_on_stale_pictures(tmp_path):
    """Slow chips: while they load, no picture of the previous detection and no decision."""
    sync_api = _playwright()
    expect = sync_api.expect
    fx = build_findings(tmp_path / "f.gpkg")
    server = _SlowServer(fx.store, port=0, token="t0k3n")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.set_default_timeout(10_000)
                page.goto(f"http://{host}:{port}/?token=t0k3n")
                page.locator("#identity-input").fill("Ana")
                page.locator("#identity-form button").click()
                # queue order: det-b2 (hotan-02), then kashgar-01's det-b1, det-t1, det-w1
                expect(page.locator("#queue li")).to_have_count(4)
                expect(page.locator("#confirm")).to_be_enabled()
                texts = page.locator("#queue li").all_text_contents()
                assert texts[0].startswith("1. ") and texts[1].startswith("2. ")
                for text, did in zip(texts, ("det-b2", "det-b1")):  # told apart by size too
                    assert f" · {round(fx.store.detection(did).area_m2)} m² · " in text, text

                # slow chips: pressing n must not leave det-b2's pictures under det-b1's title
                server.chip_delay["det-b1"] = 3.0
                page.keyboard.press("n")
                expect(page.locator("#queue li.current")).to_have_attribute("data-id", "det-b1")
                page.wait_for_timeout(600)
                assert page.evaluate(_STALE, "det-b1") == []
                expect(page.locator("#confirm")).to_be_disabled()
                expect(page.locator("#reject")).to_be_disabled()
                assert "det-b2" not in (page.locator("#title").text_content() or "")
                page.keyboard.press("c")  # a decision now would rest on no (or stale) pictures
                page.wait_for_timeout(300)
                assert fx.store.reviews() == []
                expect(page.locator("#confirm")).to_be_enabled(timeout=10_000)
                assert page.evaluate(_STALE, "det-b1") == []
                expect(page.locator("#img-after")).to_be_visible()
                page.keyboard.press("c")
                expect(page.locator("#queue li")).to_have_count(3)
                assert [r.detection_id for r in fx.store.reviews()] == ["det-b1"]

                # out of order: det-t1's facts and chips come late, after det-w1's; det-w1 must stay
                server.json_delay["det-t1"] = 2.0
                server.chip_delay["det-t1"] = 2.0
                expect(page.locator("#queue li.current")).to_have_attribute("data-id", "det-t1")
                page.keyboard.press("n")
                expect(page.locator("#title")).to_contain_text("(det-w1)")
                expect(page.locator("#confirm")).to_be_enabled()
                page.wait_for_timeout(4500)  # det-t1's responses arrive now
                expect(page.locator("#title")).to_contain_text("(det-w1)")
                assert page.evaluate(_STALE, "det-w1") == []
                expect(page.locator("#img-after")).to_be_visible()

                # a second reviewer disagrees: the page says so, and the queue can show disputed ones
                server.chip_delay.clear()
                server.json_delay.clear()
                fx.store.add_review("det-b2", "Bo", "rejected", "a shed")
                page.locator("#queue li[data-id='det-b2']").click()
                expect(page.locator("#confirm")).to_be_enabled()
                # the pending queue's reload after this decision answers late, after the disputed
                # one asked for next: the late answer must not draw over the queue the filter shows
                server.queue_delay["pending"] = 2.0
                page.keyboard.press("c")
                expect(page.locator("#message")).to_contain_text("det-b2 is disputed", timeout=20_000)
                expect(page.locator("#message")).to_contain_text("Bo rejected")
                page.select_option("#filter", "disputed")
                expect(page.locator("#queue li")).to_have_count(1)
                page.wait_for_timeout(2500)  # the pending queue's answer arrives now
                server.queue_delay.clear()
                expect(page.locator("#queue li")).to_have_count(1)
                expect(page.locator("#queue li")).to_contain_text("disputed")
                expect(page.locator("#dispute")).to_be_visible()
                expect(page.locator("#dispute")).to_contain_text("Ana confirmed; Bo rejected")
                expect(page.locator("#counts")).to_contain_text("1 disputed")
                assert fx.store.detection("det-b2").status == "confirmed" and verify(fx.path).ok
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
