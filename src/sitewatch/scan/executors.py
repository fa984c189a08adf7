"""Where a scan's tiles run: in this process, in forked processes, or on a Dask cluster.

An executor maps :func:`~sitewatch.scan.tile.scan_tile` over the tiles and yields results in
whatever order they finish; the one process that holds the GeoPackage writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .region import TileJob
from .tile import TileResult

MapUnordered = Callable[[Callable[[TileJob], TileResult], Sequence[TileJob]], Iterable[TileResult]]


def serial(fn: Callable[[TileJob], TileResult], jobs: Sequence[TileJob]) -> Iterator[TileResult]:
    return (fn(j) for j in jobs)


def process_map(workers: int) -> MapUnordered:
    """Run tiles in ``workers`` forked processes on this machine (cheap to start: no cluster)."""
    import multiprocessing as mp

    def run(fn: Callable[[TileJob], TileResult], jobs: Sequence[TileJob]) -> Iterator[TileResult]:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            yield from pool.imap_unordered(fn, jobs, chunksize=1)

    return run


def dask_map(client: Any) -> MapUnordered:
    """Run tiles on a Dask cluster, results in completion order, a bounded number in flight."""
    from dask.distributed import as_completed

    def run(fn: Callable[[TileJob], TileResult], jobs: Sequence[TileJob]) -> Iterator[TileResult]:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        window = 4 * n_workers  # jobs carry no pixels, but results pile up if nobody drains them
        it = iter(jobs)
        pending = as_completed([client.submit(fn, j, pure=False) for _, j in zip(range(window), it)])
        for fut in pending:
            yield fut.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.add(client.submit(fn, nxt, pure=False))

    return run
