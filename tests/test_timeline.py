"""Timelines on the fixture GeoPackage: files, GIF frames, tables against the GeoPackage, the page."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from PIL import Image, ImageSequence
from shapely.geometry import shape

from fixtures_timeline import GROUND_PATCH, SITE_ID, TimelineFixture, build_timeline_db
from sitewatch import timeline
from sitewatch.cli.main import main

FILES = ("index.html", "metrics.png", "timelapse.gif", "findings.csv", "findings.geojson", "provenance.csv")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[TimelineFixture, Path, Path]:
    root = tmp_path_factory.mktemp("timeline")
    fx = build_timeline_db(root / "findings.gpkg")
    published = timeline.write_site(fx.path, SITE_ID, root / "published")
    with_pending = timeline.write_site(fx.path, SITE_ID, root / "pending", include_pending=True)
    return fx, published.parent, with_pending.parent


def _gpkg(path: Path, layer: str) -> list[dict]:
    meta, _, _, fields = pyogrio.raw.read(path, layer=layer, read_geometry=False, datetime_as_string=True)
    names = pyogrio.read_info(path, layer=layer)["fields"]
    return [dict(zip(names, row)) for row in zip(*fields)]


def _csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_files_written(built):
    _, folder, _ = built
    for name in FILES:
        assert (folder / name).stat().st_size > 0, name
    assert Image.open(folder / "metrics.png").size[0] >= 600


def test_gif_one_frame_per_clear_scene_in_date_order(built):
    fx, folder, _ = built
    gif = Image.open(folder / "timelapse.gif")
    frames = [f.convert("RGB") for f in ImageSequence.Iterator(gif)]
    clear = [s for s in _gpkg(fx.path, "scenes") if s["site_id"] == SITE_ID and s["status"] == "observed"]
    assert len(frames) == len(clear) == 5  # the cloudy scene (unusable) has no frame
    assert len({f.size for f in frames}) == 1
    # frames are on the site grid; the fixture's bare ground brightens with each date
    g = fx.grid
    r0, c0, r1, c1 = GROUND_PATCH
    sx, sy = frames[0].width / g.width, frames[0].height / g.height
    ground = [float(np.asarray(f)[int(r0 * sy):int(r1 * sy), int(c0 * sx):int(c1 * sx)].mean()) for f in frames]
    assert ground == sorted(ground) and ground[-1] - ground[0] > 40, ground
    # the date is burned in: the top-left label box is black behind white text
    corner = np.asarray(frames[0])[4:20, 4:60]
    assert (corner.max(axis=2) < 30).mean() > 0.3 and corner.max() > 200


def test_findings_match_the_geopackage(built):
    fx, published, pending = built
    dets = {d["detection_id"]: d for d in _gpkg(fx.path, "detections") if d["site_id"] == SITE_ID}
    reviews = _gpkg(fx.path, "reviews")
    for folder, shown in ((published, {"confirmed"}), (pending, {"confirmed", "pending"})):
        rows = _csv(folder / "findings.csv")
        assert list(rows[0]) == list(timeline.FINDING_FIELDS)
        assert {r["detection_id"] for r in rows} == {i for i, d in dets.items() if d["status"] in shown}
        assert "det-tower-bad" not in {r["detection_id"] for r in rows}  # rejected: never
        for r in rows:
            d = dets[r["detection_id"]]
            for k in ("kind", "before_date", "after_date", "before_scene_id", "after_scene_id", "status"):
                assert r[k] == str(d[k])[:10] if k.endswith("date") else r[k] == d[k], k
            assert float(r["area_m2"]) == pytest.approx(d["area_m2"])
            if d["status"] == "confirmed":
                last = [v for v in reviews
                        if v["detection_id"] == d["detection_id"] and v["decision"] == "confirmed"][-1]
                assert (r["reviewer"], r["reviewed_at"]) == (last["reviewer"], last["at"])
            else:
                assert r["reviewer"] == r["reviewed_at"] == ""
        gj = json.loads((folder / "findings.geojson").read_text())
        assert gj["type"] == "FeatureCollection" and "crs" not in gj
        assert [f["properties"]["detection_id"] for f in gj["features"]] == [r["detection_id"] for r in rows]
        for f in gj["features"]:
            geom = shape(f["geometry"])
            x, y = geom.centroid.x, geom.centroid.y
            assert 88.3 < x < 88.4 and 43.3 < y < 43.4  # lon, lat order
            assert all(p.exterior.is_ccw for p in geom.geoms)  # RFC 7946 right-hand rule
            assert f["properties"]["status"] == dets[f["id"]]["status"]
    assert [r["reviewer"] for r in _csv(published / "findings.csv") if r["detection_id"] == "det-wall"] == ["cho"]


def test_provenance_lists_every_scene_used(built):
    fx, folder, _ = built
    rows = _csv(folder / "provenance.csv")
    assert list(rows[0]) == list(timeline.PROVENANCE_FIELDS)
    scenes = {s["scene_id"]: s for s in _gpkg(fx.path, "scenes") if s["site_id"] == SITE_ID}
    assert [r["scene_id"] for r in rows] == fx.clear_ids
    assert fx.cloudy_id not in {r["scene_id"] for r in rows}
    for r in rows:
        s = scenes[r["scene_id"]]
        assert r["sha256"] == s["sha256"] and len(r["sha256"]) == 64
        assert r["source"] == s["source"] and r["collection"] == s["collection"] and r["href"] == s["href"]
        assert r["acquired"].endswith("Z") and r["acquired"][:10] == s["acquired"][:10]
    shown = {r["before_scene_id"] for r in _csv(folder / "findings.csv")} | {
        r["after_scene_id"] for r in _csv(folder / "findings.csv")}
    assert shown <= {r["scene_id"] for r in rows}


def test_page_escapes_and_flags(built):
    _, published, pending = built
    page = (published / "index.html").read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page  # the note, as text
    assert "estimate from imagery" in page and "Desecuritisation" in page
    assert "unverified" not in page.split("<h2 id=\"changes\">")[1].split("<h2")[0]
    assert page.count('class="pair unverified"') == 0
    assert (pending / "index.html").read_text().count('class="pair unverified"') == 2
    for word in ("http://", "https://"):  # only inside the provenance table, as text
        for chunk in page.split(word)[1:]:
            assert not chunk.startswith(("fonts", "cdn")), chunk[:40]
    assert ' src="http' not in page and " href=\"http" not in page


def test_write_all_index_and_site_without_scenes(tmp_path, built):
    fx, _, _ = built
    index = timeline.write_all(fx.path, tmp_path / "all", include_pending=True)
    text = index.read_text()
    assert 'href="camp-01/index.html"' in text and 'href="empty-02/index.html"' in text
    assert (tmp_path / "all" / "empty-02" / "index.html").exists()
    assert not (tmp_path / "all" / "empty-02" / "timelapse.gif").exists()
    assert _csv(tmp_path / "all" / "empty-02" / "findings.csv") == []


def test_cli(tmp_path, built, capsys):
    fx, _, _ = built
    main(["timeline", SITE_ID, "--db", str(fx.path), "--out", str(tmp_path / "o")])
    printed = capsys.readouterr().out.split()
    assert {Path(p).name for p in printed} == set(FILES) and all(Path(p).exists() for p in printed)
    with pytest.raises(SystemExit) as e:
        main(["timeline", "no-such-site", "--db", str(fx.path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "no-such-site" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main(["timeline", "--db", str(fx.path), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "SITE_ID or --all" in capsys.readouterr().err


@pytest.mark.browser
def test_page_in_headless_chromium(built):
    sync_api = pytest.importorskip("playwright.sync_api")
    fx, published, pending = built
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no /usr/bin/chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            for folder, pairs, unverified in ((published, 3, 0), (pending, 5, 2)):
                page = browser.new_page()
                requests: list[str] = []
                page.on("request", lambda r: requests.append(r.url))
                dialogs: list[str] = []
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.goto((folder / "index.html").as_uri(), wait_until="load")
                assert "pwned" not in page.title() and "sitewatch timeline" in page.title()
                assert page.locator("script").count() == 0 and dialogs == []
                dates = page.locator("figure.chip").evaluate_all("els => els.map(e => e.dataset.date)")
                assert len(dates) == len(fx.clear_ids) == 5 and dates == sorted(dates)
                assert page.locator("section.pair").count() == pairs
                assert page.locator("section.pair.unverified").count() == unverified
                assert page.locator("section.pair figure.before img").count() == pairs
                assert page.locator("section.pair figure.after img").count() == pairs
                broken = page.locator("img").evaluate_all(
                    "els => els.filter(e => !e.complete || !e.naturalWidth).length")
                assert broken == 0
                note = page.locator('section[data-detection-id="det-towers-gone"] .review-note').inner_text()
                assert note.startswith("<script>document.title=")
                assert "<script>alert('name')</script>" in page.locator("h1").inner_text()
                assert "Desecuritisation" in page.locator("#desecuritisation").inner_text()
                assert page.locator("tr.fall").count() == 1
                leaving = [u for u in requests if not u.startswith(("file://", "data:"))]
                assert leaving == [] and any(u.startswith("file://") for u in requests)
                page.close()
        finally:
            browser.close()


def test_a_score_is_named_for_what_it_is():
    """Only a score fitted on real labelled detections is given as a share right."""
    from types import SimpleNamespace

    from sitewatch.timeline.page import _score_words

    real = SimpleNamespace(score=0.64, evidence={"score_model": "real"})
    other = SimpleNamespace(score=0.99, evidence={"score_model": "uncalibrated"})
    assert _score_words(real) == "Score 0.64 (share right of such detections on real labelled pairs)"  # type: ignore[arg-type]
    assert _score_words(other) == "Uncalibrated ranking score 0.99"  # type: ignore[arg-type]
    assert _score_words(SimpleNamespace(score=0.5, evidence={})).startswith("Uncalibrated")  # type: ignore[arg-type]
