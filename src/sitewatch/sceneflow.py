"""A site's scenes in flight: read ahead of the one being mapped, and their evidence made beside it.

The monitor maps a site's scenes in order (each scene's maps may depend on the ones before).
What is stored with a scene besides its maps (its quicklook PNG, its record's footprint and band
medians, the maps' compressed bytes) depends on nothing later, so it is made on one worker
thread while the main thread runs the detector (a change model's onnxruntime session) on the
scene and on the next one: numpy, zlib and PIL's PNG encoder release the GIL, so the two run on
two cores. The stored bytes are the same either way (the same functions on the same arrays; the
saves stay on the caller's thread, one transaction per scene, in the scenes' order).
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import replace
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

from . import quicklook
from .errors import SceneError
from .records import SceneRecord
from .scenes import SceneRaster, SceneRef
from .structures import StructureMaps

T = TypeVar("T")


def scenes_ahead(remote: bool = True) -> int:
    """Scenes of one site read ahead of the one being mapped (``SITEWATCH_SCENES_AHEAD``; default 4
    for imagery over http(s), 1 for local files). Remote reads wait on round trips, so several are
    kept in flight (each waiting raster is small); a local read waits on nothing, and more scenes
    ahead only add threads contending for the cores (22 local LEVIR scenes: 4 ahead cost 0.1 s more
    CPU and wall than 1, benchmarks/README.md section 9)."""
    told = os.environ.get("SITEWATCH_SCENES_AHEAD")
    return max(1, int(told)) if told else (4 if remote else 1)


def _remote(ref: SceneRef) -> bool:
    return any(a.href.startswith(("http://", "https://", "/vsi")) for a in ref.assets.values())


def read_ahead(read: Callable[[SceneRef], SceneRaster], refs: Sequence[SceneRef]
               ) -> Iterator[tuple[SceneRef, SceneRaster | SceneError]]:
    """``(ref, raster or the SceneError reading it raised)`` in ``refs`` order, reading a bounded
    number ahead on threads. Nothing is stored here, so a run stopped part-way loses nothing."""
    ahead = scenes_ahead(any(_remote(r) for r in refs))

    def one(ref: SceneRef) -> SceneRaster | SceneError:
        try:
            return read(ref)
        except SceneError as exc:
            return exc

    pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="sitewatch-scene")
    try:
        pending: deque[tuple[SceneRef, Future[SceneRaster | SceneError]]] = deque()
        it = iter(refs)
        for ref in it:
            pending.append((ref, pool.submit(one, ref)))
            if len(pending) >= ahead:
                break
        while pending:
            ref, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(one, nxt)))
            yield ref, fut.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def beside() -> bool:
    """Whether a scene's evidence is made on a worker thread (``SITEWATCH_EVIDENCE_THREAD=0``: on the
    caller's, one step after another, e.g. to time each stage or to compare the stored bytes)."""
    return os.environ.get("SITEWATCH_EVIDENCE_THREAD", "1") != "0"


class Lane:
    """One worker thread for a site's evidence (or none: each job runs when submitted). One worker
    keeps the jobs in order and leaves the other core to the detector, not to more of the same."""

    def __init__(self, threaded: bool | None = None) -> None:
        threaded = beside() if threaded is None else threaded
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sitewatch-evidence") if threaded else None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        fut: Future[T] = Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:  # raised where the result is asked for, as from the thread
            fut.set_exception(exc)
        return fut

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def quicklook_png(raster: SceneRaster) -> bytes:
    """The scene's stored quicklook (:mod:`sitewatch.quicklook`)."""
    return quicklook.png(quicklook.rgb8(raster.bands, raster.valid))


class Made(NamedTuple):
    """A mapped scene's record and its maps as stored (bytes, and as those bytes read back)."""

    record: SceneRecord
    blob: bytes
    back: StructureMaps


def made(record: Callable[[], SceneRecord], href: str | None, maps: StructureMaps) -> Made:
    """``record()`` (footprint, band medians) with the scene's image href, and ``maps.stored()``."""
    blob, back = maps.stored()
    return Made(replace(record(), image_href=href), blob, back)


class Held(NamedTuple):
    """A mapped scene waiting to be saved: its evidence is being made on the lane."""

    ref: SceneRef
    maps: StructureMaps
    grid: dict[str, Any]
    quicklook: Future[bytes]
    made: Future[Made]


__all__ = ["Held", "Lane", "Made", "beside", "made", "quicklook_png", "read_ahead", "scenes_ahead"]
