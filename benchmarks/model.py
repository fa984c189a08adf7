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
  are there for the timing. (Plain convolutions only, onnxruntime's fastest path per
  multiply-accumulate: a real BIT or ChangeFormer also runs attention, a real TinyCD depthwise
  convolutions, squeeze-excitation and instance norms.)
- ``tinycd-arch``: the same output plus 0 x TinyCD itself, layer for layer as its published code
  builds it (EfficientNet-B4's first blocks on each date, the mixing and the UpMask decoder;
  ``tinycd_arch.py``), with fixed random weights: TinyCD's inference cost, not its skill.

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
sys.path.insert(0, str(ROOT / "benchmarks"))

from stages import INFERENCE, REST, STAGES, breakdown, profile  # noqa: E402
from standins import MODELS, STANDINS, build, macs, parameters, published, standin_model  # noqa: E402,F401

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



def scores(masks: dict[str, np.ndarray], pairs) -> dict:
    from sitewatch.testbed.scoring import PixelScore, object_recall, pixel_score

    total, found, n = PixelScore(0, 0, 0), 0, 0
    for name, _, _, label in pairs:
        total = total + pixel_score(masks[name], label)
        f, k = object_recall(masks[name], label)
        found, n = found + f, n + k
    iou = total.tp / max(1, total.tp + total.fp + total.fn)
    return {"f1": total.f1, "precision": total.precision, "recall": total.recall, "iou": iou, "objects": (found, n)}



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
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated, of: " + ", ".join(MODELS))
    ap.add_argument("--sets", default="levir,xbd",
                    help="comma-separated: levir (11 pairs of 256 x 256 px) and/or xbd (3 pairs of 1024 x 1024 px)")
    ap.add_argument("--profile", action="store_true",
                    help="only cProfile one model-only monitor run with the difference model and print its top calls")
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sitewatch-model-"))
    work.mkdir(parents=True, exist_ok=True)
    meta = dict(scale=255, tile=256, gsd_m=0.5, threshold=0.5)
    wanted = args.models.split(",")
    unknown = set(wanted) - set(MODELS)
    if unknown:
        ap.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    sets = args.sets.split(",")
    if set(sets) - set(SETS):
        ap.error(f"unknown set(s): {', '.join(sorted(set(sets) - set(SETS)))}")
    if args.profile:
        profile(build("difference", work, **meta),
                *write_pairs(work, SETS[sets[0]]())[:2], work)
        return
    models = {name: build(name, work, **meta) for name in wanted}
    print("Models (parameters and multiply-accumulates of the convolutions per 256 x 256 pair counted from "
          "each ONNX graph; published figures from the TinyCD paper's comparison table; for tinycd-arch also "
          "its parameters as PyTorch counts them, batch norms unfolded, and its operations by thop's rules):\n")
    print("| model | parameters | G MAC per pair | PyTorch parameters | G ops, thop's rules | published parameters | "
          "published G MAC (\"FLOPs\") |")
    print("|---|---|---|---|---|---|---|")
    for name, path in models.items():
        pub, torch_params, thop = published(name), "-", "-"
        if name == "tinycd-arch":
            import tinycd_arch

            torch_params, thop = f"{tinycd_arch.torch_parameters():,}", f"{tinycd_arch.thop_ops(path) / 1e9:.3f}"
        print(f"| {name} | {parameters(path):,} | {macs(path) / 1e9:.3f} | {torch_params} | {thop} | "
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
