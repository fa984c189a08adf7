"""Masks and haze on real imagery: clear scenes masked, and OSCD change through ``monitor_site``.

Prints two tables (figures in benchmarks/README.md):

1. every clear real scene in ``../shared/data`` (LEVIR-CD samples, OSCD dev cities both dates,
   buildings-real tiles, xBD Joplin pairs): share of ground the cloud/haze/snow mask hides,
   scenes that would be stored unusable;
2. the five OSCD dev cities (Sentinel-2 L1C, 10 m, two dates each) run through the real
   reader, detector and change tracker into a GeoPackage: building detections, pixel
   precision / recall / F1 / IoU against ``cm.tif``, and detections touching no change.

Run: ``PYTHONPATH=src:tests:. nice python benchmarks/masks.py [--skip-masks]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))


def masks_table() -> None:
    from real_scenes import scenes

    from sitewatch.clouds import detect
    from sitewatch.monitor import MIN_VALID_FRACTION

    by_set: dict[str, list[float]] = {}
    worst: dict[str, tuple[float, str]] = {}
    px: dict[str, int] = {}
    t = time.perf_counter()
    for name, bands, res in scenes(DATA):
        key = "/".join(name.split("/")[:2]) if name.startswith("buildings-real") else name.split("/")[0]
        m = float(detect(bands, res_m=res).mean())
        by_set.setdefault(key, []).append(m)
        px[key] = px.get(key, 0) + bands["red"].size
        if m > worst.get(key, (-1.0, ""))[0]:
            worst[key] = (m, name)
    print(f"\nMask on clear real scenes ({time.perf_counter() - t:.0f} s)")
    print("| set | scenes | Mpx | mean masked | worst masked | unusable |")
    print("|---|---|---|---|---|---|")
    for k, v in by_set.items():
        bad = sum(1 for m in v if 1 - m < MIN_VALID_FRACTION)
        print(f"| {k} | {len(v)} | {px[k] / 1e6:.1f} | {np.mean(v):.1%} | {worst[k][0]:.1%} | {bad} |")


def _oscd_refs(city: Path) -> list:
    from sitewatch.scenes import AssetRef, SceneRef

    dates = dict(line.split(":") for line in (city / "dates.txt").read_text().split("\n") if ":" in line)
    out = []
    for i in (1, 2):
        day = dt.datetime.strptime(dates[f"date_{i}"].strip(), "%Y%m%d").replace(hour=10, tzinfo=dt.timezone.utc)
        assets = {n: AssetRef(str(city / f"imgs_{i}" / f"{b}.tif"))
                  for n, b in (("blue", "B02"), ("green", "B03"), ("red", "B04"), ("nir", "B08"), ("swir16", "B11"))}
        out.append(SceneRef(f"{city.name}_{i}", str(city), day, assets))
    return out


def oscd_table() -> None:
    import rasterio
    import rasterio.features
    from shapely.geometry import shape

    from sitewatch.detect import default_detector
    from sitewatch.monitor import monitor_site
    from sitewatch.sites import Site
    from sitewatch.store import Store

    print("\nOSCD dev cities through monitor_site (buildings; pixel scores against cm.tif, all urban change)")
    print("| city | px | grid m | detections | touching change | precision | recall | F1 | IoU | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tot = np.zeros(3)
    for city in sorted(p for p in (DATA / "oscd-dev").iterdir() if (p / "cm.tif").exists()):
        t = time.perf_counter()
        aoi = shape(json.loads((city / f"{city.name}.geojson").read_text())["features"][0]["geometry"])
        site = Site(city.name, aoi)
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "f.gpkg")
            store.upsert_sites([site])
            run = store.start_run("monitor", {})
            monitor_site(store, site, _oscd_refs(city), default_detector(), run)
            dets = store.detections(site_id=site.site_id)
            grid_m = {s.grid_res_m for s in store.scenes(site.site_id)}
        with rasterio.open(city / "cm.tif") as ds:
            cm = ds.read(1).astype(bool)
            shapes = [(d.geometry, 1) for d in dets]
            pred = rasterio.features.rasterize(shapes, out_shape=cm.shape, transform=ds.transform,
                                               all_touched=False).astype(bool) if shapes else np.zeros_like(cm)
            touching = 0
            for d in dets:
                m = rasterio.features.rasterize([(d.geometry, 1)], out_shape=cm.shape, transform=ds.transform,
                                                all_touched=True).astype(bool)
                touching += bool((m & cm).any())
        tp, fp, fn = int((pred & cm).sum()), int((pred & ~cm).sum()), int((~pred & cm).sum())
        tot += (tp, fp, fn)
        p = tp / max(tp + fp, 1)
        r = tp / max(tp + fn, 1)
        f1 = 2 * p * r / max(p + r, 1e-9)
        iou = tp / max(tp + fp + fn, 1)
        print(f"| {city.name} | {cm.shape[1]}x{cm.shape[0]} | {sorted(grid_m)} | {len(dets)} | {touching} | "
              f"{p:.2f} | {r:.2f} | {f1:.2f} | {iou:.2f} | {time.perf_counter() - t:.0f} |", flush=True)
    tp, fp, fn = tot
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    print(f"| all five | | | | | {p:.2f} | {r:.2f} | {2 * p * r / max(p + r, 1e-9):.2f} | "
          f"{tp / max(tp + fp + fn, 1):.2f} | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-masks", action="store_true", help="only the OSCD table")
    ap.add_argument("--skip-oscd", action="store_true", help="only the mask table")
    a = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"reference data not found at {DATA}")
    if not a.skip_masks:
        masks_table()
    if not a.skip_oscd:
        oscd_table()


if __name__ == "__main__":
    main()
