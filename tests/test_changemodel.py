"""A trained change model (ONNX) in the pipeline: the contract, tiling, padding, scaling, errors.

The models are small real ONNX graphs built with the ``onnx`` helper (tests/onnx_models.py)
and run by onnxruntime; the imagery for the monitor tests is real GeoTIFFs in a folder.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from onnx import TensorProto, helper, numpy_helper

import onnx_models as om
from servers import write_cog
from sitewatch.changemodel import ChangeModel, ModelError, _spans
from sitewatch.grid import Grid
from sitewatch.scenes import SceneRaster, SceneRef

pytest.importorskip("onnxruntime")


def _raster(bands: dict[str, np.ndarray], scales=None) -> SceneRaster:
    h, w = next(iter(bands.values())).shape
    grid = Grid("EPSG:32645", Affine(0.5, 0, 500000.0, 0, -0.5, 4400000.0), w, h)
    ref = SceneRef("s1", "test", dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), {})
    v = np.ones((h, w), bool)
    return SceneRaster(ref, grid, bands, v, ~v, "0" * 64, 0.5, scales=scales or {})


# --- tiling and padding ------------------------------------------------------------------------


@pytest.mark.parametrize("length,tile", [(10, 32), (32, 32), (33, 32), (100, 32), (257, 256), (1000, 256)])
def test_spans_cover_every_pixel_once_and_keep_tile_centres(length, tile):
    spans = _spans(length, tile, tile // 8)
    kept = np.zeros(length, int)
    for start, k0, k1 in spans:
        assert 0 <= start and start + min(tile, length) <= length
        assert start <= k0 < k1 <= start + tile
        if k0 > 0:  # away from the window's edge a tile keeps only its centre
            assert k0 - start >= tile // 8
        if k1 < length:
            assert start + tile - k1 >= tile // 8
        kept[k0:k1] += 1
    assert (kept == 1).all()


def test_tiled_inference_equals_one_pass(tmp_path):
    """A 5x5 box filter's output does not change when the window is cut into 32-px tiles."""
    rng = np.random.default_rng(1)
    b, a = rng.random((2, 3, 96, 120), dtype=np.float32)
    whole = ChangeModel.open(om.difference_model(tmp_path / "big.onnx", tile=128)).probability(b, a)
    tiled_model = ChangeModel.open(om.difference_model(tmp_path / "t32.onnx", tile=32))
    tiled = tiled_model.probability(b, a)
    assert len(_spans(96, 32, 4)) * len(_spans(120, 32, 4)) > 12  # really many tiles
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    # and both equal the filter computed here, away from the window's edge
    from scipy import ndimage

    d = np.abs(a - b).mean(0)
    want = 1 / (1 + np.exp(-40 * (ndimage.uniform_filter(d, 5, mode="constant") - 0.1)))
    np.testing.assert_allclose(tiled[2:-2, 2:-2], want[2:-2, 2:-2], atol=1e-4)


def test_padding_to_multiples_of_8(tmp_path):
    """A model that needs H, W multiples of 8 runs on a 50 x 37 window: padded, then cropped."""
    m = ChangeModel.open(om.stride8_model(tmp_path / "s8.onnx"))
    b = np.zeros((3, 50, 37), np.float32)
    a = b.copy()
    a[:, 10:12, 20:22] = 0.8  # a change in the 8x8 cell (8..15, 16..23)
    p = m.probability(b, a)
    assert p.shape == (50, 37)
    assert p[8:16, 16:24].min() == pytest.approx(0.8, abs=1e-6) and p[:8].max() == 0
    assert p[16:].max() == 0 and p[:, :16].max() == 0
    # without padding the model cannot give an output the window's size
    with pytest.raises(ModelError, match="output has shape"):
        m._run(b[None], a[None])


def test_fixed_input_size_is_the_tile(tmp_path):
    nodes = [helper.make_node("Sub", ["after", "before"], ["change"])]
    fixed = om.save(tmp_path / "fixed.onnx", nodes, [om._io("before", 1, 16, 16, n=1), om._io("after", 1, 16, 16, n=1)],
                    [om._io("change", 1, 16, 16, n=1)], meta=om.meta("red"))
    m = ChangeModel.open(fixed)
    assert m.contract.tile == 16 and m.contract.fixed_hw == (16, 16) and m.contract.fixed_batch == 1
    b = np.zeros((1, 40, 21), np.float32)
    a = np.full((1, 40, 21), 0.25, np.float32)
    np.testing.assert_allclose(m.probability(b, a), 0.25)


# --- normalisation and outputs -------------------------------------------------------------------


def test_scale_mean_std_applied_to_stored_values(tmp_path):
    m = ChangeModel.open(om.band_model(tmp_path / "n.onnx", scale=255, mean="0.2,0.1,0.1", std="0.5,1,1"))
    refl = np.full((8, 8), 0.6, np.float32)  # what the reader made of 8-bit 153
    r = _raster({"red": refl, "green": refl, "blue": refl}, scales={b: (1 / 255, 0.0) for b in ("red", "green", "blue")})
    x = m.prepare(r)
    np.testing.assert_allclose(x[0], (0.6 - 0.2) / 0.5, atol=1e-5)
    np.testing.assert_allclose(x[1], 0.6 - 0.1, atol=1e-5)
    # stored values scaled by the model's own rule: 16-bit numbers read as reflectance x 1e-4, model wants / 255
    r16 = _raster({"red": refl, "green": refl, "blue": refl}, scales={b: (1e-4, 0.0) for b in ("red", "green", "blue")})
    np.testing.assert_allclose(m.prepare(r16)[0], (6000 / 255 - 0.2) / 0.5, rtol=1e-5)
    # no sitewatch.scale: reflectance as read
    plain = ChangeModel.open(om.band_model(tmp_path / "p.onnx"))
    np.testing.assert_allclose(plain.prepare(r16)[0], 0.6, atol=1e-6)


def test_band_order_follows_the_metadata(tmp_path):
    m = ChangeModel.open(om.save(tmp_path / "o.onnx", [helper.make_node("Sub", ["after", "before"], ["change"])],
                                 [om._io("before", 1), om._io("after", 1)], [om._io("change", 1)],
                                 meta=om.meta("blue")))
    r = _raster({"red": np.zeros((4, 4), np.float32), "green": np.zeros((4, 4), np.float32),
                 "blue": np.full((4, 4), 0.3, np.float32)})
    assert m.prepare(r).shape == (1, 4, 4) and m.prepare(r)[0, 0, 0] == pytest.approx(0.3)


def test_logits_versus_probability(tmp_path):
    b = np.zeros((3, 16, 16), np.float32)
    a = np.zeros((3, 16, 16), np.float32)
    a[0, :8] = 2.0
    a[0, 8:] = -0.4
    logits = ChangeModel.open(om.band_model(tmp_path / "l.onnx", output="logits")).probability(b, a)
    prob = ChangeModel.open(om.band_model(tmp_path / "p.onnx", output="probability")).probability(b, a)
    np.testing.assert_allclose(logits[0, 0], 1 / (1 + np.exp(-2.0)), rtol=1e-6)
    np.testing.assert_allclose(logits[15, 0], 1 / (1 + np.exp(0.4)), rtol=1e-6)
    assert prob[0, 0] == 1.0 and prob[15, 0] == 0.0  # a probability output is only clipped to 0..1


def test_defaults_of_the_contract(tmp_path):
    c = ChangeModel.open(om.band_model(tmp_path / "d.onnx")).contract
    assert (c.scale, c.mean, c.std, c.output, c.threshold, c.tile, c.gsd_m, c.kind) == \
        (None, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "probability", 0.5, 256, None, "building")


# --- files that do not meet the contract -----------------------------------------------------------


BAD_META = {"no_bands": {"sitewatch.tile": "64"}, "band_count": om.meta("red,green"),
            "unknown_band": om.meta("red,green,ultraviolet"), "mean_len": om.meta(mean="0.1,0.2"),
            "std_zero": om.meta(std="1,0,1"), "output": om.meta(output="softmax"),
            "threshold": om.meta(threshold="1.5"), "tile": om.meta(tile="100"), "kind": om.meta(kind="road"),
            "scale": om.meta(scale="zero")}


def _bad(tmp_path: Path, case: str) -> Path:
    p = tmp_path / f"{case}.onnx"
    io3 = [om._io("before", 3), om._io("after", 3)]
    out = [om._io("change", 1)]
    sub = [helper.make_node("Sub", ["after", "before"], ["change"])]
    if case == "garbage":
        p.write_bytes(b"this is not a protobuf, nor a model" * 10)
    elif case == "names":
        om.save(p, [helper.make_node("Sub", ["t2", "t1"], ["change"])], [om._io("t1", 3), om._io("t2", 3)], out,
                meta=om.meta())
    elif case == "rank":
        om.save(p, [helper.make_node("Sub", ["after", "before"], ["change"])],
                [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", "C", "H"]) for n in ("before", "after")],
                [helper.make_tensor_value_info("change", TensorProto.FLOAT, ["N", "C", "H"])], meta=om.meta())
    elif case == "dtype":
        om.save(p, sub, [om._io("before", 3, dtype=TensorProto.DOUBLE), om._io("after", 3, dtype=TensorProto.DOUBLE)],
                [om._io("change", 1, dtype=TensorProto.DOUBLE)], meta=om.meta())
    elif case == "two_outputs":
        om.save(p, [*sub, helper.make_node("Identity", ["change"], ["extra"])], io3, [*out, om._io("extra", 1)],
                meta=om.meta())
    elif case == "channels_out":
        om.save(p, sub, io3, [om._io("change", 3)], meta=om.meta())
    elif case in BAD_META:  # a sound graph whose metadata breaks the contract
        om.save(p, sub, io3, out, meta=BAD_META[case])
    return p


BAD = {"garbage": "not an ONNX model", "names": "named 'before' and 'after'", "rank": "[N, C, H, W]",
       "dtype": "float32", "two_outputs": "exactly one", "channels_out": "[N, 1, H, W]",
       "no_bands": "sitewatch.bands is missing", "band_count": "3 channels", "unknown_band": "'ultraviolet'",
       "mean_len": "sitewatch.mean has 2 values", "std_zero": "sitewatch.std must be positive",
       "output": "'probability' or 'logits'", "threshold": "not between 0 and 1", "tile": "multiple of 8",
       "kind": "'road'", "scale": "sitewatch.scale 'zero' is not a number"}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_file_off_contract_is_named_in_one_line(tmp_path, case):
    p = _bad(tmp_path, case)
    with pytest.raises(ModelError) as e:
        ChangeModel.open(p)
    msg = str(e.value)
    assert BAD[case] in msg and str(p) in msg and "\n" not in msg
    assert e.value.exit_code == 2


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        ChangeModel.open(tmp_path / "nope.onnx")


# --- through the monitor ---------------------------------------------------------------------------

X0, Y0, RES = 548_500.0, 4_851_500.0, 0.5
SIZE = 240


def _scene(path: Path, seed: int, building: bool) -> None:
    rng = np.random.default_rng(seed)
    img = np.empty((3, SIZE, SIZE), np.float32)
    img[:] = np.array([110, 104, 96], np.float32)[:, None, None]
    img += rng.normal(0, 3, img.shape)
    if building:
        img[:, 100:130, 90:126] = np.array([170, 80, 60], np.float32)[:, None, None]
    write_cog(path, np.clip(img, 1, 255).astype("uint8"), "EPSG:32645", Affine(RES, 0, X0, 0, -RES, Y0))


@pytest.fixture()
def series(tmp_path):
    """Three dates: bare ground, a 15 x 18 m building, the building still there."""
    d = tmp_path / "imagery"
    d.mkdir()
    _scene(d / "a_2021-03-01.tif", 1, False)
    _scene(d / "b_2021-06-01.tif", 2, True)
    _scene(d / "c_2021-09-01.tif", 3, True)
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:32645", "EPSG:4326", always_xy=True).transform(X0 + 60, Y0 - 60)
    sites = tmp_path / "sites.csv"
    sites.write_text(f"site_id,name,lon,lat,radius_m\nS1,test,{lon},{lat},45\n")
    return d, sites


def test_monitor_with_a_model_dates_confirms_and_records_it(tmp_path, series):
    from sitewatch.monitor import MonitorParams, run
    from sitewatch.store import Store

    imagery, sites = series
    model = om.difference_model(tmp_path / "diff.onnx", tile=64, gsd_m=0.5)
    db = tmp_path / "f.gpkg"
    params = MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model),
                           model_only=True)
    s = run(params)
    assert s.status == "completed", s.as_dict()
    dets = Store(db).detections()
    assert len(dets) == 1, [(d.kind, d.before_date, d.after_date, d.area_m2) for d in dets]
    d = dets[0]
    assert d.kind == "building_new"
    assert (d.before_date, d.after_date) == (dt.date(2021, 3, 1), dt.date(2021, 6, 1))
    assert d.evidence["confirmed_by_next_clear_scene"] is True
    import hashlib

    assert d.evidence["model"] == {"file": "diff.onnx", "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    assert d.score == pytest.approx(d.evidence["mean_probability"], abs=1e-3) and d.score > 0.5
    assert 15 * 18 * 0.8 < d.area_m2 < 15 * 18 * 1.3
    # model only: no structure metrics claimed
    assert Store(db).metrics() == []
    # again over the same imagery: nothing twice
    run(params)
    assert len(Store(db).detections()) == 1


def test_model_beside_the_detector_keeps_both_claims(tmp_path, series):
    from sitewatch.monitor import MonitorParams, run
    from sitewatch.store import Store

    imagery, sites = series
    model = om.difference_model(tmp_path / "diff.onnx", tile=64)
    db = tmp_path / "f.gpkg"
    run(MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model)))
    dets = Store(db).detections()
    by_model = [d for d in dets if "model" in d.evidence]
    assert len(by_model) == 1 and by_model[0].kind == "building_new"
    assert len(Store(db).metrics()) == 3  # the default detector still measures every scene


def test_a_late_scene_is_paired_with_its_real_neighbours(tmp_path, series):
    """A scene older than those stored arrives late: pairs are re-run from the stored inputs."""
    from sitewatch.monitor import MonitorParams, run
    from sitewatch.store import Store

    imagery, sites = series
    late = tmp_path / "late"
    late.mkdir()
    (imagery / "b_2021-06-01.tif").rename(late / "b_2021-06-01.tif")
    model = om.difference_model(tmp_path / "diff.onnx", tile=64)
    db = tmp_path / "f.gpkg"
    params = MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model),
                           model_only=True)
    run(params)
    (d,) = Store(db).detections()
    assert (d.before_date, d.after_date) == (dt.date(2021, 3, 1), dt.date(2021, 9, 1))
    (late / "b_2021-06-01.tif").rename(imagery / "b_2021-06-01.tif")
    run(params)
    dets = Store(db).detections()
    assert [(x.before_date, x.after_date) for x in dets] == [(dt.date(2021, 3, 1), dt.date(2021, 6, 1))]
    assert dets[0].evidence.get("supersedes") == d.detection_id


def test_cli_refuses_a_bad_model_before_writing(tmp_path, series):
    import subprocess
    import sys

    imagery, sites = series
    bad = _bad(tmp_path, "no_bands")
    db = tmp_path / "out.gpkg"
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "monitor", "--sites", str(sites), "--imagery",
                        str(imagery), "--db", str(db), "--change-model", str(bad), "--no-prefect"],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "sitewatch.bands is missing" in lines[0] and str(bad) in lines[0]
    assert "Traceback" not in r.stderr
    assert not db.exists()


def test_flow_takes_the_model(tmp_path, series):
    """The Prefect flow's function (``.fn``, no Prefect run) passes the model through."""
    pytest.importorskip("prefect")
    from pipelines.monitor import monitor_flow
    from sitewatch.store import Store

    imagery, sites = series
    model = om.difference_model(tmp_path / "diff.onnx", tile=64)
    db = tmp_path / "f.gpkg"
    import inspect

    assert {"change_model", "model_only"} <= set(inspect.signature(monitor_flow.fn).parameters)
    from sitewatch.monitor import MonitorParams, finish, prepare, run_site

    params = MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model),
                           model_only=True)
    store, site_list, run_id = prepare(params)
    finish(store, run_id, [run_site(params, s, run_id) for s in site_list])
    assert json.loads(sqlite3.connect(db).execute("SELECT params FROM runs").fetchone()[0])["change_model"] == str(model)
    assert len(Store(db).detections()) == 1


def test_serve_passes_the_model_and_learning_to_the_monitor_deployment(tmp_path):
    pytest.importorskip("prefect")
    from pipelines.serve import deployments, parser

    model = om.difference_model(tmp_path / "diff.onnx")
    args = parser().parse_args(["--sites", "s.gpkg", "--db", "f.gpkg", "--change-model", str(model), "--model-only",
                                "--learn"])
    (dep,) = deployments(args)
    assert dep.parameters["change_model"] == str(model) and dep.parameters["model_only"] is True
    assert dep.parameters["learn_ranking"] is True
    (plain,) = deployments(parser().parse_args(["--sites", "s.gpkg"]))
    assert "change_model" not in plain.parameters and "learn_ranking" not in plain.parameters


def test_imagery_far_from_the_training_resolution_is_noted_not_resampled(tmp_path):
    from sitewatch.changemodel import ModelDetector

    m = ChangeModel.open(om.difference_model(tmp_path / "g.onnx", gsd_m=2.0))
    bands = {b: np.full((24, 24), 0.2, np.float32) for b in ("red", "green", "blue")}
    maps = ModelDetector(m).maps(_raster(bands))  # 0.5 m imagery, a model trained at 2 m
    assert "more than 2x off" in maps.info["model"]["gsd_note"] and maps.observed.shape == (24, 24)
    ok = ChangeModel.open(om.difference_model(tmp_path / "ok.onnx", gsd_m=0.6))
    assert "gsd_note" not in ModelDetector(ok).maps(_raster(bands)).info["model"]


def _pack_reference(bands, scales, names):
    """pack as it was: each pixel's stored integer tested in float64 (the fast path must agree)."""
    out, kept = {}, {}
    for b in names:
        x = bands[b]
        ok = np.isfinite(x)
        s, o = (float(v) for v in scales.get(b, (1.0, 0.0)))
        raw = (x[ok].astype(np.float64) - o) / s
        r = np.rint(raw)
        if s != 1.0 and raw.size and np.abs(raw - r).max() < 1e-3 and r.min() >= 0 and r.max() <= 65535:
            arr = np.zeros(x.shape, np.uint8 if r.max() <= 255 else np.uint16)
            arr[ok] = r.astype(arr.dtype)
        else:
            arr, s, o = np.where(ok, x, 0).astype(np.float32), 1.0, 0.0
        out[b], kept[b] = arr, [s, o]
    return out, kept


@pytest.mark.parametrize("levels, scale, offset", [(256, 1 / 255, 0.0), (300, 1 / 255, 0.0), (10000, 1e-4, 0.0),
                                                   (65536, 1e-4, 0.0), (12000, 1e-4, -0.1), (None, 1 / 255, 0.0),
                                                   (None, 1.0, 0.0)])
def test_kept_bands_are_the_integers_the_per_pixel_float64_test_keeps(levels, scale, offset):
    """pack's fast path (distinct integers tested, not every pixel) keeps what the per-pixel test kept:
    8- and 16-bit integers, and float32 where the integers do not come back within 1e-3 (an offset of
    -0.1 in float32, resampled values)."""
    from sitewatch.changemodel import NODATA, pack

    rng = np.random.default_rng(levels or 5)
    names = ["red", "green", "blue"]
    if levels is None:
        bands = {b: rng.random((120, 90)).astype(np.float32) for b in names}
    else:
        bands = {b: rng.integers(0, levels, (120, 90)).astype(np.float32) * np.float32(scale) + np.float32(offset)
                 for b in names}
    bands["green"][:7, :11] = np.nan
    scales = {b: (scale, offset) for b in names}
    got, kept = pack(bands, scales, names)
    want, want_kept = _pack_reference(bands, scales, names)
    assert kept == want_kept
    for b in names:
        assert got[f"model.band.{b}"].dtype == want[b].dtype and np.array_equal(got[f"model.band.{b}"], want[b])
    assert got[NODATA].sum() == 77
