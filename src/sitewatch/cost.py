"""What a monitoring run would cost, before it runs (``sitewatch monitor --dry-run``).

Nothing is written and no pixel is read. Per site: the scenes the source lists over it, those
not yet in the GeoPackage (the ones a run would read), the bytes those reads would fetch, and
an estimate of the time.

**Bytes** come from each file's own tile index: the file's header is opened (for a remote COG,
GDAL's first range request of 16 KiB) and the compressed sizes of the full-resolution tiles
under the site's window, as the reader computes it, are added up (GDAL's ``BLOCK_SIZE_x_y``
TIFF metadata, which reads the tile index, never the tiles). A file without a tile index
(striped, or not a TIFF) counts its window uncompressed. Headers are counted as one
:data:`HEADER_BYTES` chunk per file.

**Mask first**: a run reads a scene's ``scl`` over the site before its bands and skips the
bands of a site too cloudy to use, which a dry run cannot see without reading pixels. The
bytes, reads and time are therefore the expectation from each item's ``eo:cloud_cover``
(:func:`clear_chance`), and ``bytes_max`` what they would be were every site clear.

**Time** is one read per header and one per row of tiles under the window (a COG stores a
row's tiles one after another, so GDAL fetches them as one range), each costed at the mean time
the header reads of this very dry run took (a real round trip to the same server), plus the CPU
a new scene costs once read (:data:`CPU_PER_SCENE_S`, measured by ``benchmarks/monitor_scene.py``).
Tiles far larger than a header take longer on a slow link than this counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ImageryError, SceneError
from .progress import human_bytes  # noqa: F401 (public here too: cost lines print bytes with it)

#: GDAL's /vsicurl/ chunk: what opening a remote COG's header fetches at least.
HEADER_BYTES = 16_384
#: CPU seconds to map, date and store one new 10 m scene over a 2.5 km site
#: (benchmarks/README.md §4: 0.23 s on the demo's Sentinel-2-like site, 7 scenes stored).
CPU_PER_SCENE_S = 0.23


@dataclass(frozen=True)
class FileCost:
    """One file a scene read would open: its bytes under the window and how they were counted."""

    href: str
    tiles: int
    ranges: int  # contiguous byte ranges: one per row of tiles under the window
    bytes: int
    how: str  # "tile index" or "uncompressed window"
    header_s: float


@dataclass(frozen=True)
class SiteCost:
    """A site's share of a run that has not happened."""

    site_id: str
    scenes_found: int
    scenes_to_read: int
    bytes: int = 0
    reads: int = 0
    seconds: float = 0.0
    how: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    scene_ids: tuple[str, ...] = field(default=(), repr=False)
    #: the bytes if every scene's site were clear (every band read); ``bytes`` is the expectation
    bytes_max: int = 0


def _file_cost(href: str, grid: Any, sas: str | None = None) -> FileCost:
    """Bytes of ``href``'s full-resolution tiles under ``grid``, from its header and tile index only."""
    from .reader import _open, source_window, window_bytes

    t0 = time.perf_counter()
    with _open(href, sas) as ds:
        header_s = time.perf_counter() - t0
        span = source_window(ds, grid)
        if span is None:
            return FileCost(href, 0, 0, 0, "outside the window", header_s)
        tiles, rows, nbytes, how = window_bytes(ds, span)
        return FileCost(href, tiles, rows, nbytes, how, header_s)


def estimate_site(site: Any, scenes: Sequence[Any], done: set[str], stored: Sequence[Any] = (),
                  site_res: Sequence[float] = ()) -> SiteCost:
    """Cost of reading ``scenes`` over ``site``: those overlapping it, not in ``done``, not another tile
    of an acquisition in ``stored``, and not overcast by the catalog's word (a run stores those unread),
    as :func:`sitewatch.monitor.monitor_site` chooses them, on the site's grid (``site_res``: the
    resolutions its stored scenes are on)."""
    from .catalog import MAX_CLOUD_COVER, same_acquisition
    from .grid import grid_for, site_resolution
    from .monitor import _scene_overlaps
    from .reader import _open, native_gsd
    from .scenes import BANDS

    found = sorted((s for s in scenes if _scene_overlaps(site, s)), key=lambda s: (s.acquired, s.scene_id))
    new = [s for s in found if s.scene_id not in done
           and not any(o.scene_id != s.scene_id and same_acquisition(o, s) for o in stored)]

    def overcast(ref: Any) -> bool:
        cc = ref.properties.get("eo:cloud_cover")
        return isinstance(cc, (int, float)) and not isinstance(cc, bool) and cc > MAX_CLOUD_COVER

    todo = [s for s in new if not overcast(s)]
    files: list[FileCost] = []
    problems: list[str] = []
    known = list(site_res)
    # (files always fetched, files fetched only when the site is clear, chance it is) per scene
    scenes: list[tuple[list[FileCost], list[FileCost], float]] = []
    for ref in todo:
        try:
            if "red" not in ref.assets:
                raise SceneError(f"scene {ref.scene_id}: no red band")
            with _open(ref.assets["red"].href, ref.assets["red"].sas) as ds:
                res = site_resolution(native_gsd(ds), known)
            if res not in known:
                known.append(res)
            grid = grid_for(site.geometry, res)
            assets = {ref.assets[n].href: ref.assets[n].sas for n in (*BANDS, "scl") if n in ref.assets}
            mine = [_file_cost(h, grid, sas) for h, sas in assets.items()]
            files += mine
            p = clear_chance(ref)
            first = {ref.assets[n].href for n in ("scl",) if n in ref.assets} if p < 1 else set(assets)
            scenes.append(([f for f in mine if f.href in first], [f for f in mine if f.href not in first], p))
        except SceneError as exc:
            problems.append(f"site {site.site_id}, scene {ref.scene_id}: {exc}")
    per_read = sum(f.header_s for f in files) / len(files) if files else 0.0
    reads = nbytes = nbytes_max = scenes_read = 0.0
    for first, rest, p in scenes:
        # red's header is fetched for the grid even when its tiles are not (the 1 - p not counted below)
        reads += sum(1 + f.ranges for f in first) + p * sum(1 + f.ranges for f in rest) + (1 - p)
        nbytes += sum(f.bytes + HEADER_BYTES for f in first) + p * sum(f.bytes + HEADER_BYTES for f in rest) \
            + (1 - p) * HEADER_BYTES
        nbytes_max += sum(f.bytes + HEADER_BYTES for f in (*first, *rest))
        scenes_read += p
    seconds = reads * per_read + CPU_PER_SCENE_S * scenes_read
    return SiteCost(site.site_id, len(found), len(todo), round(nbytes), round(reads), seconds,
                    tuple(sorted({f.how for f in files})), tuple(problems), tuple(s.scene_id for s in todo),
                    bytes_max=nbytes_max and round(nbytes_max))


def clear_chance(ref: Any) -> float:
    """The chance that a run reads ``ref``'s bands over a site, as the reader decides (mask first).

    With ``scl`` the reader reads the mask over the site first and the bands only when it is
    clear enough; a small site lies under cloud about as often as the item's ``eo:cloud_cover``
    says of its tile, so that is the chance it is not. 1 without ``scl`` or a cloud cover (every
    band read), or with a cover of 0 (the reader then reads mask and bands at once).
    """
    cc = ref.properties.get("eo:cloud_cover")
    if "scl" not in ref.assets or not isinstance(cc, (int, float)) or isinstance(cc, bool) or cc <= 0:
        return 1.0
    return max(0.0, 1.0 - min(float(cc), 100.0) / 100.0)


def dry_run(params: Any, sites: Sequence[Any] | None = None) -> list[SiteCost]:
    """Every selected site's cost; reads the sites, the catalog and file headers, writes nothing.

    A ``--db`` that exists is only read (its stored scenes are not counted again); one that does
    not exist is not created.
    """
    from .catalog import discover, probe
    from .monitor import select_sites
    from .scenes import SceneRef
    from .sites import read_sites
    from .store import Store

    chosen = select_sites(read_sites(params.sites) if sites is None else sites, params.site_ids, params.sites)
    probe(params.imagery, collection=params.collection)
    store = Store(params.db, create=False) if Path(params.db).exists() else None
    out = []
    for site in chosen:
        try:
            found = discover(params.imagery, collection=params.collection, aoi=site.geometry,
                             since=params.since, until=params.until, per_acquisition=True)
        except (SceneError, ImageryError) as exc:
            out.append(SiteCost(site.site_id, 0, 0, problems=(f"site {site.site_id}: imagery search failed: {exc}",)))
            continue
        done = store.done_scene_ids(site.site_id) if store is not None else set()
        stored = [] if store is None else [SceneRef(r.scene_id, r.source, r.acquired, {}, properties=r.properties)
                                           for r in store.scenes(site.site_id) if r.status != "failed"]
        site_res = [] if store is None else list(dict.fromkeys(
            float(r.grid_res_m) for r in store.scenes(site.site_id) if r.grid_res_m))
        cost = estimate_site(site, found.scenes, done, stored, site_res)
        if found.problems:
            cost = SiteCost(**{**cost.__dict__, "problems": (*cost.problems, *found.problems)})
        out.append(cost)
    return out


def cost_lines(costs: Sequence[SiteCost]) -> list[str]:
    """One line per site and a total, as ``--dry-run`` prints them."""
    def most(c: SiteCost) -> str:
        return f" (at most {human_bytes(c.bytes_max)})" if c.bytes_max > c.bytes else ""

    lines = [f"{c.site_id}: {c.scenes_found} scenes found, {c.scenes_to_read} to read, "
             f"{human_bytes(c.bytes)} in {c.reads} reads ({', '.join(c.how) or 'nothing to read'}){most(c)}, "
             f"about {c.seconds:,.1f} s" for c in costs]
    total_s = sum(c.seconds for c in costs)
    total = SiteCost("total", 0, 0, sum(c.bytes for c in costs), bytes_max=sum(c.bytes_max for c in costs))
    masked = (f"; bytes expected with the mask read first: a scene's bands only where its eo:cloud_cover "
              f"leaves the site clear{most(total)}") if total.bytes_max > total.bytes else ""
    lines.append(f"total: {len(costs)} sites, {sum(c.scenes_found for c in costs)} scenes found, "
                 f"{sum(c.scenes_to_read for c in costs)} to read, {human_bytes(total.bytes)}, "
                 f"about {total_s:,.1f} s (each read costed at this dry run's mean header read, plus "
                 f"{CPU_PER_SCENE_S} s CPU per scene{masked}); nothing read or written")
    return lines
