"""A model-only ``monitor`` run stores the same evidence as the code before it was made faster.

``tests/data/model_only_evidence.json`` was written (``python tests/test_model_evidence.py``) by
the monitor as it stood at commit 48ac303, before the pipeline's own cost was cut (cheaper
quicklook and maps compression, each GeoTIFF's header read once, ...). The run over the fixture below
must store the very same detections (ids, outlines as stored bytes, dates, scenes, areas, scores,
evidence), the same scene records (pixel hashes, fractions, footprints) and, decoded, the same
quicklook pixels and map arrays: the speed-ups may change how bytes are compressed, never what
they say. Rewrite the file only for a change that is meant to change stored evidence.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
from affine import Affine

sys.path.insert(0, str(Path(__file__).resolve().parent))

import onnx_models as om  # noqa: E402
from servers import write_cog  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "data" / "model_only_evidence.json"
X0, Y0, RES, SIZE = 548_500.0, 4_851_500.0, 0.5, 200
#: columns that say when or in which run, not what was found
VOLATILE = {"fid", "run_id", "created_at"}


def _scene(path: Path, seed: int, buildings: list[tuple[int, int, int, int]], cloud: bool = False) -> None:
    rng = np.random.default_rng(seed)
    img = np.empty((3, SIZE, SIZE), np.float32)
    img[:] = np.array([110, 104, 96], np.float32)[:, None, None]
    img += rng.normal(0, 3, img.shape)
    for y, x, h, w in buildings:
        img[:, y:y + h, x:x + w] = np.array([170, 80, 60], np.float32)[:, None, None]
    if cloud:  # a bright, flat patch over one corner, away from the buildings
        img[:, 150:200, 0:60] = 250
    write_cog(path, np.clip(img, 1, 255).astype("uint8"), "EPSG:32645", Affine(RES, 0, X0, 0, -RES, Y0))


def build(tmp: Path) -> tuple[Path, Path, Path]:
    """Four dates over two sites: a building at the second date, another at the third (the model's
    tile, 64 px, cuts the 200 px window into overlapping tiles), a cloudy corner at the last."""
    d = tmp / "imagery"
    d.mkdir(parents=True)
    first, second = (100, 90, 30, 36), (30, 20, 24, 40)
    _scene(d / "a_2021-03-01.tif", 1, [])
    _scene(d / "b_2021-06-01.tif", 2, [first])
    _scene(d / "c_2021-09-01.tif", 3, [first, second])
    _scene(d / "d_2021-12-01.tif", 4, [first, second], cloud=True)
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:32645", "EPSG:4326", always_xy=True)
    (lon1, lat1), (lon2, lat2) = tr.transform(X0 + 50, Y0 - 50), tr.transform(X0 + 25, Y0 - 30)
    sites = tmp / "sites.csv"
    sites.write_text(f"site_id,name,lon,lat,radius_m\nS1,one,{lon1},{lat1},48\nS2,two,{lon2},{lat2},20\n")
    model = om.difference_model(tmp / "diff.onnx", tile=64, gsd_m=0.5)
    return d, sites, model


def _digest(a: np.ndarray) -> str:
    return f"{a.dtype}{list(a.shape)}:" + hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def stored_evidence(db: Path) -> dict:
    """What the file says, independent of how its blobs are compressed and of run ids and times."""
    from PIL import Image

    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row

    def rows(sql: str) -> list[dict]:
        out = []
        for r in con.execute(sql):
            d = {k: (r[k].hex() if isinstance(r[k], bytes) else r[k]) for k in r.keys() if k not in VOLATILE}
            out.append(d)
        return out

    dets = rows("SELECT * FROM detections ORDER BY detection_id")
    for d in dets:
        d["evidence"] = json.loads(d["evidence"])
    scenes = rows("SELECT * FROM scenes ORDER BY site_id, scene_id")
    for s in scenes:
        s["properties"] = json.loads(s["properties"] or "{}")
    maps = []
    for r in con.execute("SELECT site_id, scene_id, grid_res_m, detector, maps, quicklook, grid "
                         "FROM sitewatch_scene_maps ORDER BY site_id, scene_id"):
        with np.load(io.BytesIO(r["maps"]), allow_pickle=False) as z:
            arrays = {k: _digest(z[k]) for k in sorted(z.files) if k != "meta"}
            meta = json.loads(bytes(z["meta"]).decode())
        ql = np.asarray(Image.open(io.BytesIO(r["quicklook"])).convert("RGB")) if r["quicklook"] else None
        maps.append({"site_id": r["site_id"], "scene_id": r["scene_id"], "grid_res_m": r["grid_res_m"],
                     "detector": r["detector"], "grid": json.loads(r["grid"] or "{}"), "meta": meta,
                     "arrays": arrays, "quicklook_pixels": None if ql is None else _digest(ql)})
    con.close()
    return {"detections": dets, "scenes": scenes, "maps": maps}


def model_only_run(tmp: Path) -> tuple[Path, Path]:
    """The fixture through ``monitor`` with its model alone: (the GeoPackage, the model file)."""
    from sitewatch.monitor import MonitorParams, run

    imagery, sites, model = build(tmp)
    db = tmp / "f.gpkg"
    s = run(MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model),
                          model_only=True))
    assert s.status == "completed", s.as_dict()
    return db, model


def run_fixture(tmp: Path) -> dict:
    db, model = model_only_run(tmp)
    got = stored_evidence(db)
    got["model_sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
    # paths differ between runs: the fixture's folder is replaced by a placeholder
    return json.loads(json.dumps(got).replace(str(tmp), "<tmp>"))


def test_model_only_run_stores_the_same_evidence_as_before(tmp_path):
    want = json.loads(GOLDEN.read_text())
    got = run_fixture(tmp_path)
    assert got["model_sha256"] == want["model_sha256"]
    assert len(got["detections"]) == len(want["detections"]) >= 2, "the fixture must show changes"
    for g, w in zip(got["detections"], want["detections"]):
        assert g == w
    assert got["scenes"] == want["scenes"]
    assert [m["scene_id"] for m in got["maps"]] == [m["scene_id"] for m in want["maps"]]
    for g, w in zip(got["maps"], want["maps"]):
        assert g == w, g["scene_id"]
    assert got == want


def test_maps_read_back_without_decoding_equal_the_decoded_maps():
    """What the monitor dates changes from when it skips decoding maps it has just stored
    (:meth:`StructureMaps.stored`) is what decoding the stored bytes gives, array for array."""
    from sitewatch.grid import Grid
    from sitewatch.structures import StructureMaps

    rng = np.random.default_rng(7)
    shape = (37, 53)
    grid = Grid("EPSG:32645", Affine(0.5, 0, X0, 0, -0.5, Y0), shape[1], shape[0])
    maps = StructureMaps(
        grid, ("building", "wall"),
        {"building": rng.random(shape) > 0.7, "wall": (rng.random(shape) > 0.9).astype(np.uint8)},
        {"building": rng.random(shape).astype(np.float32) * 1.2 - 0.1, "wall": rng.random(shape)},
        rng.random(shape) > 0.1,
        {"align": rng.random(shape).astype(np.float32), "p16": rng.random(shape).astype(np.float16),
         "fortran": np.asfortranarray(rng.integers(0, 255, shape, dtype=np.uint8)), "scalar": np.array(3.5)},
        {"shift_px": (0.25, -1.0), "note": "x", "n": 3})
    blob, back = maps.stored()
    assert blob == maps.to_bytes()
    want = StructureMaps.from_bytes(blob)
    assert (back.grid, back.kinds, back.info) == (want.grid, want.kinds, want.info)
    pairs = [(back.observed, want.observed)]
    pairs += [(back.presence[k], want.presence[k]) for k in want.kinds]
    pairs += [(back.strength[k], want.strength[k]) for k in want.kinds]
    assert set(back.features) == set(want.features)
    pairs += [(back.features[k], want.features[k]) for k in want.features]
    for a, b in pairs:
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    # the read-back is a copy: changing the maps afterwards does not change what is dated
    maps.features["align"][0, 0] = -5
    assert back.features["align"][0, 0] != -5


def _blobs(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    rows = list(con.execute("SELECT site_id, scene_id, grid_res_m, detector, maps, quicklook, grid "
                            "FROM sitewatch_scene_maps ORDER BY fid"))
    con.close()
    return rows


def test_evidence_made_beside_the_model_is_stored_byte_for_byte_as_made_step_by_step(tmp_path, monkeypatch):
    """The evidence lane (``sitewatch.sceneflow``: quicklooks, records and maps' bytes made on a
    worker thread while the model runs) stores the very bytes, rows and row order that making them
    one after another on the run's own thread stores."""
    import sitewatch.sceneflow as flow
    from sitewatch.monitor import MonitorParams, run

    imagery, sites, model = build(tmp_path)
    got = {}
    for threaded in (True, False):
        made = []
        monkeypatch.setattr(flow, "beside", lambda t=threaded: t)
        orig = flow.Lane.__init__

        def spy(self, threaded=None, _orig=orig):  # type: ignore[no-untyped-def]
            _orig(self, threaded)
            made.append(self._pool is not None)

        monkeypatch.setattr(flow.Lane, "__init__", spy)
        db = tmp_path / f"{threaded}.gpkg"
        s = run(MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model),
                              model_only=True))
        assert s.status == "completed" and made and set(made) == {threaded}, (s.as_dict(), made)
        ev = json.loads(json.dumps(stored_evidence(db)).replace(str(db), "<db>"))
        got[threaded] = (ev, _blobs(db))
    assert len(got[True][1]) == 8 and got[True][0]["detections"], "the fixture must store maps and changes"
    assert got[True][1] == got[False][1]  # maps, quicklook PNGs and grids: the same bytes in the same rows
    assert got[True][0] == got[False][0]


def test_an_error_after_a_scene_was_mapped_keeps_that_scene_as_a_step_by_step_run_does(tmp_path, monkeypatch):
    """The lane holds a mapped scene until the next one is mapped; an unexpected error while mapping
    the next must not lose it: the file then holds the scenes a step-by-step run would have stored."""
    import pytest

    import sitewatch.sceneflow as flow
    from sitewatch.changemodel import ModelDetector
    from sitewatch.monitor import MonitorParams, run

    imagery, sites, model = build(tmp_path)
    orig = ModelDetector.maps
    stored = {}
    for threaded in (True, False):
        calls = []

        def failing(self, raster, history=(), _orig=orig, _calls=calls):  # type: ignore[no-untyped-def]
            _calls.append(raster.scene.scene_id)
            if len(_calls) == 3:
                raise RuntimeError("the detector broke")
            return _orig(self, raster, history)

        monkeypatch.setattr(ModelDetector, "maps", failing)
        monkeypatch.setattr(flow, "beside", lambda t=threaded: t)
        db = tmp_path / f"broken-{threaded}.gpkg"
        with pytest.raises(RuntimeError, match="the detector broke"):
            run(MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model),
                              model_only=True))
        con = sqlite3.connect(db)
        stored[threaded] = sorted(con.execute("SELECT site_id, scene_id, length(maps), length(quicklook) "
                                              "FROM sitewatch_scene_maps"))
        con.close()
    assert len(stored[False]) == 2, stored  # the two scenes mapped before the error
    assert stored[True] == stored[False]


#: every stored byte of a model-only run over the fixture, as the monitor stored them at 738f4bf
#: (before the own-cost round of branch ``owncost``); written by ``python tests/test_model_evidence.py bytes``
GOLDEN_BYTES = Path(__file__).resolve().parent / "data" / "model_only_bytes.json"
#: tables a run writes what it found into (``runs`` holds times and the run's own id; the rtree
#: tables are GeoPackage's indexes of the geometries compared here)
STORED_TABLES = ("sites", "scenes", "detections", "site_metrics", "sitewatch_scene_maps")


def content_digest(blob: bytes) -> str:
    """SHA-256 of what a blob holds: a PNG's decoded pixels and a .npz's arrays (names, dtypes,
    shapes, values) rather than their deflated bytes, which another zlib or Pillow build encodes
    differently for the same content; any other blob (a geometry) byte for byte."""
    h = hashlib.sha256()
    if blob.startswith(b"\x89PNG"):
        from PIL import Image

        with Image.open(io.BytesIO(blob)) as img:
            h.update(f"png {img.mode} {img.size}".encode())
            h.update(img.tobytes())
        return "png-pixels:" + h.hexdigest()
    if blob.startswith(b"PK"):
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            for name in z.files:
                a = z[name]
                h.update(f"{name} {a.dtype.str} {a.shape}".encode())
                h.update(np.ascontiguousarray(a).tobytes())
        return "npz-arrays:" + h.hexdigest()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def stored_bytes(db: Path, tmp: Path | None = None) -> dict[str, list[list]]:
    """Each row of the tables a run stores its findings in, column by column as the file holds it
    (blobs as :func:`content_digest`, geometries as SHA-256 of their bytes), in the file's row order; only the
    columns that say when or in which run are left out. ``tmp``: a folder whose path in a text is
    replaced by ``<tmp>`` (the fixture's imagery paths)."""
    con = sqlite3.connect(db)
    out: dict[str, list[list]] = {}
    for table in STORED_TABLES:
        cur = con.execute(f'SELECT * FROM "{table}" ORDER BY fid')
        cols = [c[0] for c in cur.description]
        rows = []
        for r in cur:
            row = []
            for c, v in zip(cols, r):
                if c in VOLATILE or c == "added_at":
                    continue
                if isinstance(v, bytes):
                    v = content_digest(v)
                elif isinstance(v, str) and tmp is not None:
                    v = v.replace(str(tmp), "<tmp>")
                row.append([c, v])
            rows.append(row)
        out[table] = rows
    con.close()
    return out


def bytes_fixture(tmp: Path) -> dict:
    db, _ = model_only_run(tmp)
    return json.loads(json.dumps(stored_bytes(db, tmp)))


def test_model_only_run_stores_the_very_bytes_it_stored_before_the_own_cost_was_cut(tmp_path):
    """Not only what the evidence says (the test above) but every stored value: the maps' arrays,
    the quicklooks' pixels, the geometries' bytes, the rows and their order. The own-cost work
    (tracing, reading, the model's input) must change how long a run takes, not one stored byte.
    (Compressed blobs are compared by what they hold, so another zlib or Pillow build passes.)"""
    want = json.loads(GOLDEN_BYTES.read_text())
    got = bytes_fixture(tmp_path)
    assert len(got["detections"]) >= 2 and len(got["sitewatch_scene_maps"]) == 8, "the fixture must show changes"
    for table in STORED_TABLES:
        assert len(got[table]) == len(want[table]), table
        for g, w in zip(got[table], want[table]):
            assert g == w, table
    assert got == want


if __name__ == "__main__":  # (re)record the reference: only for a change meant to change stored evidence
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    with tempfile.TemporaryDirectory() as t:
        if sys.argv[1:] == ["bytes"]:
            out = bytes_fixture(Path(t))
            GOLDEN_BYTES.write_text(json.dumps(out, indent=1) + "\n")
            print(f"{GOLDEN_BYTES}: {len(out['detections'])} detections, {len(out['scenes'])} scenes")
        else:
            out = run_fixture(Path(t))
            GOLDEN.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
            print(f"{GOLDEN}: {len(out['detections'])} detections, {len(out['scenes'])} scenes")
