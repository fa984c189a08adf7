"""A scene older than a site's change reference arrives: the site's change maps are remade from it.

At 10 m and at 0.3-2 m a scene's building maps say what changed since the site's reference scene,
its first stored scene (:mod:`sitewatch.s2change`, :mod:`sitewatch.finechange`). A scene older than that reference (an archive backfilled
into the catalog, a later run with an earlier ``--since``) cannot be mapped against it: change
"since" a later scene reads a hall built between the two as one that stood and was pulled down.
So the older scene becomes the reference, and every stored scene mapped against the old one is
read again and mapped in date order, as one run over all the scenes would have done; pending
claims made from the old maps and not made again are withdrawn (:func:`sitewatch.events.reconcile`
with ``remade``). When a stored scene cannot be read again in this run (outside its ``--since`` /
``--until``, gone from the catalog), the older scenes wait, named, rather than be mapped against
the wrong reference.

The scene's resolution is only known once it is read, so a late scene remaps every grid of the
site that has a reference after it: at worst a needless re-read, never a wrong map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .records import SceneRecord
from . import finechange, s2change
from .scenes import SceneRef
from .structures import StructureMaps


@dataclass(frozen=True)
class Rebase:
    """What a site's run must do about scenes older than its change reference.

    Attributes:
        remap: stored scenes to read and map again, as this run found them, oldest first.
        resolutions: grid resolutions (m) whose stored maps are all remade (their history starts empty).
        held: scene ids of late scenes not processed in this run.
        why: one line per held group: what could not be read again, and what to do.
    """

    remap: tuple[SceneRef, ...] = ()
    resolutions: frozenset[float] = frozenset()
    held: frozenset[str] = frozenset()
    why: tuple[str, ...] = ()


def is_reference(maps: StructureMaps) -> bool:
    """Whether a scene's maps are a change reference: at 10 m (:mod:`sitewatch.s2change`) or at 0.3-2 m
    (:mod:`sitewatch.finechange`, whose later maps are the reference's roofs and the change since)."""
    return bool(s2change.reference_of(maps.features)) or finechange.REF_PREFIX + "pb" in maps.features


def plan(site_id: str, stored: Sequence[tuple[SceneRecord, StructureMaps]], todo: Sequence[SceneRef],
         found: Sequence[SceneRef]) -> Rebase:
    """The rebase a site needs before its ``todo`` scenes are mapped.

    ``stored``: the site's observed scenes with their maps; ``found``: every scene this run's
    search found for the site (where stored ones can be read again).
    """
    by_res: dict[float, list[tuple[SceneRecord, StructureMaps]]] = {}
    for rec, maps in stored:
        by_res.setdefault(float(rec.grid_res_m or 0.0), []).append((rec, maps))
    found_by_id = {s.scene_id: s for s in found}
    refs = {res: min((rec for rec, maps in items if is_reference(maps)), key=lambda r: (r.acquired, r.scene_id))
            for res, items in sorted(by_res.items()) if any(is_reference(maps) for _, maps in items)}
    held: set[str] = set()
    why: list[str] = []
    blocked: set[float] = set()
    for res, ref in refs.items():
        late = [s for s in todo if s.acquired < ref.acquired]
        gone = [rec.scene_id for rec, _ in by_res[res] if rec.scene_id not in found_by_id]
        if late and gone:
            blocked.add(res)
            held.update(s.scene_id for s in late)
            why.append(f"site {site_id}: {len(late)} scene(s) older than its change reference "
                       f"{ref.scene_id} ({ref.acquired.date()}) not mapped: the {res:g} m maps made since "
                       f"would have to be remade from them, and {len(gone)} of their scenes are not in this "
                       f"run's search (e.g. {gone[0]}); widen --since/--until to cover them")
    live = [s for s in todo if s.scene_id not in held]
    resolutions = {res for res, ref in refs.items()
                   if res not in blocked and any(s.acquired < ref.acquired for s in live)}
    remap = sorted((found_by_id[rec.scene_id] for res in resolutions for rec, _ in by_res[res]),
                   key=lambda s: (s.acquired, s.scene_id))
    return Rebase(tuple(remap), frozenset(resolutions), frozenset(held), tuple(why))
