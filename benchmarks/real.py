"""Detection on real labelled imagery, through the real pipeline (``sitewatch.monitor.run``).

Every labelled real set in ``../shared/data`` is wrapped as a tiny static STAC catalog of
GeoTIFFs (georeferenced where the data is not: LEVIR-CD and xBD PNGs get a made-up UTM grid of
their own pixel size), one site per pair or image, and run through ``monitor`` exactly as a user
would. Then the stored detections and per-scene maps are read back from the GeoPackage and
scored against the labels on the label's own grid:

- change pairs (LEVIR-CD samples, OSCD dev cities, xBD Joplin "destroyed" buildings):
  pixel precision / recall / F1 / IoU, object recall (label components of >= 10 px that
  detections cover >= 50 %), precision of the 20 % highest-scored detections (a detection is
  right when >= 50 % of its pixels are labelled change);
- per-date building maps (SpaceNet Rio and Atlanta, Inria Austin, xBD pre images): the map
  stored for the scene against the building mask;
- wall / fence / tower detections on imagery that has none (all fine-resolution sets), per
  256 x 256 px tile; real scenes stored as unusable; seconds per set.

The raw data is never copied into the repository (licences: see ``../shared/data``).
Run: ``python benchmarks/real.py [--only levir,oscd,xbd,buildings] [--json out.json [--pixels]] [--s2-folds DIR]
[--fine-folds DIR] [--map-folds DIR]`` (``--s2-folds``: OSCD cities each with the 10 m change model fitted
without them; ``--fine-folds``: LEVIR-CD pairs each with the 0.3-2 m change model fitted without them;
``--map-folds``: the building-labelled sets and the xBD pairs each with the per-date map's trees fitted
without their dataset; without them the shipped models, which have seen every OSCD dev city, LEVIR-CD
pair and building-labelled set, score their own training data).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TILE_PX = 256 * 256
#: Label components smaller than this (pixels) are not objects (specks of a hand-drawn mask).
MIN_OBJECT_PX = 10

UTC = dt.timezone.utc


@dataclass
class Date:
    """One scene of a case: when, and band common name -> (GeoTIFF path, 1-based band)."""

    when: dt.datetime
    assets: dict[str, tuple[str, int]]


@dataclass
class Case:
    """One labelled real site: its scenes, its label raster, what the label marks."""

    dataset: str
    name: str
    task: str  # "change" (pair) or "map" (one date, building mask)
    dates: list[Date]
    label: np.ndarray
    label_crs: str
    label_transform: object
    #: detection kinds scored against the label (change) ...
    kinds: tuple[str, ...] = ("building_new", "building_removed")
    #: ... and whether the site may hold walls, fences or towers (claims there are not counted as false)
    has_barriers: bool = False
    notes: dict = field(default_factory=dict)


# --- wrapping real data as GeoTIFFs and a static STAC catalog ---------------------------------


def _write_tif(path: Path, rgb: np.ndarray, crs: str, transform: object) -> None:
    import rasterio

    with rasterio.open(path, "w", driver="GTiff", width=rgb.shape[1], height=rgb.shape[0], count=rgb.shape[2],
                       dtype=str(rgb.dtype), crs=crs, transform=transform, compress="deflate", tiled=True) as dst:
        for i in range(rgb.shape[2]):
            dst.write(rgb[..., i], i + 1)


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _made_up_grid(res: float, k: int, utm: str = "EPSG:32614"):
    """A UTM grid for unreferenced PNGs: its own pixel size, one square km apart per case."""
    from affine import Affine

    x0 = 500_000 + (k % 20) * 2_000
    y0 = 3_500_000 + (k // 20) * 2_000
    return utm, Affine(res, 0, x0, 0, -res, y0)


def _rgb(path: str) -> dict[str, tuple[str, int]]:
    return {"red": (path, 1), "green": (path, 2), "blue": (path, 3)}


def levir_cases(work: Path) -> list[Case]:
    root = DATA / "levir-cd-samples"
    out = []
    for k, a in enumerate(sorted((root / "A").glob("*.png"))):
        crs, tr = _made_up_grid(0.5, k)
        dates = []
        for j, d in enumerate("AB"):
            p = work / f"levir-{a.stem}-{d}.tif"
            _write_tif(p, _png(root / d / a.name), crs, tr)
            # LEVIR-CD pairs span 5-14 years; the exact dates are not published per tile
            dates.append(Date(dt.datetime(2012 + 4 * j, 6, 1, 17, tzinfo=UTC), _rgb(str(p))))
        label = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(root / "label" / a.name).convert("L")) > 127
        out.append(Case("levir-cd-samples", a.stem, "change", dates, label, crs, tr))
    return out


def oscd_cases(work: Path) -> list[Case]:
    import rasterio

    out = []
    names = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11"}
    for city in sorted(p for p in (DATA / "oscd-dev").iterdir() if p.is_dir()):
        txt = dict(line.split(":", 1) for line in (city / "dates.txt").read_text().split("\n") if ":" in line)
        dates = []
        for j in (1, 2):
            day = dt.datetime.strptime(txt[f"date_{j}"].strip(), "%Y%m%d").replace(hour=10, tzinfo=UTC)
            dates.append(Date(day, {k: (str(city / f"imgs_{j}" / f"{b}.tif"), 1) for k, b in names.items()}))
        with rasterio.open(city / "cm.tif") as ds:
            label, crs, tr = ds.read(1) > 0, str(ds.crs), ds.transform
        out.append(Case("oscd-dev", city.name, "change", dates, label, crs, tr))
    return out


def xbd_cases(work: Path) -> list[Case]:
    """Joplin: 'destroyed' buildings as removals (pair), and the pre image's building map (one date)."""
    from PIL import Image

    root = DATA / "buildings-real" / "xbd-joplin"
    out = []
    for k, pre in enumerate(sorted((root / "images").glob("*_pre_disaster.png"))):
        tile = pre.name.replace("_pre_disaster.png", "")
        crs, tr = _made_up_grid(0.45, 100 + k, "EPSG:32615")
        paths = []
        for d in ("pre", "post"):
            p = work / f"xbd-{tile}-{d}.tif"
            _write_tif(p, _png(root / "images" / f"{tile}_{d}_disaster.png"), crs, tr)
            paths.append(str(p))
        buildings = np.asarray(Image.open(root / "masks" / f"{tile}_pre_disaster_buildings.png")) > 127
        damage = np.asarray(Image.open(root / "masks" / f"{tile}_post_disaster_damage.png"))
        d_pre = Date(dt.datetime(2009, 8, 8, 17, tzinfo=UTC), _rgb(paths[0]))
        d_post = Date(dt.datetime(2011, 5, 29, 17, tzinfo=UTC), _rgb(paths[1]))
        out.append(Case("xbd-joplin", tile, "change", [d_pre, d_post], damage == 4, crs, tr,
                        kinds=("building_removed",)))
        out.append(Case("xbd-joplin-pre", tile, "map", [d_pre], buildings, crs, tr))
    return out


def building_cases(work: Path) -> list[Case]:
    import rasterio
    from rasterio.windows import Window

    root = DATA / "buildings-real"
    spec = [("spacenet-rio", "rio_rgb_0p5m.tif", "rio_buildings_mask.tif", dt.datetime(2016, 1, 1, 13, tzinfo=UTC)),
            ("spacenet-atlanta", "atlanta_pan_0p5m.tif", "atlanta_buildings_mask.tif",
             dt.datetime(2016, 12, 22, 16, tzinfo=UTC)),
            ("inria-austin", "austin_rgb_0p3m.tif", "austin_buildings_mask.tif", dt.datetime(2012, 6, 1, 17, tzinfo=UTC))]
    out = []
    for name, img, mask, when in spec:
        p = str(root / name / img)
        with rasterio.open(p) as ds:
            n = ds.count
            # Rio's 3464 x 3339 mosaic: its central 2048 x 2048 px (a sixth of the time, 1265 of 2335 footprints)
            win = Window((ds.width - 2048) // 2, (ds.height - 2048) // 2, 2048, 2048) if ds.width > 2048 else None
            if win is not None:
                crop = work / f"{name}-crop.tif"
                _write_tif(crop, np.moveaxis(ds.read(window=win), 0, -1), str(ds.crs), ds.window_transform(win))
                p = str(crop)
        assets = _rgb(p) if n >= 3 else {"red": (p, 1), "green": (p, 1), "blue": (p, 1)}  # panchromatic
        with rasterio.open(root / name / mask) as ds:
            label, crs, tr = ds.read(1, window=win) > 127, str(ds.crs), ds.window_transform(win) if win else ds.transform
        out.append(Case(name, name, "map", [Date(when, assets)], label, crs, tr,
                        has_barriers=name == "spacenet-rio"))  # Rio's walled plots are real, unlabelled walls
    return out


def _bounds_4326(case: Case, inset_m: float):
    from shapely.geometry import box

    from sitewatch.grid import to_crs

    import rasterio

    boxes = []
    for d in case.dates:
        for path, _ in d.assets.values():
            with rasterio.open(path) as ds:
                boxes.append(to_crs(box(*ds.bounds), str(ds.crs), "EPSG:4326"))
    g = boxes[0]
    for b in boxes[1:]:
        g = g.intersection(b)
    deg = inset_m / 111_000.0
    return g.buffer(-deg, join_style=2)


def write_catalog(case: Case, out: Path) -> tuple[Path, Path]:
    """A static STAC catalog (one item per date) and a one-site sites file for ``case``."""
    from shapely.geometry import mapping

    out.mkdir(parents=True, exist_ok=True)
    aoi = _bounds_4326(case, inset_m=20.0 if case.dataset == "oscd-dev" else 1.0)
    links = []
    for i, d in enumerate(case.dates):
        assets = {}
        for cn, (path, band) in d.assets.items():
            assets[cn] = {"href": str(Path(path).resolve()), "type": "image/tiff; application=geotiff",
                          "roles": ["data"], "eo:bands": [{"name": cn, "common_name": cn}]}
            if band != 1:
                assets[cn]["eo:bands"] = [{"name": f"b{j}"} for j in range(1, band)] + [{"name": cn, "common_name": cn}]
        item = {"type": "Feature", "stac_version": "1.0.0", "id": f"{case.name}-{i}",
                "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
                "geometry": mapping(aoi.buffer(0.0002)), "bbox": list(aoi.buffer(0.0002).bounds),
                "properties": {"datetime": d.when.isoformat().replace("+00:00", "Z")},
                "links": [], "assets": assets}
        (out / f"item-{i}.json").write_text(json.dumps(item))
        links.append({"rel": "item", "href": f"./item-{i}.json", "type": "application/geo+json"})
    cat = {"type": "Catalog", "stac_version": "1.0.0", "id": f"real-{case.name}",
           "description": f"{case.dataset} {case.name}, wrapped for benchmarks/real.py (not for shipping)",
           "links": links}
    (out / "catalog.json").write_text(json.dumps(cat))
    sites = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": mapping(aoi),
             "properties": {"site_id": f"{case.dataset}-{case.name}", "name": case.name}}]}
    (out / "sites.geojson").write_text(json.dumps(sites))
    return out / "sites.geojson", out / "catalog.json"


# --- running and scoring --------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    seconds: float
    scenes: int
    unusable: list[str]
    pred: np.ndarray  # on the label grid
    detections: list[tuple[str, float, bool, float]]  # (kind, score, right, grid res)
    barrier_claims: int
    status: str
    #: per scored detection, what the score is computed from (for benchmarks/calibrate_real.py)
    evidence: list[dict] = field(default_factory=list)


def _to_label_grid(geoms: Sequence, case: Case) -> np.ndarray:
    from rasterio.features import rasterize

    from sitewatch.grid import to_crs

    shapes = [(to_crs(g, "EPSG:4326", case.label_crs), 1) for g in geoms if not g.is_empty]
    if not shapes:
        return np.zeros(case.label.shape, bool)
    return rasterize(shapes, out_shape=case.label.shape, transform=case.label_transform).astype(bool)


def _map_to_label_grid(presence: np.ndarray, grid, case: Case) -> np.ndarray:
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out = np.zeros(case.label.shape, np.uint8)
    reproject(presence.astype(np.uint8), out, src_transform=grid.transform, src_crs=grid.crs,
              dst_transform=case.label_transform, dst_crs=case.label_crs, resampling=Resampling.nearest)
    return out.astype(bool)


def run_case(case: Case, work: Path) -> Result:
    from sitewatch.monitor import MonitorParams, run
    from sitewatch import components
    from sitewatch.store import Store
    from sitewatch.structures import StructureMaps

    sites, catalog = write_catalog(case, work / "cat")
    db = work / "real.gpkg"
    t0 = time.perf_counter()
    summary = run(MonitorParams(sites=str(sites), imagery=str(catalog), db=str(db)))
    seconds = time.perf_counter() - t0
    store = Store(db)
    d = summary.as_dict()
    dets = store.detections()
    barrier = sum(1 for x in dets if x.kind.split("_")[0] in ("wall", "fence", "tower"))
    scored = []
    evidence = []
    pred = np.zeros(case.label.shape, bool)
    if case.task == "change":
        for x in dets:
            if x.kind not in case.kinds:
                continue
            m = _to_label_grid([x.geometry], case)
            pred |= m
            right = bool(m.any() and case.label[m].mean() >= 0.5)
            scored.append((x.kind, float(x.score), right, float(x.evidence.get("grid_res_m", 0.0))))
            evidence.append({"dataset": case.dataset, "site": case.name, "kind": x.kind, "area_m2": x.area_m2,
                             "right": right, "score": float(x.score),
                             "res": float(x.evidence.get("grid_res_m", 0.0)), "evidence": dict(x.evidence),
                             "label_px": np.flatnonzero(m).tolist()})
    else:
        maps = store.scene_maps(f"{case.dataset}-{case.name}")
        if maps:
            sm = StructureMaps.from_bytes(maps[-1][1])
            pred = _map_to_label_grid(sm.presence["building"], sm.grid, case)
            barrier = sum(int(components.label(sm.presence[k])[1])
                          for k in ("wall", "fence", "tower") if k in sm.kinds)
    return Result(case, seconds, d["scenes_new"] + d["scenes_unusable"], list(d["unusable"]), pred, scored,
                  barrier, summary.status, evidence)


def score(results: Sequence[Result]) -> dict:
    from sitewatch.testbed.scoring import PixelScore, object_recall, pixel_score

    px = PixelScore(0, 0, 0)
    found = total = 0
    for r in results:
        px = px + pixel_score(r.pred, r.case.label)
        lab = _drop_specks(r.case.label)
        f, n = object_recall(r.pred, lab)
        found, total = found + f, total + n
    dets = [d for r in results for d in r.detections]
    top = sorted(dets, key=lambda d: -d[1])[:max(1, math.ceil(0.2 * len(dets)))] if dets else []
    tiles = sum(r.case.label.size for r in results) / TILE_PX
    clean = [r for r in results if not r.case.has_barriers and _fine(r)]
    return {"pixel": px, "objects": (found, total), "n_detections": len(dets),
            "top20_precision": (sum(d[2] for d in top) / len(top)) if top else float("nan"), "top20_n": len(top),
            "barrier_claims": sum(r.barrier_claims for r in clean),
            "barrier_tiles": sum(r.case.label.size for r in clean) / TILE_PX,
            "unusable": sum(len(r.unusable) for r in results), "scenes": sum(r.scenes for r in results),
            "seconds": sum(r.seconds for r in results), "tiles": tiles, "n": len(results),
            "status": sorted({r.status for r in results})}


def _fine(r: Result) -> bool:
    return r.case.dataset != "oscd-dev"


def _drop_specks(label: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    from sitewatch import components

    lab, n = components.label(label)
    if not n:
        return label
    sizes = ndimage.sum_labels(label, lab, np.arange(1, n + 1))
    return np.concatenate([[False], sizes >= MIN_OBJECT_PX])[lab]


def all_cases(work: Path, only: set[str] | None = None) -> list[Case]:
    makers = {"levir": levir_cases, "oscd": oscd_cases, "xbd": xbd_cases, "buildings": building_cases}
    out: list[Case] = []
    for key, make in makers.items():
        if only and key not in only:
            continue
        d = work / "tif" / key
        d.mkdir(parents=True, exist_ok=True)
        out += make(d)
    return out


def run_all(cases: Sequence[Case], work: Path, progress: bool = True, s2_folds: Path | None = None,
            fine_folds: Path | None = None, map_folds: Path | None = None) -> list[Result]:
    """``s2_folds``: a folder of per-city held-out 10 m change models (``benchmarks/train_s2change.py
    --folds``); each OSCD city is then run with the model fitted without it, so its figures are held out.
    ``fine_folds``: the same for the 0.3-2 m change model and the LEVIR-CD pairs
    (``benchmarks/train_finechange.py --folds``). ``map_folds``: the same for the per-date map's trees and
    the building-labelled sets (``benchmarks/train_buildings.py --folds``; xBD pairs as xbd-joplin)."""
    from sitewatch import buildings, finechange, s2change

    out = []
    for i, c in enumerate(cases):
        w = work / "runs" / f"{i:03d}-{c.dataset}-{c.name}"
        w.mkdir(parents=True, exist_ok=True)
        fold = s2_folds / f"s2_change_model-without-{c.name}.json" if s2_folds and c.dataset == "oscd-dev" else None
        if fold is not None and not fold.exists():
            raise SystemExit(f"no held-out model {fold}: run benchmarks/train_s2change.py --folds {s2_folds}")
        s2change.use(s2change.load(fold.read_bytes()) if fold is not None else None)
        ffold = (fine_folds / f"fine_change_model-without-{c.name}.json"
                 if fine_folds and c.dataset == "levir-cd-samples" else None)
        if ffold is not None and not ffold.exists():
            raise SystemExit(f"no held-out model {ffold}: run benchmarks/train_finechange.py --folds {fine_folds}")
        finechange.use(finechange.load(ffold.read_bytes()) if ffold is not None else None)
        mfold = (map_folds / f"building_map-without-{c.dataset.replace('-pre', '')}.json"
                 if map_folds and c.dataset not in ("levir-cd-samples", "oscd-dev") else None)
        if mfold is not None and not mfold.exists():
            raise SystemExit(f"no held-out model {mfold}: run benchmarks/train_buildings.py --folds {map_folds}")
        buildings.use_map(json.loads(mfold.read_text()) if mfold is not None else None)
        try:
            r = run_case(c, w)
        finally:
            s2change.use(None)
            finechange.use(None)
            buildings.use_map(None)
        if progress:
            print(f"  {c.dataset} {c.name}: {r.seconds:.1f} s, {len(r.detections)} scored detections, "
                  f"{r.barrier_claims} wall/fence/tower, unusable {len(r.unusable)}", flush=True)
        out.append(r)
    return out


TARGETS = {"levir-cd-samples": ("pixel F1 >= 0.6, object recall >= 0.6", lambda s: s["pixel"].f1 >= 0.6
                                and _ratio(s["objects"]) >= 0.6),
           "oscd-dev": ("pixel F1 >= 0.35, object recall >= 0.4", lambda s: s["pixel"].f1 >= 0.35
                        and _ratio(s["objects"]) >= 0.4)}


def _ratio(fn: tuple[int, int]) -> float:
    return fn[0] / fn[1] if fn[1] else float("nan")


def table(results: Sequence[Result]) -> str:
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        groups[r.case.dataset].append(r)
    lines = ["| set | task | n | px | pixel P | pixel R | pixel F1 | IoU | objects found | top-20 % precision "
             "| wall/fence/tower per tile | unusable scenes | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, rs in groups.items():
        s = score(rs)
        p = s["pixel"]
        f, n = s["objects"]
        top = f"{s['top20_precision']:.2f} (of {s['top20_n']})" if s["n_detections"] else "–"
        # precision of nothing claimed is undefined: "–", not the 1.0 PixelScore uses for sums
        claims = (f"{s['barrier_claims'] / s['barrier_tiles']:.2f} ({s['barrier_claims']} on {s['barrier_tiles']:.0f})"
                  if s["barrier_tiles"] else "n/a")
        lines.append(f"| {name} | {rs[0].case.task} | {s['n']} | {rs[0].case.label.size * len(rs) / 1e6:.1f} M "
                     f"| {f'{p.precision:.2f}' if p.tp + p.fp else '–'} | {p.recall:.2f} | **{p.f1:.2f}** | {p.iou:.2f} | {f}/{n} = {_ratio((f, n)):.2f} "
                     f"| {top} | {claims} | {s['unusable']} of {s['scenes']} | {s['seconds']:.0f} |")
    allc = score([r for r in results if r.case.task == "change"])
    lines.append("")
    lines.append(f"All change pairs: top-20 % precision {allc['top20_precision']:.2f} (of {allc['top20_n']} "
                 f"highest-scored of {allc['n_detections']} building detections); wall/fence/tower claims "
                 f"{allc['barrier_claims']} on {allc['barrier_tiles']:.0f} tiles of imagery that has none.")
    return "\n".join(lines)


def targets(results: Sequence[Result]) -> list[str]:
    out = []
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        groups[r.case.dataset].append(r)
    for name, (text, ok) in TARGETS.items():
        if name in groups:
            out.append(f"{name}: {text}: {'met' if ok(score(groups[name])) else 'NOT met'}")
    change = [r for r in results if r.case.task == "change"]
    if change:
        s = score(change)
        out.append(f"top-20 % precision >= 0.7: {'met' if s['top20_precision'] >= 0.7 else 'NOT met'} "
                   f"({s['top20_precision']:.2f})")
    clean = score([r for r in results])
    if clean["barrier_tiles"]:
        rate = clean["barrier_claims"] / clean["barrier_tiles"]
        out.append(f"wall/fence/tower <= 0.3 per tile on imagery with none: {'met' if rate <= 0.3 else 'NOT met'} "
                   f"({rate:.2f})")
    out.append(f"no clear real scene discarded: {'met' if clean['unusable'] == 0 else 'NOT met'} "
               f"({clean['unusable']} of {clean['scenes']})")
    return out


def reliability(results: Sequence[Result], n_bins: int = 5) -> str:
    """Score bin -> detections, mean score, fraction right, per grid resolution class."""
    from sitewatch.testbed.scoring import calibration

    lines = ["| resolution | bin | n | mean score | fraction right |", "|---|---|---|---|---|"]
    for label, test in (("≤ 2 m", lambda r: r <= 2.0), ("10 m", lambda r: r > 2.0)):
        sc = [(s, ok) for r in results for (_, s, ok, res) in r.detections if test(res)]
        if not sc:
            continue
        cal = calibration(sc, n_bins)
        for lo, hi, n, ms, fc in cal.bins:
            lines.append(f"| {label} | {lo:.1f}–{hi:.1f} | {n} | {ms if n else '–'} | {fc if n else '–'} |")
        lines.append(f"| {label} | ECE | {len(sc)} | | {cal.ece:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated: levir, oscd, xbd, buildings (default: all)")
    ap.add_argument("--work", default=None, help="working folder (default: a temp dir)")
    ap.add_argument("--json", default=None, help="write every scored detection (with its evidence) here")
    ap.add_argument("--pixels", action="store_true", help="with --json: each detection's pixels on the label "
                    "grid too (flat indices, `label_px`; for benchmarks/rank_s2.py)")
    ap.add_argument("--s2-folds", default=None, help="folder of per-city held-out 10 m change models "
                    "(benchmarks/train_s2change.py --folds DIR): OSCD figures held out by city")
    ap.add_argument("--fine-folds", default=None, help="folder of per-pair held-out 0.3-2 m change models "
                    "(benchmarks/train_finechange.py --folds DIR): LEVIR-CD figures held out by pair")
    ap.add_argument("--map-folds", default=None, help="folder of per-dataset held-out per-date map trees "
                    "(benchmarks/train_buildings.py --folds DIR): the building maps held out by dataset")
    args = ap.parse_args()
    if not DATA.exists():
        raise SystemExit(f"reference data not found at {DATA}")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sitewatch-real-"))
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    t0 = time.perf_counter()
    cases = all_cases(work, only)
    results = run_all(cases, work, s2_folds=Path(args.s2_folds) if args.s2_folds else None,
                      fine_folds=Path(args.fine_folds) if args.fine_folds else None,
                      map_folds=Path(args.map_folds) if args.map_folds else None)
    if args.json:
        rows = [e if args.pixels else {k: v for k, v in e.items() if k != "label_px"}
                for r in results for e in r.evidence]
        Path(args.json).write_text(json.dumps(rows, default=str))
    print(f"\n## Real labelled imagery through `monitor` ({len(cases)} sites, {time.perf_counter() - t0:.0f} s)\n")
    print(table(results))
    print("\nScore reliability on real change pairs (a detection is right when >= 50 % of it is labelled change):\n")
    print(reliability(results))
    print("\nTargets:")
    for line in targets(results):
        print(f"- {line}")


if __name__ == "__main__":
    main()
