"""Where tasks run: threads on this machine, a local Dask cluster, or an existing one.

Both flows take the same choice, so a site list and a region scale out the same way.
"""

from __future__ import annotations

from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from sitewatch.errors import InputError

NO_DASK = "--workers/--cluster need Dask, an optional extra: pip install 'sitewatch[dask]' (or make install-extras)"


def task_runner(workers: int | None = None, cluster: str | None = None, threads: int = 2) -> Any:
    """Dask when asked (an existing cluster by address, or a local one of N processes), else threads."""
    if cluster or (workers and workers > 1):
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise InputError(NO_DASK) from None

        if cluster:
            return DaskTaskRunner(address=cluster)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=threads)
