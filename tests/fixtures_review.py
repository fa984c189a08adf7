"""A small findings GeoPackage for review tests, built only through the Store API.

Two sites; each has a before and an after scene with quicklooks on the site grid (the
before quicklook downscaled, as big stored quicklooks are) and detections in EPSG:4326
inside the site, drawn into the after quicklook so chips show something to judge.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from shapely.geometry import MultiPolygon, box

from sitewatch import quicklook
from sitewatch.grid import Grid, grid_for, to_crs
from sitewatch.sites import Site
from sitewatch.store import DetectionRecord, MetricsRecord, SceneRecord, Store

RES_M = 2.0
BEFORE = dt.datetime(2018, 6, 1, 5, 0, tzinfo=dt.timezone.utc)
AFTER = dt.datetime(2019, 7, 1, 5, 0, tzinfo=dt.timezone.utc)

#: (site_id, lon, lat) of the fixture sites: about 600 m squares in Xinjiang.
SITES = (("kashgar-01", 75.99, 39.47), ("hotan-02", 79.92, 37.11))
#: (detection_id, site_id, kind, score, (col0, row0, col1, row1) on the site grid).
DETECTIONS = (
    ("det-b1", "kashgar-01", "building_new", 0.91, (100, 120, 130, 140)),
    ("det-w1", "kashgar-01", "wall_new", 0.62, (40, 40, 200, 43)),
    ("det-t1", "kashgar-01", "tower_new", 0.55, (198, 38, 202, 46)),
    ("det-b2", "hotan-02", "building_removed", 0.77, (150, 150, 180, 175)),
)


@dataclass
class Fixture:
    path: Path
    store: Store
    detection_ids: list[str] = field(default_factory=list)
    grids: dict[str, Grid] = field(default_factory=dict)


def _site_box(lon: float, lat: float, half_deg: float = 0.0035) -> box:
    return box(lon - half_deg, lat - half_deg * 0.8, lon + half_deg, lat + half_deg * 0.8)


def _pixels_to_wgs84(grid: Grid, c0: int, r0: int, c1: int, r1: int) -> MultiPolygon:
    (x0, y0), (x1, y1) = grid.transform @ (c0, r0), grid.transform @ (c1, r1)
    g = to_crs(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), grid.crs, "EPSG:4326")
    return MultiPolygon([g])


def build_findings(path: Path) -> Fixture:
    """Write the fixture GeoPackage at ``path`` and say what is in it."""
    store = Store(path)
    fx = Fixture(path, store)
    store.upsert_sites([Site(sid, _site_box(lon, lat), f"Site {sid}", "fixture") for sid, lon, lat in SITES])
    run = store.start_run("monitor", {"fixture": True})
    rng = np.random.default_rng(7)
    for sid, lon, lat in SITES:
        site_geom = _site_box(lon, lat)
        grid = grid_for(site_geom, RES_M)
        fx.grids[sid] = grid
        ground = rng.uniform(0.08, 0.14, size=grid.shape).astype(np.float32)
        after = ground.copy()
        removed = ground.copy()
        for did, dsid, kind, _, (c0, r0, c1, r1) in DETECTIONS:
            if dsid != sid:
                continue
            if kind.endswith("_new"):
                after[r0:r1, c0:c1] = 0.32
            else:
                removed[r0:r1, c0:c1] = 0.32  # present before, gone after
        before_arr = removed if any(d[1] == sid and d[2].endswith("_removed") for d in DETECTIONS) else ground
        bands_before = {"red": before_arr * 1.1, "green": before_arr, "blue": before_arr * 0.9}
        bands_after = {"red": after * 1.1, "green": after, "blue": after * 0.9}
        for scene_id, when, bands, max_side in ((f"S2_{sid}_before", BEFORE, bands_before, 150),
                                                (f"S2_{sid}_after", AFTER, bands_after, 2048)):
            footprint = to_crs(grid.footprint(), grid.crs, "EPSG:4326")
            rec = SceneRecord(scene_id=scene_id, site_id=sid, source="fixture", acquired=when, gsd_m=RES_M,
                              cloud_fraction=0.0, valid_fraction=1.0, sha256="ab" * 32, run_id=run,
                              footprint=footprint, grid_res_m=RES_M)
            metrics = MetricsRecord(sid, scene_id, when, float(bands["red"].sum()), 120.0, None, 1, 5000.0,
                                    run)
            store.save_scene(rec, maps=b"\x00", detector="fixture 0", metrics=metrics,
                             quicklook=quicklook.png(quicklook.rgb8(bands), max_side=max_side),
                             grid=grid.to_dict())
    dets = []
    for did, sid, kind, score, px in DETECTIONS:
        geom = _pixels_to_wgs84(fx.grids[sid], *px)
        assert _site_box(*next((lo, la) for s, lo, la in SITES if s == sid)).contains(geom)
        dets.append(DetectionRecord(
            detection_id=did, site_id=sid, kind=kind, before_date=BEFORE.date(), after_date=AFTER.date(),
            before_scene_id=f"S2_{sid}_before", after_scene_id=f"S2_{sid}_after",
            area_m2=(px[2] - px[0]) * (px[3] - px[1]) * RES_M**2,
            length_m=None, score=score, geometry=geom, run_id=run,
            evidence={"contrast": 0.4, "persisted_scenes": 2, "label": "<b>bold</b>"}))
        fx.detection_ids.append(did)
    store.save_detections(dets)
    store.finish_run(run, "completed", {})
    return fx
