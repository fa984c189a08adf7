"""Remote reads fetch less: the mask first, a cloudy scene's bands never; results equal a local run's.

Real COGs on a real HTTP server on 127.0.0.1 (tests/servers.py), read by GDAL's /vsicurl/.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from rasterio.transform import from_origin
from rasterio.warp import transform_geom
from servers import serve_dir, write_cog
from shapely.geometry import box, mapping, shape

from sitewatch.monitor import MIN_VALID_FRACTION, monitor_site
from sitewatch.reader import read_scene
from sitewatch.scenes import BANDS, AssetRef, SceneRef
from sitewatch.sites import Site
from sitewatch.store import Store
from sitewatch.detect import default_detector

CRS = "EPSG:32645"
X0, Y0 = 500_000.0, 4_400_000.0
#: A 2 km site inside a 6 km scene.
SITE_UTM = box(X0 + 2000, Y0 - 4000, X0 + 4000, Y0 - 2000)


def _scene(root, name: str, scl_value: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = root / name
    d.mkdir()
    for i, band in enumerate(BANDS):
        data = (1500 + 400 * i + rng.normal(0, 80, (600, 600))).clip(1, 10000).astype("uint16")
        data[250:300, 250:330] += 1500  # a bright building, so clear scenes differ from each other in places
        write_cog(d / f"{band}.tif", data, CRS, from_origin(X0, Y0, 10, 10), blocksize=256)
    write_cog(d / "scl.tif", np.full((300, 300), scl_value, "uint8"), CRS, from_origin(X0, Y0, 20, 20),
              blocksize=256)


def _ref(base: str, name: str, day: int, cloud_cover: float | None = None) -> SceneRef:
    assets = {b: AssetRef(f"{base}/{name}/{b}.tif") for b in (*BANDS, "scl")}
    props = {} if cloud_cover is None else {"eo:cloud_cover": cloud_cover}
    return SceneRef(name, base, dt.datetime(2024, 5, day, 5, tzinfo=dt.timezone.utc), assets, properties=props)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    _scene(root, "clear-1", 4, 1)    # vegetation everywhere: clear
    _scene(root, "cloudy", 9, 2)     # cloud high probability everywhere
    _scene(root, "clear-2", 5, 3)    # bare soil: clear
    return root


def _aoi():
    return shape(transform_geom(CRS, "EPSG:4326", mapping(SITE_UTM)))


def _bytes(srv, name: str) -> int:
    """Bytes the server sent for one scene's files (from the Range headers it answered)."""
    total = 0
    for q in srv.seen():
        if q.path.startswith(f"/{name}/") and q.method == "GET" and q.range:
            for part in q.range[6:].split(","):
                a, _, b = part.partition("-")
                total += int(b) - int(a) + 1
    return total


def test_a_cloudy_scene_is_judged_by_its_mask_and_its_bands_are_never_fetched(scenes):
    with serve_dir(scenes) as srv:
        cloudy = read_scene(_ref(srv.url, "cloudy", 2), _aoi(), min_valid=MIN_VALID_FRACTION)
        clear = read_scene(_ref(srv.url, "clear-1", 1), _aoi(), min_valid=MIN_VALID_FRACTION)
        fetched = {q.path for q in srv.seen()}
        cloudy_bytes, clear_bytes = _bytes(srv, "cloudy"), _bytes(srv, "clear-1")
    assert cloudy.bands == {} and cloudy.valid_fraction == 0.0 and cloudy.cloud_fraction == 1.0
    assert set(clear.bands) == set(BANDS) and clear.valid_fraction > 0.99
    # red is opened for its resolution (the grid); no other band of the cloudy scene is asked for
    assert not {f"/cloudy/{b}.tif" for b in BANDS if b != "red"} & fetched
    assert {f"/clear-1/{b}.tif" for b in BANDS} <= fetched
    assert cloudy_bytes <= clear_bytes / 3, (cloudy_bytes, clear_bytes)


def test_reads_over_http_hash_and_mask_as_local_reads_do(scenes):
    with serve_dir(scenes) as srv:
        for name, day in (("clear-1", 1), ("cloudy", 2), ("clear-2", 3)):
            for min_valid in (None, MIN_VALID_FRACTION):
                remote = read_scene(_ref(srv.url, name, day), _aoi(), min_valid=min_valid)
                local = read_scene(_ref(str(scenes), name, day), _aoi(), min_valid=min_valid)
                assert remote.sha256 == local.sha256
                assert set(remote.bands) == set(local.bands)
                assert np.array_equal(remote.valid, local.valid)
                for b in remote.bands:
                    assert np.array_equal(remote.bands[b], local.bands[b], equal_nan=True)


def test_a_tile_called_cloud_free_is_read_in_one_go_and_gives_the_same_scene(scenes):
    """eo:cloud_cover 0: the mask is read beside the bands, not before; the pixels and hash are the same."""
    with serve_dir(scenes) as srv:
        told = read_scene(_ref(srv.url, "clear-2", 3, cloud_cover=0), _aoi(), min_valid=MIN_VALID_FRACTION)
        plain = read_scene(_ref(srv.url, "clear-2", 3), _aoi(), min_valid=MIN_VALID_FRACTION)
    assert told.sha256 == plain.sha256 and np.array_equal(told.valid, plain.valid)


def test_the_monitor_stores_a_scene_the_mask_rules_out_as_unusable_with_why(scenes, tmp_path):
    """Read ahead on threads, stored in date order; the cloudy scene unusable, named as judged by scl."""
    site = Site("s1", _aoi())
    store = Store(tmp_path / "f.gpkg")
    store.upsert_sites([site])
    run_id = store.start_run("monitor", {})
    with serve_dir(scenes) as srv:
        refs = [_ref(srv.url, n, d) for n, d in (("clear-1", 1), ("cloudy", 2), ("clear-2", 3))]
        res = monitor_site(store, site, refs, default_detector(), run_id)
    assert res.scenes_new == 2 and res.scenes_unusable == 1 and not res.failures
    rec = {r.scene_id: r for r in store.scenes("s1")}
    assert rec["cloudy"].status == "unusable" and "by scl, its bands not read" in (rec["cloudy"].error or "")
    assert rec["cloudy"].sha256 and rec["cloudy"].valid_fraction == 0.0
    assert rec["clear-1"].status == rec["clear-2"].status == "observed"


def test_no_byte_of_a_file_is_fetched_twice_in_a_run(scenes, tmp_path):
    """The red band is opened for its resolution and again for its window; two sites share each file:
    GDAL's /vsicurl/ cache serves the repeats, so no range of any file is asked for twice."""
    store = Store(tmp_path / "f.gpkg")
    west = SITE_UTM
    east = box(X0 + 3000, Y0 - 4500, X0 + 5000, Y0 - 2500)  # overlaps the first site
    sites = [Site(f"s{i}", shape(transform_geom(CRS, "EPSG:4326", mapping(g)))) for i, g in enumerate((west, east))]
    store.upsert_sites(sites)
    run_id = store.start_run("monitor", {})
    with serve_dir(scenes) as srv:
        refs = [_ref(srv.url, n, d) for n, d in (("clear-1", 1), ("cloudy", 2), ("clear-2", 3))]
        for site in sites:
            monitor_site(store, site, refs, default_detector(), run_id)
        got: dict[str, list[tuple[int, int]]] = {}
        for q in srv.seen():
            if q.method == "GET" and q.range:
                for part in q.range[6:].split(","):
                    a, _, b = part.partition("-")
                    got.setdefault(q.path, []).append((int(a), int(b)))
    assert got
    for path, spans in got.items():
        spans.sort()
        for (a0, b0), (a1, b1) in zip(spans, spans[1:]):
            assert a1 > b0, f"{path}: bytes {a1}-{min(b0, b1)} fetched twice"


def test_the_dry_run_expects_what_the_mask_first_run_fetches(scenes, tmp_path):
    """A dry run reads no pixel, so it cannot see that a site is under cloud; it weighs each scene's
    bands by the item's eo:cloud_cover. Against the run it predicts (a cloudy scene costs its mask):
    the expectation is within a fifth of what GDAL fetches, and the every-band bound is not."""
    import json

    from servers import earth_search_item, stac_api

    from sitewatch.cost import dry_run
    from sitewatch.monitor import MonitorParams, run

    sites = tmp_path / "sites.geojson"
    sites.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"site_id": "s1"}, "geometry": mapping(_aoi())}]}))
    bbox = shape(transform_geom(CRS, "EPSG:4326", mapping(box(X0, Y0 - 6000, X0 + 6000, Y0)))).bounds
    with serve_dir(scenes) as files:
        items = [earth_search_item(f"S2A_45TXN_202405{day:02d}_0_L2A", f"2024-05-{day:02d}T05:00:00Z", bbox,
                                   {b: f"{files.url}/{name}/{b}.tif" for b in (*BANDS, "scl")}, cloud_cover=cc)
                 for name, day, cc in (("clear-1", 1, 0.0), ("cloudy", 2, 90.0), ("clear-2", 3, 4.0))]
        with stac_api(items) as api:
            params = MonitorParams(sites=str(sites), imagery=api.url, db=str(tmp_path / "f.gpkg"),
                                   collection="sentinel-2-l2a")
            (cost,) = dry_run(params)
            seen = len(files.seen())
            (site,) = run(params).sites
            real = 0
            for q in files.seen()[seen:]:
                if q.method == "GET" and q.range:
                    a, b = q.range.split("=", 1)[1].split("-")
                    real += int(b) - int(a) + 1
    assert site.scenes_new == 2 and site.scenes_unusable == 1 and cost.scenes_to_read == 3
    assert 0.8 * real <= cost.bytes <= 1.25 * real, (cost.bytes, real)
    assert cost.bytes_max > 1.25 * real, "the cloudy scene's bands: the bound counts them, the run does not"


def test_the_progress_bar_counts_the_runs_reads_their_bytes_and_estimates_the_rest(scenes, tmp_path, capsys):
    """One site of two done: the run-wide bar has its three reads, a total that extrapolates the
    unsearched site by the searched one's mean, and the bytes of every window read (the mask of each
    scene, the bands of the two clear ones: the cloudy scene's bands are neither fetched nor counted)."""
    import rasterio

    from sitewatch.progress import rich_progress
    from sitewatch.reader import source_window, window_bytes
    from sitewatch.grid import grid_for

    site = Site("s1", _aoi())
    store = Store(tmp_path / "f.gpkg")
    store.upsert_sites([site])
    run_id = store.start_run("monitor", {})
    with serve_dir(scenes) as srv, rich_progress(reads=True) as rep:
        rep.plan(2)
        refs = [_ref(srv.url, n, d) for n, d in (("clear-1", 1), ("cloudy", 2), ("clear-2", 3))]
        res = monitor_site(store, site, refs, default_detector(), run_id)
        reads = rep.progress.tasks[0]
        shown = (reads.description, reads.completed, reads.total, reads.fields["nbytes"])
    assert res.scenes_new == 2 and res.scenes_unusable == 1
    grid = grid_for(_aoi(), 10.0)
    expected = 0
    for name, files in (("clear-1", (*BANDS, "scl")), ("cloudy", ("scl",)), ("clear-2", (*BANDS, "scl"))):
        for f in files:
            with rasterio.open(scenes / name / f"{f}.tif") as ds:
                expected += window_bytes(ds, source_window(ds, grid))[2]
    assert shown == ("reads (1 of 2 sites searched)", 3, 6, expected)
    assert "reads" in capsys.readouterr().err


@pytest.mark.parametrize("env, applied", [({}, True), ({"MALLOC_ARENA_MAX": "4"}, False)])
def test_the_heap_is_bounded_for_a_long_run_unless_the_user_chose_otherwise(env, applied):
    """glibc's allocator tuned in a fresh process (it is process-wide); a user's own setting wins."""
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    r = subprocess.run([sys.executable, "-c", "from sitewatch.reader import bound_heap; print(bound_heap())"],
                       capture_output=True, text=True, timeout=120, env={**clean, **env})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(applied)



@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Four clear dates of one site: a new 300 x 200 m building on the last two."""
    import rasterio

    root = tmp_path_factory.mktemp("series")
    for k in range(4):
        _scene(root, f"d{k}", 4, 10 + k)
        for b in BANDS if k >= 2 else ():
            with rasterio.open(root / f"d{k}" / f"{b}.tif") as ds:
                data = ds.read(1)
            data[320:340, 250:280] = 6000 + 300 * BANDS.index(b)
            write_cog(root / f"d{k}" / f"{b}.tif", data, CRS, from_origin(X0, Y0, 10, 10), blocksize=256)
    return root


def test_a_run_over_http_stores_what_a_run_over_the_same_files_by_path_stores(scenes, series, tmp_path):
    """The same items, their hrefs URLs on a server or the files' paths: the same scenes (status,
    pixel hash, fractions), measures and detections are stored; the benchmark's results hash agrees."""
    import json

    from servers import earth_search_item, stac_api

    from benchmarks.remote import results_hash, results_rows
    from sitewatch.monitor import MonitorParams, run

    sites = tmp_path / "sites.geojson"
    sites.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"site_id": "s1"}, "geometry": mapping(_aoi())}]}))
    bbox = shape(transform_geom(CRS, "EPSG:4326", mapping(box(X0, Y0 - 6000, X0 + 6000, Y0)))).bounds
    dated = [(f"d{k}", series, 1 + 7 * k) for k in range(4)] + [("cloudy", scenes, 10)]

    def items(base: dict) -> list[dict]:
        return [earth_search_item(f"S2A_45TXN_202405{day:02d}_0_L2A", f"2024-05-{day:02d}T05:00:00Z", bbox,
                                  {b: f"{base[d]}/{name}/{b}.tif" for b in (*BANDS, "scl")}, cloud_cover=30.0)
                for name, d, day in dated]

    local = tmp_path / "items.json"
    local.write_text(json.dumps({"type": "FeatureCollection", "features": items({series: series, scenes: scenes})}))
    run(MonitorParams(sites=str(sites), imagery=str(local), db=str(tmp_path / "local.gpkg"),
                      collection="sentinel-2-l2a"))
    with serve_dir(series) as a, serve_dir(scenes) as b, stac_api(items({series: a.url, scenes: b.url})) as api:
        run(MonitorParams(sites=str(sites), imagery=api.url, db=str(tmp_path / "remote.gpkg"),
                          collection="sentinel-2-l2a"))
    there, here = results_rows(tmp_path / "remote.gpkg"), results_rows(tmp_path / "local.gpkg")
    assert len(here["scenes"]) == 5 and all(r[3] for r in here["scenes"])
    assert sorted(r[2] for r in here["scenes"]) == ["observed"] * 4 + ["unusable"]
    assert here["detections"], "the new building is found, so detections are compared too"
    assert there == here
    assert results_hash(tmp_path / "remote.gpkg") == results_hash(tmp_path / "local.gpkg")


@pytest.mark.parametrize("base, told, ahead", [("https://example.org/cogs", None, 4), ("/data/tiffs", None, 1),
                                               ("/data/tiffs", "3", 3), ("https://example.org/cogs", "2", 2)])
def test_scenes_are_read_ahead_over_http_but_one_at_a_time_from_local_files(monkeypatch, base, told, ahead):
    """Four scenes in flight hide round trips; from local files they only add threads on the cores.
    SITEWATCH_SCENES_AHEAD overrides either."""
    import concurrent.futures

    import sitewatch.monitor as mon
    import sitewatch.sceneflow as flow

    if told is None:
        monkeypatch.delenv("SITEWATCH_SCENES_AHEAD", raising=False)
    else:
        monkeypatch.setenv("SITEWATCH_SCENES_AHEAD", told)
    pools: list[int] = []

    class Pool(concurrent.futures.ThreadPoolExecutor):
        def __init__(self, max_workers: int, **kw: object) -> None:
            pools.append(max_workers)
            super().__init__(max_workers=max_workers, **kw)

    monkeypatch.setattr(flow, "ThreadPoolExecutor", Pool)
    refs = [_ref(base, f"s{d}", d) for d in range(1, 7)]
    got = [ref.scene_id for ref, _ in mon._read_ahead(lambda r: r.scene_id, refs)]  # type: ignore[arg-type]
    assert got == [r.scene_id for r in refs] and pools == [ahead]
