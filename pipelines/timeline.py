"""The timeline flow: one Prefect task per site's publication pages, all logic in :mod:`sitewatch.timeline`.

Scheduled after the monitoring runs (``pipelines.serve --timelines DIR``), it keeps every
site's timeline and the index page current as reviewers confirm findings.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task, unmapped
from prefect.cache_policies import NONE
from prefect.task_runners import ThreadPoolTaskRunner

from sitewatch.store import Store
from sitewatch.timeline import write_index, write_site


@task(name="timeline-site", task_run_name="timeline {site_id}", retries=1, retry_delay_seconds=5,
      cache_policy=NONE)
def timeline_site_task(db: str, site_id: str, out: str, include_pending: bool) -> str:
    return str(write_site(db, site_id, out, include_pending, index=False))  # the flow writes the index once


@flow(name="sitewatch-timeline", task_runner=ThreadPoolTaskRunner(max_workers=2), validate_parameters=True)
def timeline_flow(db: str = "findings.gpkg", out: str = "timelines", include_pending: bool = False) -> dict[str, Any]:
    """Write every site's timeline (page, chart, time-lapse, findings, provenance) and an index page.

    Args:
        db: findings GeoPackage (must exist).
        out: folder for the pages; each site under ``out/SITE_ID/``.
        include_pending: also show detections nobody has reviewed yet, marked unverified.
    """
    site_ids = [s.site_id for s in Store(db, create=False).sites()]
    futures = timeline_site_task.map(db=unmapped(db), site_id=site_ids, out=unmapped(out),
                                     include_pending=unmapped(include_pending))
    pages = [f.result() for f in futures]
    return {"index": str(write_index(db, out, include_pending)), "pages": pages}
