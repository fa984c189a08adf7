"""verify: any edit, deletion or reordering of reviews, or a status that is not the latest
decision, is caught and named; a sound file verifies with counts."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner
from fixtures_review import build_findings

from sitewatch import gpkg
from sitewatch.cli.main import cli
from sitewatch.errors import ChainError
from sitewatch.verify import verify


@pytest.fixture
def reviewed(tmp_path):
    fx = build_findings(tmp_path / "f.gpkg")
    s = fx.store
    reviews = [s.add_review("det-b1", "ana", "confirmed", "clear new roof"),
               s.add_review("det-w1", "bo", "rejected", "shadow"),
               s.add_review("det-t1", "ana", "confirmed"),
               s.add_review("det-b1", "cy", "rejected", "changed my mind"),
               s.add_review("det-b2", "bo", "confirmed")]
    return fx, reviews


def _attacker(path) -> sqlite3.Connection:
    """A writer like QGIS or sqlite3 with the GeoPackage functions, dropping any guard triggers."""
    con = sqlite3.connect(path, isolation_level=None)
    gpkg.register_functions(con)
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger' "
                               "AND tbl_name IN ('reviews', 'detections')").fetchall():
        con.execute(f'DROP TRIGGER "{name}"')
    return con


def _fails(path) -> str:
    with pytest.raises(ChainError) as exc:
        verify(path).raise_for_problems()
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_intact_file_verifies_with_counts(reviewed):
    fx, _ = reviewed
    rep = verify(fx.path)
    assert rep.ok and (rep.reviews, rep.detections, rep.scenes) == (5, 4, 4)
    r = CliRunner().invoke(cli, ["verify", "--db", str(fx.path)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("OK") and "5 reviews" in r.output and "4 detections" in r.output


def test_edited_note_is_named(reviewed):
    fx, reviews = reviewed
    con = _attacker(fx.path)
    con.execute("UPDATE reviews SET note='nothing to see' WHERE review_id=?", (reviews[1].review_id,))
    con.close()
    msg = _fails(fx.path)
    assert f"reviews record 2 (review_id={reviews[1].review_id})" in msg and "edited" in msg


def test_deleted_review_is_named(reviewed):
    fx, reviews = reviewed
    con = _attacker(fx.path)
    con.execute("DELETE FROM reviews WHERE review_id=?", (reviews[2].review_id,))
    con.close()
    msg = _fails(fx.path)
    # the record after the hole no longer links to the one before it
    assert f"review_id={reviews[3].review_id}" in msg and "deleted" in msg


def test_reordered_reviews_are_named(reviewed):
    fx, reviews = reviewed
    con = _attacker(fx.path)
    fid = dict(con.execute("SELECT review_id, fid FROM reviews").fetchall())
    a, b = fid[reviews[1].review_id], fid[reviews[2].review_id]
    con.execute("BEGIN")
    con.execute("UPDATE reviews SET fid=-1 WHERE fid=?", (a,))
    con.execute("UPDATE reviews SET fid=? WHERE fid=?", (a, b))
    con.execute("UPDATE reviews SET fid=? WHERE fid=-1", (b,))
    con.execute("COMMIT")
    con.close()
    msg = _fails(fx.path)
    assert f"reviews record 2 (review_id={reviews[2].review_id})" in msg and "reordered" in msg


def test_status_not_latest_decision_is_named(reviewed):
    fx, _ = reviewed
    con = _attacker(fx.path)
    con.execute("UPDATE detections SET status='confirmed' WHERE detection_id='det-b1'")  # latest says rejected
    con.close()
    msg = _fails(fx.path)
    assert "det-b1" in msg and "'rejected'" in msg


def test_unreviewed_detection_must_be_pending(tmp_path):
    fx = build_findings(tmp_path / "f.gpkg")
    con = sqlite3.connect(fx.path)
    gpkg.register_functions(con)
    con.execute("UPDATE detections SET status='confirmed' WHERE detection_id='det-w1'")  # allowed by the guards
    con.commit()
    con.close()
    r = CliRunner().invoke(cli, ["verify", "--db", str(fx.path)], standalone_mode=False)
    assert isinstance(r.exception, ChainError) and "det-w1" in str(r.exception) and "no review" in str(r.exception)


def test_cli_exit_codes(reviewed, tmp_path):
    import subprocess
    import sys
    fx, reviews = reviewed
    con = _attacker(fx.path)
    con.execute("UPDATE reviews SET reviewer='mallory' WHERE review_id=?", (reviews[0].review_id,))
    con.close()
    cmd = [sys.executable, "-m", "sitewatch.cli.main", "verify", "--db", str(fx.path)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "reviews record 1" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cmd[:-1] + [str(tmp_path / "missing.gpkg")], capture_output=True, text=True)
    assert r.returncode == 2 and "no such GeoPackage" in r.stderr and not (tmp_path / "missing.gpkg").exists()


def test_damaged_file_is_refused(tmp_path):
    fx = build_findings(tmp_path / "f.gpkg")
    con = sqlite3.connect(fx.path)
    con.execute("PRAGMA application_id = 0")
    con.close()
    rep = verify(fx.path)
    assert not rep.ok and "application_id" in rep.gpkg_problems[0]


def test_rehash_reports_changed_and_unreachable(tmp_path):
    """A GeoTIFF folder scene: same pixels verify, edited pixels are CHANGED, a moved file is unreachable."""
    rasterio = pytest.importorskip("rasterio")
    import datetime as dt

    import numpy as np
    from rasterio.transform import from_origin
    from shapely.geometry import box

    from sitewatch import catalog
    from sitewatch.grid import grid_for
    from sitewatch.reader import read_scene
    from sitewatch.sites import Site
    from sitewatch.store import SceneRecord, Store
    from sitewatch.verify import rehash

    folder = tmp_path / "tiffs"
    folder.mkdir()
    site = Site("s1", box(75.99, 39.47, 75.995, 39.474))
    g = grid_for(site.geometry, 2.0)
    tif = folder / "scene_2019-07-01.tif"
    data = (np.random.default_rng(1).uniform(0, 3000, (3, g.height + 20, g.width + 20))).astype("uint16")
    profile = dict(driver="GTiff", width=g.width + 20, height=g.height + 20, count=3, dtype="uint16", crs=g.crs,
                   transform=from_origin(g.transform.c - 20, g.transform.f + 20, 2.0, 2.0))
    with rasterio.open(tif, "w", **profile) as ds:
        ds.write(data)
    ref = catalog.discover(str(folder), aoi=site.geometry).scenes[0]
    raster = read_scene(ref, site.geometry, 2.0)
    store = Store(tmp_path / "f.gpkg")
    store.upsert_sites([site])
    store.save_scene(SceneRecord(ref.scene_id, "s1", str(folder), dt.datetime(2019, 7, 1, tzinfo=dt.timezone.utc),
                                 2.0, 0.0, 1.0, raster.sha256, "r", href=ref.href, grid_res_m=2.0))
    rep = rehash(store.path, verify(store.path))
    assert rep.rehash_counts["unchanged"] == 1, rep.rehash_lines
    with rasterio.open(tif, "r+") as ds:
        data[0, 30:40, 30:40] += 1
        ds.write(data)
    rep = rehash(store.path, verify(store.path))
    assert rep.rehash_counts["changed"] == 1 and "CHANGED" in rep.rehash_lines[0]
    r = CliRunner().invoke(cli, ["verify", "--db", str(store.path), "--rehash"])
    assert r.exit_code == 1 and "CHANGED" in r.output
    tif.unlink()
    rep = rehash(store.path, verify(store.path))
    assert rep.rehash_counts["unreachable"] == 1 and "unreachable" in rep.rehash_lines[0]


def test_expected_head_catches_cut_off_newest_review(reviewed):
    fx, reviews = reviewed
    head = verify(fx.path).head
    assert head == reviews[-1].hash
    con = _attacker(fx.path)
    con.execute("DELETE FROM reviews WHERE review_id=?", (reviews[-1].review_id,))
    con.execute("UPDATE detections SET status='pending' WHERE detection_id='det-b2'")  # cover the tracks
    con.close()
    assert verify(fx.path).ok  # the chain alone cannot tell
    r = CliRunner().invoke(cli, ["verify", "--db", str(fx.path), "--head", head[:16]], standalone_mode=False)
    assert isinstance(r.exception, ChainError) and "expected head" in str(r.exception)
