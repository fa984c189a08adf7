"""SIGKILL a real run at several points; the file stays valid and the next run finishes the work.

The runs are real processes (the CLI, no Prefect so the kill lands in our code and not in
Prefect's server start-up), killed while they write. After each kill: GDAL's validator and
SQLite's integrity check pass, no scene is stored without its maps and metrics, and a
second run brings the detections to exactly those of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sitewatch.store import Store

CLI = [sys.executable, "-m", "sitewatch.cli.main"]


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return con.execute(sql).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def kill_when(cmd: list[str], db: Path, sql: str, at_least: int, timeout: float = 240) -> bool:
    """Start ``cmd``; SIGKILL it as soon as ``sql`` counts ``at_least`` rows. False if it finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if _count(db, sql) >= at_least:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check_intact(db: Path, gpkg_valid) -> None:
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # no observed scene without its maps and metrics
    orphans = con.execute(
        "SELECT count(*) FROM scenes s WHERE s.status='observed' AND s.site_id NOT LIKE 'scan-%' AND NOT EXISTS "
        "(SELECT 1 FROM sitewatch_scene_maps m WHERE m.site_id=s.site_id AND m.scene_id=s.scene_id)").fetchone()[0]
    con.close()
    assert orphans == 0
    gpkg_valid(db)


def detection_keys(db: Path) -> set[tuple]:
    return {(d.detection_id, d.kind, d.before_date, d.after_date) for d in Store(db).detections()}


@pytest.fixture(scope="module")
def scan_series(tmp_path_factory):
    from sitewatch.testbed.synth_region import make_region

    return make_region(tmp_path_factory.mktemp("killscan") / "data", 8.0, seed=5, blocks_per_100km2=6)


def test_scan_killed_at_several_points_then_finished(scan_series, tmp_path, gpkg_valid):
    def cmd(db: Path) -> list[str]:
        return [*CLI, "scan", "--region", scan_series.region, "--imagery", str(scan_series.catalog_path),
                "--db", str(db), "--tile-px", "128", "--batch-tiles", "1", "--no-prefect"]

    clean = tmp_path / "clean.gpkg"
    assert subprocess.run(cmd(clean), capture_output=True, timeout=300).returncode == 0
    want = detection_keys(clean)
    tiles = _count(clean, "SELECT count(*) FROM sitewatch_scan_tiles")
    assert want and tiles > 8
    for point in (0, 1, tiles // 3, (2 * tiles) // 3):
        db = tmp_path / f"killed-{point}.gpkg"
        sql = "SELECT count(*) FROM sitewatch_scan_tiles" if point else "SELECT count(*) FROM runs"
        killed = kill_when(cmd(db), db, sql, max(point, 1))
        assert killed, f"the scan finished before the kill point {point}"
        if db.exists():
            check_intact(db, gpkg_valid)
            assert _count(db, "SELECT count(*) FROM sitewatch_scan_tiles") < tiles
        r = subprocess.run(cmd(db), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        check_intact(db, gpkg_valid)
        assert detection_keys(db) == want, f"kill at {point}"


def test_monitor_killed_at_several_points_then_finished(tmp_path, gpkg_valid):
    import json

    demo = pytest.importorskip("sitewatch.testbed.demo")
    bundle = demo.make_demo(tmp_path / "data")
    # two of the demo's sites, the one with detections first, so the kill in the detection phase
    # lands while the other is still being read (the 0.5 m compound would only make it slower)
    doc = json.loads(bundle.sites_path.read_text())
    by_id = {f["properties"]["site_id"]: f for f in doc["features"]}
    doc["features"] = [by_id["demo-s2"], by_id["demo-control"]]
    sites = tmp_path / "sites.geojson"
    sites.write_text(json.dumps(doc))

    def cmd(db: Path) -> list[str]:
        return [*CLI, "monitor", "--sites", str(sites), "--imagery", str(bundle.catalog_path),
                "--db", str(db), "--no-prefect"]

    clean = tmp_path / "clean.gpkg"
    r = subprocess.run(cmd(clean), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    want = detection_keys(clean)
    scenes = _count(clean, "SELECT count(*) FROM scenes")
    assert want and scenes > 6
    # just after the file is made and the run registered; in the detection phase (the first
    # detections written, other sites still reading); and one scene before the end
    points = (("run registered", "SELECT count(*) FROM runs", 1),
              ("first detections", "SELECT count(*) FROM detections", 1),
              (f"{scenes - 1} scenes", "SELECT count(*) FROM scenes", scenes - 1))
    for point, sql, at_least in points:
        db = tmp_path / f"killed-{at_least}-{len(point)}.gpkg"
        assert kill_when(cmd(db), db, sql, at_least), f"finished before the kill point: {point}"
        check_intact(db, gpkg_valid)
        r = subprocess.run(cmd(db), capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        check_intact(db, gpkg_valid)
        assert detection_keys(db) == want, f"kill at {point}"
        assert _count(db, "SELECT count(*) FROM scenes") == scenes
