"""Wide-area scan: planning, per-tile detection, resumable writes, the command."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import box, shape

from sitewatch import scan
from sitewatch.errors import InputError
from sitewatch.scan import blocks, reads
from sitewatch.scenes import AssetRef, SceneRef
from sitewatch.store import Store
from sitewatch.testbed.synth_region import make_region


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return make_region(tmp_path_factory.mktemp("region") / "data", 6.0, seed=11, blocks_per_100km2=8)


def refs_of(catalog: Path) -> list[SceneRef]:
    """SceneRefs straight from the item JSON, so these tests do not depend on catalog discovery."""
    out = []
    for link in json.loads(catalog.read_text())["links"]:
        if link["rel"] != "item":
            continue
        item = json.loads((catalog.parent / link["href"]).read_text())
        acquired = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
        assets = {k: AssetRef(str(catalog.parent / a["href"]), 1,
                              a.get("raster:bands", [{}])[0].get("scale", 1.0)) for k, a in item["assets"].items()}
        out.append(SceneRef(item["id"], str(catalog), acquired, assets, footprint=shape(item["geometry"])))
    return out


def test_plan_tiles_cover_the_region_once(region):
    refs = refs_of(region.catalog_path)
    area = box(*map(float, region.region.split(",")))
    jobs, failed = scan.plan(refs, area, tile_px=256)
    assert not failed
    ids = [j.tile_id for j in jobs]
    assert len(ids) == len(set(ids)) == 9  # 600 px square, 256 px tiles: 3 x 3
    assert all(len(j.scenes) == 2 and j.scenes[0].acquired < j.scenes[1].acquired for j in jobs)
    assert sum(j.area_km2 for j in jobs) == pytest.approx(region.area_km2, rel=0.02)
    # tiles are windows of the native grid: same pixel size, origins on pixel corners
    t0 = region.transform
    for j in jobs:
        assert j.transform.a == t0.a and ((j.transform.c - t0.c) / t0.a).is_integer()


def test_planted_blocks_found_and_nothing_else(region):
    refs = refs_of(region.catalog_path)
    jobs, _ = scan.plan(refs, box(*map(float, region.region.split(","))), tile_px=256)
    dets = [d for j in jobs for d in scan.scan_tile(j, "run-1").detections]
    planted = [shape(p["geometry"]) for p in region.planted]
    assert len(planted) >= 3
    found = [p for p in planted if any(d.geometry.intersects(p) for d in dets)]
    assert len(found) == len(planted), f"found {len(found)} of {len(planted)} planted blocks"
    false = [d for d in dets if not any(d.geometry.intersects(p) for p in planted)]
    assert not false, [(d.site_id, d.area_m2) for d in false]
    for d in dets:  # seasons, gain change and the cloud are not construction
        assert d.kind == "building_new" and d.site_id.startswith("scan-")
        assert d.before_date == dt.date(2018, 4, 10) and d.after_date == dt.date(2019, 8, 20)
        assert 0 < d.score <= 1 and 2000 <= d.area_m2 <= 4500


def test_tiles_are_written_once_and_resume(region, tmp_path, gpkg_valid):
    refs = refs_of(region.catalog_path)
    jobs, _ = scan.plan(refs, box(*map(float, region.region.split(","))), tile_px=256)
    params = scan.ScanParams(region=region.region, imagery=str(region.catalog_path), db=str(tmp_path / "f.gpkg"),
                             tile_px=256)
    store = Store(params.db)
    half = jobs[: len(jobs) // 2]
    s1 = scan.drain(store, params, "run-1", half, [], (scan.scan_tile(j, "run-1") for j in half))
    done = store.done_scan_tiles(params.key)
    assert done == {j.tile_id for j in half} and s1.status == "completed"
    rest = [j for j in jobs if j.tile_id not in done]
    scan.drain(store, params, "run-2", rest, [], (scan.scan_tile(j, "run-2") for j in rest))
    again = scan.drain(store, params, "run-3", jobs, [], (scan.scan_tile(j, "run-3") for j in jobs))
    assert again.detections_new == 0
    dets = store.detections()
    assert len({d.detection_id for d in dets}) == len(dets) == len(region.planted)
    for d in dets:  # every candidate is a site with the two scenes that date it
        assert store.site(d.site_id).geometry.contains(d.geometry.centroid)
        ids = {s.scene_id for s in store.scenes(d.site_id)}
        assert {d.before_scene_id, d.after_scene_id} <= ids
        assert all(len(s.sha256) == 64 for s in store.scenes(d.site_id))
    gpkg_valid(Path(params.db))


def test_read_region_forms(tmp_path):
    assert scan.read_region("87,43,88,44").bounds == (87, 43, 88, 44)
    assert scan.read_region("Xinjiang").area > 100
    gj = tmp_path / "r.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": box(87, 43, 87.5, 43.5).__geo_interface__}]}))
    assert scan.read_region(str(gj)).equals(box(87, 43, 87.5, 43.5))
    for bad in ("88,43,87,44", "a,b,c,d", str(tmp_path / "missing.geojson")):
        with pytest.raises(InputError, match="region"):
            scan.read_region(bad)


def test_scan_command_end_to_end(region, tmp_path, gpkg_valid):
    """The command, without Prefect, over the static catalog: finds the blocks, resumes to nothing new."""
    db = tmp_path / "scan.gpkg"
    cmd = [sys.executable, "-m", "sitewatch.cli.main", "scan", "--region", region.region,
           "--imagery", str(region.catalog_path), "--db", str(db), "--tile-px", "256", "--no-prefect"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{len(region.planted)} new detections" in r.stdout
    r2 = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0 and "0 new detections" in r2.stdout and "0 tiles" in r2.stdout
    gpkg_valid(db)
    # the stored evidence is what verify re-reads: every cited scene's pixels unchanged
    v = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "verify", "--db", str(db), "--rehash"],
                       capture_output=True, text=True, timeout=300)
    assert v.returncode == 0 and f"rehash: {2 * len(region.planted)} unchanged, 0 changed" in v.stdout, v.stdout
    bad = subprocess.run([*cmd[:5], "1,2,3", *cmd[6:]], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_scan_over_http_with_a_failing_file_is_partial_then_finished(region, tmp_path):
    """Remote COGs: a file that keeps failing leaves its tiles undone and named (exit 1); the next
    run, with the server healthy, scans only those and ends with every planted block."""
    from servers import serve_dir

    db = tmp_path / "remote.gpkg"
    env = {**__import__("os").environ, "SITEWATCH_HTTP_TIMEOUT": "2", "SITEWATCH_HTTP_RETRIES": "1"}
    with serve_dir(region.catalog_path.parent) as srv:
        cmd = [sys.executable, "-m", "sitewatch.cli.main", "scan", "--region", region.region,
               "--imagery", f"{srv.url}/catalog.json", "--db", str(db), "--tile-px", "256", "--no-prefect"]
        bad = next(p.name for p in region.files if p.name.endswith("_nir.tif") and "2019" in p.name)
        srv.fail(bad, "500", times=None)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert bad in r.stderr
        srv.faults.clear()
        r2 = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert r2.returncode == 0, r2.stderr
        assert any(q.range for q in srv.seen() if q.path.endswith(".tif"))
    dets = Store(db).detections()
    planted = [shape(p["geometry"]) for p in region.planted]
    assert all(any(d.geometry.intersects(p) for d in dets) for p in planted)
    assert [r.status for r in Store(db).runs()] == ["partial", "completed"]


# --- the per-pixel arithmetic works on the stored values: same answers as on reflectance ---------


def _tile_with_blocks(region):
    refs = refs_of(region.catalog_path)
    jobs, _ = scan.plan(refs, box(*map(float, region.region.split(","))), tile_px=256)
    for job in jobs:
        stack = [scan.read_tile(r, job) for r in job.scenes]
        if scan.new_blocks(stack, job.transform.a):
            return job, stack
    raise AssertionError("no tile with a planted block")


def _as_reflectance(ts):
    """The same scene stored as float32 reflectance (scale 1, offset 0)."""
    one = (np.float32(1), np.float32(0))
    return scan.TileScene(ts.ref, {k: v.copy() for k, v in ts.bands.items()}, {k: one for k in ts.dn}, ts.clear,
                          ts.source)


def _with_offset(ts):
    """The same scene stored as uint16 with an offset: (dn + 1000) * 1e-4 - 0.1."""
    dn = {k: (v.astype(np.uint32) + 1000).astype(np.uint16) for k, v in ts.dn.items()}
    return scan.TileScene(ts.ref, dn, {k: (np.float32(1e-4), np.float32(-0.1)) for k in ts.dn}, ts.clear,
                          ts.source)


def test_change_is_the_same_whatever_the_encoding(region):
    job, (s0, s1) = _tile_with_blocks(region)
    res = job.transform.a
    base = scan.new_blocks([s0, s1], res)
    assert len(base) == 1 and base[0].after == 1 and base[0].mask.sum() >= 15
    for stack in ([_as_reflectance(s0), s1], [s0, _as_reflectance(s1)], [s0, _with_offset(s1)],
                  [_with_offset(s0), _as_reflectance(s1)]):
        (pc,) = scan.new_blocks(stack, res)
        assert np.array_equal(pc.mask, base[0].mask)
        np.testing.assert_allclose(pc.magnitude[pc.mask], base[0].magnitude[base[0].mask], rtol=1e-4)
    # three dates, the middle one a re-encoded copy of the first: nothing new at date 1, the
    # blocks at date 2, dated from the middle scene (the last clear look before them)
    (pc,) = scan.new_blocks([s0, _as_reflectance(s0), s1], res)
    assert pc.after == 2 and np.array_equal(pc.mask, base[0].mask)
    assert set(np.unique(pc.before[pc.mask])) == {1}
    assert [c.before for c in scan.candidates([s0, _as_reflectance(s0), s1], job)] == [1] * len(
        scan.candidates([s0, s1], job))


def test_objects_are_those_of_labelling_the_whole_tile():
    from scipy import ndimage

    from sitewatch.components import components

    rng = np.random.default_rng(3)
    cand = rng.random((300, 257)) > 0.985  # scattered single pixels
    for r, c, h, w in [(10, 10, 3, 10), (40, 250, 10, 3), (100, 0, 4, 4), (297, 120, 3, 9), (150, 30, 1, 40)]:
        cand[r:r + h, c:c + w] = True
    lab, n = ndimage.label(cand)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    want = (sizes >= 12)[lab] & cand
    objects = components(np.flatnonzero(cand), cand.shape[1]).windows(12)
    got = np.zeros_like(cand)
    for win, part in objects:
        assert not got[win][part].any()  # no two objects share a pixel
        got[win] |= part
    assert np.array_equal(got, want) and len(objects) == 5


def test_scene_classes_and_medians_match_the_plain_forms():
    from sitewatch.scenes import SCL_MASKED

    every = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(reads._scl_clear(every), ~np.isin(every, SCL_MASKED))
    rng = np.random.default_rng(5)
    for n in (1, 2, 201, 2000):
        for dn, scale, offset in [(rng.integers(1, 12000, n).astype(np.uint16), 1e-4, 0.0),
                                  (rng.integers(0, 256, n).astype(np.uint8), 1 / 255, 0.0),
                                  (rng.integers(1000, 12000, n).astype(np.uint16), 1e-4, -0.1)]:
            s, o = np.float32(scale), np.float32(offset)
            assert blocks._median_of(dn, s, o) == float(np.median(reads.reflectance(dn, s, o)))
            x = rng.normal(size=n).astype(np.float32)
            assert blocks._median(x) == float(np.median(x))


def test_cited_scenes_are_hashed_as_the_reader_hashes_a_site(region):
    """A cited scene's sha256 is over the site's window (plus the reader's margin), as
    ``sitewatch verify --rehash`` reads it again, whether the window is inside the tile or crosses its edge."""
    from sitewatch.reader import read_scene

    refs = {r.scene_id: r for r in refs_of(region.catalog_path)}
    jobs, _ = scan.plan(list(refs.values()), box(*map(float, region.region.split(","))), tile_px=256)
    n = 0
    for job in jobs:
        res = scan.scan_tile(job, "run-1")
        sites = {s.site_id: s for s in res.sites}
        for sc in res.scenes:
            assert sc.sha256 == read_scene(refs[sc.scene_id], sites[sc.site_id].geometry, sc.grid_res_m).sha256
            n += 1
    assert n == 2 * len(region.planted)


def test_20_m_bands_are_read_over_the_same_ground_as_10_m_ones(region, tmp_path):
    """Earth Search's swir16 and scl are 20 m beside 10 m red: the tile must see the same ground
    in every band (nearest neighbour onto the 10 m pixels), and detections must not change."""
    import rasterio
    from rasterio.enums import Resampling

    refs = refs_of(region.catalog_path)
    jobs, _ = scan.plan(refs, box(*map(float, region.region.split(","))), tile_px=256)
    job = max(jobs, key=lambda j: len(scan.scan_tile(j, "r").detections))
    coarse_refs = []
    for ref in job.scenes:
        assets = dict(ref.assets)
        for name in ("swir16", "scl"):
            src = Path(ref.assets[name].href)
            dst = tmp_path / f"{ref.scene_id}_{name}_20m.tif"
            with rasterio.open(src) as ds:
                data = ds.read(1, out_shape=(ds.height // 2, ds.width // 2), resampling=Resampling.nearest)
                prof = ds.profile | {"width": ds.width // 2, "height": ds.height // 2,
                                     "transform": ds.transform * ds.transform.scale(2, 2)}
                prof.pop("blockxsize", None), prof.pop("blockysize", None), prof.update(tiled=False)
            with rasterio.open(dst, "w", **prof) as out:
                out.write(data, 1)
            assets[name] = AssetRef(str(dst), 1, ref.assets[name].scale)
        coarse_refs.append(SceneRef(ref.scene_id, ref.source, ref.acquired, assets, footprint=ref.footprint))
    fine = scan.read_tile(job.scenes[0], job)
    coarse = scan.read_tile(coarse_refs[0], job)
    with rasterio.open(coarse_refs[0].assets["swir16"].href) as ds:  # each 20 m pixel onto its four 10 m ones
        c0, r0 = (int(round(v)) for v in ~ds.transform * (job.transform.c, job.transform.f))
        want = np.repeat(np.repeat(ds.read(1)[r0:r0 + job.height // 2, c0:c0 + job.width // 2], 2, 0), 2, 1)
    assert np.array_equal(coarse.dn["swir16"], want)
    assert not np.array_equal(coarse.dn["swir16"][:128, :128], fine.dn["swir16"][:128, :128])  # really coarser
    assert np.mean(coarse.clear == fine.clear) > 0.95
    assert "swir16" not in coarse.source and "scl" not in coarse.source  # hashed from the file instead
    got = scan.scan_tile(scan.TileJob(job.tile_id, job.crs, job.transform, job.width, job.height,
                                      tuple(coarse_refs), job.area_km2, job.region), "r").detections
    assert len(got) == len(scan.scan_tile(job, "r").detections) >= 1


def _thread_map(workers):
    """Tiles on threads of this process, as Prefect's default thread runner runs them."""
    from concurrent.futures import ThreadPoolExecutor

    def run(fn, jobs):
        with ThreadPoolExecutor(workers) as ex:
            yield from ex.map(fn, jobs)

    return run


def test_threads_give_the_serial_result(tmp_path):
    """Tiles read on threads side by side must each read their own pixels: a GDAL dataset shared
    between threads gave "Read failed" (a partial scan, tiles lost) under Prefect's thread runner.
    Tiles of 256 px, 1,200 px files: many tiles of the same files in flight at once."""
    region = make_region(tmp_path / "data", 12.0, seed=5, blocks_per_100km2=4)
    out = {}
    for name, how in (("serial", scan.serial), ("threads", _thread_map(4))):
        params = scan.ScanParams(region=region.region, imagery=str(region.catalog_path),
                                 db=str(tmp_path / f"{name}.gpkg"), tile_px=256)
        s = scan.run(params, how)
        assert s.status == "completed" and not s.failures, (name, s.failures[:3])
        dets = Store(params.db).detections()
        out[name] = sorted((d.detection_id, d.before_date, d.after_date, round(d.area_m2)) for d in dets)
    assert out["threads"] == out["serial"]
    assert len(out["serial"]) == len(region.planted)


def test_demo_10_m_series_halls_once_with_their_dates_and_nothing_else(tmp_path):
    """The demo's Sentinel-2-like site through the scan: four halls appear under a cloud (2019-07-08),
    seen clear on 2019-09-21; later the seasons lengthen their shadows. One block, dated by the clear
    scenes (2019-03-30..2019-09-21), covering every hall; no second report of the same halls on a later
    date (a shadow seen once and gone at the next clear look is not construction), no cloud edge."""
    from sitewatch.testbed.demo import demo_sites, write_series
    from sitewatch.testbed.truthcheck import read_truth

    site = next(s for s in demo_sites() if s.site_id == "demo-s2")
    bundle = write_series(tmp_path / "data", [site], 2017)
    area = shape(json.loads(bundle.sites_path.read_text())["features"][0]["geometry"])
    params = scan.ScanParams(region=",".join(f"{v:.6f}" for v in area.bounds), imagery=str(bundle.catalog_path),
                             db=str(tmp_path / "s.gpkg"), tile_px=256)
    s = scan.run(params)
    assert s.status == "completed" and s.scenes == len(site.epochs)
    dets = Store(params.db).detections()
    assert len(dets) == 1, [(d.before_date, d.after_date, d.area_m2) for d in dets]
    (d,) = dets
    halls = read_truth(bundle.truth_path)
    assert len(halls) == 4 and all(d.geometry.intersects(h.geometry) for h in halls)
    assert all((d.before_date, d.after_date) == (h.before_date, h.after_date) for h in halls)
    assert (d.before_date, d.after_date) == (dt.date(2019, 3, 30), dt.date(2019, 9, 21))
