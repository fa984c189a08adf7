"""``sitewatch monitor --site ID`` and ``--dry-run``: try one site first, and know the cost first.

The dry run is checked against the run it predicts: the same scenes found and to read, bytes
within a fifth of what GDAL then fetches over real HTTP, and it fetches a fraction of that
itself (headers and tile indexes, no tiles). It writes nothing: no GeoPackage is created and
an existing one stays byte for byte the same.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from servers import serve_dir

from sitewatch.cost import dry_run
from sitewatch.testbed.demo import make_demo
from sitewatch.monitor import MonitorParams, run
from sitewatch.store import Store


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("drydemo") / "data")


def cli(*args: str):
    return subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "monitor", *args, "--no-prefect"],
                          capture_output=True, text=True, timeout=300, env=os.environ.copy())


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _served(requests) -> int:
    total = 0
    for q in requests:
        if q.method == "GET" and q.path.endswith(".tif") and q.range:
            a, b = q.range.split("=", 1)[1].split("-")
            total += int(b) - int(a) + 1
    return total


def test_dry_run_predicts_the_run_over_http_and_reads_no_tiles(demo, tmp_path):
    db = tmp_path / "http.gpkg"
    with serve_dir(demo.catalog_path.parent) as srv:
        params = MonitorParams(sites=str(demo.sites_path), imagery=f"{srv.url}/catalog.json", db=str(db),
                               site_ids=("demo-s2",))
        (cost,) = dry_run(params)
        assert not db.exists(), "a dry run must not create the GeoPackage"
        dry_bytes = _served(srv.seen())
        seen = len(srv.seen())
        summary = run(params)
        real_bytes = _served(srv.seen()[seen:])
    (site,) = summary.sites
    assert (cost.site_id, cost.scenes_found, cost.scenes_to_read) == ("demo-s2", site.scenes_found, site.scenes_new)
    assert cost.how == ("tile index",) and not cost.problems
    assert 0.8 * real_bytes <= cost.bytes <= 1.25 * real_bytes, (cost.bytes, real_bytes)
    assert dry_bytes < real_bytes / 3, f"the dry run fetched {dry_bytes} bytes of {real_bytes}: it read pixels"
    assert cost.seconds > 0


def test_after_a_run_the_dry_run_has_nothing_left_to_read_and_changes_nothing(demo, tmp_path):
    db = tmp_path / "f.gpkg"
    r = cli("--sites", str(demo.sites_path), "--imagery", str(demo.catalog_path), "--db", str(db), "--site", "demo-s2")
    assert r.returncode == 0, r.stderr
    assert [s.site_id for s in Store(db).sites()] == ["demo-s2"], "--site runs only that site"
    before, mtime = sha(db), db.stat().st_mtime_ns
    r = cli("--sites", str(demo.sites_path), "--imagery", str(demo.catalog_path), "--db", str(db), "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(": ", 1) for line in r.stdout.splitlines())
    assert lines["demo-s2"].startswith("8 scenes found, 0 to read, 0 B in 0 reads")
    assert "7 scenes found, 7 to read" in lines["demo-compound"]
    assert "nothing read or written" in lines["total"]
    assert sha(db) == before and db.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("extra", [(), ("--dry-run",)])
def test_an_unknown_site_is_one_line_exit_2_and_nothing_written(demo, tmp_path, extra):
    db = tmp_path / "none.gpkg"
    r = cli("--sites", str(demo.sites_path), "--imagery", str(demo.catalog_path), "--db", str(db),
            "--site", "demo-s2", "--site", "nowhere", *extra)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"sitewatch: error: {demo.sites_path}: no site 'nowhere' (the file has 3 sites)"]
    assert "Traceback" not in r.stderr and not db.exists()


def test_dry_run_over_a_stac_api_skips_what_the_run_stores_unread(demo, tmp_path):
    """An overcast item (the catalog's eo:cloud_cover above the limit) is stored unusable without a
    read: the dry run counts it found, not to read, like the run."""
    import json

    from servers import earth_search_item, stac_api

    with serve_dir(demo.catalog_path.parent) as files:
        items = []
        for i, p in enumerate(sorted(demo.catalog_path.parent.glob("demo-sentinel-2/*/*.json"))):
            it = json.loads(p.read_text())
            hrefs = {k: f"{files.url}/demo-sentinel-2/{it['id']}/{a['href']}" for k, a in it["assets"].items()}
            items.append(earth_search_item(it["id"], it["properties"]["datetime"], it["bbox"], hrefs, offset=0.0,
                                           epsg=it["properties"]["proj:epsg"], cloud_cover=100.0 if i == 1 else 3.0))
        with stac_api(items, max_limit=3) as api:
            params = MonitorParams(sites=str(demo.sites_path), imagery=api.url, db=str(tmp_path / "api.gpkg"),
                                   collection="sentinel-2-l2a", site_ids=("demo-s2",))
            (cost,) = dry_run(params)
            (site,) = run(params).sites
    overcast = items[1]["id"]
    assert cost.scenes_found == site.scenes_found == 8
    assert cost.scenes_to_read == 7 and overcast not in cost.scene_ids
    assert any(overcast in u and "not read" in u for u in site.unusable)
