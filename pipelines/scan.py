"""The wide-area scan flow: tiles as tasks on Dask, all logic in :mod:`sitewatch.scan`.

Workers only compute (a tile in, a small :class:`~sitewatch.scan.TileResult` out); this
flow's process is the one writer of the GeoPackage, so workers on other machines never
need the file. Tiles go out in batches, a bounded number in flight, so a region the size
of Xinjiang neither floods Prefect's API nor piles results up in memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.futures import as_completed

from sitewatch.scan import TILE_PX, ScanParams, TileJob, TileResult, drain, prepare, scan_tile

#: Tiles per task: enough work per task that Prefect's per-task cost (~tens of ms) is noise.
TILES_PER_TASK = 4


@task(name="scan-tiles", task_run_name="tiles {jobs[0].tile_id} (+{n_more})", retries=1, retry_delay_seconds=5,
      cache_policy=NONE)
def scan_tiles_task(jobs: list[TileJob], run_id: str, n_more: int = 0) -> list[TileResult]:
    """Scan a few tiles. Unreadable scenes are reported in the results, not raised."""
    return [scan_tile(j, run_id) for j in jobs]


@flow(name="sitewatch-scan", validate_parameters=True)
def scan_flow(region: str, imagery: str, db: str = "findings.gpkg", collection: str | None = None,
              since: dt.date | None = None, until: dt.date | None = None, tile_px: int = TILE_PX,
              batch_tiles: int = 64, in_flight: int = 8) -> dict[str, Any]:
    """Scan a region for new building blocks; candidates become ``scan-...`` sites with pending detections.

    Args:
        region: ``minlon,minlat,maxlon,maxlat``, ``xinjiang``, or a polygon file.
        imagery: STAC API URL, static catalog path/URL, or folder of GeoTIFFs.
        db: findings GeoPackage (created when missing).
        collection: STAC collection (default Earth Search ``sentinel-2-l2a`` for APIs).
        since, until: only scenes acquired in this date range.
        tile_px: tile side in native pixels.
        batch_tiles: tiles written per GeoPackage transaction.
        in_flight: task batches submitted ahead of the results being written.
    """
    params = ScanParams(region=region, imagery=imagery, db=db, collection=collection, since=since, until=until,
                        tile_px=tile_px, batch_tiles=batch_tiles)
    store, run_id, jobs, failed, notes = prepare(params)
    batches = [jobs[i:i + TILES_PER_TASK] for i in range(0, len(jobs), TILES_PER_TASK)]

    def results() -> Iterator[TileResult]:
        for w in range(0, len(batches), in_flight):
            futures = [scan_tiles_task.submit(b, run_id, n_more=len(b) - 1) for b in batches[w:w + in_flight]]
            for fut in as_completed(futures):
                yield from fut.result()

    return drain(store, params, run_id, jobs, failed, results(), notes).as_dict()
