"""The bundled demo: three synthetic sites near real places in Xinjiang, as a static STAC catalog.

Rendered by :mod:`sitewatch.synth` from a seed, so every machine gets the same pixels, and
written as Cloud Optimized GeoTIFFs under a real static STAC catalog, so the demo takes
exactly the code path real imagery takes. The places are real towns; the compounds are not
real facilities — the notes of each site say so.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from shapely.geometry import Point, box, mapping

from . import synth
from ..grid import to_crs, utm_crs_for

SYNTHETIC_NOTE = ("Synthetic demo site rendered by sitewatch's seeded generator near a real place; "
                  "not a real facility.")


@dataclass(frozen=True)
class DemoSite:
    """One demo site: where, at what resolution, and its series."""

    site_id: str
    name: str
    lon: float
    lat: float
    size_m: float
    gsd: float
    collection: str
    structures: tuple[synth.Structure, ...]
    epochs: tuple[synth.Epoch, ...]
    ground: synth.Ground
    scl: bool
    story: str


@dataclass(frozen=True)
class DemoBundle:
    """What :func:`make_demo` wrote.

    Attributes:
        sites_path: GeoJSON FeatureCollection of the sites (EPSG:4326 polygons).
        catalog_path: the static STAC catalog (``catalog.json``).
        truth_path: JSON list of the true changes (site_id, kind, before_date, after_date, geometry).
        site_ids: the sites, in order.
    """

    sites_path: Path
    catalog_path: Path
    truth_path: Path
    site_ids: tuple[str, ...]


def _date(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def demo_sites(seed: int = 2017) -> list[DemoSite]:
    """The three demo sites and their schedules."""
    sites = []
    # (a) a compound built up over several dates, later partly desecuritised (0.5 m aerial)
    structs, g = synth.compound(seed, size_m=400)
    blocks, wall, fences, towers = (frozenset(g[k]) for k in ("blocks", "wall", "fences", "towers"))
    tower_ne = next(s for s in structs if s.id == "tower-2")
    lat = 43.36
    plan = [("2017-04-12", frozenset(), {}),
            ("2017-09-20", blocks, {}),
            ("2018-04-05", blocks | wall, {}),
            ("2018-07-18", blocks | wall | fences | towers,
             {"clouds": (synth.Cloud(tower_ne.x + 12, tower_ne.y + 10, 42.0),)}),  # hides one tower
            ("2018-10-02", blocks | wall | fences | towers, {}),
            ("2019-09-14", blocks | wall, {}),
            ("2020-08-30", blocks | wall, {})]
    epochs = tuple(synth.Epoch(_date(d), p, synth.conditions_for(_date(d), lat, **kw)) for d, p, kw in plan)
    sites.append(DemoSite("demo-compound", "Demo compound near Dabancheng", 88.33, lat, 400, 0.5, "demo-aerial",
                          tuple(structs), epochs,
                          synth.Ground(400, seed + 1, fields=((-195, -195, 70, 60), (120, -190, 70, 50)),
                                       roads=(((-200, -170), (200, -172)),)),
                          False, "built up 2017-2018 (blocks, wall, fences, towers); fences and towers removed 2019"))
    # (b) nothing changes; seasons, sun, misregistration, gain, a cloud (0.5 m, no mask)
    structs_b, _ = synth.compound(seed + 7, size_m=300, blocks=3)
    lat = 39.47
    allb = frozenset(s.id for s in structs_b)
    plan_b = [("2018-02-02", {}), ("2018-05-10", {}), ("2018-08-15", {"shift_px": (1.5, -1.0), "gain": (1.08,) * 5}),
              ("2018-11-02", {"sun_elevation": 24.0}),
              ("2019-06-01", {"clouds": (synth.Cloud(-60.0, 50.0, 45.0),)}),
              ("2019-09-10", {"gain": (0.93, 0.94, 0.95, 0.93, 0.92), "offset": 0.02})]
    epochs_b = tuple(synth.Epoch(_date(d), allb, synth.conditions_for(_date(d), lat, **kw)) for d, kw in plan_b)
    sites.append(DemoSite("demo-control", "Demo control site near Kashgar", 75.99, lat, 300, 0.5, "demo-aerial",
                          tuple(structs_b), epochs_b,
                          synth.Ground(300, seed + 2, fields=((-140, -145, 90, 45), (60, 90, 80, 50))),
                          False, "no change at all: seasons, sun angle, misregistration, sensor gain and a cloud"))
    # (c) Sentinel-2-like 10 m with scl: a block of large buildings appears
    lat = 37.12
    big = tuple(synth.Building(f"hall-{i}", -300.0 + i * 45, 200.0, w=30.0, h=100.0, height=15.0,
                               roof=synth.ROOF_BLUE if i % 2 else synth.ROOF_GREY) for i in range(4))
    village = tuple(synth.Building(f"house-{i}", 600.0 + (i % 4) * 35, -600.0 + (i // 4) * 40, w=18.0, h=14.0,
                                   height=6.0, roof=synth.ROOF_GREY) for i in range(8))
    hall_ids = frozenset(b.id for b in big)
    vill = frozenset(b.id for b in village)
    plan_c = [("2018-04-20", vill, {}), ("2018-08-13", vill, {}), ("2019-03-30", vill, {}),
              ("2019-07-08", vill | hall_ids, {"clouds": (synth.Cloud(-230.0, 210.0, 260.0),)}),  # halls under cloud
              ("2019-09-21", vill | hall_ids, {}), ("2020-05-04", vill | hall_ids, {}),
              ("2020-10-11", vill | hall_ids, {"gain": (1.05,) * 5}), ("2021-06-27", vill | hall_ids, {})]
    epochs_c = tuple(synth.Epoch(_date(d), p, synth.conditions_for(_date(d), lat, noise=0.004, **kw))
                     for d, p, kw in plan_c)
    fields_c = tuple((float(x), float(y), 160.0, 120.0) for x, y in ((-1100, -1100), (-900, -1100), (-1100, -900),
                                                                     (300, 700), (500, 700), (700, 900)))
    sites.append(DemoSite("demo-s2", "Demo Sentinel-2 site near Hotan", 79.95, lat, 2500, 10.0, "demo-sentinel-2",
                          big + village, epochs_c,
                          synth.Ground(2500, seed + 3, fields=fields_c, roads=(((-1250, -300), (1250, -250)),)),
                          True, "four 100 x 30 m halls appear in 2019 (first seen under cloud, then clear)"))
    return sites


def _write_cog(path: Path, arrays: Sequence[np.ndarray], crs: str, transform: Affine, when: dt.datetime,
               names: Sequence[str], dtype: str) -> None:
    import rasterio

    with rasterio.open(path, "w", driver="COG", width=arrays[0].shape[1], height=arrays[0].shape[0],
                       count=len(arrays), dtype=dtype, crs=crs, transform=transform, nodata=0, compress="deflate",
                       blocksize=256 if max(arrays[0].shape) > 512 else 128,  # small files get overviews too
                       overview_resampling="average" if dtype != "uint8" else "nearest") as dst:
        for i, (a, n) in enumerate(zip(arrays, names), start=1):
            dst.write(a, i)
            dst.set_band_description(i, n)
        dst.update_tags(TIFFTAG_DATETIME=when.strftime("%Y:%m:%d %H:%M:%S"))


def make_demo(out: str | Path, seed: int = 2017) -> DemoBundle:
    """Render the demo series and write sites, a static STAC catalog of COGs, and the truth."""
    return write_series(out, demo_sites(seed), seed)


def write_series(out: str | Path, sites: Sequence[DemoSite], seed: int, catalog_id: str = "sitewatch-demo") -> DemoBundle:
    """Render any list of synthetic sites as sites, a static STAC catalog of COGs, and the truth."""
    import pystac

    out = Path(out)
    cat_dir = out / "catalog"
    out.mkdir(parents=True, exist_ok=True)
    catalog = pystac.Catalog(catalog_id, "sitewatch synthetic imagery: rendered from a seed "
                             f"({seed}) by sitewatch.synth; not real imagery.", title=catalog_id)
    collections: dict[str, pystac.Collection] = {}
    features = []
    truths = []
    for si, site in enumerate(sites):
        crs = utm_crs_for(site.lon, site.lat)
        cx, cy = to_crs(Point(site.lon, site.lat), "EPSG:4326", crs).coords[0]
        cx, cy = round(cx / site.gsd) * site.gsd, round(cy / site.gsd) * site.gsd
        half = site.size_m / 2
        transform = Affine(site.gsd, 0, cx - half, 0, -site.gsd, cy + half)
        footprint = to_crs(box(cx - half, cy - half, cx + half, cy + half), crs, "EPSG:4326")
        aoi = to_crs(box(cx - half * 0.85, cy - half * 0.85, cx + half * 0.85, cy + half * 0.85), crs, "EPSG:4326")
        features.append({"type": "Feature", "geometry": mapping(aoi),
                         "properties": {"site_id": site.site_id, "name": site.name,
                                        "notes": f"{SYNTHETIC_NOTE} Story: {site.story}."}})
        for tc in synth.truth(site.structures, site.epochs):
            g = to_crs(synth.geometry_to_crs(tc.geometry, (cx, cy)), crs, "EPSG:4326")
            truths.append({"site_id": site.site_id, "kind": tc.kind, "structure": tc.structure,
                           "before_date": tc.last_before.isoformat(), "after_date": tc.first_after.isoformat(),
                           "length_m": tc.length_m, "geometry": mapping(g)})
        coll = collections.get(site.collection)
        if coll is None:
            desc = ("Synthetic 0.5 m aerial-like imagery (red, green, blue, nir), no cloud mask"
                    if site.gsd < 1 else "Synthetic Sentinel-2-like 10 m imagery with a scene classification (scl)")
            coll = pystac.Collection(site.collection, desc, pystac.Extent(
                pystac.SpatialExtent([list(footprint.bounds)]),
                pystac.TemporalExtent([[dt.datetime(2017, 1, 1, tzinfo=dt.timezone.utc), None]])),
                license="CC0-1.0")
            collections[site.collection] = coll
            catalog.add_child(coll)
        idir = cat_dir / site.collection
        idir.mkdir(parents=True, exist_ok=True)
        structs = {s.id: s for s in site.structures}
        for ei, ep in enumerate(site.epochs):
            when = dt.datetime.combine(ep.date, dt.time(5, 10), tzinfo=dt.timezone.utc)
            item_id = f"{site.site_id}_{ep.date:%Y%m%d}"
            present = [structs[i] for i in sorted(ep.present)]
            r = synth.render(site.ground, present, site.gsd, ep.conditions, seed=seed * 1000 + si * 100 + ei)
            dn = {b: np.clip(np.round(r.bands[b] * 10000), 1, 65535).astype(np.uint16) for b in synth.BANDS}
            item = pystac.Item(item_id, mapping(footprint), list(footprint.bounds), when,
                               {"gsd": site.gsd, "platform": "sitewatch-synth", "proj:epsg": int(crs.split(":")[1]),
                                "eo:cloud_cover": round(float(r.cloud.mean()) * 100, 2),
                                "view:sun_azimuth": round(ep.conditions.sun_azimuth, 1),
                                "view:sun_elevation": round(ep.conditions.sun_elevation, 1),
                                "sitewatch:synthetic": True})
            item.stac_extensions = ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                                    "https://stac-extensions.github.io/projection/v1.1.0/schema.json"]
            media = pystac.MediaType.COG
            if site.scl:  # Earth Search layout: one COG per band, asset keys = band names
                for b in synth.BANDS:
                    p = idir / f"{item_id}_{b}.tif"
                    _write_cog(p, [dn[b]], crs, transform, when, [b], "uint16")
                    item.add_asset(b, pystac.Asset(str(p.resolve()), media_type=media, roles=["data"], extra_fields={
                        "eo:bands": [{"name": b, "common_name": b}],
                        "raster:bands": [{"scale": 0.0001, "offset": 0, "nodata": 0, "data_type": "uint16"}]}))
                p = idir / f"{item_id}_scl.tif"
                _write_cog(p, [r.scl], crs, transform, when, ["scl"], "uint8")
                item.add_asset("scl", pystac.Asset(str(p.resolve()), media_type=media, roles=["data"],
                                                   extra_fields={"raster:bands": [{"nodata": 0, "data_type": "uint8"}]}))
            else:  # one 4-band COG, bands named by eo:bands
                names = ("red", "green", "blue", "nir")
                p = idir / f"{item_id}.tif"
                _write_cog(p, [dn[b] for b in names], crs, transform, when, names, "uint16")
                item.add_asset("image", pystac.Asset(str(p.resolve()), media_type=media, roles=["data"], extra_fields={
                    "eo:bands": [{"name": b, "common_name": b} for b in names],
                    "raster:bands": [{"scale": 0.0001, "offset": 0, "nodata": 0, "data_type": "uint16"}] * 4}))
            coll.add_item(item)
    catalog.normalize_hrefs(str(cat_dir))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    sites_path = out / "sites.geojson"
    sites_path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=1))
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truths, indent=1))
    return DemoBundle(sites_path, cat_dir / "catalog.json", truth_path, tuple(f["properties"]["site_id"]
                                                                                 for f in features))
