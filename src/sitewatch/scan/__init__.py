"""Wide-area scan: find new compounds nobody has listed yet.

A region of any size is cut into tiles on each scene's *native* grid (no reprojection: the
pixels are decoded once and compared as they are), and streamed tile by tile so memory
stays flat whatever the region's size. Each tile is a pure function of its scenes
(:func:`scan_tile`), so tiles can run anywhere: in this process, on a local Dask cluster,
or on workers on other machines; only the small :class:`TileResult` comes back, and the
one process that holds the GeoPackage writes it (:class:`TileWriter`), one transaction per
batch of tiles, marking each tile done so a killed scan resumes where it stopped.

The modules, in the order a scan uses them:

- :mod:`.region`: the region (a box, a named box, a vector file) and its plan of :class:`TileJob`;
- :mod:`.datasets`: GDAL access, each worker thread's open datasets and one band's window onto a tile;
- :mod:`.reads`: one scene over one tile (:class:`TileScene`), and a cited site's pixel hash;
- :mod:`.blocks`: the block detector (:class:`BlockDetector`, behind :class:`TileDetector`);
- :mod:`.tile`: one tile end to end (:func:`scan_tile`, :class:`TileResult`);
- :mod:`.executors`: where tiles run (:func:`serial`, :func:`process_map`, :func:`dask_map`);
- :mod:`.runner`: the whole scan (:class:`ScanParams`, :func:`prepare`, :func:`drain`, :func:`run`).

Only buildings are looked for at 10 m (walls, fences and towers need ~1 m imagery, see
:func:`sitewatch.structures.kinds_for_gsd`).
"""

from __future__ import annotations

from .blocks import (BLOCKS, CHANGE_SIGMA, CLEAR_SHARE, MIN_AREA_M2, NDVI_VEGETATION, SCAN_DETECTOR, BlockDetector,
                     Candidate, PairChange, TileDetector, Window2D, candidates, new_blocks, persists, score_of)
from .datasets import MAX_OPEN, SCAN_CACHE_MB
from .executors import MapUnordered, dask_map, process_map, serial
from .reads import TileScene, read_tile, site_sha256
from .region import NAMED_REGIONS, TILE_PX, TileJob, native_grid, pixel_key, plan, read_region
from .runner import ScanParams, ScanSummary, TileWriter, drain, prepare, run, summary_line
from .tile import TileResult, scan_tile

__all__ = [
    "BLOCKS", "CHANGE_SIGMA", "CLEAR_SHARE", "MAX_OPEN", "MIN_AREA_M2", "NAMED_REGIONS", "NDVI_VEGETATION",
    "SCAN_CACHE_MB", "SCAN_DETECTOR", "TILE_PX", "BlockDetector", "Candidate", "MapUnordered", "PairChange",
    "ScanParams", "ScanSummary", "TileDetector", "TileJob", "TileResult", "TileScene", "TileWriter", "Window2D",
    "candidates", "dask_map", "drain", "native_grid", "new_blocks", "persists", "pixel_key", "plan", "prepare",
    "process_map", "read_region", "read_tile", "run", "scan_tile", "serial", "site_sha256", "score_of",
    "summary_line",
]

# ``sitewatch.scan(...)``, the public API's scan, is this package called (sitewatch._CallableModule).
from .. import _api_module  # noqa: E402

_api_module(__name__)
