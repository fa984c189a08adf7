"""One tile, end to end: read its scenes, detect, and describe what it found as sites, scenes
and detections. A pure function of its :class:`~sitewatch.scan.region.TileJob`, so tiles can run
anywhere; only the small :class:`TileResult` comes back."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..detections import Change, detection_record
from ..errors import SceneError
from ..grid import to_crs
from ..sites import Site
from ..store import DetectionRecord, SceneRecord
from ..vrt import one_file_image
from .blocks import BLOCKS, TileDetector
from .reads import TileScene, read_tile, site_sha256
from .region import TileJob


@dataclass(frozen=True)
class TileResult:
    """What one tile produced; small enough to ship back from any worker."""

    tile_id: str
    area_km2: float
    sites: tuple[Site, ...] = ()
    scenes: tuple[SceneRecord, ...] = ()
    detections: tuple[DetectionRecord, ...] = ()
    failures: tuple[str, ...] = ()
    scenes_read: int = 0
    seconds: float = 0.0


_MALLOC_TUNED = False


def _keep_freed_memory() -> None:
    """Ask glibc's allocator to keep freed memory for the next tile instead of returning it.

    A tile allocates the same few dozen MB of arrays as the one before it; by default glibc
    hands arrays over 128 KB back to the kernel when they are freed, so each tile faulted its
    memory in again, page by page (~7,000 page faults per tile: a tenth of the scan's CPU, in
    the kernel). Kept, the pages are reused and the resident set stays what it was (flat in the
    region's size, as before). Once per process; a no-op where the C library is not glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes
        import sys

        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None)
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is None:
            return
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        mallopt(m_mmap_threshold, 32 << 20)  # tile-sized arrays from the heap, not fresh mappings
        mallopt(m_trim_threshold, 256 << 20)  # and the heap not trimmed between tiles
    except (OSError, AttributeError, TypeError):  # pragma: no cover - not glibc
        pass


def scan_tile(job: TileJob, run_id: str, detector: TileDetector = BLOCKS) -> TileResult:
    """Read every scene of one tile, find new blocks, and describe them as sites, scenes and detections."""
    _keep_freed_memory()
    t0 = time.perf_counter()
    stack: list[TileScene] = []
    failures: list[str] = []
    for ref in job.scenes:
        try:
            stack.append(read_tile(ref, job))
        except SceneError as exc:
            failures.append(str(exc))
    found = detector.candidates(stack, job)
    sites: list[Site] = []
    scenes: dict[str, SceneRecord] = {}
    dets: list[DetectionRecord] = []
    grid = job.grid
    for n, c in enumerate(sorted(found, key=lambda c: (c.geometry.centroid.y, c.geometry.centroid.x)), start=1):
        site_id = f"scan-{job.tile_id}-{n}"
        outline = to_crs(c.geometry.convex_hull.buffer(200, join_style="mitre"), job.crs, "EPSG:4326")
        b, a = stack[c.before], stack[c.after]
        sites.append(Site(site_id, outline, name=f"Scan candidate {n} in tile {job.tile_id}",  # type: ignore[arg-type]
                          notes=f"new building block between {b.ref.date} and {a.ref.date}; found by a wide-area scan",
                          properties={"tile_id": job.tile_id, "run_id": run_id, "source": "scan"}))
        for ts in (b, a):
            try:
                sha = site_sha256(ts, job, outline)
            except SceneError as exc:  # the tile is not marked done: the next run scans it again
                failures.append(str(exc))
                sha = None
            scenes[f"{site_id}|{ts.ref.scene_id}"] = SceneRecord(
                scene_id=ts.ref.scene_id, site_id=site_id, source=ts.ref.source, acquired=ts.ref.acquired,
                gsd_m=job.transform.a, grid_res_m=job.transform.a, cloud_fraction=round(1 - ts.clear_fraction, 4),
                valid_fraction=round(ts.clear_fraction, 4), sha256=sha, run_id=run_id,
                collection=ts.ref.collection, href=ts.ref.href, footprint=outline,  # type: ignore[arg-type]
                status="observed", image_href=one_file_image(ts.ref),
                properties={"tile_id": job.tile_id, "pixels": "site window, native grid (as sitewatch.reader reads it)"})
        change = Change("building_new", c.geometry, b.ref.scene_id, b.ref.date, a.ref.scene_id, a.ref.date,
                        c.area_m2, None, c.score,
                        {"detector": f"{detector.name} {detector.version}", "maps": ["building"],
                         "magnitude": c.magnitude, "tile_id": job.tile_id})
        dets.append(detection_record(site_id, change, grid, run_id))
    return TileResult(job.tile_id, job.area_km2, tuple(sites), tuple(scenes.values()), tuple(dets),
                      tuple(failures), len(stack), round(time.perf_counter() - t0, 3))
