"""A whole scan: its parameters, planning and registering the run, writing tile results as they
arrive (one transaction per batch of tiles, each tile marked done so a killed scan resumes where
it stopped), and its summary."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..store import RunParams, ScanTile, Store
from .blocks import SCAN_DETECTOR
from .executors import MapUnordered, serial
from .region import TILE_PX, TileJob, plan, read_region
from .tile import TileResult, scan_tile


@dataclass(frozen=True)
class ScanParams(RunParams):
    """What one scan was asked to do (stored in ``runs.params``)."""

    region: str
    imagery: str
    db: str = "findings.gpkg"
    collection: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    tile_px: int = TILE_PX
    #: Tiles per GeoPackage transaction (a kill loses at most this many tiles' work, never data).
    batch_tiles: int = 64

    @property
    def key(self) -> str:
        """Same scan asked again, same key: the tiles it already did are skipped."""
        d = {**self.as_dict(), "detector": SCAN_DETECTOR}
        d.pop("db")
        d.pop("batch_tiles")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ScanSummary:
    """Totals of a scan, for ``runs.summary`` and the terminal."""

    run_id: str
    tiles: int = 0
    tiles_skipped: int = 0
    area_km2: float = 0.0
    scenes: int = 0
    detections_new: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: what the user should know that is not a failure (a region that matched no scene)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "partial" if self.failures else "completed"

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "tiles": self.tiles, "tiles_skipped": self.tiles_skipped,
                "area_km2": round(self.area_km2, 1), "scenes": self.scenes, "detections_new": self.detections_new,
                "failures": _counted(self.failures), "seconds": round(self.seconds, 2), "notes": list(self.notes)}


def _counted(lines: Sequence[str]) -> list[str]:
    """One line per distinct failure (a broken scene fails every tile it covers), with how many tiles."""
    counts: dict[str, int] = {}
    for ln in lines:
        counts[ln] = counts.get(ln, 0) + 1
    return [f"{ln} ({n} tiles)" if n > 1 else ln for ln, n in counts.items()]


def prepare(params: ScanParams) -> tuple[Store, str, list[TileJob], list[str], list[str]]:
    """Check inputs, discover and plan before writing; then register the run. Skips tiles done before.

    Returns the store, the run id, the tiles to scan, the failures so far and notes (a region
    that matched no scene is named, with where it is: a silent "0 tiles" hides swapped lon/lat).
    """
    from ..catalog import discover, probe
    from ..extent import no_scene_note

    region = read_region(params.region)
    probe(params.imagery, collection=params.collection)
    found = discover(params.imagery, collection=params.collection, aoi=region, since=params.since,
                     until=params.until)
    jobs, failed = plan(found.scenes, region, params.tile_px)
    failed = [*found.problems, *failed]
    notes = [] if found.scenes else [no_scene_note(f"region {params.region!r}", region, params.imagery,
                                                   collection=params.collection, since=params.since,
                                                   until=params.until)]
    store = Store(params.db)
    done = store.done_scan_tiles(params.key)
    run_id = store.start_run("scan", {**params.as_dict(), "scan_key": params.key})
    return store, run_id, [j for j in jobs if j.tile_id not in done], failed, notes


class TileWriter:
    """Writes tile results as they arrive, in batches: one transaction per batch of tiles (or every
    couple of seconds), each tile with its done mark. A kill loses at most the last batch, which
    the next run scans again."""

    def __init__(self, store: Store, params: ScanParams, run_id: str, summary: ScanSummary,
                 batch: int = 64, every_s: float = 2.0):
        self.store, self.params, self.run_id, self.summary = store, params, run_id, summary
        self.batch, self.every_s = batch, every_s
        self.pending: list[ScanTile] = []
        self.last = time.monotonic()

    def add(self, result: TileResult) -> None:
        s = self.summary
        if result.failures:  # a tile with a failed scene is not marked done: the next run reads it again
            s.failures.extend(result.failures)
        else:
            self.pending.append(ScanTile(result.tile_id, result.area_km2, result.sites, result.scenes,
                                         result.detections))
            if len(self.pending) >= self.batch or time.monotonic() - self.last > self.every_s:
                self.flush()
        s.tiles += 1
        s.area_km2 += result.area_km2
        s.scenes += result.scenes_read

    def flush(self) -> None:
        self.summary.detections_new += self.store.save_scan_tiles(self.params.key, self.run_id, self.pending)
        self.pending = []
        self.last = time.monotonic()



def drain(store: Store, params: ScanParams, run_id: str, jobs: Sequence[TileJob], failed: Sequence[str],
          results: Iterable[TileResult], notes: Sequence[str] = ()) -> ScanSummary:
    """Write tile results as they arrive, under a progress bar in km², then close the run."""
    from ..progress import reporter

    t0 = time.perf_counter()
    summary = ScanSummary(run_id, failures=list(failed), notes=list(notes))
    writer = TileWriter(store, params, run_id, summary, batch=params.batch_tiles)
    rep = reporter()
    task = rep.start("scan", total=sum(j.area_km2 for j in jobs))
    try:
        for result in results:
            writer.add(result)
            rep.advance(task, result.area_km2)
        writer.flush()
    finally:
        rep.finish(task)
        summary.seconds = time.perf_counter() - t0
        store.finish_run(run_id, summary.status if summary.tiles == len(jobs) else "failed", summary.as_dict())
    return summary


def run(params: ScanParams, map_unordered: MapUnordered = serial) -> ScanSummary:
    """A whole scan without Prefect: tiles run wherever ``map_unordered`` runs them."""
    store, run_id, jobs, failed, notes = prepare(params)
    return drain(store, params, run_id, jobs, failed, map_unordered(partial(scan_tile, run_id=run_id), jobs), notes)


def summary_line(s: ScanSummary | dict[str, Any]) -> str:
    d = s.as_dict() if isinstance(s, ScanSummary) else s
    rate = d["area_km2"] / d["seconds"] if d.get("seconds") else 0.0
    return (f"{d['tiles']} tiles, {d['area_km2']:,.0f} km² in {d['seconds']:.1f} s ({rate:,.0f} km²/s), "
            f"{d['scenes']} scene reads, {d['detections_new']} new detections, {len(d['failures'])} failures")
