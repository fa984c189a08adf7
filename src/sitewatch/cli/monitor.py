"""``sitewatch monitor``: one monitoring run."""

from __future__ import annotations

import datetime as dt
import sys

import click

from .options import (COLLECTION_OPTION, DB_OPTION, IMAGERY_OPTION, SINCE_OPTION, UNTIL_OPTION, check_dates,
                      flow_or_library, quiet_prefect)


@click.command("monitor")
@click.option("--sites", "sites", required=True, type=click.Path(dir_okay=False),
              help="Sites file: GeoPackage, GeoJSON, CSV (site_id,name,lon,lat[,radius_m]) or OSM.")
@IMAGERY_OPTION
@COLLECTION_OPTION
@DB_OPTION
@SINCE_OPTION
@UNTIL_OPTION
@click.option("--workers", type=click.IntRange(1, 512), default=None,
              help="Run sites on a local Dask cluster of N processes (default: two threads).")
@click.option("--cluster", default=None, metavar="ADDRESS",
              help="Run sites on an existing Dask cluster (tcp://host:8786); the --db path must be on storage "
                   "every worker can write.")
@click.option("--change-model", "change_model", default=None, metavar="PATH.onnx",
              help="A trained change model (ONNX, contract in the README), run beside the default detector.")
@click.option("--model-only", is_flag=True,
              help="With --change-model: the model instead of the default detector (no structure metrics).")
@click.option("--no-prefect", is_flag=True, help="Run the library directly instead of the Prefect flow.")
@click.option("--site", "site_ids", multiple=True, metavar="ID",
              help="Only this site of the sites file (repeat for several): try one site first.")
@click.option("--dry-run", is_flag=True,
              help="Read no pixels and write nothing: per site, the scenes found, the bytes a run would read "
                   "(from the files' tile indexes) and an estimated time.")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's flow and task logs.")
def command(sites: str, imagery: str, collection: str | None, db: str, since: dt.date | None,
            until: dt.date | None, workers: int | None, cluster: str | None, change_model: str | None,
            model_only: bool, no_prefect: bool, site_ids: tuple[str, ...], dry_run: bool, verbose: bool) -> None:
    """One monitoring run over a list of sites.

    Only scenes not yet in the GeoPackage's `scenes` layer are read; each is reprojected to
    the site's grid, masked for cloud, mapped for buildings, walls, fences and towers, and
    compared with what was stored before. New changes are written to `detections` as
    `pending` until a reviewer confirms or rejects them. Exit 0 when everything was read,
    1 when some scenes or sites failed (they are named and retried next run), 2 when the
    input is unusable (nothing is written).

    \b
    Example (Sentinel-2 L2A from Earth Search):
      sitewatch monitor --sites geodata/xinjiang_sites.gpkg \\
        --imagery https://earth-search.aws.element84.com/v1 --collection sentinel-2-l2a \\
        --since 2024-01-01 --db findings.gpkg
    """
    if (workers or cluster) and no_prefect:
        raise click.UsageError("--workers and --cluster choose where the Prefect flow's tasks run; drop --no-prefect")
    if model_only and not change_model:
        raise click.UsageError("--model-only needs --change-model PATH.onnx")
    if dry_run:
        from ..cost import cost_lines, dry_run as estimate
        from ..monitor import MonitorParams

        check_dates(since, until)
        costs = estimate(MonitorParams(sites=sites, imagery=imagery, db=db, collection=collection, since=since,
                                       until=until, site_ids=site_ids or None))
        for line in cost_lines(costs):
            click.echo(line)
        for c in costs:
            for p in c.problems:
                click.echo(f"problem: {p}", err=True)
        return
    summary = run_monitor(sites, imagery, db, collection, since, until, use_prefect=not no_prefect,
                          verbose=verbose, workers=workers, cluster=cluster, change_model=change_model,
                          model_only=model_only, site_ids=site_ids)
    from ..monitor import summary_lines

    lines = summary_lines(summary)
    click.echo(f"{db}: run {summary['run_id']} {summary['status']}: {lines[0]}")
    for line in lines[1:]:
        click.echo(line, err=True)
    if summary["status"] != "completed":
        sys.exit(1)


def where(path: str, sites: list) -> None:
    """Where the sites are, and a warning (stderr) when their lon and lat look swapped."""
    from ..extent import extent_text, swap_warning

    click.echo(f"{path}: {len(sites)} sites in {extent_text(s.geometry for s in sites)}")
    warning = swap_warning([(s.site_id, s.geometry) for s in sites])
    if warning:
        click.echo(warning, err=True)


def run_monitor(sites: str, imagery: str, db: str, collection: str | None = None, since: dt.date | None = None,
                until: dt.date | None = None, *, use_prefect: bool = True, verbose: bool = False,
                workers: int | None = None, cluster: str | None = None, change_model: str | None = None,
                model_only: bool = False, site_ids: tuple[str, ...] = ()) -> dict:
    """Check the inputs, then run the flow (or the library) under a progress bar."""
    from ..catalog import probe
    from ..monitor import MonitorParams, run, select_sites
    from ..progress import rich_progress
    from ..sites import read_sites

    from ..store import Store

    # Unusable input fails here, before Prefect starts and before anything is written.
    check_dates(since, until)
    site_list = select_sites(read_sites(sites), site_ids, sites)  # an unknown --site is unusable input too
    probe(imagery, collection=collection)
    if change_model:  # a model off the contract is refused here: one line, exit 2, nothing written
        from ..changemodel import open_model

        open_model(change_model)
    Store(db)  # a --db that is not a findings GeoPackage (or has no folder) is refused now, not in the flow
    where(sites, site_list)
    quiet_prefect(verbose)
    from ..reader import bound_heap

    bound_heap()  # memory flat with the number of sites, before any read thread starts
    flow = flow_or_library("monitor") if use_prefect else None
    with rich_progress(reads=True) as rep:
        rep.plan(len(site_list))
        if flow is not None:
            if workers or cluster:
                from pipelines.runners import task_runner  # registered flow => pipelines is installed

                flow = flow.with_options(task_runner=task_runner(workers, cluster))
            extra = {"site_ids": list(site_ids)} if site_ids else {}  # keeps older flows callable
            return flow(sites=sites, imagery=imagery, db=db, collection=collection, since=since, until=until,
                        change_model=change_model, model_only=model_only, **extra)
        s = run(MonitorParams(sites=sites, imagery=imagery, db=db, collection=collection, since=since, until=until,
                              change_model=change_model, model_only=model_only, site_ids=site_ids or None))
        return {"run_id": s.run_id, "status": s.status, **s.as_dict()}
