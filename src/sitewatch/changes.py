"""Changes between dates: new and removed structures as dated objects.

Prefect-free and pure: given every observation of a site on one grid in date order, the
same changes come out, whichever run stored which scene.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import itertools
import math

import numpy as np
from scipy import ndimage
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from .components import find_objects, label
from .detections import Change, as_multipolygon, mask_polygons
from .grid import Grid
from .morphology import skeletonize
from . import regionfacts
from .s2change import reference_in
from .scoremodel import real_score
from .structures import KINDS, PERIMETER_GAP_M, StructureMaps, enclosed


@dataclass(frozen=True, eq=False)
class Observation:
    """One scene's maps with its identity and date."""

    scene_id: str
    acquired: dt.datetime
    maps: StructureMaps


@dataclass(frozen=True)
class Metrics:
    """Per-scene measurements of a site (the ``site_metrics`` layer)."""

    built_area_m2: float
    wall_length_m: float | None
    fence_length_m: float | None
    tower_count: int | None
    enclosed_area_m2: float | None


@dataclass(frozen=True, eq=False)
class KindSeries:
    """One kind's maps over a site's usable scenes, oldest first, all on one grid.

    What :func:`track` judges each candidate change against; every list has one entry per
    scene of ``obs``, each array the grid's shape.

    Attributes:
        kind: the structure family (``building``, ``wall``, ``fence``, ``tower``).
        obs: the scenes, oldest first (their ids and dates date the changes).
        present: where each scene's map says the structure stands.
        present_near: ``present`` widened by the kind's :data:`TOLERANCE_M`: "still there" allowing
            for misregistration (and a fence's shadow band moving with the sun).
        strength: each scene's map response (0..1), also where it falls short of "present".
        observed: ground each scene saw clearly (not cloud, shadow or no-data).
        res: grid resolution, metres; ``transform``: the grid's affine transform (for outlines).
    """

    kind: str
    obs: Sequence[Observation]
    present: Sequence[np.ndarray]
    present_near: Sequence[np.ndarray]
    strength: Sequence[np.ndarray]
    observed: Sequence[np.ndarray]
    res: float
    transform: object

    @classmethod
    def of(cls, kind: str, obs: Sequence[Observation], grid: Grid) -> KindSeries:
        """The series of ``kind`` over ``obs`` (oldest first, each mapping ``kind`` on ``grid``'s shape)."""
        present = [o.maps.presence[kind] for o in obs]
        tol = max(1, int(round(TOLERANCE_M[kind] / grid.res)))
        return cls(kind, tuple(obs), tuple(present), tuple(_dilate(p, tol) for p in present),
                   tuple(o.maps.strength[kind] for o in obs), tuple(o.maps.observed for o in obs),
                   grid.res, grid.transform)

    @cached_property
    def ever_observed(self) -> np.ndarray:
        """Ground some scene saw clearly. The rest (outside the site polygon, no data in every scene) no
        later scene will show either: an object running into it is as complete as it will ever be seen."""
        return np.logical_or.reduce(self.observed)

    @cached_property
    def edge_strips(self) -> tuple[np.ndarray, ...]:
        """Each scene's :func:`window_edge_strip`: for that scene, the window's edge."""
        return tuple(window_edge_strip(o) for o in self.observed)

    @cached_property
    def edge_distance(self) -> np.ndarray:
        """Distance (pixels) from each pixel to ground no scene saw or to the grid's border."""
        pad = np.pad(self.ever_observed, 1, constant_values=False)
        return ndimage.distance_transform_edt(pad)[1:-1, 1:-1].astype(np.float32)

    @cached_property
    def reference(self) -> dict[str, np.ndarray]:
        """The 10 m change model's reference bands (the first scene that kept them), or empty."""
        return reference_in(o.maps for o in self.obs) or {}


#: Widest unseen band (px) at a window's side read as its edge: a co-registration shift (at most
#: ``align.MAX_SHIFT_PX``, 6) moves a band of no data in from outside the window.
EDGE_STRIP_PX = 6


def window_edge_strip(observed: np.ndarray, max_px: int = EDGE_STRIP_PX) -> np.ndarray:
    """Whole rows and columns at the window's sides, up to ``max_px`` deep, that a scene did not see
    at all: the strip a co-registration shift leaves. For that scene they are the window's edge, not
    ground it failed to see: a new building cut by them is as complete as one cut by the edge itself
    (on LEVIR-CD's 128 m tiles many new houses touch the edge; 1-4 px strips lost them)."""
    out = np.zeros(observed.shape, bool)
    if observed.ndim != 2 or min(observed.shape) <= 2 * max_px:
        return out
    unseen_rows, unseen_cols = ~observed.any(axis=1), ~observed.any(axis=0)
    for line, axis in ((unseen_rows, 0), (unseen_cols, 1)):
        for ends in (line, line[::-1]):
            k = int(np.argmin(ends[:max_px + 1])) if not ends[:max_px + 1].all() else max_px + 1
            if k == 0 or k > max_px:  # wider than any shift: cloud or the scene's own edge, not a strip
                continue
            sl = slice(0, k) if ends is line else slice(len(line) - k, len(line))
            out[(sl, slice(None)) if axis == 0 else (slice(None), sl)] = True
    return out


#: How far (metres) a structure's mapped outline may move between dates and still be "there":
#: misregistration left after alignment, and for fences the shadow band moving with the sun.
TOLERANCE_M = {"building": 1.0, "wall": 1.5, "fence": 5.0, "tower": 1.5}
#: Share of an object that must be seen (not cloud, shadow or no-data) for a scene to bracket it:
#: the contract dates a change by scenes in which that ground was clear, so only slivers may be hidden.
CLEAR_SHARE = 0.95
#: Share of an object a map must cover to say "present" / may cover to still say "absent".
PRESENT_SHARE, ABSENT_SHARE = 0.5, 0.2
#: A map's mean response over an object, as a share of its response where it stands, at and above
#: which "not mapped" is not "absent" (maps whose strength is kept below the presence threshold).
AMBIGUOUS = 0.5
#: Clear scenes on each side of a change whose majority decides what stood before and after it
#: (a composite over time rather than one pair of scenes); 3 is the smallest window one bad date cannot sway.
WINDOW = 3
#: Kinds judged as whole structures (a new part of a building is dated by looks at all of it).
WHOLE = ("building", "tower")
#: Smallest change object per kind, m² (and at least a few pixels).
MIN_AREA_M2 = {"building": 60.0, "wall": 8.0, "fence": 3.0, "tower": 3.0}
MIN_PX = {"building": 12, "wall": 10, "fence": 10, "tower": 4}
#: Walls and fences shorter than this are not reported, metres.
MIN_LENGTH_M = 30.0


def _dilate(a: np.ndarray, px: int) -> np.ndarray:
    return ndimage.binary_dilation(a, iterations=px) if px > 0 and a.any() else a


#: Pieces of one fence (same dates, in line, this close) are one detection, metres.
MERGE_GAP_M = 8.0


def _orientation(g: BaseGeometry) -> float:
    """Direction of an elongated shape's long axis, degrees in [0, 180)."""
    r = g.minimum_rotated_rectangle
    xs, ys = r.exterior.coords.xy
    e = [(xs[i + 1] - xs[i], ys[i + 1] - ys[i]) for i in range(2)]
    dx, dy = max(e, key=lambda v: math.hypot(*v))
    return math.degrees(math.atan2(dy, dx)) % 180


def _merge_runs(changes: list[Change]) -> list[Change]:
    """Join pieces of one straight fence run that noise or a junction cut apart."""
    out: list[Change] = []
    pool = sorted(changes, key=lambda c: -c.area_m2)
    while pool:
        c = pool.pop(0)
        merged = True
        while merged:
            merged = False
            for other in list(pool):
                if (other.kind, other.after_scene_id) != (c.kind, c.after_scene_id):
                    continue
                before = _common_before(c, other)
                if before is None:
                    continue
                d = abs(_orientation(c.geometry) - _orientation(other.geometry)) % 180
                if min(d, 180 - d) > 15 or c.geometry.distance(other.geometry) > MERGE_GAP_M:
                    continue
                line = unary_union([c.geometry, other.geometry]).minimum_rotated_rectangle
                if min(_sides(line)) > 8.0:  # side by side, not end to end
                    continue
                g = as_multipolygon(unary_union([c.geometry, other.geometry]))
                ev = {**dict(before.evidence),
                      "pieces": int(c.evidence.get("pieces", 1)) + int(other.evidence.get("pieces", 1))}
                c = Change(c.kind, g, before.before_scene_id, before.before_date, c.after_scene_id, c.after_date,
                           c.area_m2 + other.area_m2, (c.length_m or 0) + (other.length_m or 0),
                           max(c.score, other.score), ev)
                pool.remove(other)
                merged = True
        out.append(c)
    return out


def _common_before(a: Change, b: Change) -> Change | None:
    """The piece whose ``before`` holds for both pieces of one run, or None.

    Pieces of one fence can be dated from different scenes: where the fence meets a wall, the
    wall's response makes the scene before it ambiguous for that piece (strong, not "present"),
    so its dating looks further back. The run was absent on the later ``before`` when the other
    piece saw its ground clearly there and did not find it present (its ``not_present_in``):
    then the run is one change, dated by the later scene, not two with different dates.
    """
    if a.before_scene_id == b.before_scene_id:
        return a
    late, early = (a, b) if a.before_date > b.before_date else (b, a)
    if late.before_scene_id in (early.evidence.get("not_present_in") or ()):  # type: ignore[operator]
        return late
    return None


def _sides(rect: BaseGeometry) -> tuple[float, float]:
    xs, ys = rect.exterior.coords.xy
    return (math.hypot(xs[1] - xs[0], ys[1] - ys[0]), math.hypot(xs[2] - xs[1], ys[2] - ys[1]))


def _split_lines(mask: np.ndarray) -> np.ndarray:
    """Label a network of lines as straight runs, so each fence or wall run is its own object.

    Each pixel's orientation comes from the structure tensor of the mask; pixels are grouped
    by orientation (four bins) and connectivity. Junctions, where orientations mix, fall
    into small pieces that the size filter drops.
    """
    m = mask.astype(np.float32)
    gy, gx = ndimage.sobel(m, 0), ndimage.sobel(m, 1)
    sxx, syy, sxy = (ndimage.gaussian_filter(a, 2.0) for a in (gx * gx, gy * gy, gx * gy))
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)  # gradient direction; the line runs across it
    bins = np.round(((theta + np.pi) % np.pi) / (np.pi / 4)).astype(int) % 4
    out = np.zeros(mask.shape, np.int32)
    n = 0
    for k in range(4):
        lab, m_k = label(mask & (bins == k), corners=True)
        out[lab > 0] = lab[lab > 0] + n
        n += m_k
    return out


def _polygons(mask: np.ndarray, grid_transform: object) -> MultiPolygon:
    u = unary_union(mask_polygons(mask, grid_transform))
    return as_multipolygon(u)


def _length_m(mask: np.ndarray, res: float) -> float:
    sk = skeletonize(mask)
    if not sk.any():
        return 0.0
    # diagonal steps are longer than straight ones: count neighbours along the skeleton
    straight = (sk[:, 1:] & sk[:, :-1]).sum() + (sk[1:, :] & sk[:-1, :]).sum()
    diag = (sk[1:, 1:] & sk[:-1, :-1]).sum() + (sk[1:, :-1] & sk[:-1, 1:]).sum()
    return float(max(straight + diag * math.sqrt(2) * 0.5, sk.sum() * 0.5)) * res


#: Logistic coefficients of the score over :func:`score_features`, from ``benchmarks/calibrate.py``
#: on generated series whose seeds (4242, 4343, 4444) the accuracy table does not use. Those
#: series gave no wrong detection (159 of 159 right), so only the intercept was refitted (with a
#: one-wrong-one-right prior); the slopes are from the last fit on a series with mistakes.
SCORE_COEFFICIENTS = (3.851, 0.178, 0.230, 0.930, -1.351, 0.536)


def score_features(kind: str, evidence: Mapping[str, object], area_m2: float, res: float) -> list[float]:
    """What the score is computed from: [1, magnitude, log size over minimum, confirmed, fence, removed]."""
    fam, direction = kind.rsplit("_", 1)
    min_area = max(MIN_AREA_M2[fam], MIN_PX[fam] * float(res) ** 2)
    return [1.0, float(evidence.get("magnitude", 0.0) or 0.0),  # type: ignore[arg-type]
            math.log(max(area_m2 / min_area, 1e-3)), 1.0 if evidence.get("confirmed_by_next_clear_scene") else 0.0,
            1.0 if fam == "fence" else 0.0, 1.0 if direction == "removed" else 0.0]


def score(features: Sequence[float]) -> float:
    """Uncalibrated ranking score in 0..1 (a logistic of the features, fitted on generated series only): it orders
    detections; on real imagery a score near 1 does not mean a detection is likely right (benchmarks/README.md)."""
    z = sum(w * x for w, x in zip(SCORE_COEFFICIENTS, features))
    return round(1 / (1 + math.exp(-max(-50.0, min(50.0, z)))), 4)


def track(observations: Sequence[Observation]) -> list[Change]:
    """All changes in a site's history, each dated by the clear scenes that bracket it.

    For each kind and each scene t (oldest first), pixels present at t whose last clear
    observation showed nothing there form candidate objects. An object is a change when
    the last scene that saw at least 95% of its ground clearly showed it absent (that is
    ``before``), the object is complete at t (it does not run into cloud or no-data, else
    its dating waits for the next clear scene), and over time it holds: most of the clear
    scenes from t on (t and up to :data:`WINDOW` - 1 more; both of two) still show it (else
    it is dropped as a one-scene error; in the newest scene it is kept, discounted), and
    most of the clear scenes up to ``before`` did not show it standing (else ``before``
    missed it). Removals are the mirror image: a removal needs the structure seen standing
    in at least two clear scenes. A structure that stays yields one change; one rebuilt on
    the spot where it was seen removed once is not reported again (precision over recall).
    """
    obs = sorted(observations, key=lambda o: (o.acquired, o.scene_id))
    if len(obs) < 2:
        return []
    grid = obs[0].maps.grid
    out: list[Change] = []
    for kind in KINDS:
        usable = [o for o in obs if kind in o.maps.kinds and o.maps.grid.shape == grid.shape]
        if len(usable) < 2:
            continue
        series = KindSeries.of(kind, usable, grid)
        for new in (True, False):
            found = _track_kind(series, new=new)
            out += _merge_runs(found) if kind == "fence" else found
    out.sort(key=lambda c: (c.after_date, c.kind, c.before_date, c.geometry.centroid.x if not c.geometry.is_empty
                            else 0.0, c.geometry.centroid.y if not c.geometry.is_empty else 0.0))
    return out


def _track_kind(ks: KindSeries, new: bool) -> list[Change]:
    """Changes of one kind in one direction (``new`` or removed), scene by scene, oldest first."""
    kind, n = ks.kind, len(ks.obs)
    min_px = max(MIN_PX[kind], int(math.ceil(MIN_AREA_M2[kind] / ks.res ** 2)))
    shape = ks.present[0].shape
    state = np.full(shape, -1, np.int8)  # last clear look: -1 unknown, 0 absent, 1 present
    done = np.zeros(shape, bool)  # pixels already part of a reported change of this direction
    out: list[Change] = []
    for t in range(n):
        if t > 0:
            cand = ((ks.present[t] & (state == 0) & ks.observed[t]) if new
                    else (~ks.present_near[t] & (state == 1) & ks.observed[t]))
            cand &= ~done
            if cand.any():
                if kind == "fence":
                    lab = _split_lines(cand)
                else:
                    lab, _ = label(cand, corners=True)
                # a new building or tower is judged whole: a scene that saw only the part of it that
                # is new here (the rest hidden) did not see the building clearly, only a fragment
                whole_lab = (label(ks.present[t], corners=True)[0]
                             if new and kind in WHOLE else None)
                whole_sl = find_objects(whole_lab) if whole_lab is not None else []
                for i, sl in enumerate(find_objects(lab), start=1):
                    if sl is None:
                        continue
                    ids: np.ndarray = np.zeros(0, int)
                    if whole_lab is not None:
                        ids = np.unique(whole_lab[sl][lab[sl] == i])
                        ids = ids[ids > 0]
                        for j in ids:
                            sl = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(sl, whole_sl[j - 1]))
                    pad = tuple(slice(max(0, x.start - 3), x.stop + 3) for x in sl)
                    obj = lab[pad] == i
                    npx = int(obj.sum())
                    if npx < min_px:
                        continue
                    whole = (np.isin(whole_lab[pad], ids) | obj) if whole_lab is not None else None
                    c = _judge(ks, t, pad, obj, new, whole)
                    if c is not None:
                        out.append(c)
                        done[pad] |= obj
        seen = ks.observed[t]
        state[seen] = (ks.present_near[t] if new else ks.present[t])[seen].astype(np.int8)
    return out


def _judge(ks: KindSeries, t: int, sl: tuple[slice, ...], obj: np.ndarray, new: bool,
           whole: np.ndarray | None = None) -> Change | None:
    """Whether one candidate object is a dated change, and the Change if so.

    The object is ``obj`` (a mask over the window ``sl`` of the grid) found in scene ``t``.
    ``whole`` is the structure the object belongs to at t (for buildings and towers): scenes
    must see all of it clearly to bracket the change, not only the object's pixels.
    """
    kind, obs, res = ks.kind, ks.obs, ks.res
    seen = obj if whole is None else whole
    # complete at t: it must not run into ground this scene could not see
    ring = ndimage.binary_dilation(seen, iterations=2) & ~seen & ks.ever_observed[sl] & ~ks.edge_strips[t][sl]
    if ring.any() and (~ks.observed[t][sl][ring]).mean() > 0.1:
        return None

    def present(s: int) -> float:
        """Share of the object scene ``s`` maps as standing."""
        return float(ks.present[s][sl][obj].mean())

    def near(s: int) -> float:
        """Share of the object scene ``s`` maps as standing, within the kind's tolerance."""
        return float(ks.present_near[s][sl][obj].mean())

    def strength(s: int) -> float:
        """Scene ``s``'s mean map response over the object."""
        return float(ks.strength[s][sl][obj].mean())

    def clear_scenes(scenes: range) -> Iterator[int]:
        """Scenes, in the order given, that saw the structure's ground clearly."""
        return (s for s in scenes if ks.observed[s][sl][seen].mean() >= CLEAR_SHARE)

    # before: the last scene that saw the object's ground clearly; for a new structure, one whose
    # map's response there was weak: a scene whose response was strong but fell short of
    # "present" (a faint fence band on a snowy day) is neither absent nor present, so look earlier
    now = strength(t)
    before = next((s for s in clear_scenes(range(t - 1, -1, -1))
                   if not (new and near(s) <= ABSENT_SHARE and strength(s) >= AMBIGUOUS * now > 0)), None)
    if before is None:
        return None
    if new and near(before) > ABSENT_SHARE:
        return None
    # Before and after are composites of several clear scenes where the site has them: the
    # structure's state before is what most of the last WINDOW clear looks up to ``before`` saw
    # (``before`` itself must agree: it dates the change), its state after what most of the
    # WINDOW clear looks from t on saw. With two scenes on a side, both must agree; one bad date
    # (haze the mask missed, a misregistered pass) can neither make nor unmake a change.
    earlier = list(itertools.islice(clear_scenes(range(before - 1, -1, -1)), WINDOW - 1))
    if new:  # most of those looks must not have seen it standing (else ``before`` missed it)
        stood_earlier = not _majority([True] + [near(s) < PRESENT_SHARE for s in earlier])
    else:  # a removal needs it seen standing in at least two clear looks, and in most of them
        stood_earlier = bool(earlier) and _majority([True] + [near(s) >= PRESENT_SHARE for s in earlier])
    if new and stood_earlier:
        return None
    a, b = before, t
    mag = abs(now - strength(a)) if new else strength(a)
    if not new:
        if present(before) < PRESENT_SHARE:
            return None
        if now >= AMBIGUOUS * strength(before) > 0:
            return None  # still a strong response where it stood: unmapped, not shown gone
    # persistence: the next clear scenes must, for the most part, agree
    later = list(itertools.islice(clear_scenes(range(t + 1, len(obs))), WINDOW - 1))
    if later and not _majority([True] + [near(u) >= PRESENT_SHARE if new else near(u) <= ABSENT_SHARE
                                         for u in later]):
        return None  # seen once, gone at the next clear looks: noise, however strong
    confirmed = bool(later)
    if not new and not stood_earlier:  # seen standing in one clear scene only is not a removal
        return None
    full = np.zeros(ks.present[0].shape, bool)
    full[sl] = obj
    area = float(obj.sum()) * res * res
    length = _length_m(obj, res) if kind in ("wall", "fence") else None
    if length is not None and length < MIN_LENGTH_M:
        return None
    geom = _polygons(full, ks.transform)
    ev = {"maps": [kind], "direction": "new" if new else "removed", "magnitude": round(mag, 3),
          "strength_before": round(strength(a), 3), "strength_after": round(now, 3),
          "pixels": int(obj.sum()), "confirmed_by_next_clear_scene": bool(confirmed),
          "clear_share_before": round(float(ks.observed[a][sl][obj].mean()), 3)}
    about = obs[b].maps.info.get("s2change") if isinstance(obs[b].maps.info, Mapping) else None
    if isinstance(about, Mapping) and "change_model" in about:  # the learned model that made the map (10 m)
        ev["s2change"] = {k: about[k] for k in ("change_model", "change_model_version", "change_model_sha256",
                                                     "change_bands") if k in about}
        ev["region"] = _region(ks, t, sl, obj, float(about.get("change_threshold", 0.5)))  # type: ignore[arg-type]
    fine = obs[b].maps.info.get("finechange") if isinstance(obs[b].maps.info, Mapping) else None
    if kind == "building" and isinstance(fine, Mapping) and "change_model" in fine:  # the model that made the map (fine)
        ev["finechange"] = {k: fine[k] for k in ("change_model", "change_model_version", "change_model_sha256",
                                                 "roofs_gone_by_rule") if k in fine}
        ev["region"] = _region(ks, t, sl, obj, float(fine.get("change_threshold", 0.5)))  # type: ignore[arg-type]
    if new and kind == "fence":  # clear scenes between before and t: strong there, but not present
        ev["not_present_in"] = [obs[s].scene_id for s in clear_scenes(range(a + 1, b)) if near(s) < PRESENT_SHARE]
    name = f"{kind}_{'new' if new else 'removed'}"
    # fitted on real labelled detections where a model covers this resolution, else the uncalibrated ranking
    fitted = real_score(name, ev, area, res)
    ev["score_model"] = "real" if fitted is not None else "uncalibrated"
    value = fitted if fitted is not None else score(score_features(name, ev, area, res))
    return Change(name, geom, obs[a].scene_id, obs[a].acquired.date(), obs[b].scene_id, obs[b].acquired.date(),
                  area, None if length is None else round(length, 1), value, ev)


def _region(ks: KindSeries, t: int, sl: tuple[slice, ...], obj: np.ndarray, threshold: float) -> dict[str, float]:
    """What the change region looks like (:mod:`sitewatch.regionfacts`), at 10 m and 0.3-2 m: what scores read."""
    ref = {k: v[sl] for k, v in ks.reference.items()}
    return {**regionfacts.response_facts(ks.strength[t][sl], obj, threshold), **regionfacts.shape_facts(obj),
            **regionfacts.ground_before(ref, obj),
            "scene_changed_share": regionfacts.scene_share(ks.present[t], ks.observed[t], sl, obj),
            "local_changed_share": regionfacts.local_share(ks.present[t], ks.observed[t], sl, obj),
            "edge_px": regionfacts.edge_px(ks.edge_distance[sl], obj)}


def _majority(votes: list[bool]) -> bool:
    """More than half of ``votes`` true (of two, both)."""
    return 2 * sum(votes) > len(votes)


def measure(maps: StructureMaps) -> Metrics:
    """Metrics of one scene's maps (walls, fences, towers and enclosure only where the scene can show them)."""
    res = maps.grid.res
    built = float(maps.presence["building"].sum()) * res * res if "building" in maps.kinds else 0.0
    if "wall" not in maps.kinds:
        return Metrics(built, None, None, None, None)
    wall, fence = maps.presence["wall"], maps.presence["fence"]
    _, towers = label(maps.presence["tower"])
    grow = max(1, int(round(PERIMETER_GAP_M / res)))
    holes = enclosed(wall | fence, res)
    enclosed_m2: float | None = float((_dilate(holes, grow) & ~(wall | fence)).sum()) * res * res
    # a perimeter that runs into cloud or no-data may be closed where we cannot see: unknown, not 0
    if (wall | fence).any() and (_dilate(wall | fence, 3 * grow) & ~maps.observed).any():
        enclosed_m2 = None
    return Metrics(built, _length_m(wall, res), _length_m(fence, res), int(towers), enclosed_m2)
