"""What a published timeline must not claim (issue 15 item 4), through the real CLI and its files.

Each test builds its own copy of the timeline fixture, changes it the way real data does
(local imagery paths, a reviewer rejecting a removal, a partly clouded scene, years of
scenes) and reads the files the `sitewatch timeline` command writes.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence
from shapely.geometry import MultiPolygon, box

from fixtures_timeline import ANNEX, CLEAR, PARTIAL, SITE_ID, add_partial_scene, build_timeline_db
from sitewatch import quicklook, timeline
from sitewatch.cli.main import main
from sitewatch.grid import grid_for, to_crs
from sitewatch.sites import Site
from sitewatch.store import DetectionRecord, MetricsRecord, SceneRecord, Store
from sitewatch.structures import KINDS, StructureMaps


def _cli(db: Path, out: Path, *extra: str, site: str = SITE_ID) -> Path:
    main(["timeline", site, "--db", str(db), "--out", str(out), *extra])
    return out / site / "index.html"


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _cite(page: str) -> str:
    return page.split('<p class="cite">')[1].split("</p>")[0]


def test_no_absolute_local_paths(tmp_path):
    fx = build_timeline_db(tmp_path / "f.gpkg")
    home = "/home/ana.reporter/imagery"
    with fx.store.write() as con:  # as a folder of GeoTIFFs under a home folder stores them
        con.execute("UPDATE scenes SET source=?, href=? || '/2017/' || scene_id || '.tif'", (home, home))
    page_path = _cli(fx.path, tmp_path / "out")
    page = page_path.read_text()
    prov = _csv(page_path.parent / "provenance.csv")
    assert prov and all(r["href"] == f"2017/{r['scene_id']}.tif" and r["source"] == "imagery (local)"
                        for r in prov), prov[0]
    for text in (page, (page_path.parent / "provenance.csv").read_text()):
        assert "/home/" not in text and "ana.reporter" not in text
    assert "2017/AER_20170412.tif" in page
    # a local static catalog: item hrefs relative to the catalog's folder; URLs unchanged
    assert timeline.public_href("/srv/x/cat/catalog.json", "/srv/x/cat/items/a.json") == "items/a.json"
    assert timeline.public_href("/srv/x/cat", "/elsewhere/b.tif") == "b.tif"
    assert timeline.public_href("https://e.org/catalog.json", "https://e.org/i/a.json") == "https://e.org/i/a.json"
    assert timeline.public_source("C:\\Users\\ana\\imagery") == "imagery (local)"


def test_citation_counts_confirmed_apart_from_unverified(tmp_path):
    fx = build_timeline_db(tmp_path / "f.gpkg")
    confirmed, pending = len(fx.detections("confirmed")), len(fx.detections("pending"))
    assert confirmed and pending
    cite = _cite(_cli(fx.path, tmp_path / "p", "--include-pending").read_text())
    assert f"{confirmed} confirmed changes and {pending} unverified machine detections (pending review)" in cite
    assert f"{confirmed + pending} changes" not in cite
    cite = _cite(_cli(fx.path, tmp_path / "c").read_text())
    assert f"{confirmed} confirmed changes." in cite and "unverified" not in cite


def test_desecuritisation_needs_a_confirmed_removal(tmp_path):
    fx = build_timeline_db(tmp_path / "f.gpkg")
    page = _cli(fx.path, tmp_path / "a").read_text()
    assert 'id="desecuritisation"' in page  # the towers' removal is confirmed: the fall is backed
    fx.store.add_review("det-towers-gone", "fay", "rejected", "towers still there, shadowed")
    page = _cli(fx.path, tmp_path / "b").read_text()
    assert 'id="desecuritisation"' not in page and 'id="unbacked-falls"' in page
    index = (tmp_path / "b" / "index.html").read_text()
    assert "<td>yes</td>" not in index  # nor in the index's desecuritisation column
    pending = _cli(fx.path, tmp_path / "c", "--include-pending").read_text()
    assert 'id="desecuritisation"' in pending and "unreviewed estimates" in pending


def _img(page: str, section: str, role: str) -> Image.Image:
    part = page.split(f'data-detection-id="{section}"')[1].split("</section>")[0]
    fig = part.split(f'<figure class="{role}"')[1].split("</figure>")[0]
    b64 = re.search(r'src="data:image/png;base64,([^"]+)"', fig).group(1)  # type: ignore[union-attr]
    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")


def test_partial_view_marked_not_a_drop_and_chips_clear_over_the_outline(tmp_path):
    fx = build_timeline_db(tmp_path / "f.gpkg")
    add_partial_scene(fx)
    pid = PARTIAL[0]
    page = _cli(fx.path, tmp_path / "o").read_text()
    # the strip marks it; it is no whole-site measurement, so no level fall ends on it
    chip = page.split(f'data-scene-id="{pid}"')[0].rsplit("<figure", 1)[1]
    assert 'class="chip partial"' in chip
    tl = timeline.collect(fx.store, SITE_ID)
    whole = [m for m in tl.metrics if not timeline.is_partial(next(s for s in tl.clear if s.scene_id == m.scene_id))]
    assert pid not in {m.scene_id for m in whole} and pid in {m.scene_id for m in tl.metrics}
    built = [m.built_area_m2 for m in sorted(whole, key=lambda m: m.acquired)]
    assert built == sorted(built)  # without the partial view the built area never drops
    assert all(pid not in (f.scene_from, f.scene_to) for f in tl.falls)
    partial_level = next(x.level for x in tl.levels if x.scene_id == pid)
    before_level = next(x.level for x in tl.levels if x.scene_id == CLEAR[3][0])
    assert partial_level is not None and before_level is not None and partial_level < before_level
    # the annex was dated by the partial view, under its cloud: pictured on the next scene clear over it
    did = ANNEX[0]
    after = page.split(f'data-detection-id="{did}"')[1].split("</section>")[0].split('<figure class="after"')[1]
    assert after.startswith(f' data-scene-id="{CLEAR[4][0]}"') and "pictured on 2019-09-14" in after
    img = np.asarray(_img(page, did, "after"), float)
    assert (img.min(axis=2) > 245).mean() < 0.02  # no white cloud in the picture
    # the same chip cut from the partial scene would have been cloud
    from sitewatch.chips import scene_pair_chips

    cloudy = scene_pair_chips(fx.store, fx.store.detection(did), None, pid).after
    assert cloudy is not None
    assert (np.asarray(Image.open(io.BytesIO(cloudy)).convert("RGB")).min(axis=2) > 245).mean() > 0.3


def test_page_links_index_and_data(tmp_path):
    fx = build_timeline_db(tmp_path / "f.gpkg")
    page = _cli(fx.path, tmp_path / "o").read_text()
    for name in ("../index.html", "findings.csv", "findings.geojson", "provenance.csv", "timelapse.gif"):
        assert f'href="{name}"' in page, name
        assert (page_dir := tmp_path / "o" / SITE_ID / name).resolve().exists(), page_dir
    index = (tmp_path / "o" / "index.html").read_text()
    assert f'href="{SITE_ID}/index.html"' in index and "empty-02/index.html" not in index  # only what was built


def _years_of_scenes(path: Path, n: int) -> tuple[Store, list[str]]:
    """A small site seen every week for years: ``n`` whole-site scenes, one confirmed change."""
    store = Store(path)
    lon, lat = 80.0, 40.0
    geom = box(lon - 0.002, lat - 0.0015, lon + 0.002, lat + 0.0015)
    store.upsert_sites([Site("weekly-01", geom, "Weekly", None)])
    grid = grid_for(geom, 10.0)
    run = store.start_run("monitor", {"fixture": True})
    fp = to_crs(grid.footprint(), grid.crs, "EPSG:4326")
    rng = np.random.default_rng(3)
    ids = []
    for i in range(n):
        when = dt.datetime(2016, 1, 4, 5, tzinfo=dt.timezone.utc) + dt.timedelta(days=7 * i)
        sid = f"S{i:04d}"
        p = {k: np.zeros(grid.shape, bool) for k in KINDS}
        maps = StructureMaps(grid, KINDS, p, {k: v.astype(np.float32) for k, v in p.items()},
                             np.ones(grid.shape, bool))
        g = rng.uniform(0.08, 0.12, size=grid.shape).astype(np.float32)
        store.save_scene(
            SceneRecord(scene_id=sid, site_id="weekly-01", source="https://e.org/c.json", acquired=when, gsd_m=10.0,
                        cloud_fraction=0.0, valid_fraction=1.0, sha256="a" * 64, run_id=run, footprint=fp,
                        grid_res_m=10.0),
            maps=maps.to_bytes(), detector="fixture 0", quicklook=quicklook.png(quicklook.rgb8(
                {"red": g, "green": g, "blue": g})), grid=grid.to_dict(),
            metrics=MetricsRecord("weekly-01", sid, when, 100.0, None, None, None, None, run, grid_res_m=10.0))
        ids.append(sid)
    b, a = n // 2 + 3, n // 2 + 4  # dated by two scenes an even sampling would likely skip
    d = DetectionRecord(detection_id="det-w", site_id="weekly-01", kind="building_new",
                        before_date=(dt.date(2016, 1, 4) + dt.timedelta(days=7 * b)),
                        after_date=(dt.date(2016, 1, 4) + dt.timedelta(days=7 * a)), before_scene_id=ids[b],
                        after_scene_id=ids[a], area_m2=400.0, length_m=None, score=0.9,
                        geometry=MultiPolygon([box(lon - 0.0002, lat - 0.0002, lon + 0.0002, lat + 0.0002)]),
                        run_id=run, evidence={})
    store.save_detections([d])
    store.add_review("det-w", "ana", "confirmed")
    store.finish_run(run, "completed", {})
    return store, ids


def test_years_of_scenes_are_capped_and_said(tmp_path):
    n = 180  # three and a half years of weekly scenes
    store, ids = _years_of_scenes(tmp_path / "w.gpkg", n)
    page_path = _cli(store.path, tmp_path / "o", site="weekly-01")
    page = page_path.read_text()
    shown = re.findall(r'<figure class="chip[^"]*" data-scene-id="([^"]+)"', page)
    frames = list(ImageSequence.Iterator(Image.open(page_path.parent / "timelapse.gif")))
    assert len(shown) < n and len(frames) == len(shown) and shown == sorted(shown)
    assert f"Showing {len(shown)} of {n} scenes" in page
    assert len(shown) == timeline.MAX_SCENES_SHOWN
    gaps = np.diff([ids.index(i) for i in shown])
    assert gaps.max() <= 2 * n / len(shown) + 2  # spread over the years, not the first ones only
    det = store.detection("det-w")
    assert {ids[0], ids[-1], det.before_scene_id, det.after_scene_id} <= set(shown)
    assert len(_csv(page_path.parent / "provenance.csv")) == n  # provenance stays complete


def test_public_paths_of_other_systems():
    assert timeline.public_href("C:\\Users\\ana\\imagery", "C:\\Users\\ana\\imagery\\a\\b.tif") == "a/b.tif"
    assert timeline.public_href("D:/x", "C:\\Users\\ana\\b.tif") == "b.tif"
    assert timeline.public_href(None, "/home/ana/b.tif") == "b.tif"
