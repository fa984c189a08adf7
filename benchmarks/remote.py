"""Remote reads at the network's speed: a monitor run against an Earth Search-like source on 127.0.0.1.

    nice .venv/bin/python benchmarks/remote.py [--sites 20] [--dates 40] [--latency-ms 80] [--mbps 50] [--also-local]

A child process writes Sentinel-2 L2A-like COGs laid out as Earth Search's (10 m bands in
1024-px internal tiles, the 20 m ``swir16`` and ``scl`` in 512-px tiles, internal overviews, DEFLATE) and
serves them, with the recorded Earth Search v1 API (``tests/servers.replay_api``: recorded
landing page and collections, ``next``-token paging), adding a fixed latency to every request
and sharing one bandwidth cap between all connections. It counts requests, bytes and the time
requests spend in flight. The parent runs the real monitor (plain path, sites on threads as the
flow runs them) and prints reads per second, requests and bytes per read, bytes fetched over
bytes the windows need, CPU per read, peak memory and the two floors, and a hash of the results
stored (scene hashes, measures, detections); ``--also-local`` runs the same items from the files'
paths, no server, and says whether its hash is the same.

B11 (``swir16``) is 20 m as on Earth Search. Scenes: ``--dates`` acquisitions of one 4096-px (41 km) tile; ``--cloudy`` of them have a site
window wholly cloudy in ``scl`` (cloud cover 60-95 %), the rest clear (0-20 %). Band files are
drawn from a few written variants per band behind per-scene URLs (symlinks), so every scene is
its own set of URLs for GDAL's cache, as on the real service.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import multiprocessing as mp
import os
import queue
import resource
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

CRS = "EPSG:32645"
X0, Y0 = 600_000.0, 4_900_000.0  # UTM 45N, about 44.2 N 87.3 E
HOST = "sentinel-cogs.s3.us-west-2.amazonaws.com"
FILES = {"red": "B04", "green": "B03", "blue": "B02", "nir": "B08", "swir16": "B11", "scl": "SCL"}
VARIANTS = 3
SITE_M = 2500.0


def _write_data(root: Path, tile_px: int, dates: int, cloudy: float, seed: int) -> list[dict[str, Any]]:
    """The COG pool, per-scene symlinks and the items (hrefs relative to the server, filled in later)."""
    import numpy as np
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds
    from servers import write_cog

    rng = np.random.default_rng(seed)
    pool = root / "pool"
    pool.mkdir(parents=True)
    yy, xx = np.mgrid[0:tile_px, 0:tile_px].astype(np.float32)
    field = 300 * np.sin(xx / 37.0) * np.cos(yy / 53.0) + 200 * np.sin((xx + yy) / 211.0)
    for v in range(VARIANTS):
        for i, (name, band) in enumerate(FILES.items()):
            if name == "scl":
                continue
            data = (1500 + 300 * i + 50 * v + field + rng.normal(0, 15, field.shape)).clip(1, 10000)
            if name == "swir16":  # B11 is a 20 m band
                write_cog(pool / f"{band}-{v}.tif", data[::2, ::2].astype("uint16"), CRS,
                          from_origin(X0, Y0, 20, 20), blocksize=512)
                continue
            write_cog(pool / f"{band}-{v}.tif", data.astype("uint16"), CRS, from_origin(X0, Y0, 10, 10),
                      blocksize=1024)
    for name, code in (("clear", 4), ("cloudy", 9)):
        write_cog(pool / f"SCL-{name}.tif", np.full((tile_px // 2, tile_px // 2), code, "uint8"), CRS,
                  from_origin(X0, Y0, 20, 20), blocksize=512)
    bbox = transform_bounds(CRS, "EPSG:4326", X0, Y0 - tile_px * 10, X0 + tile_px * 10, Y0)
    items = []
    day0 = dt.date(2024, 1, 1)
    for k in range(dates):
        day = day0 + dt.timedelta(days=5 * k)
        sat = "S2A" if k % 2 == 0 else "S2B"
        iid = f"{sat}_45TXN_{day:%Y%m%d}_0_L2A"
        is_cloudy = rng.random() < cloudy
        v = int(rng.integers(VARIANTS))
        rel = {}
        for name, band in FILES.items():
            path = Path(HOST) / "sentinel-s2-l2a-cogs/45/T/XN" / str(day.year) / str(day.month) / iid / f"{band}.tif"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            target = pool / (f"SCL-{'cloudy' if is_cloudy else 'clear'}.tif" if name == "scl" else f"{band}-{v}.tif")
            (root / path).symlink_to(target)
            rel[name] = str(path)
        cc = round(float(rng.uniform(60, 95) if is_cloudy else rng.uniform(0, 20)), 2)
        items.append({"id": iid, "when": f"{day}T05:07:31.024000Z", "bbox": list(bbox), "rel": rel,
                      "cloud_cover": cc, "cloudy": is_cloudy})
    return items


class Net:
    """One link: a latency on every request and one bandwidth cap shared by every connection."""

    def __init__(self, latency_s: float, bytes_per_s: float):
        self.latency_s, self.bps = latency_s, bytes_per_s
        self.lock = threading.Lock()
        self.free_at = 0.0
        self.stats = {"requests": 0, "api_requests": 0, "bytes": 0, "busy_s": 0.0}

    def pace(self, n: int) -> None:
        """Wait until ``n`` bytes have gone through the shared pipe (first come, first served)."""
        with self.lock:
            now = time.monotonic()
            start = max(now, self.free_at)
            self.free_at = start + n / self.bps
            wait = self.free_at - now
            self.stats["bytes"] += n
        time.sleep(wait)


def _serve_child(root: str, args: dict[str, Any], q: Any, stop: Any) -> None:
    """Write the data, then serve it until ``stop`` is set; report the URL and items on ``q``."""
    from servers import _ranges, _replay_handler, _serve, earth_search_item

    t0 = time.monotonic()
    specs = _write_data(Path(root), args["tile_px"], args["dates"], args["cloudy"], args["seed"])
    write_s = time.monotonic() - t0
    net = Net(args["latency_ms"] / 1000, args["mbps"] * 1e6)
    items: list[dict[str, Any]] = []

    def throttled(state: Any) -> Any:
        base = _replay_handler("earth-search-v1", items, state, Path(root).resolve(), None, (), True,
                               args["page_size"])

        class T(base):  # type: ignore[misc,valid-type]
            def handle_one_request(self) -> None:
                self._t0 = None  # set once a request has arrived: an idle kept-alive connection is not in flight
                super().handle_one_request()
                if self._t0 is not None:
                    with net.lock:
                        net.stats["busy_s"] += time.monotonic() - self._t0

            def _record(self) -> Any:
                if self.path == "/_stats":
                    return super()._record()
                self._t0 = time.monotonic()
                with net.lock:
                    net.stats["requests"] += 1
                    net.stats["api_requests"] += 0 if self.path.startswith("/files/") else 1
                time.sleep(net.latency_s)
                return super()._record()

            def do_GET(self) -> None:
                if self.path == "/_stats":
                    with net.lock:
                        body = json.dumps(net.stats).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()

            def _file(self, path: str, qs: Any) -> None:
                """The file's asked-for range only (the test server reads whole files: too slow here)."""
                f = (Path(root) / path[len("/files/"):]).resolve()
                size = f.stat().st_size
                rng = _ranges(self.headers.get("Range") or "", size)
                if self.command == "HEAD" or not rng:
                    self.send_response(200 if self.command == "HEAD" else 416)
                    self.send_header("Content-Type", "image/tiff")
                    self.send_header("Content-Length", str(size if self.command == "HEAD" else 0))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()
                    return
                a, b = rng[0]
                with f.open("rb") as fh:
                    fh.seek(a)
                    body = fh.read(b - a + 1)
                self._send(206, body, "image/tiff", {"Accept-Ranges": "bytes",
                                                     "Content-Range": f"bytes {a}-{b}/{size}"})

            def _send(self, code: int, body: bytes, ctype: str, headers: Any = None, truncate: bool = False) -> None:
                net.pace(len(body) if self.command != "HEAD" else 0)
                super()._send(code, body, ctype, headers, truncate)

        return T

    with _serve(throttled) as srv:
        for s in specs:
            hrefs = {k: f"{srv.url}/files/{r}" for k, r in s["rel"].items()}
            items.append(earth_search_item(s["id"], s["when"], s["bbox"], hrefs, cloud_cover=s["cloud_cover"]))
        q.put({"url": srv.url, "write_s": write_s, "specs": specs})
        stop.wait()


def _time_site_waits(monitor: Any) -> dict[str, float]:
    """Wrap the monitor's read-ahead to add up, over the site threads, the time spent waiting for the
    next scene's read and the time spent on the scene once it is there (mapping, quicklook, storing)."""
    out = {"wait": 0.0, "work": 0.0}
    lock = threading.Lock()
    orig = monitor._read_ahead

    def timed(read: Any, refs: Any) -> Any:
        it = orig(read, refs)
        while True:
            t = time.monotonic()
            try:
                got = next(it)
            except StopIteration:
                return
            t1 = time.monotonic()
            yield got
            with lock:
                out["wait"] += t1 - t
                out["work"] += time.monotonic() - t1

    monitor._read_ahead = timed
    return out


def _rss_mb() -> float:
    """This process's resident memory now, MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _sites(n: int, tile_px: int, seed: int, path: Path) -> list[Any]:
    """``n`` 2.5 km squares at random places in the tile (windows straddle internal tiles as they fall)."""
    import numpy as np
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping

    rng = np.random.default_rng(seed + 1)
    span = tile_px * 10 - SITE_M - 400
    feats = []
    for i in range(n):
        x, y = X0 + 200 + rng.uniform(0, span), Y0 - 200 - rng.uniform(0, span)
        g = transform_geom(CRS, "EPSG:4326", mapping(box(x, y - SITE_M, x + SITE_M, y)))
        feats.append({"type": "Feature", "properties": {"site_id": f"site-{i:03d}"}, "geometry": g})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return feats


def _needed(root: Path, specs: list[dict[str, Any]], sites: list[Any], res_m: float = 10.0) -> tuple[int, int]:
    """Bytes the windows need: (compressed internal tiles under each window, raw window pixels).

    Per site and scene: ``scl`` for every scene, the five bands for clear ones (what a reader
    that skips cloudy scenes' bands must fetch at least, headers aside).
    """
    import numpy as np
    import rasterio
    from shapely.geometry import shape

    from sitewatch.grid import grid_for
    from sitewatch.reader import source_window

    pool = root / "pool"
    cost: dict[tuple[str, str], tuple[int, int]] = {}
    for f in sites:
        grid = grid_for(shape(f["geometry"]), res_m)
        for p in sorted(pool.glob("*.tif")):
            with rasterio.open(p) as ds:
                c0, r0, c1, r1 = source_window(ds, grid)  # type: ignore[misc]
                bw, bh = ds.block_shapes[0]
                tiles = 0
                for by in range(r0 // bh, (r1 - 1) // bh + 1):
                    for bx in range(c0 // bw, (c1 - 1) // bw + 1):
                        tiles += int(ds.get_tag_item(f"BLOCK_SIZE_{bx}_{by}", "TIFF", bidx=1) or 0)
                raw = (c1 - c0) * (r1 - r0) * np.dtype(ds.dtypes[0]).itemsize
                cost[(f["properties"]["site_id"], p.stem)] = (tiles, raw)
    tiles_total = raw_total = 0
    for f in sites:
        sid = f["properties"]["site_id"]
        for s in specs:
            names = ["SCL-cloudy" if s["cloudy"] else "SCL-clear"]
            if not s["cloudy"]:
                v = Path(os.readlink(root / s["rel"]["red"])).stem.rsplit("-", 1)[1]
                names += [f"{FILES[b]}-{v}" for b in ("red", "green", "blue", "nir", "swir16")]
            for n in names:
                t, r = cost[(sid, n)]
                tiles_total += t
                raw_total += r
    return tiles_total, raw_total


def results_rows(db: str | Path) -> dict[str, list[tuple[Any, ...]]]:
    """What a run stored that must not depend on where the files were read from, in a stable order:
    each scene's status, pixel hash and fractions, each scene's measures, each detection (its id
    is a hash of site, kind, scenes and outline; the outline as WKB). Hrefs and run ids left out."""
    from sitewatch.store import Store

    store = Store(str(db))
    scenes = sorted((r.site_id, r.scene_id, r.status, r.sha256, r.valid_fraction, r.cloud_fraction, r.gsd_m,
                     r.grid_res_m) for r in store.scenes())
    metrics = sorted((m.site_id, m.scene_id, m.built_area_m2, m.wall_length_m, m.fence_length_m, m.tower_count,
                      m.enclosed_area_m2, m.security_level) for m in store.metrics())
    dets = sorted((d.site_id, d.detection_id, d.kind, str(d.before_date), str(d.after_date), d.before_scene_id,
                   d.after_scene_id, d.area_m2, d.length_m, d.score, d.status, d.geometry.wkb_hex)
                  for d in store.detections())
    return {"scenes": scenes, "metrics": metrics, "detections": dets}


def results_hash(db: str | Path) -> str:
    """SHA-256 over :func:`results_rows`: equal hashes, equal results (floats by ``repr``, exact)."""
    import hashlib

    return hashlib.sha256(repr(results_rows(db)).encode()).hexdigest()


def _local_items(srv_root: Path, specs: list[dict[str, Any]], path: Path) -> Path:
    """The same items as the server's, as a local ItemCollection whose hrefs are the files' paths."""
    from servers import earth_search_item

    feats = [earth_search_item(s["id"], s["when"], s["bbox"], {k: str(srv_root.resolve() / r) for k, r in
                                                              s["rel"].items()}, cloud_cover=s["cloud_cover"])
             for s in specs]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def _start_profiling() -> list[Any]:
    """One cProfile per thread, timed by that thread's own CPU clock (so waiting on the network
    costs nothing); every ThreadPoolExecutor work item and the main thread are profiled."""
    import cProfile
    from concurrent.futures import thread as cft

    profiles: list[Any] = []
    local = threading.local()

    def mine() -> Any:
        p = getattr(local, "p", None)
        if p is None:
            p = local.p = cProfile.Profile(time.thread_time)
            profiles.append(p)
        return p

    orig = cft._WorkItem.run

    def run(self: Any) -> None:
        p = mine()
        p.enable()
        try:
            orig(self)
        finally:
            p.disable()

    cft._WorkItem.run = run  # type: ignore[method-assign]
    mine().enable()
    return profiles


#: Where CPU goes, by the cumulative time of these functions (file suffix, function name); nested
#: ones are not subtracted, so the shares overlap where one calls another (open inside read_band).
PROFILE_PARTS = {
    "GDAL open + header parse (reader._open)": ("reader.py", "_open"),
    # rasterio's window read (Cython) is not seen by cProfile: its fetch wait and decoding are _read_band's own time
    "band reads (reader._read_band: read, decode, copy or warp)": ("reader.py", "_read_band"),
    "reprojection (rasterio reproject)": ("warp.py", "reproject"),
    "scene hash (sha256)": ("~", "method 'update' of '_hashlib.HASH'"),
    "mask + scene assembly (reader.read_scene, all)": ("reader.py", "read_scene"),
    "detector maps (detector.maps)": ("detect.py", "maps"),
    "quicklook PNG": ("quicklook.py", "png"),
    "store: save_scene (SQLite)": ("facade.py", "save_scene"),
    "redate_site (tracking, levels, SQLite)": ("monitor.py", "redate_site"),
    "catalog search (discover)": ("search.py", "discover"),
}


def _report_profile(profiles: list[Any], path: str, cpu: float) -> None:
    import pstats

    for p in profiles:
        p.disable()
    st = pstats.Stats(profiles[0])
    for p in profiles[1:]:
        st.add(p)
    st.dump_stats(path)
    total = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
    print(f"profile ({len(profiles)} threads, {total:.1f} s of thread CPU seen, process CPU {cpu:.1f} s; "
          f"{max(0.0, cpu - total):.1f} s in threads Python does not run, e.g. BLAS workers):")
    for label, (suffix, name) in PROFILE_PARTS.items():
        cum = sum(v[3] for (f, _, fn), v in st.stats.items()  # type: ignore[attr-defined]
                  if (fn == name or (f == "~" and name in fn)) and f.endswith(suffix))
        print(f"  {label:58s} {cum:7.1f} s  {cum / max(total, 1e-9):5.1%}")
    print("  top functions by own time:")
    st.sort_stats("tottime")
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:15]  # type: ignore[attr-defined]
    for (f, line, fn), v in rows:
        print(f"    {v[2]:6.2f} s own  {v[3]:6.2f} s cum  {v[1]:7d} calls  {fn} ({Path(f).name}:{line})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--dates", type=int, default=40)
    ap.add_argument("--cloudy", type=float, default=0.4, help="fraction of dates cloudy over the whole tile")
    ap.add_argument("--tile-px", type=int, default=4096)
    ap.add_argument("--latency-ms", type=float, default=80.0)
    ap.add_argument("--mbps", type=float, default=50.0, help="bandwidth cap, MB/s (10^6 bytes)")
    ap.add_argument("--site-threads", type=int, default=2, help="sites at once (the flow runs two)")
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--no-bound-heap", action="store_true",
                    help="leave glibc's allocator as it is (the CLI bounds it: reader.bound_heap)")
    ap.add_argument("--also-local", action="store_true",
                    help="then run the same sites and items from the files themselves (no server) and "
                         "compare the results hashes")
    ap.add_argument("--profile", metavar="FILE.pstats", default=None,
                    help="profile every thread's CPU (cProfile on thread_time) and print where it went")
    a = ap.parse_args()

    import requests

    from sitewatch import monitor, reader
    from sitewatch.monitor import MonitorParams, run

    # the same script measures a tree from before concurrent reads (one scene, one band at a time)
    from sitewatch.sceneflow import scenes_ahead
    if not hasattr(reader, "bound_heap"):
        reader.bound_heap = lambda: False
    read_threads = getattr(reader, "read_threads", lambda: 1)

    work = Path(tempfile.mkdtemp(prefix="sitewatch-remote-"))
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve_child, args=(str(work / "srv"), vars(a), q, stop), daemon=True)
    child.start()
    while True:  # the child writes the data first (minutes on a busy machine); stop if it dies
        try:
            info = q.get(timeout=5)
            break
        except queue.Empty:
            if not child.is_alive():
                sys.exit(f"the server process stopped (exit code {child.exitcode}) before serving")
    url, specs = info["url"], info["specs"]
    sites = _sites(a.sites, a.tile_px, a.seed, work / "sites.geojson")
    tiles_needed, raw_needed = _needed(work / "srv", specs, sites)
    params = MonitorParams(sites=str(work / "sites.geojson"), imagery=f"{url}/v1", db=str(work / "f.gpkg"),
                           collection="sentinel-2-l2a")

    rss_after: list[float] = []  # resident memory as each site ends: flat, or growing with the sites done?

    def threads(fn: Any, xs: list[Any]) -> list[Any]:
        def one(x: Any) -> Any:
            r = fn(x)
            rss_after.append(_rss_mb())
            return r

        with ThreadPoolExecutor(a.site_threads) as ex:
            return list(ex.map(one, xs))

    if not a.no_bound_heap:
        reader.bound_heap()  # as the CLI's monitoring run does
    waits = _time_site_waits(monitor)
    rss0 = _rss_mb()
    before = requests.get(f"{url}/_stats").json()
    profiles = _start_profiling() if a.profile else None
    load0 = os.getloadavg()
    c0, w0 = time.process_time(), time.monotonic()
    summary = run(params, map_sites=threads)
    wall, cpu = time.monotonic() - w0, time.process_time() - c0
    if profiles is not None:
        _report_profile(profiles, a.profile, cpu)
    load1 = os.getloadavg()
    after = requests.get(f"{url}/_stats").json()
    stop.set()
    child.join(10)
    d = summary.as_dict()
    reads = d["scenes_found"] - 0
    req = after["requests"] - before["requests"]
    api = after["api_requests"] - before["api_requests"]
    got = after["bytes"] - before["bytes"]
    inflight = (after["busy_s"] - before["busy_s"]) / wall
    clear = sum(not s["cloudy"] for s in specs) * a.sites
    conc = min(read_threads(), a.site_threads * scenes_ahead() * 5) if hasattr(reader, "read_threads") \
        else a.site_threads
    floor_bytes = got / (a.mbps * 1e6)
    floor_lat = req * a.latency_ms / 1000 / conc
    print(f"data: {a.sites} sites of 2.5 km, {a.dates} dates of one {a.tile_px}-px tile ({a.tile_px * 10 / 1000:.0f} km),"
          f" {a.dates - clear // max(1, a.sites)} cloudy; {reads} site-scene reads ({clear} clear);"
          f" written in {info['write_s']:.0f} s")
    print(f"link: {a.latency_ms:g} ms per request, {a.mbps:g} MB/s shared; {a.site_threads} site threads, "
          f"{scenes_ahead()} scenes ahead, {read_threads()} band reads at once")
    print(f"run: {d['scenes_new']} observed, {d['scenes_unusable']} unusable, {d['scenes_failed']} failed; "
          f"status {summary.status}")
    print(f"wall {wall:.1f} s -> {reads / wall:.1f} site-scene reads/s")
    print(f"requests {req} ({api} API) -> {(req - api) / reads:.1f} file requests per read; "
          f"mean requests in flight {inflight:.1f}")
    print(f"bytes {got / 1e6:.1f} MB -> {got / reads / 1e3:.0f} kB per read; fetched / internal tiles under "
          f"the windows {got / tiles_needed:.2f}; / raw window pixels {got / raw_needed:.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"CPU {cpu:.1f} s -> {cpu / reads * 1000:.0f} ms per read; peak RSS {peak:.0f} MB (client process; "
          f"{rss0:.0f} MB before the run: imports and the benchmark's own set-up)")
    marks = sorted({0, len(rss_after) // 4, len(rss_after) // 2, 3 * len(rss_after) // 4, len(rss_after) - 1})
    print("RSS as sites end: " + ", ".join(f"{rss_after[i]:.0f} MB after {i + 1}" for i in marks if rss_after))
    waited, worked = waits["wait"], waits["work"]
    print(f"site threads: {waited:.1f} s waiting for scenes read ahead, {worked:.1f} s mapping and storing them "
          f"({waited / max(waited + worked, 1e-9):.0%} waiting: near 0 % the reads keep up, near 100 % they do not)")
    print(f"floors: bytes / bandwidth {floor_bytes:.1f} s; requests x latency / {conc} {floor_lat:.1f} s; "
          f"wall / larger floor {wall / max(floor_bytes, floor_lat):.2f}")
    print(f"load average before {load0[0]:.1f}, after {load1[0]:.1f} (2 cores)")
    digest = results_hash(params.db)
    print(f"results hash {digest} (scenes, measures, detections stored)")
    local: dict[str, Any] = {}
    if a.also_local:
        lp = replace(params, imagery=str(_local_items(work / "srv", specs, work / "items.json")),
                     db=str(work / "local.gpkg"))
        w1 = time.monotonic()
        ls = run(lp, map_sites=threads).as_dict()
        local = {"local_hash": results_hash(lp.db), "local_wall_s": round(time.monotonic() - w1, 2)}
        same = local["local_hash"] == digest
        print(f"local run (the same files by path, no server): {ls['scenes_new']} observed, "
              f"{ls['scenes_unusable']} unusable in {local['local_wall_s']:.1f} s; results hash "
              f"{local['local_hash']} -> {'identical to' if same else 'DIFFERENT from'} the remote run's")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"reads": reads, "clear": clear, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                      "requests": req, "api_requests": api, "bytes": got, "tiles_needed": tiles_needed,
                      "raw_needed": raw_needed, "load": [load0[0], load1[0]],
                      "rss_before_mb": round(rss0), "peak_rss_mb": round(peak), "results_hash": digest, **local}))


if __name__ == "__main__":
    main()
