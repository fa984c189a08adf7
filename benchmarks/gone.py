"""Does a reference roof's "gone" rule (``sitewatch.gone``) separate real demolitions from real standing roofs?

Each real pair is run through ``monitor`` exactly as ``real.py`` runs it, and what the 0.3-2 m detector
hands the rule for the later scene is taken as it is (both dates' bands, the ground both saw, the
reference's roof map, the later scene's own roof map). Then the rule's facts (``sitewatch.gone.roof_facts``)
are read over:

- **xBD Joplin** (3 tiles, 1024 x 1024 px at 0.45 m, QuickBird 2009 -> WorldView-2 2011, 28 deg off
  nadir): every labelled footprint, by damage class (destroyed and major-damage: the roof went;
  no-damage and minor-damage: it stands); the reference map's roofs, and the roofs of a looser
  per-date map (``LOOSE``, the F0.5 cleaning of ``tune_building_maps.py``: more roofs to test), each
  by the damage class under most of it;
- **LEVIR-CD samples** (11 pairs, 256 x 256 px at 0.5 m): the reference map's and the looser map's
  roofs with under 10 % of them labelled change: standing in both dates (or ground that did not
  change), never to be called gone.

The thresholds are chosen held out by group (xBD tile 0, 1, 2, LEVIR-CD): each group is scored with
the setting that, on the other three, calls the most destroyed footprints gone while calling no
standing roof gone. The shipped setting is the one chosen on all four. Run:
``python benchmarks/gone.py [--work DIR]`` (~2 min at load 1).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real  # noqa: E402

from sitewatch import buildings, components, detect, finechange, gone  # noqa: E402

XBD = real.DATA / "buildings-real" / "xbd-joplin"
LOOSE = {"smooth_m": 1.0, "rim": 0.15, "core": 0.3, "open_m": 3.0, "min_m2": 20.0, "mean_p": 0.0, "hole_m2": 100.0}
DAMAGE = {1: "no-damage", 2: "minor-damage", 3: "major-damage", 4: "destroyed", 5: "un-classified"}
GONE, STANDING = ("destroyed", "major-damage"), ("no-damage", "minor-damage", "standing")
GRID = {"change": (0.5, 0.7, 0.9, 1.1, 1.3), "bright": (0.2, 0.3, 0.4, 0.5, 1.0),
        "edge": (0.05, 0.1, 0.15, 0.2, 0.25)}


def capture(case: real.Case, work: Path) -> dict:
    """Run ``case`` through monitor; what the fine detector saw for its later scene."""
    got: dict = {}
    orig, maps = finechange.for_scene, detect.StructureDetector.maps

    def grid_of(self, raster, history=()):
        got["grid"] = raster.grid
        return maps(self, raster, history)

    def spy(bands, valid, history, building, strength, res):
        h = next((h for h in history if finechange.REF_PREFIX + "pb" in h.features), None)
        if h is not None:
            ref, pb_ref = finechange.reference_of(h.features)
            both = valid & np.all([np.isfinite(ref[b]) for b in finechange.BANDS], axis=0)
            both |= finechange._specks(~both, valid.shape, res)
            got.update(ref=ref, cur={b: np.asarray(bands[b], np.float32) for b in finechange.BANDS}, both=both,
                       pb_ref=pb_ref, roofs=np.asarray(h.presence["building"], bool), own=np.asarray(building, bool),
                       res=res)
        return orig(bands, valid, history, building, strength, res)

    finechange.for_scene, detect.StructureDetector.maps = spy, grid_of
    try:
        real.run_case(case, work)
    finally:
        finechange.for_scene, detect.StructureDetector.maps = orig, maps
    return got


def _to_site(a: np.ndarray, case: real.Case, got: dict) -> np.ndarray:
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out = np.zeros(got["both"].shape, a.dtype)
    reproject(a, out, src_transform=case.label_transform, src_crs=case.label_crs, dst_transform=got["grid"].transform,
              dst_crs=got["grid"].crs, resampling=Resampling.nearest)
    return out


def rows_of(case: real.Case, got: dict, group: str) -> list[dict]:
    """The rule's facts over every roof tested in one pair."""
    from PIL import Image
    from rasterio.features import rasterize
    from shapely import wkt

    pair, own = gone.Pair(got["ref"], got["cur"], got["both"]), gone.Own(got["own"])
    out = []

    def add(roof: np.ndarray, kind: str, cls: str) -> None:
        if roof.sum() >= gone.MIN_PX:
            out.append({"group": group, "site": case.name, "set": kind, "class": cls,
                        **gone.roof_facts(pair, roof, own, got["res"])})

    xbd = case.dataset == "xbd-joplin"
    if xbd:
        feats = json.loads((XBD / "labels" / f"{case.name}_post_disaster.json").read_text())["features"]["xy"]
        ids = _to_site(rasterize([(wkt.loads(f["wkt"]), i + 1) for i, f in enumerate(feats)], out_shape=case.label.shape,
                                 dtype="int32"), case, got)
        for i, f in enumerate(feats):
            add(ids == i + 1, "footprint", f["properties"]["subtype"])
        damage = _to_site(np.asarray(Image.open(XBD / "masks" / f"{case.name}_post_disaster_damage.png")), case, got)
    else:
        changed = _to_site(case.label.astype(np.uint8), case, got).astype(bool)
    loose = buildings.roof_map(got["pb_ref"], got["both"], got["res"], LOOSE)
    for kind, m in (("reference map", got["roofs"]), ("looser map", loose)):
        lab, n = components.label(m, corners=True)
        for j in range(1, n + 1):
            roof = lab == j
            if xbd:
                d = damage[roof]
                cls = "ground" if (d > 0).mean() < 0.3 else DAMAGE[int(np.bincount(d[d > 0]).argmax())]
            else:
                share = float(changed[roof].mean())
                cls = "standing" if share < 0.1 else ("changed" if share >= 0.5 else "partly changed")
            add(roof, kind, cls)
    return out


def _calls(rows: list[dict], s: dict) -> tuple[int, int]:
    """(destroyed footprints called gone, standing roofs called gone) under setting ``s``."""
    d = sum(gone.is_gone(r, s) for r in rows if r["set"] == "footprint" and r["class"] == "destroyed")
    f = sum(gone.is_gone(r, s) for r in rows if r["class"] in STANDING)
    return d, f


def choose(rows: list[dict]) -> dict:
    """The setting calling the most destroyed footprints gone with no standing roof gone (ties: stricter)."""
    best, key = None, None
    for c, b, e in itertools.product(GRID["change"], GRID["bright"], GRID["edge"]):
        s = {"change": c, "bright": b, "edge": e}
        d, f = _calls(rows, s)
        k = (f == 0, d, c, -b, -e)
        if key is None or k > key:
            best, key = s, k
    return best  # type: ignore[return-value]


def table(rows: list[dict], calls) -> str:
    lines = ["| set | class | roofs | called gone |", "|---|---|---|---|"]
    keys = sorted(Counter((r["group"].split(" ")[0], r["set"], r["class"]) for r in rows))
    for ds, kind, cls in keys:
        sel = [r for r in rows if r["group"].split(" ")[0] == ds and r["set"] == kind and r["class"] == cls]
        n = sum(calls(r) for r in sel)
        lines.append(f"| {ds} {kind} | {cls} | {len(sel)} | {n} ({n / len(sel):.0%}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=None)
    ap.add_argument("--json", default=None, help="write every roof's facts here")
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sitewatch-gone-"))
    t0 = time.perf_counter()
    cases = [c for c in real.all_cases(work, {"levir", "xbd"}) if c.task == "change"]
    rows: list[dict] = []
    for i, c in enumerate(cases):
        w = work / "runs" / f"{i:03d}"
        w.mkdir(parents=True, exist_ok=True)
        group = "xbd " + c.name[-1] if c.dataset == "xbd-joplin" else "levir"
        rows += rows_of(c, capture(c, w), group)
        print(f"  {c.dataset} {c.name}: {len(rows)} roofs so far, {time.perf_counter() - t0:.0f} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows))
    groups = sorted({r["group"] for r in rows})
    print(f"\n## A reference roof gone (`sitewatch.gone`): {len(cases)} real pairs, {len(rows)} roofs, "
          f"{time.perf_counter() - t0:.0f} s\n")
    held: dict[int, bool] = {}
    print("Held out by group (each scored with the setting chosen on the other groups):\n")
    for g in groups:
        s = choose([r for r in rows if r["group"] != g])
        mine = [r for r in rows if r["group"] == g]
        d, f = _calls(mine, s)
        print(f"- {g}: chosen without it {s}: destroyed footprints gone {d}, standing roofs gone {f}")
        for r in mine:
            held[id(r)] = gone.is_gone(r, s)
    print("\n" + table(rows, lambda r: held[id(r)]))
    s = choose(rows)
    shipped = {"change": gone.CHANGE_MIN, "bright": gone.MATCH_BRIGHT_MAX, "edge": gone.MATCH_EDGE_MAX}
    print(f"\nChosen on every group: {s}; shipped in sitewatch.gone: {shipped}"
          f"{'' if s == shipped else '  <- differs: update sitewatch/gone.py'}\n")
    print(table(rows, lambda r: gone.is_gone(r, shipped)))


if __name__ == "__main__":
    main()
