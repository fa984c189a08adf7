"""One scene per acquisition: the tiles of one pass are one look at a site, not two or three."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from shapely.geometry.base import BaseGeometry

from ..scenes import SceneRef

#: Scenes of one platform closer in time than this are one acquisition (overlapping MGRS tiles of
#: one datatake are seconds apart; the same platform's next pass is days later).
SAME_ACQUISITION_S = 120.0


def _platform(ref: SceneRef) -> str | None:
    p = ref.properties.get("platform")
    return re.sub(r"[^a-z0-9]", "", str(p).lower()) if p else None


def same_acquisition(a: SceneRef, b: SceneRef) -> bool:
    """Same platform, same pass: overlapping tiles, reprocessed ``_0_``/``_1_`` copies, ``l2a``/``c1-l2a``."""
    pa, pb = _platform(a), _platform(b)
    return pa is not None and pa == pb and abs((a.acquired - b.acquired).total_seconds()) <= SAME_ACQUISITION_S


def _coverage(ref: SceneRef, aoi: BaseGeometry) -> float:
    if ref.footprint is None or aoi.area == 0:
        return 1.0
    try:
        return float(ref.footprint.intersection(aoi).area / aoi.area)
    except Exception:  # invalid footprint: unknown, rank last among known ones
        return 0.0


def _tile_rank(ref: SceneRef, aoi: BaseGeometry) -> tuple[Any, ...]:
    """Best tile first: covers most of the site, newest processing (baseline, then the ``_1_`` copy)."""
    base = str(ref.properties.get("processing_baseline") or "00.00")
    seq = re.search(r"_(\d+)_L2A$", ref.scene_id)
    return (-round(_coverage(ref, aoi), 3), tuple(-int(x) for x in base.split(".")), -int(seq.group(1)) if seq else 0,
            ref.scene_id)


def one_per_acquisition(scenes: list[SceneRef], aoi: BaseGeometry) -> list[SceneRef]:
    """One scene per acquisition over ``aoi``: the best tile, with the others named on it.

    Counting each tile of one pass as a scene reports every change two or three times and
    breaks "the next clear scene still shows it". The best tile is the one covering most of
    the site (then the newest processing); the choice is recorded in its properties.
    """
    groups: list[list[SceneRef]] = []
    for ref in sorted(scenes, key=lambda s: (s.acquired, s.scene_id)):
        for g in groups:
            if same_acquisition(g[0], ref):
                g.append(ref)
                break
        else:
            groups.append([ref])
    out: list[SceneRef] = []
    for g in groups:
        if len(g) == 1:
            out.append(g[0])
            continue
        ranked = sorted(g, key=lambda s: _tile_rank(s, aoi))
        best = ranked[0]
        note = {"acquisition_tiles": ",".join(s.scene_id for s in ranked),
                "tile_choice": f"best of {len(g)} scenes of one acquisition: covers {_coverage(best, aoi):.0%} "
                               f"of the site, newest processing"}
        out.append(replace(best, properties={**best.properties, **note}))
    return out
