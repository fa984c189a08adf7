"""A small findings GeoPackage for timeline tests, built only through the Store API.

One site (a compound built up 2017-2018, fences and towers taken down in 2019) seen in five
clear scenes on a 1 m grid and one cloudy scene recorded unusable. Each clear scene has
a quicklook (two of them downscaled, as big stored quicklooks are), structure maps and
metrics. Detections cover every review state: confirmed (one after an earlier rejection),
pending, rejected, and one whose reviewer note tries to inject a script.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from shapely.geometry import MultiPolygon, box

from sitewatch import quicklook
from sitewatch.grid import Grid, grid_for, to_crs
from sitewatch.sites import Site
from sitewatch.store import DetectionRecord, MetricsRecord, SceneRecord, Store
from sitewatch.structures import KINDS, StructureMaps

SITE_ID = "camp-01"
SITE_NAME = "Fixture camp <script>alert('name')</script>"
LON, LAT = 88.33, 43.36
RES_M = 1.0
#: Ground reflectance added per clear scene, in date order.
GROUND_STEP = 0.025
#: A patch of bare ground (row0, col0, row1, col1) away from every structure and the date label.
GROUND_PATCH = (400, 440, 480, 510)
EVIL_NOTE = "<script>document.title='pwned'</script> looks real"


def _t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s + "T05:10:00+00:00")


#: (scene_id, acquired, structures standing, quicklook max side or None for full size).
CLEAR = (
    ("AER_20170412", _t("2017-04-12"), (), None),
    ("AER_20170920", _t("2017-09-20"), ("blocks",), 200),
    ("AER_20180405", _t("2018-04-05"), ("blocks", "wall"), None),
    ("AER_20181002", _t("2018-10-02"), ("blocks", "wall", "fences", "towers"), 300),
    ("AER_20190914", _t("2019-09-14"), ("blocks", "wall"), None),
)
CLOUDY = ("AER_20180701", _t("2018-07-01"))

#: Pixel boxes (row0, col0, row1, col1) on the site grid of each structure group.
BLOCKS = [(120, 150 + 70 * i, 150, 200 + 70 * i) for i in range(4)]
WALL = (100, 130, 300, 440)  # a ring, 2 px thick
FENCES = [(200, 130, 202, 440), (202, 207, 300, 209), (202, 285, 300, 287), (202, 362, 300, 364)]
TOWERS = [(97, 127, 104, 134), (97, 436, 104, 443), (296, 127, 303, 134), (296, 436, 303, 443)]

#: (detection_id, kind, before scene index, after scene index, pixel box, reviews [(reviewer, decision, note)]).
DETECTIONS = (
    ("det-blocks", "building_new", 0, 1, (120, 150, 150, 410), [("ana", "confirmed", "four blocks")]),
    ("det-wall", "wall_new", 1, 2, (98, 128, 302, 442),
     [("ben", "rejected", "shadow?"), ("cho", "confirmed", "wall on the 0.5 m image")]),
    ("det-fence", "fence_new", 2, 3, (198, 130, 204, 440), []),
    ("det-tower-bad", "tower_new", 2, 3, (150, 20, 158, 28), [("ana", "rejected", "a tree")]),
    ("det-towers-gone", "tower_removed", 3, 4, (96, 126, 105, 135), [("dee", "confirmed", EVIL_NOTE)]),
    ("det-fence-gone", "fence_removed", 3, 4, (198, 130, 204, 440), []),
)


@dataclass
class TimelineFixture:
    path: Path
    store: Store
    site_id: str
    grid: Grid
    clear_ids: list[str] = field(default_factory=list)
    cloudy_id: str = CLOUDY[0]
    run_id: str = ""

    def detections(self, *statuses: str) -> list[str]:
        return sorted(d.detection_id for d in self.store.detections(site_id=self.site_id) if d.status in statuses)


def site_geometry() -> box:
    return box(LON - 0.0032, LAT - 0.0022, LON + 0.0032, LAT + 0.0022)


def _presence(grid: Grid, groups: tuple[str, ...]) -> dict[str, np.ndarray]:
    p = {k: np.zeros(grid.shape, bool) for k in KINDS}
    if "blocks" in groups:
        for r0, c0, r1, c1 in BLOCKS:
            p["building"][r0:r1, c0:c1] = True
    if "wall" in groups:
        r0, c0, r1, c1 = WALL
        p["wall"][r0:r1, c0:c1] = True
        p["wall"][r0 + 2:r1 - 2, c0 + 2:c1 - 2] = False
    if "fences" in groups:
        for r0, c0, r1, c1 in FENCES:
            p["fence"][r0:r1, c0:c1] = True
    if "towers" in groups:
        for r0, c0, r1, c1 in TOWERS:
            p["tower"][r0:r1, c0:c1] = True
    return p


def _bands(p: dict[str, np.ndarray], rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
    """Ground a little brighter each date (GROUND_STEP), so frames can be told apart by date."""
    g = rng.uniform(0.08, 0.10, size=p["wall"].shape).astype(np.float32) + GROUND_STEP * i
    g[p["building"]] = 0.30
    g[p["wall"]] = 0.26
    g[p["fence"]] = 0.05
    g[p["tower"]] = 0.33
    return {"red": g * 1.1, "green": g, "blue": g * 0.85}


def _pixels_to_wgs84(grid: Grid, r0: int, c0: int, r1: int, c1: int) -> MultiPolygon:
    (x0, y0), (x1, y1) = grid.transform @ (c0, r0), grid.transform @ (c1, r1)
    return MultiPolygon([to_crs(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), grid.crs, "EPSG:4326")])


def build_timeline_db(path: Path) -> TimelineFixture:
    """Write the fixture GeoPackage at ``path`` and say what is in it."""
    store = Store(path)
    geom = site_geometry()
    store.upsert_sites([Site(SITE_ID, geom, SITE_NAME, "fixture site <b>not real</b>"),
                        Site("empty-02", box(LON + 0.1, LAT, LON + 0.105, LAT + 0.004), "No imagery yet", None)])
    grid = grid_for(geom, RES_M)
    run = store.start_run("monitor", {"fixture": True})
    fx = TimelineFixture(path, store, SITE_ID, grid, run_id=run)
    rng = np.random.default_rng(11)
    footprint = to_crs(grid.footprint(), grid.crs, "EPSG:4326")
    res = RES_M
    for i, (scene_id, when, groups, max_side) in enumerate(CLEAR):
        p = _presence(grid, groups)
        maps = StructureMaps(grid, KINDS, p, {k: v.astype(np.float32) for k, v in p.items()},
                             np.ones(grid.shape, bool))
        wall_m = float(p["wall"].sum()) / 2 * res
        fence_px = sum((r1 - r0) * (c1 - c0) for r0, c0, r1, c1 in FENCES) if "fences" in groups else 0
        fence_m = float(fence_px) / 2 * res
        barrier = ndimage.binary_dilation(p["wall"] | p["fence"], iterations=2)
        enclosed = float((ndimage.binary_fill_holes(barrier) & ~barrier).sum()) * res * res
        metrics = MetricsRecord(SITE_ID, scene_id, when, float(p["building"].sum()) * res * res, wall_m, fence_m,
                                int(ndimage.label(p["tower"])[1]), enclosed, run, grid_res_m=res)
        rec = SceneRecord(scene_id=scene_id, site_id=SITE_ID, source="https://example.org/aerial/catalog.json",
                          acquired=when, gsd_m=0.5, cloud_fraction=0.0, valid_fraction=1.0,
                          sha256=f"{i + 1:x}" * 64, run_id=run, footprint=footprint, collection="demo-aerial",
                          href=f"https://example.org/aerial/{scene_id}.tif", grid_res_m=res)
        ql = quicklook.png(quicklook.rgb8(_bands(p, rng, i)), **({"max_side": max_side} if max_side else {}))
        store.save_scene(rec, maps=maps.to_bytes(), detector="fixture 0", metrics=metrics, quicklook=ql,
                         grid=grid.to_dict())
        fx.clear_ids.append(scene_id)
    cid, cwhen = CLOUDY
    store.save_scene(SceneRecord(scene_id=cid, site_id=SITE_ID, source="https://example.org/aerial/catalog.json",
                                 acquired=cwhen, gsd_m=0.5, cloud_fraction=0.98, valid_fraction=0.02,
                                 sha256="f" * 64, run_id=run, footprint=footprint, collection="demo-aerial",
                                 href=f"https://example.org/aerial/{cid}.tif", status="unusable",
                                 error="only 2.0% of the site is clear ground (cloud or no data)", grid_res_m=res))
    dets = []
    for did, kind, b, a, px, _ in DETECTIONS:
        r0, c0, r1, c1 = px
        fam = kind.split("_")[0]
        dets.append(DetectionRecord(
            detection_id=did, site_id=SITE_ID, kind=kind, before_date=CLEAR[b][1].date(),
            after_date=CLEAR[a][1].date(), before_scene_id=CLEAR[b][0], after_scene_id=CLEAR[a][0],
            area_m2=float((r1 - r0) * (c1 - c0)) * res * res,
            length_m=float(max(r1 - r0, c1 - c0)) * res if fam in ("wall", "fence") else None,
            score=0.8, geometry=_pixels_to_wgs84(grid, *px), run_id=run, evidence={"fixture": "<i>x</i>"}))
    store.save_detections(dets)
    for did, *_, reviews in DETECTIONS:
        for reviewer, decision, note in reviews:
            store.add_review(did, reviewer, decision, note)
    store.finish_run(run, "completed", {})
    return fx


#: A scene seen only in part: cloud over the compound's west (columns < CLOUD_COL), recorded observed.
PARTIAL = ("AER_20181201", _t("2018-12-01"))
CLOUD_COL = 300
#: A change dated by that partial scene, whose outline lies under its cloud, confirmed by a reviewer.
ANNEX = ("det-annex", "building_new", (160, 150, 190, 200))


def add_partial_scene(fx: TimelineFixture) -> None:
    """Add PARTIAL (white cloud over the west, so its metrics fall) and ANNEX dated by it, confirmed.

    The partial scene sees fences and towers only in the east: read as a whole-site measurement
    its built area, lengths and tower count drop, and its estimated level falls.
    """
    store, grid, res = fx.store, fx.grid, RES_M
    sid, when = PARTIAL
    p = _presence(grid, ("blocks", "wall", "fences", "towers"))
    observed = np.ones(grid.shape, bool)
    observed[:, :CLOUD_COL] = False
    seen = {k: v & observed for k, v in p.items()}
    maps = StructureMaps(grid, KINDS, seen, {k: v.astype(np.float32) for k, v in seen.items()}, observed)
    metrics = MetricsRecord(SITE_ID, sid, when, float(seen["building"].sum()) * res * res,
                            float(seen["wall"].sum()) / 2 * res, float(seen["fence"].sum()) / 2 * res,
                            int(ndimage.label(seen["tower"])[1]), 0.0, fx.run_id, grid_res_m=res)
    bands = _bands(p, np.random.default_rng(5), 3)
    for b in bands.values():
        b[:, :CLOUD_COL] = 1.0  # the cloud: white
    rec = SceneRecord(scene_id=sid, site_id=SITE_ID, source="https://example.org/aerial/catalog.json",
                      acquired=when, gsd_m=0.5, cloud_fraction=round(1 - float(observed.mean()), 4),
                      valid_fraction=round(float(observed.mean()), 4), sha256="e" * 64, run_id=fx.run_id,
                      footprint=to_crs(grid.footprint(), grid.crs, "EPSG:4326"), collection="demo-aerial",
                      href=f"https://example.org/aerial/{sid}.tif", grid_res_m=res)
    store.save_scene(rec, maps=maps.to_bytes(), detector="fixture 0", metrics=metrics,
                     quicklook=quicklook.png(quicklook.rgb8(bands)), grid=grid.to_dict())
    did, kind, px = ANNEX
    r0, c0, r1, c1 = px
    store.save_detections([DetectionRecord(
        detection_id=did, site_id=SITE_ID, kind=kind, before_date=CLEAR[3][1].date(), after_date=when.date(),
        before_scene_id=CLEAR[3][0], after_scene_id=sid, area_m2=float((r1 - r0) * (c1 - c0)) * res * res,
        length_m=None, score=0.7, geometry=_pixels_to_wgs84(grid, *px), run_id=fx.run_id, evidence={})])
    store.add_review(did, "eve", "confirmed", "annex")
