"""Regenerate the broken-imagery corpus (committed; run again only to change it).

    .venv/bin/python tests/badinput/make_imagery.py

Each folder under ``imagery/`` is one imagery source given to ``sitewatch monitor`` with
``imagery/site.geojson``; ``imagery/expected.json`` says what each must do. Sources that
are broken as a whole must stop the run before anything is written (exit 2); a source
with one broken scene must store the good scene and name the bad one (exit 1); scenes
that are readable but show nothing (all cloud, all no-data) are stored as unusable, and
scenes in different CRSs are simply reprojected (exit 0).
"""

from __future__ import annotations

import json
import zlib
import shutil
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from shapely.geometry import box, mapping

from sitewatch.grid import to_crs

HERE = Path(__file__).resolve().parent / "imagery"
N = 64  # pixels of 10 m: a 640 m square
UTM = "EPSG:32645"
LEFT, TOP = 600000.0, 4800000.0


def site_polygon():
    return to_crs(box(LEFT + 100, TOP - N * 10 + 100, LEFT + N * 10 - 100, TOP - 100), UTM, "EPSG:4326")


def write_band(path: Path, data: np.ndarray, crs: str = UTM, transform: Affine | None = None,
               dtype: str = "uint16") -> None:
    transform = transform or Affine(10, 0, LEFT, 0, -10, TOP)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=dtype,
                       crs=crs, transform=transform, nodata=0, tiled=True, blockxsize=32, blockysize=32,
                       compress="deflate") as dst:
        dst.write(data.astype(dtype), 1)


def scene(folder: Path, item_id: str, date: str, *, scl_value: int = 4, zero: bool = False, crs: str = UTM,
          skip: tuple[str, ...] = ()) -> dict:
    rng = np.random.default_rng(zlib.crc32(item_id.encode()))
    base = {"red": 2700, "green": 2200, "blue": 1700, "nir": 3100}
    transform = None
    if crs != UTM:  # the same ground, stored in another CRS
        g = to_crs(box(LEFT, TOP - N * 10, LEFT + N * 10, TOP), UTM, crs)
        minx, miny, maxx, maxy = g.bounds
        transform = Affine((maxx - minx) / N, 0, minx, 0, -(maxy - miny) / N, maxy)
    assets = {}
    for band, v in base.items():
        if band in skip:
            continue
        arr = np.zeros((N, N)) if zero else v + rng.normal(0, 40, (N, N))
        p = folder / f"{item_id}_{band}.tif"
        write_band(p, np.clip(arr, 0, 65535), crs, transform)
        assets[band] = {"href": f"./{p.name}", "type": "image/tiff; application=geotiff",
                        "eo:bands": [{"name": band, "common_name": band}],
                        "raster:bands": [{"scale": 0.0001, "offset": 0, "nodata": 0}]}
    p = folder / f"{item_id}_scl.tif"
    write_band(p, np.full((N, N), 0 if zero else scl_value), crs, transform, dtype="uint8")
    assets["scl"] = {"href": f"./{p.name}", "type": "image/tiff; application=geotiff"}
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "geometry": mapping(to_crs(box(LEFT, TOP - N * 10, LEFT + N * 10, TOP), UTM, "EPSG:4326")),
            "bbox": list(to_crs(box(LEFT, TOP - N * 10, LEFT + N * 10, TOP), UTM, "EPSG:4326").bounds),
            "properties": {"datetime": f"{date}T05:00:00Z", "gsd": 10}, "assets": assets,
            "links": [{"rel": "root", "href": "./catalog.json"}, {"rel": "parent", "href": "./catalog.json"}]}


def catalog(folder: Path, items: list[dict]) -> None:
    links = [{"rel": "root", "href": "./catalog.json"}]
    for it in items:
        (folder / f"{it['id']}.json").write_text(json.dumps(it, indent=1))
        links.append({"rel": "item", "href": f"./{it['id']}.json", "type": "application/geo+json"})
    (folder / "catalog.json").write_text(json.dumps({"type": "Catalog", "stac_version": "1.0.0", "id": folder.name,
                                                     "description": f"bad-input case {folder.name}",
                                                     "links": links}, indent=1))


def fresh(name: str) -> Path:
    d = HERE / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    (HERE / "site.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"site_id": "bad-imagery-site", "name": "corpus site"},
         "geometry": mapping(site_polygon())}]}, indent=1))

    d = fresh("broken-json")
    (d / "catalog.json").write_text('{"type": "Catalog", "stac_version": "1.0.0", "id": "x", "links": [')
    d = fresh("not-stac")
    (d / "catalog.json").write_text('{"hello": "this is JSON but not a STAC catalog"}')
    d = fresh("empty-folder")
    (d / "notes.txt").write_text("no GeoTIFF here\n")
    d = fresh("binary-catalog")
    (d / "catalog.json").write_bytes(bytes(range(256)) * 4)

    d = fresh("item-without-bands")
    bad = scene(d, "S2X_nobands", "2020-06-01", skip=("red", "green", "blue", "nir"))
    bad["assets"] = {"thumbnail": {"href": "./thumb.png", "type": "image/png", "roles": ["thumbnail"]}}
    catalog(d, [scene(d, "S2X_good", "2020-05-01"), bad])

    d = fresh("missing-asset")
    bad = scene(d, "S2X_missing", "2020-06-01")
    (d / "S2X_missing_red.tif").unlink()
    catalog(d, [scene(d, "S2X_good", "2020-05-01"), bad])

    d = fresh("truncated-asset")
    bad = scene(d, "S2X_truncated", "2020-06-01")
    p = d / "S2X_truncated_red.tif"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    catalog(d, [scene(d, "S2X_good", "2020-05-01"), bad])

    d = fresh("non-tiff-asset")
    bad = scene(d, "S2X_html", "2020-06-01")
    (d / "S2X_html_red.tif").write_text("<html><body>403 Forbidden</body></html>\n")
    catalog(d, [scene(d, "S2X_good", "2020-05-01"), bad])

    d = fresh("all-cloud")
    catalog(d, [scene(d, "S2X_good", "2020-05-01"), scene(d, "S2X_cloud", "2020-06-01", scl_value=9)])

    d = fresh("all-nodata")
    catalog(d, [scene(d, "S2X_good", "2020-05-01"), scene(d, "S2X_empty", "2020-06-01", zero=True)])

    d = fresh("mixed-crs")
    catalog(d, [scene(d, "S2X_utm45", "2020-05-01"), scene(d, "S2X_utm44", "2020-06-01", crs="EPSG:32644"),
                scene(d, "S2X_wgs84", "2020-07-01", crs="EPSG:4326")])

    d = fresh("bad-datetime")
    bad = scene(d, "S2X_nodate", "2020-06-01")
    bad["properties"]["datetime"] = "last tuesday"
    catalog(d, [scene(d, "S2X_good", "2020-05-01"), bad])


if __name__ == "__main__":
    main()
