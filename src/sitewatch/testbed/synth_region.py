"""Synthetic Sentinel-2-like region series for the wide-area scan's tests and benchmarks.

Two (or more) dates of a region of any size at 10 m, written strip by strip as tiled,
DEFLATE-compressed GeoTIFFs with Earth Search's band layout (one file per band, ``scl``
included) and a static STAC catalog over them, so a scan over it takes the same code path
as one over real imagery. Ground truth: the new building blocks planted between dates.

What changes between dates and must *not* be found: fields greening with the season, a
sensor gain change, a cloud (flagged in ``scl``), per-pixel noise. What must be found:
blocks of 100 x 30 m roofs (the contract's target) that appear on the later date.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from shapely.geometry import box, mapping

from ..grid import to_crs

BANDS = ("red", "green", "blue", "nir", "swir16")
SOIL = np.array([0.27, 0.22, 0.17, 0.31, 0.40], dtype=np.float32)
FIELD_GREEN = np.array([0.05, 0.09, 0.05, 0.45, 0.22], dtype=np.float32)
ROOF = np.array([0.38, 0.42, 0.47, 0.44, 0.41], dtype=np.float32)
VILLAGE = np.array([0.33, 0.31, 0.30, 0.35, 0.37], dtype=np.float32)
STRIP = 512


@dataclass(frozen=True)
class RegionSeries:
    """A generated region: where its catalog is and what was planted.

    Attributes:
        catalog_path: static STAC catalog over the dates.
        files: every GeoTIFF written (for the decode floor).
        crs / transform / size_px: the native grid.
        area_km2: region area.
        planted: new blocks (EPSG:4326 boxes, the date they appear).
        region: lon/lat box of the region as ``minlon,minlat,maxlon,maxlat``.
    """

    catalog_path: Path
    files: tuple[Path, ...]
    crs: str
    transform: Affine
    size_px: int
    area_km2: float
    planted: tuple[dict, ...]
    region: str


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    h, w = shape
    coarse = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    rows = np.arange(h) / cell
    cols = np.arange(w) / cell
    r0, c0 = rows.astype(int), cols.astype(int)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    a = coarse[r0][:, c0]
    b = coarse[r0][:, c0 + 1]
    c = coarse[r0 + 1][:, c0]
    d = coarse[r0 + 1][:, c0 + 1]
    return (a * (1 - fr) * (1 - fc) + b * (1 - fr) * fc + c * fr * (1 - fc) + d * fr * fc).astype(np.float32)


def make_region(out: Path, size_km: float, *, seed: int = 7, dates: Sequence[dt.date] = (dt.date(2018, 4, 10),
                dt.date(2019, 8, 20)), origin_lonlat: tuple[float, float] = (87.6, 43.0),
                blocks_per_100km2: float = 1.0, cloud: bool = True) -> RegionSeries:
    """Write a square region ``size_km`` on a side; returns where it is and what was planted."""
    import rasterio

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(round(size_km * 100))
    crs = "EPSG:32645"
    x0, y0 = to_crs(box(*origin_lonlat, *origin_lonlat), "EPSG:4326", crs).bounds[:2]
    left, top = float(np.floor(x0 / 10) * 10), float(np.floor(y0 / 10) * 10)
    transform = Affine(10.0, 0, left, 0, -10.0, top)
    n_blocks = max(2, int(round(size_km * size_km / 100 * blocks_per_100km2)))
    cloud_box = (n // 3, n // 3, n // 3 + max(20, n // 12), n // 3 + max(20, n // 12)) if cloud else None
    planted = []
    for i in range(n_blocks):
        while True:  # not under the cloud: a block nobody can see is not a miss
            r, c = int(rng.integers(20, n - 40)), int(rng.integers(20, n - 40))
            if not cloud_box or not (cloud_box[0] - 12 <= r <= cloud_box[2] and cloud_box[1] - 12 <= c <= cloud_box[3]):
                break
        vertical = bool(rng.integers(0, 2))
        h, w = (10, 3) if vertical else (3, 10)
        planted.append({"id": f"block-{i}", "row": r, "col": c, "h": h, "w": w})
    fields = [(int(rng.integers(0, n - 60)), int(rng.integers(0, n - 60)), int(rng.integers(15, 60)),
               int(rng.integers(15, 60))) for _ in range(max(4, n * n // 40000))]
    villages = [(int(rng.integers(0, n - 8)), int(rng.integers(0, n - 8))) for _ in range(max(2, n * n // 200000))]
    files: list[Path] = []
    profile = dict(driver="GTiff", width=n, height=n, count=1, crs=crs, transform=transform, tiled=True,
                   blockxsize=512, blockysize=512, compress="deflate", predictor=2, nodata=0)
    items = []
    for di, date in enumerate(dates):
        later = di > 0
        summer = date.month in (6, 7, 8)
        gain = np.float32(1.0 + 0.06 * di)
        item_id = f"S2X_region_{date:%Y%m%d}"
        paths = {b: out / f"{item_id}_{b}.tif" for b in (*BANDS, "scl")}
        dsts = {b: rasterio.open(p, "w", dtype="uint16" if b != "scl" else "uint8",
                                 **{**profile, **({"predictor": 1} if b == "scl" else {})})
                for b, p in paths.items()}
        try:
            for r0 in range(0, n, STRIP):
                h = min(STRIP, n - r0)
                srng = np.random.default_rng([seed, di, r0])
                base = 1.0 + 0.08 * _smooth_noise(np.random.default_rng([seed, r0]), (h, n), 40)
                img = SOIL[:, None, None] * base[None]
                scl = np.full((h, n), 5, np.uint8)
                for (fr, fc, fh, fw) in fields:
                    a, b = max(fr, r0), min(fr + fh, r0 + h)
                    if a < b:
                        colour = FIELD_GREEN if summer else SOIL * 0.8
                        img[:, a - r0:b - r0, fc:fc + fw] = colour[:, None, None]
                        if summer:
                            scl[a - r0:b - r0, fc:fc + fw] = 4
                for (vr, vc) in villages:
                    a, b = max(vr, r0), min(vr + 6, r0 + h)
                    if a < b:
                        img[:, a - r0:b - r0, vc:vc + 6] = VILLAGE[:, None, None]
                if later:
                    for p in planted:
                        a, b = max(p["row"], r0), min(p["row"] + p["h"], r0 + h)
                        if a < b:
                            img[:, a - r0:b - r0, p["col"]:p["col"] + p["w"]] = ROOF[:, None, None]
                    if cloud_box:
                        cr0, cc0, cr1, cc1 = cloud_box
                        a, b = max(cr0, r0), min(cr1, r0 + h)
                        if a < b:
                            img[:, a - r0:b - r0, cc0:cc1] = 0.7
                            scl[a - r0:b - r0, cc0:cc1] = 9
                img = img * gain + srng.normal(0, 0.004, img.shape).astype(np.float32)
                dn = np.clip(img * 10000, 1, 65535).astype(np.uint16)
                from rasterio.windows import Window

                w = Window(0, r0, n, h)
                for bi, band in enumerate(BANDS):
                    dsts[band].write(dn[bi], 1, window=w)
                dsts["scl"].write(scl, 1, window=w)
        finally:
            for d in dsts.values():
                d.close()
        files += paths.values()
        items.append((item_id, date, paths))
    footprint = to_crs(box(left, top - n * 10, left + n * 10, top), crs, "EPSG:4326")
    region = ",".join(f"{v:.6f}" for v in footprint.bounds)
    catalog = _write_catalog(out, items, footprint, crs)
    planted_geo = []
    for p in planted:
        x, y = transform @ (p["col"], p["row"])
        g = to_crs(box(x, y - p["h"] * 10, x + p["w"] * 10, y), crs, "EPSG:4326")
        planted_geo.append({"id": p["id"], "date": dates[1].isoformat(), "geometry": mapping(g)})
    (out / "planted.json").write_text(json.dumps(planted_geo))
    return RegionSeries(catalog, tuple(files), crs, transform, n, (n * 10 / 1000) ** 2, tuple(planted_geo), region)


def _write_catalog(out: Path, items: list, footprint, crs: str) -> Path:
    """A static STAC catalog in Earth Search's shape (asset keys, eo:bands, raster:bands)."""
    cat = {"type": "Catalog", "stac_version": "1.0.0", "id": "synthetic-region", "description":
           "Synthetic Sentinel-2-like region series (sitewatch scan benchmark)",
           "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]}
    epsg = int(crs.split(":")[1])
    for item_id, date, paths in items:
        assets = {}
        for band, p in paths.items():
            a = {"href": f"./{p.name}", "type": "image/tiff; application=geotiff", "roles": ["data"]}
            if band != "scl":
                a["eo:bands"] = [{"name": band, "common_name": band}]
                a["raster:bands"] = [{"scale": 0.0001, "offset": 0, "nodata": 0}]
            assets[band] = a
        item = {"type": "Feature", "stac_version": "1.0.0", "id": item_id,
                "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                                    "https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
                "geometry": mapping(footprint), "bbox": list(footprint.bounds),
                "properties": {"datetime": f"{date.isoformat()}T05:00:00Z", "gsd": 10, "proj:epsg": epsg,
                               "platform": "synthetic-s2", "eo:cloud_cover": 3.0},
                "assets": assets,
                "links": [{"rel": "root", "href": "./catalog.json"}, {"rel": "parent", "href": "./catalog.json"}]}
        (out / f"{item_id}.json").write_text(json.dumps(item))
        cat["links"].append({"rel": "item", "href": f"./{item_id}.json", "type": "application/geo+json"})
    path = out / "catalog.json"
    path.write_text(json.dumps(cat, indent=1))
    return path
