"""Reading scenes onto site grids from real COGs: placement across CRSs, masks, hashes, range reads, failures."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from servers import serve_dir, write_cog
from shapely.geometry import Point, box

from sitewatch.clouds import detect
from sitewatch.errors import FetchError, SceneError
from sitewatch.grid import grid_for, to_crs
from sitewatch.reader import read_scene
from sitewatch.scenes import AssetRef, SceneRef

AOI = box(87.60, 43.80, 87.63, 43.82)  # grid: EPSG:32645
TARGET = Point(87.6123, 43.8117)  # centre of a bright 60 m square
WHEN = dt.datetime(2024, 5, 1, 5, 0, tzinfo=dt.timezone.utc)


def _scene(name: str, hrefs: dict[str, str | AssetRef]) -> SceneRef:
    assets = {k: v if isinstance(v, AssetRef) else AssetRef(v) for k, v in hrefs.items()}
    return SceneRef(name, "test", WHEN, assets)


def _source(crs: str, res: float, size: int, *, west_half_only: bool = False, rng: int | None = None,
            square_value: int = 6000) -> tuple[np.ndarray, Affine]:
    """uint16 DN over the AOI in ``crs``: 1000 ground (or noise), a bright square at TARGET."""
    minx, miny, maxx, maxy = to_crs(AOI.buffer(0.01), "EPSG:4326", crs).bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    t = Affine(res, 0, cx - size * res / 2, 0, -res, cy + size * res / 2)
    data = (np.random.default_rng(rng).integers(800, 1200, (size, size)) if rng is not None
            else np.full((size, size), 1000)).astype("uint16")
    sq = to_crs(TARGET, "EPSG:4326", crs)
    half = 30.0 if not crs.endswith("4326") else 30.0 / 111_320 / np.cos(np.radians(43.81))
    halfy = 30.0 if not crs.endswith("4326") else 30.0 / 111_320
    cols, rows = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    xs, ys = t @ (cols, rows)
    data[(abs(xs - sq.x) <= half) & (abs(ys - sq.y) <= halfy)] = square_value
    if west_half_only:
        aoi_mid = to_crs(Point(87.615, 43.81), "EPSG:4326", crs).x
        data[xs > aoi_mid] = 0  # nodata
    return data, t


def _bright_centre(raster) -> tuple[float, float]:
    rows, cols = np.nonzero(np.nan_to_num(raster.bands["red"]) > 0.3)
    assert rows.size, "bright square not found on the grid"
    return float(cols.mean() + 0.5), float(rows.mean() + 0.5)


def _expected_centre(grid) -> tuple[float, float]:
    p = to_crs(TARGET, "EPSG:4326", grid.crs)
    col, row = ~grid.transform @ (p.x, p.y)
    return col, row


def _rgb(tmp: Path, crs: str, res: float, size: int, **kw) -> dict[str, str]:
    """Three band files; the square is a red roof (bright in red, darker in green and blue), never cloud-like."""
    data, t = _source(crs, res, size, **kw)
    roof = data > 2000
    out = {}
    for name, f in (("red", 1.0), ("green", 0.55), ("blue", 0.35)):
        band = np.where(roof, (data * f).astype("uint16"), data)
        out[name] = str(write_cog(tmp / f"{name}.tif", band, crs, t))
    return out


@pytest.mark.parametrize("crs,res", [("EPSG:32644", 10.0), ("EPSG:4326", 0.0001), ("EPSG:32645", 10.0)])
def test_bright_square_lands_where_it_should(tmp_path, crs, res):
    size = 400 if crs != "EPSG:4326" else 500
    ref = _scene("s", _rgb(tmp_path, crs, res, size))
    r = read_scene(ref, AOI, res_m=10.0)
    assert r.grid == grid_for(AOI, 10.0) and r.grid.crs == "EPSG:32645"
    got, want = _bright_centre(r), _expected_centre(r.grid)
    assert abs(got[0] - want[0]) <= 1.0 and abs(got[1] - want[1]) <= 1.0, (got, want)
    red = r.bands["red"]
    assert red.dtype == np.float32 and red.shape == r.grid.shape
    assert np.nanmedian(red) == pytest.approx(0.1, abs=0.01)  # uint16 DN / 10000
    assert r.valid.all() and not r.cloud.any()


def test_native_resolution_and_gsd(tmp_path):
    ref = _scene("s", _rgb(tmp_path, "EPSG:32644", 9.98, 400))
    r = read_scene(ref, AOI)
    assert r.grid.res == 10.0 and r.native_gsd_m == pytest.approx(9.98)
    ref = _scene("g", _rgb(tmp_path, "EPSG:4326", 0.0001, 500))
    assert read_scene(ref, AOI, res_m=10.0).native_gsd_m == pytest.approx(8.03, abs=0.1)  # 0.0001 deg at 43.8 N


def test_scale_offset_from_asset(tmp_path):
    hrefs = _rgb(tmp_path, "EPSG:32645", 10.0, 400)
    ref = _scene("s", {k: AssetRef(v, 1, 0.0001, -0.1) for k, v in hrefs.items()})
    r = read_scene(ref, AOI, res_m=10.0)
    assert np.nanmedian(r.bands["red"]) == pytest.approx(0.0, abs=0.01)


def test_uint8_is_scaled_to_unit(tmp_path):
    data, t = _source("EPSG:32645", 10.0, 400)
    vis = np.stack([(data // 40).astype("uint8")] * 3)
    href = str(write_cog(tmp_path / "visual.tif", vis, "EPSG:32645", t))
    ref = _scene("v", {n: AssetRef(href, i) for i, n in enumerate(("red", "green", "blue"), start=1)})
    r = read_scene(ref, AOI, res_m=10.0)
    assert np.nanmedian(r.bands["green"]) == pytest.approx(25 / 255, abs=0.01)


def test_nan_outside_footprint(tmp_path):
    ref = _scene("h", _rgb(tmp_path, "EPSG:32645", 10.0, 400, west_half_only=True))
    r = read_scene(ref, AOI, res_m=10.0)
    red = r.bands["red"]
    w = r.grid.width
    assert np.isfinite(red[:, : w // 2 - 2]).all()
    assert np.isnan(red[:, w // 2 + 2:]).all()
    assert not r.valid[:, w // 2 + 2:].any() and r.valid[:, : w // 2 - 2].all()
    assert 0.4 < r.valid_fraction < 0.6


def test_scene_that_misses_the_site(tmp_path):
    data = np.full((3, 50, 50), 1000, "uint16")
    href = str(write_cog(tmp_path / "far.tif", data, "EPSG:32645", Affine(10, 0, 300_000, 0, -10, 4_600_000)))
    r = read_scene(_scene("far", {n: AssetRef(href, i) for i, n in enumerate(("red", "green", "blue"), 1)}),
                   AOI, res_m=10.0)
    assert not r.valid.any() and r.valid_fraction == 0.0


def test_scl_masks_cloud_shadow_snow_nodata(tmp_path):
    hrefs = _rgb(tmp_path, "EPSG:32645", 10.0, 400)
    grid = grid_for(AOI, 10.0)
    left, bottom, right, top = grid.bounds
    t = Affine(20, 0, left - 400, 0, -20, top + 400)
    scl = np.full((160, 160), 4, "uint8")  # vegetation
    scl[25:55, 25:55] = 9  # cloud high probability
    scl[25:55, 60:80] = 3  # cloud shadow
    scl[60:80, 25:55] = 11  # snow
    scl[60:80, 60:80] = 0  # no data
    write_cog(tmp_path / "scl.tif", scl, "EPSG:32645", t, nodata=None)
    r = read_scene(_scene("s", {**hrefs, "scl": str(tmp_path / "scl.tif")}), AOI, res_m=10.0)

    def at(row20: int, col20: int) -> tuple[bool, bool]:
        x, y = t @ (col20 + 0.5, row20 + 0.5)
        c, rr = ~grid.transform @ (x, y)
        return bool(r.valid[int(rr), int(c)]), bool(r.cloud[int(rr), int(c)])

    assert at(40, 40) == (False, True)  # cloud
    assert at(40, 70) == (False, True)  # shadow counts as cloud
    assert at(70, 40) == (False, False)  # snow: not seen, not cloud
    assert at(70, 70) == (False, False)  # no data
    assert at(100, 100) == (True, False)
    assert 0 < r.cloud_fraction < 0.5


def test_ground_next_to_a_scl_cloud_is_not_clear_ground(tmp_path):
    """A cloud's thin edge and its shadow's fringe pass a scene classification as clear: ground within
    CLOUD_BUFFER_M of a cloud or shadow pixel is not used (nor called cloud: cloud_fraction is scl's)."""
    from sitewatch.reader import CLOUD_BUFFER_M

    hrefs = _rgb(tmp_path, "EPSG:32645", 10.0, 400)
    grid = grid_for(AOI, 10.0)
    left, bottom, right, top = grid.bounds
    t = Affine(20, 0, left - 400, 0, -20, top + 400)
    scl = np.full((160, 160), 5, "uint8")  # bare ground
    scl[25:55, 25:55] = 8  # cloud, medium probability
    scl[100:110, 25:45] = 3  # cloud shadow
    write_cog(tmp_path / "scl.tif", scl, "EPSG:32645", t, nodata=None)
    r = read_scene(_scene("s", {**hrefs, "scl": str(tmp_path / "scl.tif")}), AOI, res_m=10.0)

    def at(row20: float, col20: float) -> tuple[bool, bool]:
        x, y = t @ (col20, row20)
        c, rr = ~grid.transform @ (x, y)
        return bool(r.valid[int(rr), int(c)]), bool(r.cloud[int(rr), int(c)])

    step = CLOUD_BUFFER_M / 20  # the buffer in 20 m scl pixels
    assert at(40, 55 + 0.5 * step) == (False, False)  # haze beside the cloud: not clear ground, not cloud
    assert at(55 + 0.5 * step, 40) == (False, False)
    assert at(110 + 0.5 * step, 35) == (False, False)  # beside the shadow
    assert at(40, 55 + 2 * step) == (True, False)  # twice the buffer away: clear
    assert at(80, 40) == (True, False)


def test_sha256_stable_and_sensitive(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ref_a = _scene("a", _rgb(tmp_path / "a", "EPSG:32644", 10.0, 400, rng=1))
    ref_b = _scene("b", _rgb(tmp_path / "b", "EPSG:32644", 10.0, 400, rng=1, square_value=6001))
    h1, h2 = read_scene(ref_a, AOI, res_m=10.0).sha256, read_scene(ref_a, AOI, res_m=10.0).sha256
    assert h1 == h2 and len(h1) == 64
    assert read_scene(ref_b, AOI, res_m=10.0).sha256 != h1
    assert read_scene(ref_a, AOI, res_m=5.0).sha256 == h1  # over source pixels, not the grid


# --- unreadable assets ----------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo, where: str) -> None:
    msg = str(exc.value)
    assert where in msg and "\n" not in msg and "Traceback" not in msg, msg


def test_missing_non_tiff_and_truncated_local_assets(tmp_path):
    hrefs = _rgb(tmp_path, "EPSG:32645", 10.0, 400, rng=2)
    html = tmp_path / "page.tif"
    html.write_text("<html><body>Access denied</body></html>")
    cut = tmp_path / "cut.tif"
    raw = Path(hrefs["green"]).read_bytes()
    cut.write_bytes(raw[: len(raw) // 3])
    for bad in (str(tmp_path / "missing.tif"), str(html), str(cut)):
        with pytest.raises(SceneError) as e:
            read_scene(_scene("x", {**hrefs, "green": bad}), AOI, res_m=10.0)
        _one_line(e, bad)


def test_missing_red_band_is_named(tmp_path):
    hrefs = _rgb(tmp_path, "EPSG:32645", 10.0, 100)
    with pytest.raises(SceneError, match="no red band"):
        read_scene(_scene("x", {"green": hrefs["green"]}), AOI)


# --- remote COGs -----------------------------------------------------------------------------------


@pytest.fixture
def remote(tmp_path, monkeypatch):
    monkeypatch.setenv("SITEWATCH_HTTP_TIMEOUT", "2")
    monkeypatch.setenv("SITEWATCH_HTTP_RETRIES", "2")
    hrefs = _rgb(tmp_path, "EPSG:32644", 10.0, 1200, rng=7)
    with serve_dir(tmp_path) as srv:
        yield srv, {k: srv.url + "/" + Path(v).name for k, v in hrefs.items()}, tmp_path


def test_remote_read_uses_range_requests(remote):
    srv, urls, root = remote
    local = read_scene(_scene("l", {k: str(root / Path(u).name) for k, u in urls.items()}), AOI, res_m=10.0)
    r = read_scene(_scene("r", urls), AOI, res_m=10.0)
    assert r.sha256 == local.sha256 and np.array_equal(r.valid, local.valid)
    gets = [q for q in srv.seen() if q.method == "GET"]
    assert gets and all(q.range for q in gets), [q for q in gets if not q.range]
    size = (root / "red.tif").stat().st_size
    fetched = sum(int(b) - int(a) + 1 for q in gets for part in q.range[6:].split(",")
                  for a, b in [part.split("-")] if q.path == "/red.tif")
    assert fetched < size / 2, (fetched, size)


def test_remote_500_always_is_a_fetch_error(remote):
    srv, urls, _ = remote
    srv.fail("/green.tif", "500", times=None)
    with pytest.raises(FetchError) as e:
        read_scene(_scene("x", urls), AOI, res_m=10.0)
    _one_line(e, urls["green"])


def test_remote_retries_two_500s_then_reads(remote):
    srv, urls, root = remote
    srv.fail("/blue.tif", "500", times=2)
    r = read_scene(_scene("x", urls), AOI, res_m=10.0)
    assert r.valid.all()
    assert len(srv.seen("/blue.tif")) >= 3


def test_remote_429_then_reads(remote):
    srv, urls, _ = remote
    srv.fail("/red.tif", "429", times=1, retry_after=0.2)
    assert read_scene(_scene("x", urls), AOI, res_m=10.0).valid.all()


def test_remote_non_tiff_is_a_fetch_error(remote):
    srv, urls, root = remote
    (root / "login.tif").write_text("<html>please log in</html>")
    with pytest.raises(FetchError) as e:
        read_scene(_scene("x", {**urls, "nir": srv.url + "/login.tif"}), AOI, res_m=10.0)
    _one_line(e, srv.url + "/login.tif")


def test_remote_missing_is_a_fetch_error(remote):
    srv, urls, _ = remote
    with pytest.raises(FetchError) as e:
        read_scene(_scene("x", {**urls, "nir": srv.url + "/gone.tif"}), AOI, res_m=10.0)
    _one_line(e, srv.url + "/gone.tif")


def test_remote_stall_times_out_in_bounded_time(remote, monkeypatch):
    srv, urls, _ = remote
    monkeypatch.setenv("SITEWATCH_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("SITEWATCH_HTTP_RETRIES", "1")
    srv.fail("/green.tif", "stall", times=None, stall_s=4)
    t0 = time.monotonic()
    with pytest.raises(FetchError) as e:
        read_scene(_scene("x", urls), AOI, res_m=10.0)
    assert time.monotonic() - t0 < 8
    _one_line(e, urls["green"])


# --- clouds without a mask ---------------------------------------------------------------------------


def _ground(n: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    base = 0.12 + 0.03 * g.standard_normal((n, n))
    return {"red": (base + 0.02).astype("float32"), "green": base.astype("float32"),
            "blue": (base - 0.02).astype("float32")}


def test_clouds_flag_a_smooth_white_blob_not_a_coloured_roof():
    """A soft white blob is cloud; a small red roof next to it is not."""
    b = _ground()
    yy, xx = np.mgrid[:200, :200]
    blob = np.exp(-((yy - 60) ** 2 + (xx - 60) ** 2) / (2 * 15.0 ** 2))  # soft-edged cloud
    for k in b:
        b[k] = b[k] * (1 - blob) + 0.75 * blob
    b["red"][120:124, 30:34], b["green"][120:124, 30:34], b["blue"][120:124, 30:34] = 0.7, 0.35, 0.25  # red roof
    m = detect(b, res_m=10.0)
    assert m[60, 60] and m[60, 80] and m.dtype == bool
    assert m[45:75, 45:75].all()
    assert not m[120:124, 30:34].any()
    assert m.mean() < 0.2


_SNOW_RULE = ("clouds.detect masks any white patch brighter than 0.55 and larger than 200 m2 as snow, edges "
              "regardless, so fresh white roofs (0.6-0.8) are hidden and new white buildings cannot be detected; "
              "suggested: snow by NDSI when swir16 is present, else only patches of ~1 ha or more")


def test_clouds_leave_sharp_white_roofs_alone():
    """Roofs are what sitewatch looks for: masking them as cloud or snow would hide new buildings."""
    b = _ground()
    b["red"][150:155, 150:155] = b["green"][150:155, 150:155] = b["blue"][150:155, 150:155] = 0.65  # 50 m at 10 m
    assert not detect(b, res_m=10.0)[150:155, 150:155].any()
    b = _ground(300)
    for k in b:
        b[k][100:180, 100:180] = 0.65  # 40 x 40 m warehouse at 0.5 m: bigger than the smallest cloud
    assert not detect(b, res_m=0.5)[110:170, 110:170].any()


def test_snow_and_roofs_told_apart_by_swir():
    b = _ground()
    b["swir16"] = (b["red"] + 0.1).astype("float32")
    for k in ("red", "green", "blue"):
        b[k][20:80, 20:80] = 0.8  # snow field: white in the visible...
        b[k][150:160, 150:160] = 0.7  # ...and a white roof
    b["swir16"][20:80, 20:80] = 0.08  # ...but dark in SWIR (NDSI ~0.8)
    b["swir16"][150:160, 150:160] = 0.6  # roofs stay bright in SWIR
    m = detect(b, res_m=10.0)
    assert m[30:70, 30:70].all() and not m[150:160, 150:160].any()


def test_clouds_none_on_plain_ground():
    assert not detect(_ground(), res_m=10.0).any()


def test_remote_truncated_body_once_then_reads(remote):
    srv, urls, _ = remote
    srv.fail("/green.tif", "truncate", times=1)
    r = read_scene(_scene("x", urls), AOI, res_m=10.0)
    assert r.valid.all()


def test_remote_truncated_always_is_a_fetch_error(remote):
    srv, urls, _ = remote
    srv.fail("/green.tif", "truncate", times=None)
    with pytest.raises(FetchError) as e:
        read_scene(_scene("x", urls), AOI, res_m=10.0)
    _one_line(e, urls["green"])


def test_remote_reset_once_then_reads(remote):
    srv, urls, _ = remote
    srv.fail("/red.tif", "reset", times=1)
    assert read_scene(_scene("x", urls), AOI, res_m=10.0).valid.all()


@pytest.mark.parametrize("native,nice", [(10.0, 10.0), (9.98, 10.0), (20.02, 20.0), (0.4999, 0.5), (0.31, 0.31),
                                         (3.03, 3.0), (1.2, 1.2)])
def test_grid_resolution_from_native(native, nice):
    from sitewatch.reader import nice_resolution

    assert nice_resolution(native) == pytest.approx(nice)


def test_clouds_flag_broad_thin_haze_not_bright_desert():
    g = np.random.default_rng(5)
    tex = 0.04 * g.standard_normal((200, 200))
    ground = {k: (0.14 + d + tex).astype("float32") for k, d in (("red", 0.02), ("green", 0.0), ("blue", -0.02))}
    hazy = {k: v.copy() for k, v in ground.items()}
    for k in hazy:  # thin veil over the west half: contrast drops, everything brightens toward grey-blue
        hazy[k][:, :100] = 0.55 * hazy[k][:, :100] + 0.45 * (0.30 if k != "blue" else 0.33)
    m = detect(hazy, res_m=10.0)
    assert m[:, 10:90].mean() > 0.8 and m[:, 110:].mean() < 0.05
    desert = {k: (v + 0.18).astype("float32") for k, v in ground.items()}  # bright, but textured
    assert detect(desert, res_m=10.0).mean() < 0.05


def _soft_blob(n: int, cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return np.exp(-2.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / radius ** 2)


def test_clouds_mask_a_cloud_shadow_but_not_a_building_shadow():
    """At 0.5 m: a soft cloud, its soft shadow beside it, and a building's sharp shadow."""
    b = _ground(400, seed=3)
    cloud, shade = _soft_blob(400, 100, 100, 60), _soft_blob(400, 180, 180, 60) * 0.55
    for k in b:
        b[k] = (b[k] * (1 - shade)) * (1 - 0.95 * cloud) + 0.8 * 0.95 * cloud
        b[k][300:340, 250:390] *= 0.3  # a 20 x 70 m building shadow: sharp-edged
    m = detect(b, res_m=0.5)
    assert m[100, 100] and m[165:195, 165:195].all()  # the cloud and its shadow
    assert not m[305:335, 255:385].any()  # the building's shadow stays ground


def test_clouds_leave_dark_ground_alone_on_a_clear_day():
    b = _ground(400, seed=4)
    dark = _soft_blob(400, 200, 200, 80) * 0.5  # a soft dark patch (wet soil, basalt), no cloud anywhere
    for k in b:
        b[k] = b[k] * (1 - dark)
    assert not detect(b, res_m=0.5).any()


def test_haze_leaves_blue_roofs_alone():
    """Blue roofs are far above the clear line in blue-red space, but small: not haze."""
    b = _ground()
    for i in range(6):  # six 30 x 100 m blue-roofed halls at 10 m
        r0, c0 = 40 + (i % 2) * 60, 20 + i * 25
        b["red"][r0:r0 + 10, c0:c0 + 3], b["green"][r0:r0 + 10, c0:c0 + 3] = 0.15, 0.3
        b["blue"][r0:r0 + 10, c0:c0 + 3] = 0.55
    assert not detect(b, res_m=10.0).any()


def test_reads_on_two_threads_equal_serial_reads_and_warn_nothing(tmp_path):
    """The monitor flow reads two sites at once on threads: the pixels must not depend on it,
    and the user must not be told their imagery lacks georeferencing (rasterio says so, wrongly,
    from concurrent reprojections). The warning is checked in a fresh process, with the filters
    a user has (pytest replaces them inside a test)."""
    import json
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    jobs, files = [], []
    for i, (crs, res) in enumerate((("EPSG:32644", 10.0), ("EPSG:32645", 10.0), ("EPSG:4326", 0.0001))):
        (tmp_path / f"s{i}").mkdir()
        hrefs = _rgb(tmp_path / f"s{i}", crs, res, 1200 if crs != "EPSG:4326" else 400, rng=i)
        jobs.append(_scene(f"s{i}", hrefs))
        files.append(hrefs)
    serial = [read_scene(j, AOI, res_m=10.0) for j in jobs * 2]
    for _ in range(3):
        with ThreadPoolExecutor(2) as ex:
            threaded = list(ex.map(lambda j: read_scene(j, AOI, res_m=10.0), jobs * 2))
        for a, b in zip(serial, threaded):
            assert a.sha256 == b.sha256
            for k in a.bands:
                assert np.array_equal(np.nan_to_num(a.bands[k], nan=-1), np.nan_to_num(b.bands[k], nan=-1))
    script = f"""
import datetime as dt, json
from concurrent.futures import ThreadPoolExecutor
from shapely.geometry import box
from sitewatch.reader import read_scene
from sitewatch.scenes import AssetRef, SceneRef
aoi = box(*{tuple(AOI.bounds)!r})
refs = [SceneRef(f"s{{i}}", "t", dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
                 {{k: AssetRef(v) for k, v in h.items()}}) for i, h in enumerate(json.loads({json.dumps(json.dumps(files))}))]
for _ in range(10):
    with ThreadPoolExecutor(2) as ex:
        list(ex.map(lambda r: read_scene(r, aoi, res_m=10.0), refs * 3))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "geotransform" not in r.stderr, r.stderr
