"""The monitoring flow: one Prefect task per site, all logic in :mod:`sitewatch.monitor`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NONE
from prefect.task_runners import ThreadPoolTaskRunner

from sitewatch.events import log_lines
from sitewatch.monitor import MonitorParams, SiteResult, finish, prepare, run_site
from sitewatch.sites import Site


@task(name="monitor-site", task_run_name="site {site.site_id}", retries=1, retry_delay_seconds=5,
      cache_policy=NONE)
def monitor_site_task(params: MonitorParams, site: Site, run_id: str) -> SiteResult:
    """Discover and process one site's new scenes. Scene-level faults are recorded, not raised."""
    return run_site(params, site, run_id)


@flow(name="sitewatch-monitor", task_runner=ThreadPoolTaskRunner(max_workers=2), validate_parameters=True)
def monitor_flow(sites: str, imagery: str, db: str = "findings.gpkg", collection: str | None = None,
                 since: dt.date | None = None, until: dt.date | None = None, change_model: str | None = None,
                 model_only: bool = False, learn_ranking: bool = False,
                 site_ids: list[str] | None = None) -> dict[str, Any]:
    """Watch a list of sites: pull new scenes, map structures, date changes, store for review.

    Args:
        sites: sites file (GeoPackage, GeoJSON, CSV).
        imagery: STAC API URL, static catalog path/URL, or folder of GeoTIFFs.
        db: findings GeoPackage (created when missing).
        collection: STAC collection (default Earth Search ``sentinel-2-l2a`` for APIs).
        since, until: only scenes acquired in this date range.
        change_model: a trained change model (ONNX file, contract in the README), beside the detector.
        model_only: the change model instead of the default detector.
        learn_ranking: re-learn the review queue's ranking from the reviews after the run
            (skipped, with a log line, while there are too few reviews).
        site_ids: only these sites of the file (``--site``); None for all.
    """
    params = MonitorParams(sites=sites, imagery=imagery, db=db, collection=collection, since=since, until=until,
                           change_model=change_model, model_only=model_only,
                           site_ids=tuple(site_ids) if site_ids else None)
    store, site_list, run_id = prepare(params)
    futures = monitor_site_task.map(params=unmapped(params), site=site_list, run_id=unmapped(run_id))
    results: list[SiteResult] = []
    for site, fut in zip(site_list, futures):
        try:
            results.append(fut.result())
        except Exception as exc:  # a crash in one site must not lose the others' results
            results.append(SiteResult(site.site_id, failures=(f"site {site.site_id}: {type(exc).__name__}: {exc}",)))
    summary = finish(store, run_id, results)
    out = {"run_id": run_id, "status": summary.status, **summary.as_dict()}
    for r in results:  # a withdrawn detection leaves the file: said in the flow's log, not only its result
        for line in log_lines(r.site_id, r.withdrawn):
            get_run_logger().info(line)
    if learn_ranking:
        out["ranking"] = relearn(db)
    return out


def relearn(db: str) -> str:
    """Fit the review queue's ranking again from the file's reviews; what happened, in one line."""
    import logging

    from prefect.exceptions import MissingContextError

    from sitewatch.errors import SitewatchError
    from sitewatch.rerank import learn

    try:
        line = learn(db).summary()
    except SitewatchError as exc:  # too few reviews yet: the queue keeps its current order
        line = f"ranking not learnt: {exc}"
    try:
        get_run_logger().info(line)
    except MissingContextError:  # called outside a flow run
        logging.getLogger("sitewatch").info(line)
    return line
