"""Evidence that cannot be quietly changed (issue 15, items 1 and 7), through the real CLI and real files.

Each review binds the claim it judged; editing a reviewed detection with plain SQL or as QGIS
would (a moved date, a redrawn outline, other pixels, another detector) fails ``verify``
with a line naming the detection and the field. A file from before claims were hashed is
refused with one line saying how to upgrade it, and ``verify --upgrade`` keeps every row.
The file reads right in other tools: DATETIMEs with milliseconds, feature counts in
``gpkg_ogr_contents`` kept by sitewatch's own writes, and each scene's image (or a VRT of
its bands) ready to add as a raster layer.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_review import build_findings
from servers import earth_search_item, serve_dir, stac_api, write_cog
from shapely import affinity

from sitewatch import gpkg
from sitewatch.store import APPEND_ONLY_TRIGGERS, Store

HERE = Path(__file__).parent
V1_FILE = HERE / "data" / "findings-v0.1-chain1.gpkg"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sitewatch.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def sql(path: Path, *statements: tuple) -> None:
    """Plain SQL as any SQLite client would run it (with the GeoPackage functions QGIS/GDAL provide),
    by a writer set on it: the triggers that keep reviews append-only are dropped first."""
    con = sqlite3.connect(path, isolation_level=None)
    gpkg.register_functions(con)
    for name in APPEND_ONLY_TRIGGERS:
        con.execute(f'DROP TRIGGER IF EXISTS "{name}"')
    for st in statements:
        con.execute(*st)
    con.close()


@pytest.fixture
def confirmed(tmp_path):
    """The review fixture with det-b1 confirmed and det-w1 rejected through the CLI."""
    fx = build_findings(tmp_path / "f.gpkg")
    for det, verb in (("det-b1", "confirm"), ("det-w1", "reject")):
        r = cli("review", verb, det, "--db", str(fx.path), "--reviewer", "ana", "--note", "checked")
        assert r.returncode == 0, r.stderr
    assert cli("verify", "--db", str(fx.path)).returncode == 0
    return fx.path


def fails_naming(path: Path, *words: str) -> str:
    r = cli("verify", "--db", str(path))
    assert r.returncode == 1 and r.stdout == "", r.stdout + r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, r.stderr
    for w in words:
        assert w in line, line
    return line


# --- item 1: verify covers what was reviewed ------------------------------------------------


def test_moving_a_confirmed_detections_after_date_fails_verify(confirmed):
    sql(confirmed, ("UPDATE detections SET after_date = date(after_date, '+400 days') WHERE detection_id='det-b1'",))
    line = fails_naming(confirmed, "detection det-b1", "after_date", "2019-07-01", "2020-08-04")
    assert "confirmed by ana" in line


def test_an_outline_redrawn_as_qgis_would_fails_verify(confirmed):
    """QGIS (through GDAL) writes a new GeoPackage blob; the R-tree triggers follow it."""
    con = sqlite3.connect(confirmed)
    blob = con.execute("SELECT geom FROM detections WHERE detection_id='det-w1'").fetchone()[0]
    con.close()
    moved = affinity.translate(gpkg.from_blob(blob), xoff=0.0002)  # about 17 m east
    sql(confirmed, ("UPDATE detections SET geom=? WHERE detection_id='det-w1'", (gpkg.to_blob(moved),)))
    fails_naming(confirmed, "detection det-w1", "outline", "rejected by ana")


def test_a_rewritten_blob_of_the_same_outline_still_verifies(confirmed):
    """Header and envelope are the writer's business; only the coordinates are the claim."""
    con = sqlite3.connect(confirmed)
    blob = con.execute("SELECT geom FROM detections WHERE detection_id='det-b1'").fetchone()[0]
    con.close()
    import shapely

    g = gpkg.from_blob(blob)
    no_envelope = b"GP" + bytes([0, 0x01]) + blob[4:8] + shapely.to_wkb(g, byte_order=1, flavor="iso")
    assert no_envelope != blob
    sql(confirmed, ("UPDATE detections SET geom=? WHERE detection_id='det-b1'", (no_envelope,)))
    r = cli("verify", "--db", str(confirmed))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("statement, words", [
    ("UPDATE detections SET kind='wall_new' WHERE detection_id='det-b1'", ("kind", "'building_new'")),
    ("UPDATE detections SET area_m2 = area_m2 * 10 WHERE detection_id='det-b1'", ("area_m2",)),
    ("UPDATE detections SET detector='other-model 9' WHERE detection_id='det-b1'", ("detector", "other-model 9")),
    ("UPDATE detections SET after_scene_id='S2_kashgar-01_before' WHERE detection_id='det-b1'",
     ("after_scene_id",)),
    ("UPDATE scenes SET sha256=? WHERE scene_id='S2_kashgar-01_after'", ("sha256 of the after scene's pixels",)),
])
def test_every_field_of_the_claim_is_named(confirmed, statement, words):
    args = ("cd" * 32,) if "?" in statement else ()
    sql(confirmed, (statement, args))
    fails_naming(confirmed, "detection det-b1", *words)


def test_an_edited_claim_in_the_review_breaks_the_chain(confirmed):
    con = sqlite3.connect(confirmed)
    claim = json.loads(con.execute("SELECT claim FROM reviews WHERE detection_id='det-b1'").fetchone()[0])
    con.close()
    claim["after_date"] = "2020-08-04"
    sql(confirmed, ("UPDATE detections SET after_date='2020-08-04' WHERE detection_id='det-b1'",),
        ("UPDATE reviews SET claim=? WHERE detection_id='det-b1'", (json.dumps(claim),)))
    fails_naming(confirmed, "reviews record 1", "edited")


def test_unreviewed_detections_are_not_bound(confirmed):
    """A pending detection may still be re-dated by a later run; nothing judged it yet."""
    sql(confirmed, ("UPDATE detections SET after_date = date(after_date, '+400 days') WHERE detection_id='det-t1'",))
    assert cli("verify", "--db", str(confirmed)).returncode == 0


def old_file(tmp_path: Path) -> Path:
    p = tmp_path / "old.gpkg"
    shutil.copyfile(V1_FILE, p)
    return p


def test_a_file_from_an_earlier_version_says_how_to_upgrade(tmp_path, gpkg_valid):
    p = old_file(tmp_path)
    before = p.read_bytes()
    for args in (("verify", "--db", str(p)), ("review", "list", "--db", str(p)),
                 ("review", "confirm", "det-t1", "--db", str(p), "--reviewer", "ana")):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        line = r.stderr.strip()
        assert "\n" not in line and "Traceback" not in line
        assert f"sitewatch verify --db {p} --upgrade" in line and "earlier sitewatch" in line
    assert p.read_bytes() == before, "a refused file is not touched"


def test_upgrade_keeps_every_row_and_then_binds_the_claims(tmp_path, gpkg_valid):
    p = old_file(tmp_path)
    con = sqlite3.connect(p)
    old_reviews = con.execute("SELECT review_id, detection_id, reviewer, decision, note, at FROM reviews "
                              "ORDER BY fid").fetchall()
    old_head = old_reviews and con.execute("SELECT hash FROM reviews ORDER BY fid DESC LIMIT 1").fetchone()[0]
    counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
              for (t,) in con.execute("SELECT table_name FROM gpkg_contents").fetchall()}
    con.close()
    r = cli("verify", "--db", str(p), "--upgrade")
    assert r.returncode == 0, r.stderr
    assert "upgraded" in r.stdout and "3 reviews re-chained" in r.stdout and r.stdout.rstrip().splitlines()[-1].startswith("OK")
    con = sqlite3.connect(p)
    new_reviews = con.execute("SELECT review_id, detection_id, reviewer, decision, note, at FROM reviews "
                              "ORDER BY fid").fetchall()
    run = con.execute("SELECT params, summary FROM runs WHERE flow='upgrade'").fetchone()
    det = con.execute("SELECT detector FROM detections WHERE detection_id='det-b1'").fetchone()[0]
    new_counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in counts}
    con.close()
    # every review kept, same fields; times are the same instants with milliseconds
    assert [x[:5] for x in new_reviews] == [x[:5] for x in old_reviews]
    assert [x[5] for x in new_reviews] == [x[5][:-1] + ".000Z" for x in old_reviews]
    assert new_counts == {**counts, "runs": counts["runs"] + 1}
    assert json.loads(run[1])["old_head"] == old_head
    assert det == "fixture 0", "the detector comes from the stored maps"
    gpkg_valid(p)
    # a second upgrade is a no-op, and the upgraded file now binds its claims
    r = cli("verify", "--db", str(p), "--upgrade")
    assert r.returncode == 0 and "already current" in r.stdout
    assert _edit_refused(p, "UPDATE reviews SET note='x'"), "the upgraded file keeps reviews append-only"
    sql(p, ("UPDATE detections SET after_date = date(after_date, '+400 days') WHERE detection_id='det-b1'",))
    fails_naming(p, "detection det-b1", "after_date")


def _edit_refused(path: Path, statement: str) -> bool:
    """Whether a plain SQLite client (as QGIS's attribute table writes) is refused the statement."""
    con = sqlite3.connect(path, isolation_level=None)
    gpkg.register_functions(con)
    try:
        con.execute(statement)
    except sqlite3.DatabaseError as exc:
        assert "append-only" in str(exc), exc
        return True
    finally:
        con.close()
    return False


def test_reviews_cannot_be_edited_or_deleted_in_place(tmp_path):
    fx = build_findings(tmp_path / "f.gpkg")
    fx.store.add_review("det-b1", "ana", "confirmed", "clear new roof")
    fx.store.add_review("det-w1", "bo", "rejected", "shadow")
    before = [tuple(r) for r in sqlite3.connect(fx.path).execute("SELECT * FROM reviews ORDER BY fid")]
    for st in ("UPDATE reviews SET note='nothing to see' WHERE detection_id='det-w1'",
               "UPDATE reviews SET decision='confirmed'", "DELETE FROM reviews WHERE detection_id='det-b1'",
               "DELETE FROM reviews"):
        assert _edit_refused(fx.path, st), st
    assert [tuple(r) for r in sqlite3.connect(fx.path).execute("SELECT * FROM reviews ORDER BY fid")] == before
    r = cli("verify", "--db", str(fx.path))
    assert r.returncode == 0 and r.stdout.startswith("OK"), r.stdout + r.stderr
    # a new review is how a decision changes
    fx.store.add_review("det-w1", "cy", "confirmed", "a wall after all")
    assert fx.store.detection("det-w1").status == "confirmed"


def test_a_file_from_before_the_guard_gets_it_at_its_next_write(tmp_path):
    fx = build_findings(tmp_path / "f.gpkg")
    fx.store.add_review("det-w1", "bo", "rejected", "shadow")
    sql(fx.path)  # drops the append-only triggers, as a file made before them lacks them
    same = "UPDATE reviews SET note = note"  # touches every row, changes nothing
    assert not _edit_refused(fx.path, same)
    store = Store(fx.path)
    assert not _edit_refused(fx.path, same), "opening alone writes nothing"
    store.add_review("det-b1", "ana", "confirmed")
    assert _edit_refused(fx.path, same)
    assert _edit_refused(fx.path, "DELETE FROM reviews")
    assert len(store.reviews()) == 2


def test_upgrade_refuses_a_broken_old_chain_and_changes_nothing(tmp_path):
    p = old_file(tmp_path)
    sql(p, ("UPDATE reviews SET note='nothing to see' WHERE fid=2",))
    before = p.read_bytes()
    r = cli("verify", "--db", str(p), "--upgrade")
    assert r.returncode == 1 and "not upgraded" in r.stderr and "reviews record 2" in r.stderr
    assert "\n" not in r.stderr.strip()
    assert p.read_bytes() == before


# --- item 7: the GeoPackage in other tools --------------------------------------------------

MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def datetime_values(path: Path) -> dict[str, list[str]]:
    """``table.column`` to the values of every DATETIME column of every layer."""
    con = sqlite3.connect(path)
    out: dict[str, list[str]] = {}
    for (table,) in con.execute("SELECT table_name FROM gpkg_contents").fetchall():
        for col in con.execute(f'PRAGMA table_info("{table}")').fetchall():
            if str(col[2]).upper() == "DATETIME":
                out[f"{table}.{col[1]}"] = [v for (v,) in con.execute(f'SELECT "{col[1]}" FROM "{table}"') if v]
    out["gpkg_contents.last_change"] = [v for (v,) in con.execute("SELECT last_change FROM gpkg_contents")]
    con.close()
    return out


def assert_counts_right(path: Path) -> None:
    """gpkg_ogr_contents holds exact counts, and GDAL (through pyogrio) reports them."""
    import pyogrio

    con = sqlite3.connect(path)
    tables = [t for (t,) in con.execute("SELECT table_name FROM gpkg_contents WHERE data_type IN "
                                        "('features', 'attributes')").fetchall()]
    stored = dict(con.execute("SELECT table_name, feature_count FROM gpkg_ogr_contents").fetchall())
    real = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    con.close()
    assert {t: stored.get(t) for t in tables} == real
    for t in ("detections", "reviews", "scenes"):
        assert pyogrio.read_info(path, layer=t)["features"] == real[t]


# a small real site: two dates of 10 m imagery, 100 x 100 px, UTM 44N near Aksu
CRS, X0, Y0, RES, N = "EPSG:32644", 500_000.0, 4_560_000.0, 10.0, 100
DATES = (dt.date(2019, 4, 2), dt.date(2019, 9, 14))


def _bands(i: int) -> dict[str, np.ndarray]:
    # the same ground on both dates, with a little sensor noise (ground whose every pixel changes by
    # up to 20 % between dates is a scene the 10 m change model rightly does not compare)
    ground = np.random.default_rng(10).uniform(900, 1400, (N, N)) + np.random.default_rng(10 + i).normal(0, 10, (N, N))
    if i:
        ground[40:55, 45:65] = 3200  # a new hall
    return {"red": (ground * 1.08).astype("uint16"), "green": ground.astype("uint16"),
            "blue": (ground * 0.9).astype("uint16"), "nir": (ground * 1.3).astype("uint16")}


def _sites(root: Path) -> Path:
    from sitewatch.grid import to_crs
    from shapely.geometry import Point

    lon, lat = to_crs(Point(X0 + RES * N / 2, Y0 - RES * N / 2), CRS, "EPSG:4326").coords[0]
    p = root / "sites.csv"
    p.write_text(f"site_id,name,lon,lat,radius_m\naksu-t1,test site,{lon:.6f},{lat:.6f},300\n")
    return p


def test_a_monitor_run_and_reviews_write_conformant_times_and_counts(tmp_path, gpkg_valid):
    from rasterio.transform import from_origin

    folder = tmp_path / "tiffs"
    folder.mkdir()
    for i, d in enumerate(DATES):
        b = _bands(i)
        write_cog(folder / f"aksu_{d.isoformat()}.tif", np.stack([b["red"], b["green"], b["blue"], b["nir"]]), CRS,
                  from_origin(X0, Y0, RES, RES), descriptions=["red", "green", "blue", "nir"])
    db = tmp_path / "f.gpkg"
    r = cli("monitor", "--sites", str(_sites(tmp_path)), "--imagery", str(folder), "--db", str(db), "--no-prefect")
    assert r.returncode == 0, r.stderr
    # reviews too: the fixture's detections reviewed through the CLI land in another file
    fx = build_findings(tmp_path / "reviewed.gpkg")
    assert cli("review", "confirm", "det-b1", "--db", str(fx.path), "--reviewer", "ana").returncode == 0
    for path in (db, fx.path):
        values = datetime_values(path)
        for name in ("sites.added_at", "scenes.acquired", "site_metrics.acquired", "runs.started_at",
                     "runs.finished_at"):
            assert values[name], f"{path.name}: {name} holds nothing to check"
        bad = {k: [v for v in vs if not MS.match(v)] for k, vs in values.items()}
        assert not any(bad.values()), f"{path.name}: DATETIMEs without milliseconds: {bad}"
        assert_counts_right(path)
        gpkg_valid(path)
    assert datetime_values(fx.path)["reviews.at"]
    # each scene's image_href is the multi-band file itself: one step to a raster layer
    con = sqlite3.connect(db)
    rows = con.execute("SELECT scene_id, href, image_href FROM scenes ORDER BY acquired").fetchall()
    con.close()
    assert [Path(x[2]).name for x in rows] == [f"aksu_{d.isoformat()}.tif" for d in DATES]
    # the monitor's detections name the detector that made them, and a review binds it
    con = sqlite3.connect(db)
    made_by = {d for (d,) in con.execute("SELECT detector FROM detections")}
    maps_by = {d for (d,) in con.execute("SELECT detector FROM sitewatch_scene_maps")}
    con.close()
    assert made_by and made_by <= maps_by and "" not in made_by and None not in made_by


def test_counts_stay_right_when_gdal_has_dropped_its_triggers(confirmed):
    """GDAL drops the count triggers while QGIS edits a layer; sitewatch writing meanwhile recounts."""
    sql(confirmed, ('DROP TRIGGER "trigger_insert_feature_count_reviews"',),
        ('DROP TRIGGER "trigger_delete_feature_count_reviews"',))
    r = cli("review", "confirm", "det-t1", "--db", str(confirmed), "--reviewer", "bo")
    assert r.returncode == 0, r.stderr
    assert_counts_right(confirmed)


def test_separate_band_files_get_a_vrt_a_gis_opens_in_one_step(tmp_path, gpkg_valid):
    """Earth Search-shaped items over real HTTP: one COG per band; the scene's image_href is a VRT
    stacking red, green, blue whose pixels are the served bands'."""
    import rasterio
    from rasterio.transform import from_origin

    from sitewatch.grid import to_crs
    from shapely.geometry import box

    files = tmp_path / "cogs"
    files.mkdir()
    arrays = {}
    for i, d in enumerate(DATES):
        for band, a in _bands(i).items():
            write_cog(files / f"S2_{d:%Y%m%d}_{band}.tif", a, CRS, from_origin(X0, Y0, RES, RES))
            arrays[(d, band)] = a
    bbox = to_crs(box(X0, Y0 - RES * N, X0 + RES * N, Y0), CRS, "EPSG:4326").bounds
    db = tmp_path / "f.gpkg"
    with serve_dir(files) as srv:
        items = [earth_search_item(f"S2_{d:%Y%m%d}", f"{d.isoformat()}T05:10:00Z", bbox,
                                   {b: f"{srv.url}/S2_{d:%Y%m%d}_{b}.tif" for b in ("red", "green", "blue", "nir")},
                                   offset=0.0, epsg=32644) for d in DATES]
        with stac_api(items) as api:
            r = cli("monitor", "--sites", str(_sites(tmp_path)), "--imagery", api.url, "--db", str(db),
                    "--collection", "sentinel-2-l2a", "--no-prefect")
            assert r.returncode == 0, r.stderr
        con = sqlite3.connect(db)
        rows = con.execute("SELECT scene_id, href, image_href FROM scenes ORDER BY acquired").fetchall()
        con.close()
        assert len(rows) == 2
        for (scene_id, href, image), d in zip(rows, DATES):
            assert href != image and image.endswith(f"{scene_id}.vrt") and Path(image).parent == tmp_path / "f-scenes"
            with rasterio.open(image) as ds:
                assert ds.count == 3 and ds.crs.to_string() == CRS
                assert ds.transform == from_origin(X0, Y0, RES, RES)
                got = ds.read()
            for k, band in enumerate(("red", "green", "blue")):
                np.testing.assert_array_equal(got[k], arrays[(d, band)])
            assert "/vsicurl/http://127.0.0.1" in Path(image).read_text()
    gpkg_valid(db)
