"""What judging changes over several clear scenes buys on a generated Sentinel-2-like series.

A 1.5 km site at 10 m (``sitewatch.testbed.synth``, with ``scl``), nine dates over four years; six
halls are built before date 4. One date is bad in a way the scene classification does not
flag: either haze (an additive veil of 0.2 and a 40 % contrast loss) or a pass misplaced by
about 90 m (beyond what co-registration accepts, so it is kept unaligned: the halls are
"absent" where they stand). The same series is rendered with the bad date at each position
from 1 to 8 and, per position, maps are made once and then judged three ways:

- **pairwise**: each clear scene against the previous one (a map difference);
- **window 2**: the tracker as before this change (one scene on each side must agree);
- **window 3**: the tracker with composites (most of up to three clear scenes on each side).

Prints halls found (of 6 per series), false detections, and dating validity. This is a
regression check of the tracking logic on generated imagery, not a real-imagery figure.
Run: ``PYTHONPATH=src nice python benchmarks/temporal.py [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
from affine import Affine
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sitewatch import changes, components  # noqa: E402
from sitewatch.testbed import synth  # noqa: E402
from sitewatch.changes import Observation, track  # noqa: E402
from sitewatch.detect import default_detector  # noqa: E402
from sitewatch.grid import Grid  # noqa: E402
from sitewatch.scenes import SCL_MASKED, AssetRef, SceneRaster, SceneRef  # noqa: E402

GSD, SIZE = 10.0, 1500.0
DATES = ["2018-04-01", "2018-08-20", "2019-04-15", "2019-08-12", "2020-04-22", "2020-08-30", "2021-05-10",
         "2021-08-20", "2022-05-01"]
BUILT_AT = 3  # halls stand from DATES[3]
BAD = {"haze": {"offset": 0.2, "gain": (0.6,) * 5}, "misplaced": {"shift_px": (8.0, -5.0)}}


def _series(seed: int, hazy: int, bad: str = "haze") -> tuple[list[Observation], list[synth.Building]]:
    halls = [synth.Building(f"hall-{i}", -400.0 + i * 50, -100.0 + (i % 2) * 140, w=30.0, h=100.0, height=14.0,
                            roof=synth.ROOF_BLUE if i % 2 else synth.ROOF_GREY) for i in range(6)]
    ground = synth.Ground(SIZE, seed, fields=((-700.0, -700.0, 160.0, 120.0), (400.0, -600.0, 160.0, 120.0)))
    n = int(SIZE / GSD)
    grid = Grid("EPSG:32645", Affine(GSD, 0, 500_000.0, 0, -GSD, 4_500_000.0), n, n)
    det = default_detector()
    obs: list[Observation] = []
    history = []
    for i, d in enumerate(DATES):
        day = dt.date.fromisoformat(d)
        season = 0.5 - 0.5 * np.cos(2 * np.pi * (day.timetuple().tm_yday - 15) / 365)
        cond = synth.Conditions(season=float(season), noise=0.004, **(BAD[bad] if i == hazy else {}))
        r = synth.render(ground, halls if i >= BUILT_AT else [], GSD, cond, seed * 100 + i)
        valid = ~np.isin(r.scl, SCL_MASKED)
        bands = {k: np.where(valid, v, np.nan).astype(np.float32) for k, v in r.bands.items()}
        when = dt.datetime.combine(day, dt.time(5), tzinfo=dt.timezone.utc)
        ref = SceneRef(f"s{i}", "synth", when, {"red": AssetRef("synth")})
        raster = SceneRaster(ref, grid, bands, valid, ~valid, "", GSD)
        maps = det.maps(raster, tuple(history))
        history.append(maps)
        obs.append(Observation(ref.scene_id, when, maps))
    return obs, halls


def _pairwise(obs: list[Observation]) -> list[tuple[str, int, np.ndarray]]:
    """Map differences between consecutive scenes: (kind, index of the later scene, object mask)."""
    out = []
    for t in range(1, len(obs)):
        a, b = obs[t - 1].maps, obs[t].maps
        seen = a.observed & b.observed
        for kind, diff in (("building_new", b.presence["building"] & ~ndimage.binary_dilation(a.presence["building"])),
                           ("building_removed", a.presence["building"] & ~ndimage.binary_dilation(b.presence["building"]))):
            lab, k = components.label(diff & seen)
            for j in range(1, k + 1):
                m = lab == j
                if m.sum() >= changes.MIN_PX["building"]:
                    out.append((kind, t, m))
    return out


def _score(found: list[tuple[str, int, np.ndarray]], truth: np.ndarray) -> tuple[int, int, int]:
    """(halls found, false detections, found with a valid date) — a hall is found by a new-building
    detection covering half of it; a valid date brackets BUILT_AT."""
    lab, n = components.label(truth)
    hit = set()
    false = valid = 0
    for kind, t, m in found:
        ids = [j for j in range(1, n + 1) if (m & (lab == j)).sum() >= 0.5 * (lab == j).sum()]
        if kind == "building_new" and ids:
            hit.update(ids)
            valid += t == BUILT_AT
        elif not (m & truth).any() or kind != "building_new":
            false += 1
    return len(hit), false, valid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    a = ap.parse_args()
    rows: dict[str, list[tuple[int, int, int]]] = {"pairwise": [], "window 2": [], "window 3": []}
    n_series = 0
    for seed, bad in ((s, b) for s in range(11, 11 + a.seeds) for b in BAD):
        for hazy in range(1, len(DATES)):
            obs, halls = _series(seed, hazy, bad)
            n_series += 1
            g = obs[0].maps.grid
            truth = np.zeros(g.shape, bool)
            from rasterio.features import rasterize

            c = (g.transform.c + SIZE / 2, g.transform.f - SIZE / 2)
            truth = rasterize([(synth.geometry_to_crs(h.footprint(), c), 1) for h in halls], out_shape=g.shape,
                              transform=g.transform).astype(bool)
            rows["pairwise"].append(_score(_pairwise(obs), truth))
            for w in (2, 3):
                changes.WINDOW = w
                found = []
                for ch in track(obs):
                    if not ch.kind.startswith("building"):
                        continue
                    m = rasterize([(ch.geometry, 1)], out_shape=g.shape, transform=g.transform).astype(bool)
                    found.append((ch.kind, next(i for i, o in enumerate(obs) if o.scene_id == ch.after_scene_id), m))
                rows[f"window {w}"].append(_score(found, truth))
            print(f"seed {seed}, {bad} date {hazy}: " + ", ".join(f"{k} {v[-1]}" for k, v in rows.items()), flush=True)
    changes.WINDOW = 3
    print(f"\nGenerated 10 m series: {n_series} series x {len(DATES)} dates, 150 x 150 px, 6 halls each, "
          f"one unflagged bad date ({' or '.join(BAD)}) at each position 1-8")
    print("| judged by | halls found | false detections | dated exactly |")
    print("|---|---|---|---|")
    for k, v in rows.items():
        f, fa, va = (sum(x[i] for x in v) for i in range(3))
        print(f"| {k} | {f} of {6 * len(v)} | {fa} | {va} of {f} |")


if __name__ == "__main__":
    main()
