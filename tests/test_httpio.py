"""HTTP: timeouts, bounded retries and one-line FetchErrors, against a real local server."""

from __future__ import annotations

import json
import time

import pytest
import rasterio
from servers import serve_dir

from sitewatch import httpio
from sitewatch.errors import FetchError


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.setattr(httpio, "BACKOFF_S", 0.05)
    (tmp_path / "doc.json").write_text(json.dumps({"hello": "world", "pad": "x" * 2000}))
    with serve_dir(tmp_path) as srv:
        yield srv


def test_get_json_plain(site):
    assert httpio.get_json(site.url + "/doc.json")["hello"] == "world"


@pytest.mark.parametrize("kind", ["500", "reset", "truncate"])
def test_recovers_after_two_failures(site, kind):
    site.fail("/doc.json", kind, times=2)
    assert httpio.get_json(site.url + "/doc.json")["hello"] == "world"
    assert len(site.seen("/doc.json")) == 3


def test_gives_up_with_url_and_reason(site):
    site.fail("/doc.json", "500", times=None)
    with pytest.raises(FetchError) as e:
        httpio.get_json(site.url + "/doc.json")
    msg = str(e.value)
    assert site.url + "/doc.json" in msg and "HTTP 500" in msg and "\n" not in msg
    assert len(site.seen("/doc.json")) == httpio.retries() + 1


def test_truncated_body_every_time_is_named(site):
    site.fail("/doc.json", "truncate", times=None)
    with pytest.raises(FetchError, match=r"doc\.json.*(truncated|broken|connection)"):
        httpio.get_json(site.url + "/doc.json")


def test_retry_after_is_honoured(site):
    site.fail("/doc.json", "429", times=1, retry_after=1.0)
    t0 = time.monotonic()
    assert httpio.get_json(site.url + "/doc.json")["hello"] == "world"
    first, second = site.seen("/doc.json")
    assert second.at - first.at >= 0.95  # the server's 1 s, not our 0.05 s backoff
    assert time.monotonic() - t0 < 5


def test_retry_after_is_capped(site, monkeypatch):
    monkeypatch.setattr(httpio, "MAX_RETRY_AFTER_S", 0.2)
    site.fail("/doc.json", "429", times=1, retry_after=3600)
    t0 = time.monotonic()
    httpio.get_json(site.url + "/doc.json")
    assert time.monotonic() - t0 < 2


def test_stall_times_out_in_bounded_time(site, monkeypatch):
    monkeypatch.setenv("SITEWATCH_HTTP_TIMEOUT", "0.3")
    monkeypatch.setenv("SITEWATCH_HTTP_RETRIES", "1")
    site.fail("/doc.json", "stall", times=None, stall_s=3)
    t0 = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        httpio.get_json(site.url + "/doc.json")
    assert time.monotonic() - t0 < 2.0


def test_404_is_not_retried(site):
    with pytest.raises(FetchError, match="404"):
        httpio.get_json(site.url + "/nope.json")
    assert len(site.seen("/nope.json")) == 1


def test_not_json_is_named(site, tmp_path):
    (tmp_path / "page.json").write_text("<html>sorry</html>")
    with pytest.raises(FetchError, match=r"page\.json: response is not JSON"):
        httpio.get_json(site.url + "/page.json")


def test_post_json(tmp_path):
    from servers import earth_search_item, stac_api

    items = [earth_search_item("a", "2024-01-01T00:00:00Z", (80, 40, 81, 41), {"red": "r.tif"})]
    with stac_api(items) as api:
        page = httpio.post_json(api.url + "/search", {"collections": ["sentinel-2-l2a"], "limit": 5})
    assert [f["id"] for f in page["features"]] == ["a"]


def test_timeouts_from_env(monkeypatch):
    monkeypatch.setenv("SITEWATCH_HTTP_TIMEOUT", "7")
    assert httpio.timeout() == (7.0, 7.0)
    monkeypatch.setenv("SITEWATCH_HTTP_TIMEOUT", "45")
    assert httpio.timeout() == (10.0, 45.0)
    monkeypatch.delenv("SITEWATCH_HTTP_TIMEOUT")
    assert httpio.timeout() == (10.0, 30.0)


def test_gdal_timeout_never_zero(monkeypatch):
    monkeypatch.setenv("SITEWATCH_HTTP_TIMEOUT", "0.4")
    assert int(httpio.gdal_env()["GDAL_HTTP_TIMEOUT"]) >= 1


def test_gdal_env_is_accepted_by_gdal(monkeypatch):
    env = httpio.gdal_env()
    assert int(env["GDAL_HTTP_TIMEOUT"]) >= 1
    assert "429" in env["GDAL_HTTP_RETRY_CODES"]
    assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    with rasterio.Env(**env) as e:
        opts = e.options
    assert opts["GDAL_HTTP_MAX_RETRY"] == env["GDAL_HTTP_MAX_RETRY"]


def test_session_factory_reuses_connections(site):
    s = httpio.session()
    assert s.headers["User-Agent"] == httpio.USER_AGENT
    for _ in range(3):
        assert httpio.request("GET", site.url + "/doc.json", session=s).json()["hello"] == "world"
