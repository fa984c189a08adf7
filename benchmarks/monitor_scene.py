"""CPU cost of one new 10 m scene over one watched site (2.5 km square), in the library.

    .venv/bin/python benchmarks/monitor_scene.py

Builds the demo, stores every scene of its Sentinel-2-like site but the newest, then times
(process CPU time, Prefect aside) what a run does when that one scene arrives: discover,
read the site's window and reproject it, map structures, re-date the site's changes over its
stored history, and write the scene, its maps and metrics and any detection.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sitewatch.testbed.demo import make_demo  # noqa: E402
from sitewatch.monitor import MonitorParams, prepare, run_site  # noqa: E402
from sitewatch.sites import read_sites  # noqa: E402
from sitewatch.store import Store  # noqa: E402

SITE = "demo-s2"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sitewatch-scene-"))
    bundle = make_demo(work / "data")
    site = next(s for s in read_sites(bundle.sites_path) if s.site_id == SITE)
    dates = sorted(json.loads(p.read_text())["properties"]["datetime"][:10]
                   for p in bundle.catalog_path.parent.glob("demo-sentinel-2/*/*.json"))
    last = dt.date.fromisoformat(dates[-1])
    db = work / "f.gpkg"
    params = MonitorParams(sites=str(bundle.sites_path), imagery=str(bundle.catalog_path), db=str(db),
                           until=last - dt.timedelta(days=1))
    _, _, run_id = prepare(params)
    run_site(params, site, run_id)  # the history: every scene but the newest
    stored = len(Store(db).scenes(SITE))
    full = MonitorParams(sites=params.sites, imagery=params.imagery, db=params.db)
    samples = []
    for _ in range(3):
        c0, w0 = time.process_time(), time.perf_counter()
        r = run_site(full, site, run_id)
        samples.append((time.process_time() - c0, time.perf_counter() - w0, r.scenes_new))
        with Store(db).write() as con:  # forget the new scene again, to time the same work
            con.execute("DELETE FROM scenes WHERE site_id=? AND scene_id LIKE ?", (SITE, f"%{last:%Y%m%d}"))
            con.execute("DELETE FROM sitewatch_scene_maps WHERE site_id=? AND scene_id LIKE ?",
                        (SITE, f"%{last:%Y%m%d}"))
            con.execute("DELETE FROM site_metrics WHERE site_id=? AND scene_id LIKE ?", (SITE, f"%{last:%Y%m%d}"))
    cpu = min(s[0] for s in samples)
    wall = min(s[1] for s in samples)
    print(f"site {SITE}: 2.5 km square at 10 m ({stored} scenes stored before); one new scene "
          f"({samples[0][2]} processed): CPU {cpu:.2f} s, wall {wall:.2f} s (best of {len(samples)})")


if __name__ == "__main__":
    main()
