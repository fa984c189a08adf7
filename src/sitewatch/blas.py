"""One BLAS/OpenMP thread for the per-site work: sites are the parallelism, not matrix products.

The monitor runs sites on threads (two in the flow) and reads bands on a pool beside them;
numpy's and scipy's OpenBLAS would add a thread per core to each matrix product on top
(the building model's per-pixel logit, ``buildings.probability``), so a 2-core machine ran
more threads than cores, each waiting on the others. It also made results depend on the
machine: OpenBLAS splits a 62,500-pixel product over its threads, and the split changes the
float32 sums in their last bit. With one thread they are the same on any number of cores.

OpenBLAS's thread count is one setting for the whole process, so concurrent sites share one
limit: the first site in sets it, the last one out restores it (a site ending must not lift it
from under another). OpenMP's is per thread, so each site sets its own. One quirk, measured
with numpy's OpenBLAS 0.3.31: once the main thread has set a count, a count set from another
thread no longer takes. The monitor's paths are fine (the flow's and ``run(map_sites=...)``'s
sites all run on worker threads, plain ``run`` on the main thread only); a process that ran
sites on its main thread and later on threads keeps OpenBLAS's own count for the threaded ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOCK = threading.Lock()
_HOLDERS = 0
_BLAS: Any = None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS thread (process-wide, counted) and one OpenMP thread (this thread)."""
    global _HOLDERS, _BLAS
    from threadpoolctl import threadpool_limits

    with _LOCK:
        if _HOLDERS == 0:
            _BLAS = threadpool_limits(limits=1, user_api="blas")
        _HOLDERS += 1
    try:
        with threadpool_limits(limits=1, user_api="openmp"):
            yield
    finally:
        with _LOCK:
            _HOLDERS -= 1
            if _HOLDERS == 0 and _BLAS is not None:
                _BLAS.restore_original_limits()
                _BLAS = None
