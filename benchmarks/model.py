"""A change model plugged into ``monitor`` against the same model run directly, on real pairs.

    nice .venv/bin/python benchmarks/model.py [--work DIR] [--repeat 3] [--models difference,tinycd-size,...]
        [--sets levir,xbd]
    nice .venv/bin/python benchmarks/model.py --profile [--sets xbd]   # cProfile (CPU) of one monitor run

Data, two sets of real pairs (``--sets``), each pair written as two 8-bit GeoTIFFs on a UTM grid of
its own pixel size (the PNGs carry no georeferencing, so each pair is placed at its own spot, dated
2010-06-01 and 2015-06-01 for the pipeline's sake) with a site polygon over it, and
``sitewatch.monitor.run`` runs with ``change_model`` and ``model_only``:

- ``levir``: the eleven LEVIR-CD sample pairs in ``../shared/data/levir-cd-samples`` (256 x 256 px,
  0.5 m RGB, Texas; ten with building change, one without): one model tile per pair.
- ``xbd``: the three xBD Joplin pairs in ``../shared/data/buildings-real/xbd-joplin`` (1024 x 1024
  px, 0.45 m): a site-sized window, 25 overlapping model tiles per pair.

Models: no trained weights exist here, so the models are real ONNX networks built with the onnx
helper (tests/onnx_models.py), with fixed weights:

- ``difference``: mean absolute RGB difference between the dates, a 5 x 5 box filter, and
  ``40 * (x - 0.1)`` as logits; threshold 0.5. A crude change detector, not a building model.
- ``tinycd-size``, ``bit-size``, ``changeformer-size``: the same output, plus a branch of 3 x 3
  convolutions with fixed random weights, multiplied by 0 and added to the logits, laid out
  (STANDINS) so that its parameters and multiply-accumulates per 256 x 256 pair match what the
  TinyCD paper's comparison table gives for TinyCD (0.28 M, 1.54 G), BIT (3.55 M, 10.6 G) and
  ChangeFormer (41 M, 202.8 G). The script counts both from each graph and prints them. They give
  the same detections as ``difference`` at the inference cost of a network of that class; they
  are there for the timing. (Convolutions only: a real BIT or ChangeFormer also runs attention,
  which onnxruntime may run at another speed per multiply-accumulate.)

Figures: pixel F1 / IoU / object recall (a changed building counts as found when >= 50% of it is
covered) against each set's labels, of (a) the model run directly with onnxruntime over the very
tiles ``monitor`` cuts, stitched and thresholded, and (b) the detections ``monitor`` stored
(rasterised back onto the pair's pixels); the time of (b), a whole run, against the time of the
model alone over the same tiles (fastest of ``--repeat`` runs each); the run's CPU stage by stage,
and with both sets each stage's cost per scene split into a fixed part and a part per pixel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

SHARED = ROOT.parent / "shared" / "data"
LEVIR = SHARED / "levir-cd-samples"
XBD = SHARED / "buildings-real" / "xbd-joplin"
CRS = "EPSG:32614"
X0, Y0, RES, SIDE = 500_000.0, 3_500_000.0, 0.5, 256


@dataclasses.dataclass
class PairSet:
    """Real before/after pairs of one size, each written as two GeoTIFFs with one site over it."""

    key: str
    title: str
    res: float
    side: int
    #: (name, before uint8 HxWx3, after, label bool HxW)
    pairs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]
    label: str

    def origin(self, i: int) -> tuple[float, float]:
        """Pair ``i``'s top-left corner: on the site grid's own lattice (a multiple of the pixel size,
        as :func:`sitewatch.grid.grid_for` snaps it), so the reader copies the pixels, never warps."""
        step = max(1000.0, 2.0 * self.side * self.res)
        return (round((X0 + step * i) / self.res) * self.res, round(Y0 / self.res) * self.res)

    def transform(self, i: int):  # type: ignore[no-untyped-def]
        from affine import Affine

        x0, y0 = self.origin(i)
        return Affine(self.res, 0, x0, 0, -self.res, y0)

    @property
    def pixels(self) -> int:
        return self.side * self.side


def levir_pairs() -> PairSet:
    """The eleven LEVIR-CD sample pairs (256 x 256 px, 0.5 m), LEVIR's change labels."""
    from PIL import Image

    out = []
    for a in sorted((LEVIR / "A").glob("*.png")):
        imgs = [np.asarray(Image.open(LEVIR / d / a.name).convert("RGB")) for d in ("A", "B")]
        label = np.asarray(Image.open(LEVIR / "label" / a.name).convert("L")) > 127
        out.append((a.stem, imgs[0], imgs[1], label))
    return PairSet("levir", "LEVIR-CD samples", RES, SIDE, out, "LEVIR's building-change labels")


def xbd_pairs() -> PairSet:
    """The three xBD Joplin tornado pairs (1024 x 1024 px, 0.45 m; QuickBird 2009 / WorldView-2
    2011): a site of 460 m a side, 25 overlapping model tiles of 256 px per pair. Labelled change:
    the footprints xBD calls destroyed (the models here flag any change, not only removals, so
    their F1 says little; what the pipeline loses against the model run directly is the figure)."""
    from PIL import Image

    out = []
    for pre in sorted((XBD / "images").glob("*_pre_disaster.png")):
        tile = pre.name.replace("_pre_disaster.png", "")
        imgs = [np.asarray(Image.open(XBD / "images" / f"{tile}_{d}_disaster.png").convert("RGB"))
                for d in ("pre", "post")]
        damage = np.asarray(Image.open(XBD / "masks" / f"{tile}_post_disaster_damage.png"))
        # (named by the tile's last digit: the folder reader would take the 8-digit number for a date)
        out.append((f"joplin-tile{int(tile.rsplit('_', 1)[1])}", imgs[0], imgs[1], damage == 4))
    side = out[0][1].shape[0]
    assert all(p[1].shape[:2] == (side, side) for p in out)
    return PairSet("xbd", "xBD Joplin", 0.45, side, out, "xBD's destroyed footprints")


SETS = {"levir": levir_pairs, "xbd": xbd_pairs}


def write_pairs(work: Path, pset: PairSet, clear_mask: bool = True) -> tuple[Path, Path, dict]:
    """A folder of GeoTIFFs (two per pair) and a GeoJSON of one site per pair; site_id -> pair index.

    ``clear_mask``: each file carries a fourth band, ``scl``, saying every pixel is clear ground
    (class 5, bare soil): LEVIR's pairs are cloud-free mosaics. Without it sitewatch's own cloud
    test runs on the RGB and its verdict on these bright Texas scenes is part of the figure."""
    from servers import write_cog
    from shapely.geometry import box, mapping

    from sitewatch.grid import to_crs

    imagery = work / f"{pset.key}-imagery{'-scl' if clear_mask else ''}"
    if imagery.exists():  # (files of an earlier run of the script would be scenes too)
        shutil.rmtree(imagery)
    imagery.mkdir(parents=True)
    feats, index = [], {}
    side, res = pset.side, pset.res
    for i, (name, a, b, _) in enumerate(pset.pairs):
        x0, y0 = pset.origin(i)
        t = pset.transform(i)
        for img, date in ((a, "2010-06-01"), (b, "2015-06-01")):
            # 0 is the files' no-data value: a real black pixel becomes 1
            data = np.maximum(img, 1).transpose(2, 0, 1)
            if clear_mask:
                data = np.concatenate([data, np.full((1, side, side), 5, np.uint8)])
            write_cog(imagery / f"{name}_{date}.tif", data, CRS, t,
                      descriptions=["red", "green", "blue", "scl"][:data.shape[0]])
        inner = box(x0 + 0.2, y0 - side * res + 0.2, x0 + side * res - 0.2, y0 - 0.2)
        feats.append({"type": "Feature", "properties": {"site_id": name, "name": name},
                      "geometry": mapping(to_crs(inner, CRS, "EPSG:4326"))})
        index[name] = i
    sites = work / f"{pset.key}-sites{'-scl' if clear_mask else ''}.geojson"
    sites.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return imagery, sites, index


#: Stand-ins for the networks issue 14 names, matched on compute (multiply-accumulates per 256 x 256
#: pair, the "FLOPs" of change-detection papers, counted by thop/ptflops as MACs) and parameters as
#: the TinyCD paper's comparison table gives them (Codegoni et al. 2023): name -> (published
#: parameters, published G MAC per pair, branch plan). A plan is [(channels, repeats), ...]: the
#: first stage at full resolution (a 3 -> channels stem, then ``repeats`` same-width 3 x 3
#: convolutions), each later one a stride-2 convolution into ``channels`` and then ``repeats``
#: same-width ones; a transposed convolution brings the last stage back to full resolution.
STANDINS: dict[str, tuple[float, float, list[tuple[int, int]]]] = {
    "tinycd-size": (0.28e6, 1.54, [(16, 2), (32, 1), (64, 6)]),
    "bit-size": (3.55e6, 10.6, [(32, 10), (64, 0), (128, 1), (256, 5)]),
    "changeformer-size": (41.0e6, 202.8, [(64, 66), (128, 0), (256, 0), (512, 16)]),
}


def standin_model(path: Path, plan: list[tuple[int, int]], **meta: object) -> Path:
    """The difference model's output plus a zero-weighted branch of convolutions laid out by ``plan``
    (see STANDINS), with fixed random weights: the same detections as ``difference`` at the
    inference cost of a network of that size and compute."""
    import onnx_models as om
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def conv(x: str, cin: int, cout: int, name: str, stride: int = 1) -> str:
        w = numpy_helper.from_array((rng.normal(0, 1 / np.sqrt(9 * cin), (cout, cin, 3, 3))).astype(np.float32), f"w_{name}")
        inits.append(w)
        nodes.append(helper.make_node("Conv", [x, f"w_{name}"], [f"c_{name}"], pads=[1, 1, 1, 1], strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [f"c_{name}"], [name]))
        return name

    up = 2 ** (len(plan) - 1)
    width = plan[-1][0]
    inits += [numpy_helper.from_array(np.full((1, 3, 1, 1), 1 / 3, np.float32), "w_mean"),
              numpy_helper.from_array(np.full((1, 1, 5, 5), 1 / 25, np.float32), "w_box"),
              numpy_helper.from_array(np.array(0.1, np.float32), "offset"),
              numpy_helper.from_array(np.array(40.0, np.float32), "gain"),
              numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
              numpy_helper.from_array(np.ones((width, 1, up, up), np.float32) / width, "w_up")]
    nodes += [helper.make_node("Sub", ["after", "before"], ["d"]), helper.make_node("Abs", ["d"], ["a"]),
              helper.make_node("Conv", ["a", "w_mean"], ["m"]),
              helper.make_node("Conv", ["m", "w_box"], ["s"], pads=[2, 2, 2, 2]),
              helper.make_node("Sub", ["s", "offset"], ["z"]), helper.make_node("Mul", ["z", "gain"], ["logit"])]
    x, cin = "d", 3
    for i, (c, repeats) in enumerate(plan):
        x, cin = conv(x, cin, c, f"s{i}_in", 1 if i == 0 else 2), c
        for k in range(repeats):
            x = conv(x, c, c, f"s{i}_{k}")
    nodes += [helper.make_node("ConvTranspose", [x, "w_up"], ["up"], strides=[up, up]),
              helper.make_node("Mul", ["up", "zero"], ["branch"]),
              helper.make_node("Add", ["logit", "branch"], ["change"])]
    return om.save(path, nodes, [om._io("before", 3), om._io("after", 3)], [om._io("change", 1)], inits,
                   om.meta(output="logits", **meta))


def parameters(path: Path) -> int:
    import onnx

    return int(sum(np.prod(t.dims) for t in onnx.load(str(path)).graph.initializer))


def macs(path: Path, side: int = SIDE) -> int:
    """Multiply-accumulates of one ``side`` x ``side`` pair, counted from the graph's Conv and
    ConvTranspose shapes (ONNX shape inference with the inputs fixed at 1 x C x side x side);
    element-wise operators are left out, as thop and ptflops leave them out."""
    import onnx
    from onnx import shape_inference

    m = onnx.load(str(path))
    for vi in m.graph.input:
        dims = vi.type.tensor_type.shape.dim
        for d, v in zip(dims, (1, None, side, side)):
            if v is not None:
                d.ClearField("dim_param")
                d.dim_value = v
    g = shape_inference.infer_shapes(m).graph
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(g.input) + list(g.value_info) + list(g.output)}
    weights = {t.name: list(t.dims) for t in g.initializer}
    total = 0
    for n in g.node:
        if n.op_type == "Conv":  # each output value: cin/group * kh * kw
            total += int(np.prod(shapes[n.output[0]])) * int(np.prod(weights[n.input[1]][1:]))
        elif n.op_type == "ConvTranspose":  # each input value: cout/group * kh * kw
            total += int(np.prod(shapes[n.input[0]])) * int(np.prod(weights[n.input[1]][1:]))
    return total


def direct(model_path: Path, pset: PairSet, repeat: int) -> tuple[dict[str, np.ndarray], tuple[float, float]]:
    """The model alone: onnxruntime over each pair in the very tiles ``monitor`` cuts (one 256 x 256
    tile for a LEVIR pair; 25 overlapping ones for a 1024 x 1024 xBD pair), in its batches; the
    input scaled as the model's metadata says. Only the session's runs (with the logits' sigmoid,
    as in ``ChangeModel._run``) are timed; cutting and stitching the tiles are not."""
    from sitewatch.changemodel import BATCH, ChangeModel, _cut, _spans, _tile_size

    m = ChangeModel.open(model_path)
    c = m.contract
    T, M = c.tile, m.margin
    batches = []  # per pair: [(jobs, before tiles, after tiles), ...]
    for name, a, b, _ in pset.pairs:
        x, y = (m.normalise({k: img[..., i].astype(np.float32) for i, k in enumerate(("red", "green", "blue"))},
                            {k: (1.0, 0.0) for k in ("red", "green", "blue")})  # stored values: 8-bit
                for img in (a, b))
        H, W = a.shape[:2]
        jobs = [(ys, xs) for ys in _spans(H, T, M) for xs in _spans(W, T, M)]
        th, tw = _tile_size(H, T, c.fixed_hw), _tile_size(W, T, c.fixed_hw)
        batches.append([(jobs[k:k + BATCH], np.stack([_cut(x, ys, xs, th, tw) for ys, xs in jobs[k:k + BATCH]]),
                         np.stack([_cut(y, ys, xs, th, tw) for ys, xs in jobs[k:k + BATCH]]))
                        for k in range(0, len(jobs), BATCH)])
    best = (float("inf"), float("inf"))
    outs: list[list[np.ndarray]] = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        outs = [[m._run(bb, aa) for _, bb, aa in pair] for pair in batches]
        best = min(best, (time.process_time() - c0, time.perf_counter() - t0))
    out: dict[str, np.ndarray] = {}
    for (name, a, *_), pair, probs in zip(pset.pairs, batches, outs):
        p = np.zeros(a.shape[:2], np.float32)
        for (chunk, _, _), tiles in zip(pair, probs):
            for ((y0, ky0, ky1), (x0, kx0, kx1)), tile in zip(chunk, tiles):
                p[ky0:ky1, kx0:kx1] = tile[ky0 - y0:ky1 - y0, kx0 - x0:kx1 - x0]
        out[name] = p >= c.threshold
    return out, best


def model_tiles(model_path: Path, pset: PairSet) -> int:
    """Tiles the model runs over per pair (as ``ChangeModel.probability`` cuts the window)."""
    from sitewatch.changemodel import ChangeModel, _spans

    m = ChangeModel.open(model_path)
    return len(_spans(pset.side, m.contract.tile, m.margin)) ** 2


def through_monitor(model_path: Path, imagery: Path, sites: Path, pset: PairSet, index: dict, work: Path,
                    repeat: int) -> tuple[dict[str, np.ndarray], tuple[float, float], Path, dict]:
    from rasterio.features import rasterize

    from sitewatch.grid import to_crs
    from sitewatch.monitor import MonitorParams, run
    from sitewatch.store import Store

    best, db, summary = (float("inf"), float("inf")), None, {}
    for k in range(repeat):
        db = work / f"{imagery.name}-{model_path.stem}-{k}.gpkg"
        db.unlink(missing_ok=True)
        t0, c0 = time.perf_counter(), time.process_time()
        s = run(MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model_path),
                              model_only=True))
        best = min(best, (time.process_time() - c0, time.perf_counter() - t0))
        summary = {"status": s.status, **s.as_dict()}
        if summary["scenes_new"] != 2 * len(index) or summary["scenes_failed"]:
            raise SystemExit(f"monitor did not store every scene of {imagery}: {summary}")
    store = Store(db)
    masks = {}
    for name, i in index.items():
        dets = store.detections(site_id=name)
        shapes = [(to_crs(d.geometry, "EPSG:4326", CRS), 1) for d in dets]
        shape = (pset.side, pset.side)
        masks[name] = rasterize(shapes, out_shape=shape, transform=pset.transform(i)).astype(bool) if shapes else \
            np.zeros(shape, bool)
    return masks, best, db, summary


#: Where a monitor run's time goes: (stage, [(module, attribute), ...]); each stage's time excludes the
#: stages called inside it (the model run inside the maps, the writes inside dating, ...).
STAGES = [
    ("discovering the imagery folder", [("sitewatch.catalog", "discover")]),
    ("reading and masking the scenes", [("sitewatch.reader", "read_scene")]),
    ("quicklook PNGs", [("sitewatch.quicklook", "png"), ("sitewatch.quicklook", "rgb8")]),
    ("scene records (valid footprint, band medians)", [("sitewatch.monitor", "scene_record")]),
    ("the model: onnxruntime inference", [("sitewatch.changemodel:ChangeModel", "_run")]),
    ("the model's input: scaling, tiles, kept bands", [("sitewatch.changemodel:ModelDetector", "maps")]),
    ("maps (de)serialisation", [("sitewatch.structures:StructureMaps", n)
                                for n in ("to_bytes", "from_bytes", "stored")]),
    ("GeoPackage writes", [("sitewatch.store:Store", n) for n in
                           ("save_scene", "save_detections", "supersede_detections", "withdraw_detections",
                            "update_security",
                            "upsert_sites", "start_run", "finish_run")]),
    ("dating changes: regions, outlines, ids", [("sitewatch.monitor", "redate_site")]),
]


def sequential(read, refs):  # type: ignore[no-untyped-def]
    """Scenes read one after another on the calling thread, so a CPU timer sees each stage."""
    from sitewatch.errors import SceneError

    for ref in refs:
        try:
            yield ref, read(ref)
        except SceneError as exc:
            yield ref, exc


def breakdown(model_path: Path, imagery: Path, sites: Path, work: Path,
              db: Path | None = None) -> tuple[float, dict[str, float]]:
    """One more monitor run with each stage's CPU time (process time, so onnxruntime's and the reader's
    own threads count) taken around its calls; scenes are read, and their evidence made, one after another for this run, so
    that no read overlaps another stage. Returns the run's CPU time and stage -> seconds. ``db``: run
    into this GeoPackage as it is (else into a new one)."""
    import importlib

    import sitewatch.monitor as mon
    from sitewatch.monitor import MonitorParams, run

    spent: dict[str, float] = {name: 0.0 for name, _ in STAGES}
    stack: list[list[float]] = []  # per open call: [time in callees]
    patched: list[tuple[object, str, object]] = []

    def timed(stage: str, fn):  # type: ignore[no-untyped-def]
        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            stack.append([0.0])
            t0 = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                took = time.process_time() - t0
                inner = stack.pop()[0]
                spent[stage] += took - inner
                if stack:
                    stack[-1][0] += took
        return wrapper

    for stage, targets in STAGES:
        for where, attr in targets:
            mod, _, cls = where.partition(":")
            owner = getattr(importlib.import_module(mod), cls) if cls else importlib.import_module(mod)
            if attr not in owner.__dict__:  # (an older sitewatch, measured for comparison)
                continue
            orig = owner.__dict__[attr]
            if isinstance(orig, classmethod):
                new = classmethod(timed(stage, orig.__func__))
            else:
                new = timed(stage, orig)
            patched.append((owner, attr, orig))
            setattr(owner, attr, new)
    patched.append((mon, "_read_ahead", mon._read_ahead))
    mon._read_ahead = sequential
    try:  # a scene's evidence made on the run's thread too (else a stage's CPU timer counts the lane's)
        import sitewatch.sceneflow as flow

        patched.append((flow, "beside", flow.beside))
        flow.beside = lambda: False
    except ImportError:  # (an older sitewatch: no evidence lane)
        pass
    if db is None:
        db = work / f"{imagery.name}-breakdown-{model_path.stem}.gpkg"
        db.unlink(missing_ok=True)
    try:
        c0 = time.process_time()
        run(MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model_path),
                          model_only=True))
        total = time.process_time() - c0
    finally:
        for owner, attr, orig in reversed(patched):
            setattr(owner, attr, orig)
    return total, spent


def scores(masks: dict[str, np.ndarray], pairs) -> dict:
    from sitewatch.testbed.scoring import PixelScore, object_recall, pixel_score

    total, found, n = PixelScore(0, 0, 0), 0, 0
    for name, _, _, label in pairs:
        total = total + pixel_score(masks[name], label)
        f, k = object_recall(masks[name], label)
        found, n = found + f, n + k
    iou = total.tp / max(1, total.tp + total.fp + total.fn)
    return {"f1": total.f1, "precision": total.precision, "recall": total.recall, "iou": iou, "objects": (found, n)}


def profile(model_path: Path, imagery: Path, sites: Path, work: Path, top: int = 45) -> None:
    """cProfile one model-only monitor run (scenes read in the same thread as everything else, so
    that the profile sees the reads) and print its top calls by own time and by cumulative time."""
    import cProfile
    import pstats

    import sitewatch.monitor as mon
    from sitewatch.monitor import MonitorParams, run

    db = work / "levir-profile.gpkg"
    params = MonitorParams(sites=str(sites), imagery=str(imagery), db=str(db), change_model=str(model_path),
                           model_only=True)
    run(dataclasses.replace(params, db=str(work / "levir-profile-warm.gpkg")))  # imports, caches
    db.unlink(missing_ok=True)
    orig, mon._read_ahead = mon._read_ahead, sequential
    os.environ["SITEWATCH_EVIDENCE_THREAD"] = "0"  # the evidence on the profiled thread too
    prof = cProfile.Profile(time.process_time)  # CPU, all threads: waits on the disk do not count
    try:
        c0 = time.process_time()
        prof.runcall(run, params)
        print(f"monitor run, CPU {time.process_time() - c0:.3f} s (under the profiler)")
    finally:
        mon._read_ahead = orig
    for key in ("tottime", "cumulative"):
        pstats.Stats(prof).sort_stats(key).print_stats(top)


def measure(pset: PairSet, models: dict[str, Path], work: Path, repeat: int, masks: bool) -> dict[str, dict]:
    """Accuracy and time of each model on one set, printed as a table; per model the times and the
    stage breakdown (on the 'scl: all clear' imagery). ``masks``: also the run without a mask."""
    n_pairs = len(pset.pairs)
    n_changed = sum(int(p[3].any()) for p in pset.pairs)
    data = (f"{pset.title}: {n_pairs} pairs of {pset.side} x {pset.side} px at {pset.res} m RGB "
            f"({n_changed} with labelled change: {pset.label}), {n_pairs} sites, {2 * n_pairs} scenes")
    print(f"## Change model through monitor vs directly: {data}\n")
    print("| model | parameters | imagery mask | path | pixel F1 | precision | recall | IoU | objects found | CPU s | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    timing: dict[str, dict] = {}
    for clear in ((True, False) if masks else (True,)):
        imagery, sites, index = write_pairs(work, pset, clear_mask=clear)
        mask = "scl: all clear" if clear else "none (sitewatch's cloud test)"
        for name, path in models.items():
            if not clear and name != "difference":
                continue  # the mask question does not depend on the model's cost
            # the model alone and monitor in turn, so that a change of the machine's load between them
            # falls on both (the fastest of each is kept)
            (d_cpu, d_wall), (m_cpu, m_wall) = (float("inf"),) * 2, (float("inf"),) * 2
            loads = []
            for _ in range(repeat):
                d_masks, d = direct(path, pset, 1)
                m_masks, m, db, summary = through_monitor(path, imagery, sites, pset, index, work, 1)
                (d_cpu, d_wall), (m_cpu, m_wall) = min((d_cpu, d_wall), d), min((m_cpu, m_wall), m)
                loads.append(os.getloadavg()[0])
            ds, ms = scores(d_masks, pset.pairs), scores(m_masks, pset.pairs)
            for label, sc, c, w in (("direct (onnxruntime, same tiles)", ds, d_cpu, d_wall),
                                    ("sitewatch monitor", ms, m_cpu, m_wall)):
                print(f"| {name} | {parameters(path):,} | {mask} | {label} | {sc['f1']:.3f} | {sc['precision']:.3f} | "
                      f"{sc['recall']:.3f} | {sc['iou']:.3f} | {sc['objects'][0]}/{sc['objects'][1]} | {c:.2f} | {w:.2f} |")
            print(f"| {name} | | {mask} | **F1 lost {ds['f1'] - ms['f1']:+.3f}; CPU {m_cpu / d_cpu:.2f}x, "
                  f"wall {m_wall / d_wall:.2f}x the model alone** | | | | | | | |")
            print(f"<!-- {name} / {mask}: run {summary.get('status')}, {summary.get('detections_new')} detections, "
                  f"{summary.get('scenes_new')} scenes -->")
            if clear:
                total, spent = breakdown(path, imagery, sites, work)
                timing[name] = {"d_cpu": d_cpu, "d_wall": d_wall, "m_cpu": m_cpu, "m_wall": m_wall,
                                "b_total": total, "load": (min(loads), max(loads)), **spent}
    print("\nTimes: fastest of", repeat, "runs; CPU = this process's CPU time (all threads), wall = elapsed; "
          "monitor = a whole run into a new GeoPackage (discover, read, mask, quicklook, model, store, date).")
    tiles = {name: model_tiles(path, pset) for name, path in models.items()}
    lo = min(t["load"][0] for t in timing.values())
    hi = max(t["load"][1] for t in timing.values())
    print(f"\n### Time: monitor with the model against the model alone ({data}; 'scl: all clear'; "
          f"load average {lo:.1f}-{hi:.1f} over these runs on {os.cpu_count()} cores)\n")
    print("| model | G MAC per 256² tile | tiles per pair | model alone, CPU s per pair | model alone CPU s | "
          "monitor CPU s | **ratio (CPU)** | model alone wall s | monitor wall s | ratio (wall) | "
          "pipeline's own CPU s | own CPU ms per scene | **1 + own / model alone** | "
          "1.3x needs a model of ≥ CPU s per pair | target ≤ 1.3x |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, t in timing.items():
        own = t["b_total"] - t["the model: onnxruntime inference"]
        cpu, wall, steady = t["m_cpu"] / t["d_cpu"], t["m_wall"] / t["d_wall"], 1 + own / t["d_cpu"]
        verdict = "met" if max(cpu, steady) <= 1.3 else "not met"
        print(f"| {name} | {macs(models[name]) / 1e9:.2f} | {tiles[name]} | {t['d_cpu'] / n_pairs:.3f} | "
              f"{t['d_cpu']:.2f} | {t['m_cpu']:.2f} | **{cpu:.2f}x** | {t['d_wall']:.2f} | {t['m_wall']:.2f} | "
              f"{wall:.2f}x | {own:.2f} | {1000 * own / (2 * n_pairs):.0f} | **{steady:.2f}x** | "
              f"{own / 0.3 / n_pairs:.2f} | {verdict} |")
    print("\n'1 + own / model alone': the pipeline's own CPU (the breakdown run less its inference) over the "
          "model's CPU alone; steadier than the measured ratio, whose two inference times move with the load "
          "(onnxruntime's threads spin while they wait). 'target': met when both ratios are ≤ 1.3.")
    print("\nWhere a monitor run's CPU time goes (one more run per model, its scenes read one after another so "
          "that stages do not overlap; CPU s, each stage without the stages it calls):\n")
    names = list(timing)
    print("| stage | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for stage, _ in STAGES:
        print(f"| {stage} | " + " | ".join(f"{timing[n][stage]:.3f}" for n in names) + " |")
    for n in names:
        timing[n][REST] = timing[n]["b_total"] - sum(timing[n][s] for s, _ in STAGES)
    print(f"| {REST} | " + " | ".join(f"{timing[n][REST]:.3f}" for n in names) + " |")
    print("| **whole run** | " + " | ".join(f"**{timing[n]['b_total']:.3f}**" for n in names) + " |")
    print("| pipeline's own (whole run less inference) | " +
          " | ".join(f"{timing[n]['b_total'] - timing[n]['the model: onnxruntime inference']:.3f}"
                     for n in names) + " |")
    print()
    return timing


REST = "the rest (sites, run record, store reads, Python glue)"
INFERENCE = "the model: onnxruntime inference"


def fixed_and_per_pixel(results: dict[str, tuple[PairSet, dict[str, dict]]]) -> None:
    """Each stage's CPU per scene on two sets of different window sizes, split as a + b * pixels
    (a: per scene whatever its size; b: per million pixels), from the mean over the models run."""
    (ka, (pa, ta)), (kb, (pb, tb)) = list(results.items())[:2]

    def per_scene(pset: PairSet, timing: dict[str, dict], stage: str) -> float:
        return float(np.mean([t[stage] for t in timing.values()])) / (2 * len(pset.pairs))

    xa, xb = pa.pixels / 1e6, pb.pixels / 1e6
    print(f"### The pipeline's own CPU per scene: fixed and per pixel ({pa.title} {pa.side}² against "
          f"{pb.title} {pb.side}²; mean over the models run; ms)\n")
    print(f"| stage | per scene, {pa.side}² | per scene, {pb.side}² | fixed per scene | per million pixels |")
    print("|---|---|---|---|---|")
    tot = [0.0, 0.0]
    for stage in [s for s, _ in STAGES if s != INFERENCE] + [REST]:
        a, b = per_scene(pa, ta, stage), per_scene(pb, tb, stage)
        slope = (b - a) / (xb - xa)
        tot[0], tot[1] = tot[0] + a, tot[1] + b
        print(f"| {stage} | {1000 * a:.1f} | {1000 * b:.1f} | {1000 * (a - slope * xa):.1f} | {1000 * slope:.1f} |")
    slope = (tot[1] - tot[0]) / (xb - xa)
    print(f"| **pipeline's own** | **{1000 * tot[0]:.1f}** | **{1000 * tot[1]:.1f}** | "
          f"**{1000 * (tot[0] - slope * xa):.1f}** | **{1000 * slope:.1f}** |\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default=",".join(["difference", *STANDINS]),
                    help="comma-separated: difference and/or " + ", ".join(STANDINS))
    ap.add_argument("--sets", default="levir,xbd",
                    help="comma-separated: levir (11 pairs of 256 x 256 px) and/or xbd (3 pairs of 1024 x 1024 px)")
    ap.add_argument("--profile", action="store_true",
                    help="only cProfile one model-only monitor run with the difference model and print its top calls")
    args = ap.parse_args()
    import onnx_models as om

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sitewatch-model-"))
    work.mkdir(parents=True, exist_ok=True)
    meta = dict(scale=255, tile=256, gsd_m=0.5, threshold=0.5)
    wanted = args.models.split(",")
    unknown = set(wanted) - {"difference", *STANDINS}
    if unknown:
        ap.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    sets = args.sets.split(",")
    if set(sets) - set(SETS):
        ap.error(f"unknown set(s): {', '.join(sorted(set(sets) - set(SETS)))}")
    if args.profile:
        profile(om.difference_model(work / "difference.onnx", **meta),
                *write_pairs(work, SETS[sets[0]]())[:2], work)
        return
    models = {name: om.difference_model(work / "difference.onnx", **meta) if name == "difference" else
              standin_model(work / f"{name}.onnx", STANDINS[name][2], **meta) for name in wanted}
    print("Models (parameters and multiply-accumulates per 256 x 256 pair counted from each ONNX graph; "
          "published figures from the TinyCD paper's comparison table):\n")
    print("| model | parameters | G MAC per pair | published parameters | published G MAC (\"FLOPs\") |")
    print("|---|---|---|---|---|")
    for name, path in models.items():
        pub = STANDINS.get(name)
        print(f"| {name} | {parameters(path):,} | {macs(path) / 1e9:.3f} | "
              f"{f'{pub[0] / 1e6:.2f} M' if pub else '-'} | {f'{pub[1]:.2f}' if pub else '-'} |")
    print()
    results = {}
    for key in sets:
        pset = SETS[key]()
        results[key] = (pset, measure(pset, models, work, args.repeat, masks=key == "levir"))
    if len(results) >= 2:
        fixed_and_per_pixel(results)


if __name__ == "__main__":
    main()
