"""What is stored about each scene a site run looks at: its record, its metrics, the 0.1-step check.

Kept apart from the run itself (``monitor``) because the same records are made for a scene read
over HTTP, one judged by its mask alone, and one that failed: each becomes one row, and the
reflectance check reads those rows back across runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from shapely.geometry import MultiPolygon, Polygon

from .changes import measure
from .detections import mask_polygons
from .grid import to_crs
from .records import MetricsRecord, SceneRecord
from .scenes import SceneRaster, SceneRef
from .sites import Site
from .structures import StructureMaps


# --- conversions ---------------------------------------------------------------------------


def valid_footprint(raster: SceneRaster) -> Polygon | None:
    """Outline (EPSG:4326) of where the scene has data over the site; None for a scene judged
    by its mask alone (no band read to say where data is, as for an overcast scene not read)."""
    if "red" not in raster.bands:
        return None
    has_data = np.isfinite(raster.bands["red"])
    if not has_data.any():
        return None
    polys = mask_polygons(has_data, raster.grid.transform)
    hull = MultiPolygon(polys).convex_hull if len(polys) > 1 else polys[0]
    g = to_crs(hull.simplify(raster.grid.res), raster.grid.crs, "EPSG:4326")
    return g if isinstance(g, Polygon) and g.is_valid and not g.is_empty else None


def _medians(raster: SceneRaster) -> dict[str, float]:
    """Median reflectance of each visible band over the clear ground (for the 0.1-step check)."""
    out = {}
    for name in ("blue", "green", "red"):
        b = raster.bands.get(name)
        if b is not None and raster.valid.any():
            keep = raster.valid & np.isfinite(b)
            v = b.ravel() if keep.all() else b[keep]  # (all kept: the same values, no gather)
            if v.size:
                out[f"median_{name}"] = round(float(np.median(v)), 4)
    return out


def scene_record(site: Site, ref: SceneRef, run_id: str, raster: SceneRaster | None = None,
                 status: str = "observed", error: str | None = None) -> SceneRecord:
    props = {k: v for k, v in ref.properties.items() if isinstance(v, (str, int, float, bool))}
    if raster is not None:
        props.update(_medians(raster))
    common = dict(scene_id=ref.scene_id, site_id=site.site_id, source=ref.source, acquired=ref.acquired,
                  run_id=run_id, collection=ref.collection, href=ref.href, properties=props)
    if raster is None:
        return SceneRecord(**common, gsd_m=ref.gsd_m, cloud_fraction=None, valid_fraction=None, sha256=None,
                           status=status, error=error)
    return SceneRecord(
        **common, gsd_m=round(raster.native_gsd_m, 3), grid_res_m=raster.grid.res,
        cloud_fraction=round(raster.cloud_fraction, 4), valid_fraction=round(raster.valid_fraction, 4),
        sha256=raster.sha256, footprint=valid_footprint(raster), status=status, error=error,
        shift_x_px=round(float(raster.shift_px[0]), 3), shift_y_px=round(float(raster.shift_px[1]), 3))


def metrics_record(site_id: str, ref: SceneRef, maps: StructureMaps, run_id: str) -> MetricsRecord:
    m = measure(maps)
    r1 = lambda v: None if v is None else round(float(v), 1)  # noqa: E731
    return MetricsRecord(site_id, ref.scene_id, ref.acquired, r1(m.built_area_m2) or 0.0, r1(m.wall_length_m),
                         r1(m.fence_length_m), m.tower_count, r1(m.enclosed_area_m2), run_id,
                         grid_res_m=maps.grid.res)


#: A uniform jump of all visible bands' medians by this much (±) is the 0.1 BOA offset, not the ground.
OFFSET_STEP = (0.07, 0.13)
#: ... when the bands moved together to within this.
OFFSET_STEP_SPREAD = 0.03


def reflectance_steps(records: Sequence[SceneRecord], new: set[str] | None = None) -> list[str]:
    """Warnings for consecutive observed scenes whose blue, green and red medians all jump by about 0.1.

    Ground does not brighten or darken uniformly by 0.1 in every band from one clear scene to
    the next; a -0.1 offset applied twice, or not at all (a processing-baseline change), does.
    Only pairs with a scene in ``new`` are reported (each step is told once).
    """
    out = []
    obs = sorted((r for r in records if all(f"median_{b}" in r.properties for b in ("blue", "green", "red"))),
                 key=lambda r: (r.acquired, r.scene_id))
    for a, b in zip(obs, obs[1:]):
        if new is not None and a.scene_id not in new and b.scene_id not in new:
            continue
        d = [float(b.properties[f"median_{n}"]) - float(a.properties[f"median_{n}"]) for n in ("blue", "green", "red")]
        if all(OFFSET_STEP[0] <= abs(x) <= OFFSET_STEP[1] for x in d) and len({x > 0 for x in d}) == 1 \
                and max(d) - min(d) <= OFFSET_STEP_SPREAD:
            rule = lambda r: r.properties.get("offset_rule", "no offset rule recorded")  # noqa: E731
            out.append(f"site {a.site_id}: visible reflectance steps by {sum(d) / 3:+.2f} from scene {a.scene_id} "
                       f"({a.date}; {rule(a)}) to {b.scene_id} ({b.date}; {rule(b)}): a 0.1 BOA offset applied "
                       f"twice or not at all?")
    return out
