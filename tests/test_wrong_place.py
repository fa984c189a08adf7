"""Input in the wrong place is said, not passed over: lat/lon swapped in a sites file or a region,
a place that matches no scene, a collection a static catalog does not hold. Through the real CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sitewatch.sites import buffer_point
from sitewatch.testbed.synth_region import make_region


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A real two-date catalog of tiled GeoTIFFs, 2 x 2 km near Urumqi (87.6 E, 43.0 N)."""
    return make_region(tmp_path_factory.mktemp("place") / "data", 2.0, seed=2, cloud=False)


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sitewatch.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def _centre(region):
    minx, miny, maxx, maxy = map(float, region.region.split(","))
    return (minx + maxx) / 2, (miny + maxy) / 2


def _csv(path, rows):
    path.write_text("site_id,name,lon,lat\n" + "".join(f"{i},{i},{x},{y}\n" for i, x, y in rows))
    return path


def test_sites_check_prints_the_extent_and_warns_when_lat_lon_look_swapped(region, tmp_path):
    lon, lat = _centre(region)
    good = cli("sites", "check", _csv(tmp_path / "good.csv", [("a", lon, lat)]))
    assert good.returncode == 0 and "1 sites OK" in good.stdout and good.stderr == ""
    x0, y0, x1, y1 = buffer_point(lon, lat, 500).bounds  # the default 500 m around the point
    assert f"lon {x0:.4f}..{x1:.4f}, lat {y0:.4f}..{y1:.4f}" in good.stdout, good.stdout
    swapped = cli("sites", "check", _csv(tmp_path / "swapped.csv", [("a", lat, lon), ("b", lat + 0.1, lon)]))
    assert swapped.returncode == 0 and "OK" not in swapped.stdout, swapped.stdout
    assert "lat 87." in swapped.stdout  # the extent shows where it really is: next to the pole
    assert "2 of 2 site(s)" in swapped.stderr and "swapped" in swapped.stderr and "a (lon" in swapped.stderr
    # a latitude beyond 90 with a longitude that could be one: refused, and why
    bad = cli("sites", "check", _csv(tmp_path / "beyond.csv", [("a", 43.0, 95.0)]))
    assert bad.returncode == 2 and "latitude 95 is outside -90..90 (lon and lat swapped?)" in bad.stderr


def test_monitor_names_every_site_that_matched_no_scene(region, tmp_path):
    """Swapped: named, with the hint that swapped it would match; far away: named, no such hint."""
    lon, lat = _centre(region)
    sites = _csv(tmp_path / "s.csv", [("swapped-1", lat, lon), ("far-1", 10.0, 50.0)])
    r = cli("monitor", "--sites", sites, "--imagery", region.catalog_path, "--db", tmp_path / "f.gpkg",
            "--no-prefect")
    assert r.returncode == 0, r.stderr
    assert "0 scenes found" in r.stdout
    assert f"{sites}: 2 sites in lon" in r.stdout
    assert "1 of 2 site(s)" in r.stderr and "swapped-1 (lon" in r.stderr  # warned before the run
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("no scene:")]
    assert len(lines) == 2, r.stderr
    swapped = next(ln for ln in lines if "site swapped-1" in ln)
    far = next(ln for ln in lines if "site far-1" in ln)
    assert "with lon and lat swapped it would match 2 scene(s)" in swapped
    assert "swapped" not in far and "lon 9.99" in far and "lat 49.99" in far


def test_scan_says_where_the_region_is_and_that_it_matched_no_scene(region, tmp_path):
    minx, miny, maxx, maxy = region.region.split(",")
    flipped = f"{miny},{minx},{maxy},{maxx}"
    r = cli("scan", "--region", flipped, "--imagery", region.catalog_path, "--db", tmp_path / "s.gpkg", "--no-prefect")
    assert "0 tiles" in r.stdout
    assert f"region: lon {float(miny):.4f}..{float(maxy):.4f}, lat {float(minx):.4f}" in r.stdout, r.stdout
    assert "are lon and lat swapped?" in r.stderr  # before the run
    assert f"no scene: region '{flipped}'" in r.stderr and "it would match 2 scene(s)" in r.stderr


def test_region_in_lat_lon_order_is_refused_for_the_right_reason(region, tmp_path):
    r = cli("scan", "--region", "37,87,44,95", "--imagery", region.catalog_path, "--db", tmp_path / "s.gpkg",
            "--no-prefect")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "latitude 95 is outside -90..90" in r.stderr and "87,37,95,44" in r.stderr, r.stderr
    assert not (tmp_path / "s.gpkg").exists()


def test_unknown_collection_of_a_static_catalog_is_refused(region, tmp_path):
    for cmd in (["scan", "--region", region.region], ["monitor", "--sites", _csv(tmp_path / "a.csv",
                                                                                   [("a", *_centre(region))])]):
        r = cli(*cmd, "--imagery", region.catalog_path, "--collection", "sentinel-2-l2", "--db",
                tmp_path / "x.gpkg", "--no-prefect")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        err = [ln for ln in r.stderr.splitlines() if ln.startswith("sitewatch: error")]
        assert len(err) == 1 and "collection 'sentinel-2-l2' is not in this static catalog" in err[0], r.stderr
        assert not (tmp_path / "x.gpkg").exists()
