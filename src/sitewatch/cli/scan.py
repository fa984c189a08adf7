"""``sitewatch scan``: look for new compounds over a whole region."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from ..errors import InputError
from .options import (COLLECTION_OPTION, DB_OPTION, IMAGERY_OPTION, SINCE_OPTION, UNTIL_OPTION, check_dates,
                      flow_or_library, quiet_prefect)


@click.command("scan")
@click.option("--region", required=True,
              help="minlon,minlat,maxlon,maxlat, a polygon file (GeoJSON, GPKG), or 'xinjiang' (its bounding box).")
@IMAGERY_OPTION
@COLLECTION_OPTION
@DB_OPTION
@SINCE_OPTION
@UNTIL_OPTION
@click.option("--workers", type=click.IntRange(1, 512), default=None,
              help="N worker processes on this machine: a local Dask cluster under Prefect, forked processes "
                   "with --no-prefect (default: one process).")
@click.option("--cluster", default=None, metavar="ADDRESS",
              help="Run on an existing Dask cluster, e.g. tcp://scheduler:8786 (sitewatch installed on every worker).")
@click.option("--tile-px", type=click.IntRange(128, 8192), default=1024, show_default=True,
              help="Tile side in native pixels (1024 at 10 m = 10.24 km).")
@click.option("--batch-tiles", type=click.IntRange(1, 10000), default=64, show_default=True,
              help="Tiles written per GeoPackage transaction; a killed scan redoes at most this many.")
@click.option("--no-prefect", is_flag=True, help="Run the library directly (Dask without Prefect) instead of the flow.")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's flow and task logs.")
def command(region: str, imagery: str, collection: str | None, db: str, since: dt.date | None,
            until: dt.date | None, workers: int | None, cluster: str | None, tile_px: int, batch_tiles: int,
            no_prefect: bool, verbose: bool) -> None:
    """Scan a region for new building blocks, tile by tile on each scene's native grid.

    Each block found becomes a candidate site `scan-<tile>-<n>` in the GeoPackage with a
    pending `building_new` detection, dated by the clear scenes that bracket it. Promote a
    candidate to a watched site with `sitewatch sites add --from-detection ID`. A scan
    asked again skips the tiles it already finished, so a killed scan resumes.
    Walls, fences and towers are not looked for: the scan reads 10 m imagery.

    \b
    Example (all of Xinjiang on a Dask cluster):
      sitewatch scan --region xinjiang --collection sentinel-2-l2a \\
        --imagery https://earth-search.aws.element84.com/v1 \\
        --since 2024-05-01 --until 2024-09-30 --cluster tcp://scheduler:8786
    """
    from ..catalog import probe
    from ..progress import rich_progress
    from ..scan import ScanParams, read_region, summary_line

    if workers and cluster:
        raise click.UsageError("give --workers or --cluster, not both")
    from ..store import Store

    check_dates(since, until)
    area = read_region(region)  # unusable input fails before anything starts or is written
    probe(imagery, collection=collection)
    Store(db)  # a --db that cannot be a findings GeoPackage is refused before the flow starts
    from ..extent import extent_text, swap_warning

    click.echo(f"region: {extent_text([area])}")
    warning = swap_warning([(region, area)], "region")
    if warning:
        click.echo(warning, err=True)
    params = ScanParams(region=region, imagery=imagery, db=db, collection=collection, since=since, until=until,
                        tile_px=tile_px, batch_tiles=batch_tiles)
    quiet_prefect(verbose)
    flow = None if no_prefect else flow_or_library("scan")
    with rich_progress(unit="km²"):
        if flow is not None:
            from pipelines.runners import task_runner  # registered flow => pipelines is installed

            result: dict[str, Any] = flow.with_options(task_runner=task_runner(workers, cluster))(
                **{k: v for k, v in params.as_dict().items() if k not in ("since", "until")}, since=since, until=until)
        else:
            result = _run_library(params, workers, cluster)
    click.echo(f"{db}: scan {result['run_id']} {result['status']}: {summary_line(result)}")
    for f in result["failures"]:
        click.echo(f"failed: {f}", err=True)
    for note in result.get("notes", []):
        click.echo(note, err=True)
    if result["status"] != "completed":
        sys.exit(1)


def _run_library(params: Any, workers: int | None, cluster: str | None) -> dict[str, Any]:
    """Without Prefect: one process, N forked processes, or an existing Dask cluster."""
    from ..scan import dask_map, process_map, run, serial

    if cluster:
        try:
            from dask.distributed import Client
        except ImportError:
            raise InputError("--cluster needs Dask, an optional extra: pip install 'sitewatch[dask]'") from None

        with Client(cluster) as client:
            return run(params, dask_map(client)).as_dict()
    if workers and workers > 1:
        return run(params, process_map(workers)).as_dict()
    return run(params, serial).as_dict()
