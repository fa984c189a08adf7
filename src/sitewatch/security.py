"""Security level of a site per scene, estimated from what the imagery shows.

Investigations tier facilities by their visible security features (ASPI 2020: tier 1, lowest,
to tier 4, prisons: high perimeter walls, watchtowers, internal fencing, segregated
courtyards), and follow "desecuritisation" when fences, towers and walls come down. This
module applies one fixed, published rule to sitewatch's per-scene metrics (and, when stored,
the structure maps) so that the same imagery always gets the same level. It is an estimate
from imagery, not an official tier: it sees only what the detector mapped.

The rule (:data:`RULE`):

* ``None`` when the scene is too coarse to show walls, fences or towers (its metrics carry
  none of them), so no level can be read from it;
* ``0`` no perimeter: walls and fences enclose less than :data:`MIN_ENCLOSED_M2`;
* otherwise ``1`` for the perimeter (a wall or fence enclosing the site), plus one for each of

  - internal fences: the enclosure is divided into at least two courtyards of
    :data:`MIN_COURTYARD_M2` or more, or at least :data:`MIN_INTERNAL_M` of fence or wall
    runs more than :data:`INTERNAL_MARGIN_M` inside the (innermost) perimeter;
  - watchtowers: at least one tower;
  - a layered perimeter: a second enclosing line roughly parallel to the first (a ring-shaped
    strip between two barriers, on average at most :data:`MAX_LAYER_GAP_M` wide, around the
    inner enclosure).

  So 1 perimeter; 2 + internal fences; 3 + watchtowers; 4 layered perimeter + towers +
  internal fences. Internal fences and layering need the maps to be told apart exactly;
  from metrics alone, internal fences are inferred when walls and fences are much longer
  than the enclosure's outline (:data:`EXCESS_FACTOR`), and layering is never inferred.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import ndimage

from . import components

#: Smallest enclosed ground that counts as a perimeter, m².
MIN_ENCLOSED_M2 = 1000.0
#: Smallest enclosed part that counts as a courtyard, m².
MIN_COURTYARD_M2 = 150.0
#: Fence or wall this far inside the perimeter is internal, metres; and how much of it is needed.
INTERNAL_MARGIN_M = 6.0
MIN_INTERNAL_M = 30.0
#: Widest strip between two enclosing lines that still makes one layered perimeter, metres.
MAX_LAYER_GAP_M = 40.0
#: Barriers dilated by this before looking for enclosures (as :func:`sitewatch.changes.measure`), metres.
BARRIER_PAD_M = 2.0
#: Without maps: internal fences when walls + fences exceed this times the enclosure's outline
#: (a square of the enclosed area) plus MIN_INTERNAL_M.
EXCESS_FACTOR = 1.3

RULE = ("Estimated from imagery with a fixed rule, after ASPI's 2020 tiering by visible security "
        "features. No level when the imagery is too coarse to show walls, fences or towers. "
        f"0: no perimeter (walls and fences enclose less than {MIN_ENCLOSED_M2:.0f} m²). Otherwise 1 for a "
        "perimeter wall or fence enclosing the site, plus 1 each for: internal fences (the enclosure divided "
        f"into two or more courtyards of {MIN_COURTYARD_M2:.0f} m² or more, or {MIN_INTERNAL_M:.0f} m of fence "
        f"more than {INTERNAL_MARGIN_M:.0f} m inside the perimeter); watchtowers (one or more); a layered "
        f"perimeter (a second enclosing line, on average at most {MAX_LAYER_GAP_M:.0f} m from the first). "
        "So 1 perimeter, 2 + internal fences, 3 + watchtowers, 4 layered perimeter + towers + internal fences. "
        "It sees only what the detector mapped; it is not an official tier.")


class MetricsLike(Protocol):
    wall_length_m: float | None
    fence_length_m: float | None
    tower_count: int | None
    enclosed_area_m2: float | None


@dataclass(frozen=True)
class SecurityLevel:
    """A level 0..4 (None: imagery too coarse) and the features that set it, in words."""

    level: int | None
    reasons: tuple[str, ...]

    @property
    def text(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class DatedLevel:
    """One scene's level, for a timeline."""

    scene_id: str
    acquired: dt.datetime
    level: int | None
    reasons: tuple[str, ...]

    @property
    def date(self) -> dt.date:
        return self.acquired.astimezone(dt.timezone.utc).date()


@dataclass(frozen=True)
class Desecuritisation:
    """The level fell between two consecutive scenes that both have a level."""

    date_from: dt.date
    date_to: dt.date
    level_from: int
    level_to: int
    scene_from: str = ""
    scene_to: str = ""

    def __iter__(self):  # unpacks as (date_from, date_to, level_from, level_to)
        return iter((self.date_from, self.date_to, self.level_from, self.level_to))


@dataclass(frozen=True)
class _Layout:
    """What the maps say about enclosure: perimeter, courtyards, internal fence, layering."""

    enclosed_m2: float
    courtyards: int
    internal_m: float
    layered: bool
    layer_gap_m: float | None


def _length_m(mask: np.ndarray, res: float) -> float:
    from .changes import _length_m as length

    return length(mask, res)


def layout(maps: Any) -> _Layout | None:
    """Enclosure analysis of one scene's structure maps (None when they cannot show barriers)."""
    if "wall" not in maps.kinds or "fence" not in maps.kinds:
        return None
    res = float(maps.grid.res)
    lines = maps.presence["wall"].astype(bool) | maps.presence["fence"].astype(bool)
    pad = max(1, int(round(BARRIER_PAD_M / res)))
    barrier = ndimage.binary_dilation(lines, iterations=pad) if lines.any() else lines
    filled = ndimage.binary_fill_holes(barrier)
    holes = filled & ~barrier
    enclosed = float(holes.sum()) * res * res
    lab, n = components.label(holes)  # 4-connected: a fence line separates courtyards
    min_px = MIN_COURTYARD_M2 / (res * res)
    inner_ref = filled
    layered, gap = False, None
    plain: list[int] = []
    for i in range(1, n + 1):
        r = lab == i
        area = int(r.sum())
        if area < min_px:
            continue
        inside = ndimage.binary_fill_holes(r) & ~r
        if inside.sum() >= 0.5 * area and (holes & inside).sum() >= min_px:
            edge = int((r & ~ndimage.binary_erosion(r)).sum())
            # area over half the outline: mean strip width; plus the padding taken off both lines
            width = 2.0 * area / max(edge, 1) * res + (2 * pad + 1) * res
            if width <= MAX_LAYER_GAP_M:
                layered, gap = True, round(width, 1)
                inner_ref = inside
                continue
        plain.append(i)
    courtyards = sum(1 for i in plain if (inner_ref & (lab == i)).any())
    margin = max(1, int(round(INTERNAL_MARGIN_M / res)))
    depth = ndimage.distance_transform_edt(inner_ref)
    internal = maps.presence["fence"].astype(bool) & (depth > margin + pad)
    internal_m = _length_m(internal, res) if internal.any() else 0.0
    return _Layout(enclosed, courtyards, internal_m, layered, gap)


def estimate(metrics: MetricsLike, maps: Any | None = None) -> SecurityLevel:
    """The level of one scene from its metrics and, when given, its structure maps."""
    wall, fence, towers = metrics.wall_length_m, metrics.fence_length_m, metrics.tower_count
    if wall is None and fence is None and towers is None:
        return SecurityLevel(None, ("imagery too coarse to show walls, fences or towers",))
    wall, fence, towers = wall or 0.0, fence or 0.0, int(towers or 0)
    lay = layout(maps) if maps is not None else None
    enclosed = lay.enclosed_m2 if lay is not None else float(metrics.enclosed_area_m2 or 0.0)
    tower_txt = f"{towers} watchtower{'s' if towers != 1 else ''}"
    if enclosed < MIN_ENCLOSED_M2:
        why = [f"no perimeter: walls ({wall:.0f} m) and fences ({fence:.0f} m) enclose {enclosed:.0f} m²"]
        if towers:
            why.append(f"{tower_txt}, not counted without a perimeter")
        return SecurityLevel(0, tuple(why))
    level, why = 1, [f"perimeter encloses {enclosed:,.0f} m² (walls {wall:.0f} m, fences {fence:.0f} m)"]
    if lay is not None:
        internal = lay.courtyards >= 2 or lay.internal_m >= MIN_INTERNAL_M
        plural = "s" if lay.courtyards != 1 else ""
        detail = f"{lay.courtyards} courtyard{plural}, {lay.internal_m:.0f} m of fence inside the perimeter"
    else:
        outline = 4.0 * math.sqrt(enclosed)
        internal = wall + fence >= EXCESS_FACTOR * outline + MIN_INTERNAL_M
        detail = f"walls and fences {wall + fence:.0f} m against an outline of about {outline:.0f} m"
    if internal:
        level += 1
        why.append(f"internal fences ({detail})")
    else:
        why.append(f"no internal fences ({detail})")
    if towers >= 1:
        level += 1
        why.append(tower_txt)
    else:
        why.append("no watchtowers")
    if lay is not None and lay.layered:
        level += 1
        why.append(f"layered perimeter (two enclosing lines about {lay.layer_gap_m:.0f} m apart)")
    elif lay is not None:
        why.append("single perimeter line")
    return SecurityLevel(level, tuple(why))


def levels_over_time(rows: Sequence[Any], maps: Mapping[str, Any] | None = None) -> list[DatedLevel]:
    """Each metrics row's level, in date order; ``maps`` (scene_id -> StructureMaps) refines them."""
    out = []
    for r in sorted(rows, key=lambda r: (r.acquired, r.scene_id)):
        s = estimate(r, (maps or {}).get(r.scene_id))
        out.append(DatedLevel(r.scene_id, r.acquired, s.level, s.reasons))
    return out


def desecuritisation(levels: Sequence[DatedLevel]) -> list[Desecuritisation]:
    """Every fall in level between consecutive scenes that have one (coarse scenes are skipped)."""
    known = [x for x in levels if x.level is not None]
    return [Desecuritisation(a.date, b.date, int(a.level or 0), int(b.level or 0), a.scene_id, b.scene_id)
            for a, b in zip(known, known[1:]) if (b.level or 0) < (a.level or 0)]


def store_updates(levels: Sequence[DatedLevel]) -> dict[str, tuple[int | None, str]]:
    """scene_id -> (level, reasons) as :meth:`sitewatch.store.Store.update_security` takes them."""
    return {x.scene_id: (x.level, "; ".join(x.reasons)) for x in levels}


def site_levels(store: Any, site_id: str, *, prefer_stored: bool = True) -> list[DatedLevel]:
    """Levels of every scene with metrics at a site.

    A level the monitoring run stored (``site_metrics.security_level`` with its reasons) is
    used as stored, so what a page shows matches the GeoPackage; scenes without one are
    estimated here from their metrics and stored maps.
    """
    from .structures import StructureMaps

    rows = sorted(store.metrics(site_id), key=lambda r: (r.acquired, r.scene_id))
    todo = [r for r in rows if not (prefer_stored and r.security_reasons)]
    maps = {}
    if todo:
        want = {r.scene_id for r in todo}
        for rec, blob in store.scene_maps(site_id):
            if rec.scene_id not in want:
                continue
            try:
                maps[rec.scene_id] = StructureMaps.from_bytes(blob)
            except Exception:  # unreadable or foreign maps: fall back to the metrics for that scene
                continue
    computed = {x.scene_id: x for x in levels_over_time(todo, maps)}
    return [computed.get(r.scene_id) or DatedLevel(r.scene_id, r.acquired, r.security_level,
                                                   tuple(r.security_reasons.split("; ")))
            for r in rows]


__all__ = ["RULE", "SecurityLevel", "DatedLevel", "Desecuritisation", "estimate", "layout", "levels_over_time",
           "desecuritisation", "store_updates", "site_levels"]
