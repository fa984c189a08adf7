"""The default detector: per-date maps of buildings, walls, fences and watchtowers.

Every scene is first co-registered to the site's first clear scene and normalised to its
own open ground (:mod:`sitewatch.align`), so the maps of different dates are comparable.
Then, in units of "ground brightness" (1.0 = this scene's typical open ground):

- **buildings**: at 0.3-2 m a logistic model over image cues learnt from real labelled roofs
  (:mod:`sitewatch.buildings`) plus blue roofs by rule, and, against the site's reference scene,
  the change a two-date model learnt on real pairs sees (:mod:`sitewatch.finechange`: later maps
  are the reference's roofs less those gone plus those new); coarser (10 m), new structures are what
  a two-date change model learnt on real Sentinel-2 pairs (:mod:`sitewatch.s2change`) sees
  change since the site's reference scene (roofs by rule only where its bands are missing);
  never vegetation, at least a few metres across (an opening removes wall
  tops and towers), and large enough to be a building at this resolution;
- **walls**: long, straight, thin *bright* lines: a white top-hat narrower than ~1.5 m (a
  wall's sunlit top) averaged along lines in eight directions over 20 m, away from buildings,
  kept where the wall casts a shadow on the side away from the sun;
- **fences**: a faint *dark* band up to ~11 m wide (a black top-hat: wire mesh and its
  shadow) averaged along the same lines, with a thin dark mesh line inside it, away from
  walls, buildings, shadow edges and vegetation;
- **towers**: small (4-40 m²), compact, bright squares, each with a dark shadow beside it.

Walls, fences and towers only from imagery of about 1 m or finer
(:func:`sitewatch.structures.kinds_for_gsd`); coarser scenes map buildings only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from . import align, buildings, clouds, components, finechange, s2change
from .morphology import skeletonize
from .scenes import SceneRaster
from .structures import StructureMaps, enclosed, kinds_for_gsd

#: Finest-to-coarsest grid (metres) the learned building model serves (it was fitted on 0.3-0.5 m tiles).
FINE_MODEL_MAX_RES = 2.0
#: Blue roofs kept by rule at 0.3-2 m: (blue - red) / (blue + red) of the raw reflectance at least this.
BLUE_ROOF_HUE = 0.25
#: Shortest wall or fence mapped (extent of a connected line network, metres): a compound's perimeter
#: and internal fences run for 50 m and more; backyard fences and kerb pieces on real suburban tiles
#: (LEVIR-CD) are mostly shorter.
LINE_MIN_EXTENT_M = 50.0
#: Line length over which the wall (bright) and fence (dark) responses are averaged, metres.
LINE_M = 20.0
#: Smallest building footprint, m² (and never under 12 pixels).
MIN_BUILDING_M2 = 60.0
#: Tower footprint range, m².
TOWER_M2 = (4.0, 40.0)
#: Wall top brightness (white top-hat, in ground brightness): mean along the line, and at the pixel.
WALL_LINE, WALL_PIXEL = 0.15, 0.12
#: Widest faint band (mesh line and its shadow) read as a fence, metres.
FENCE_BAND_M = 11.0
#: Fence band darkness (black top-hat, in ground brightness): mean along the line, and at the pixel.
FENCE_LINE, FENCE_PIXEL = 0.09, 0.08
#: Darkness of the mesh line itself (a thin dark line, mean along 20 m) inside a fence band.
FENCE_MESH = 0.04


def _line_mean(r: np.ndarray, length_px: int, n_dirs: int = 8) -> np.ndarray:
    """Max over directions of the mean of ``r`` along a centred line of ``length_px``."""
    half = max(1, length_px // 2)
    best = np.full(r.shape, -np.inf, dtype=np.float32)
    for d in range(n_dirs):
        theta = math.pi * d / n_dirs
        dy, dx = math.sin(theta), math.cos(theta)
        if abs(dy) < 1e-9:
            acc = ndimage.uniform_filter1d(r, 2 * half + 1, axis=1, mode="nearest")
        elif abs(dx) < 1e-9:
            acc = ndimage.uniform_filter1d(r, 2 * half + 1, axis=0, mode="nearest")
        else:
            acc = np.zeros_like(r)
            step = max(1, half // 12)  # sample the line: enough to average noise, cheap
            ks = range(-half, half + 1, step)
            for k in ks:
                acc += np.roll(r, (round(k * dy), round(k * dx)), axis=(0, 1))
            acc /= len(ks)
        np.maximum(best, acc, out=best)
    return best


def _components(mask: np.ndarray, min_px: int = 1, max_px: int | None = None) -> np.ndarray:
    lab, n = components.label(mask)
    if not n:
        return mask
    sizes = ndimage.sum_labels(mask, lab, np.arange(1, n + 1))
    ok = (sizes >= min_px) & ((sizes <= max_px) if max_px else True)
    lut = np.concatenate([[False], ok])
    return lut[lab]


def _compact(mask: np.ndarray, max_aspect: float = 2.0) -> np.ndarray:
    """Keep roughly square components (towers), not slivers."""
    lab, n = components.label(mask)
    if not n:
        return mask
    keep = np.zeros(n + 1, bool)
    for i, sl in enumerate(components.find_objects(lab), start=1):
        if sl is not None:
            h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
            keep[i] = max(h, w) <= max_aspect * min(h, w)
    return keep[lab]


def _extent_px(mask: np.ndarray, min_len_px: float) -> np.ndarray:
    """Keep components whose longest side is at least ``min_len_px`` (lines, not blobs)."""
    lab, n = components.label(mask, corners=True)
    if not n:
        return mask
    keep = np.zeros(n + 1, bool)
    for i, sl in enumerate(components.find_objects(lab), start=1):
        if sl is not None:
            keep[i] = math.hypot(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) >= min_len_px
    return keep[lab]


#: Real-imagery gates (benchmarks/real.py: on LEVIR-CD, xBD and Inria tiles, which hold no walls, fences or
#: towers, kerbs, pavements, road edges, cars and roof units passed the line and blob tests above):
#: a wall casts a shadow along its length, away from the sun: share of its pixels with dark ground on
#: the shadow side and lit ground on the sun side.
WALL_SHADOW_SHARE = 0.5
#: A fence is claimed only within this distance (metres) of a mapped wall, or inside one.
FENCE_NEAR_WALL_M = 60.0
#: A watchtower is tall: its shadow reaches at least this far from it (metres) ...
TOWER_SHADOW_M = 5.0
#: ... and it stands alone: no more than this many other small bright blobs within 25 m (cars, roof units).
TOWER_NEIGHBOURS = 1
#: The shadow starts at the tower's foot, but the tower's bright blob (an opening of its lit top) and the
#: dark ground meet across a mixed edge pixel or a wall top at a corner: the shadow may begin this far
#: (metres, at least one pixel) from the blob and still be the tower's.
TOWER_SHADOW_GAP_M = 1.0


def _sides(lab: np.ndarray, i: int, sl: tuple[slice, ...], b: np.ndarray, res: float,
           dists_m: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Brightness sampled on either side of component ``i``, across its main axis, at ``dists_m``,
    and the unit normal (x, row) pointing to the second side."""
    ys, xs = np.nonzero(lab[sl] == i)
    ys, xs = ys + sl[0].start, xs + sl[1].start
    if ys.size < 3:
        return np.ones((len(dists_m), ys.size)), np.ones((len(dists_m), ys.size)), (0.0, 0.0)
    _, v = np.linalg.eigh(np.cov(np.vstack([xs, ys]).astype(float)))
    nx, ny = -v[1, 1], v[0, 1]  # normal to the main axis
    out = []
    for sign in (-1, 1):
        rows = []
        for d_m in dists_m:
            d = sign * d_m / res
            yy = np.clip(np.round(ys + d * ny).astype(int), 0, b.shape[0] - 1)
            xx = np.clip(np.round(xs + d * nx).astype(int), 0, b.shape[1] - 1)
            rows.append(b[yy, xx])
        out.append(np.array(rows))
    return out[0], out[1], (float(nx), float(ny))


def shadow_direction(properties: dict, crs: str) -> tuple[float, float]:
    """Unit vector (x, row) on a north-up grid along which shadows fall: away from the sun.

    The item's ``view:sun_azimuth`` when it has one; else a morning sun-synchronous pass (the
    sun in the south-east north of the equator, the north-east south of it, ~10:30 local).
    """
    az = properties.get("view:sun_azimuth")
    if not isinstance(az, (int, float)) or isinstance(az, bool):
        az = 30.0 if str(crs).upper().startswith("EPSG:327") else 150.0
    shade = math.radians(float(az) + 180.0)
    return math.sin(shade), -math.cos(shade)


def _cast_shadow(wall: np.ndarray, b: np.ndarray, res: float, shade_dir: tuple[float, float]) -> np.ndarray:
    """Keep wall pieces that cast a shadow: from most of their pixels, the ground 1.5-3.5 m away
    from the sun is dark and the ground 1.5-2.5 m towards it is lit. A kerb, a pavement or a road
    marking casts none, and the dark road beside a kerb lies on either side whatever the sun."""
    lab, n = components.label(wall, corners=True)
    if not n:
        return wall
    ys, xs = np.nonzero(lab)
    ids = lab[ys, xs]

    def at(d_m: float) -> np.ndarray:
        yy = np.clip(np.round(ys + d_m / res * shade_dir[1]).astype(int), 0, b.shape[0] - 1)
        xx = np.clip(np.round(xs + d_m / res * shade_dir[0]).astype(int), 0, b.shape[1] - 1)
        return b[yy, xx]

    dark = np.min([at(d) for d in (1.5, 2.5, 3.5)], axis=0) < 0.6
    lit = np.max([at(-d) for d in (1.5, 2.5)], axis=0) >= 0.8
    good = (dark & lit).astype(float)
    share = np.bincount(ids, weights=good, minlength=n + 1) / np.maximum(np.bincount(ids, minlength=n + 1), 1)
    keep = share >= WALL_SHADOW_SHARE
    keep[0] = False
    return keep[lab]


def _snow(raw: dict[str, np.ndarray], res: float) -> np.ndarray:
    """Snow the mask missed: very bright white ground, by NDSI with swir16, else only on a snowy day
    (as :func:`sitewatch.clouds.detect` decides), so a white roof on a snowless day stays a roof."""
    r, g, b = (np.nan_to_num(raw[k], nan=0.0) for k in ("red", "green", "blue"))
    bright = (r + g + b) / 3
    spread = (np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)) / np.maximum(bright, 1e-3)
    snow = (np.minimum(np.minimum(r, g), b) > clouds.SNOW_BRIGHT) & (spread < clouds.WHITE)
    if "swir16" in raw:
        sw = np.nan_to_num(raw["swir16"], nan=0.0)
        return snow & ((g - sw) / np.maximum(g + sw, 1e-4) > clouds.NDSI_SNOW)
    return snow if snow.sum() * res * res >= clouds.SNOWY_SCENE_M2 else np.zeros(snow.shape, bool)


def _near_a_wall(fence: np.ndarray, wall: np.ndarray, res: float) -> np.ndarray:
    """Fences only inside or near a mapped wall (the internal fencing of a walled compound): on real
    imagery with no barriers, lawn edges, field boundaries and road texture pass every line test."""
    if not fence.any():
        return fence
    if not wall.any():
        return np.zeros(fence.shape, bool)
    near = ndimage.distance_transform_edt(~wall) * res <= FENCE_NEAR_WALL_M
    ok = near | enclosed(wall, res)
    lab, n = components.label(fence, corners=True)
    share = ndimage.mean(ok, lab, np.arange(1, n + 1))
    return np.concatenate([[False], np.asarray(share) >= 0.5])[lab]


def _tall_and_alone(towers: np.ndarray, blobs: np.ndarray, b: np.ndarray, res: float) -> np.ndarray:
    """Keep towers whose shadow (dark ground within TOWER_SHADOW_GAP_M of them) reaches TOWER_SHADOW_M
    out and that have few bright neighbours."""
    lab, n = components.label(towers)
    if not n:
        return towers
    blab, _ = components.label(blobs)
    dark = b < 0.6
    reach = max(2, int(round(TOWER_SHADOW_M / res)))
    near = max(3, int(round(25.0 / res)))
    keep = np.zeros(n + 1, bool)
    for i, sl in enumerate(components.find_objects(lab), start=1):
        if sl is None:
            continue
        pad = tuple(slice(max(0, x.start - near), x.stop + near) for x in sl)
        obj = lab[pad] == i
        own = set(np.unique(blab[pad][obj]).tolist())
        others = set(np.unique(blab[pad]).tolist()) - own - {0}
        if len(others) > TOWER_NEIGHBOURS:
            continue
        # the shadow: dark ground touching the tower, still dark ``reach`` metres from it
        grown = ndimage.binary_dilation(obj, iterations=max(1, int(round(TOWER_SHADOW_GAP_M / res))))
        dlab, _ = components.label(dark[pad])
        ids = np.unique(dlab[grown & dark[pad]])
        shadow = np.isin(dlab, ids[ids > 0])
        if not shadow.any():
            continue
        far = ~ndimage.binary_dilation(obj, iterations=reach - 1)
        keep[i] = bool((shadow & far & ndimage.binary_dilation(obj, iterations=reach + 2)).any())
    return keep[lab]


class StructureDetector:
    """Maps buildings, walls, fences and towers in one scene, aligned to the site's first scene."""

    name = "sitewatch-structures"
    #: 2: at 10 m, buildings from the two-date change model (:mod:`sitewatch.s2change`)
    #: 3: at 0.3-2 m, building change from the two-date change model (:mod:`sitewatch.finechange`)
    #: 4: at 0.3-2 m, its model's presence settings chosen for F1, and a scene's own roofs joined only where
    #: the reference's building probability was low
    #: 5: at 0.3-2 m, a reference roof also gone by its own evidence (:mod:`sitewatch.gone`)
    #: 6: at 0.3-2 m, change model version 3 (colour saturation and one-sided shadow cues)
    version = "6"

    def maps(self, raster: SceneRaster, history: Sequence[StructureMaps] = ()) -> StructureMaps:
        res = raster.grid.res
        bands = {k: v for k, v in raster.bands.items()}
        valid = raster.valid.copy()
        info: dict[str, object] = {}
        bright_raw = align.brightness(bands)
        ref = next((h.features["align_ref"] for h in history if "align_ref" in h.features), None)
        features: dict[str, np.ndarray] = {}
        dx = dy = 0.0
        if ref is not None and ref.shape == bright_raw.shape and valid.mean() > 0.2:
            dx, dy, quality, gain = align.registered(ref.astype(np.float32), bright_raw, valid)
            info["shift_quality"] = round(quality, 3)
            if math.hypot(dx, dy) > align.MAX_SHIFT_PX:
                info["shift_rejected"] = [round(dx, 2), round(dy, 2)]
                dx = dy = 0.0
            elif math.hypot(dx, dy) >= 0.2 and gain < align.MIN_SHIFT_GAIN:
                info["shift_not_better"] = [round(dx, 2), round(dy, 2), round(gain, 3)]
                dx = dy = 0.0
            elif math.hypot(dx, dy) >= 0.2:
                bands = {k: align.apply_shift(v, dx, dy) for k, v in bands.items()}
                valid = align.apply_shift(valid, dx, dy)
            # the sensor's gain and haze against the reference, on ground that did not change:
            # recorded; the maps themselves are relative to this scene's own ground
            info["radiometry"] = align.fit_linear(align.brightness(bands), ref.astype(np.float32), valid).to_dict()
        elif ref is None:
            features["align_ref"] = np.where(valid, bright_raw, np.nan).astype(np.float16)
        info["shift_px"] = [round(dx, 3), round(dy, 3)]
        levels = align.ground_levels(bands, valid)
        info["ground_levels"] = {k: round(v, 4) for k, v in levels.items()}
        rel = align.relative_to_ground(bands, levels)
        kinds = kinds_for_gsd(raster.native_gsd_m)
        if raster.native_gsd_m > FINE_MODEL_MAX_RES:
            # 10 m: what changed since the site's reference scene; snow the mask missed is not ground seen
            seen = valid & ~_snow(bands, res)
            s2 = s2change.for_scene(bands, seen, history)
            if s2 is not None:
                presence, strength, observed, keep, about = s2
                # a new structure is not green: the season's crops and lawns are change, not buildings,
                # nor are the mixed pixels along the edge of a green field (a green patch of >= 0.5 ha)
                vegetation = clouds.vegetation(bands, blue_is_roof=True)
                fields = _components(vegetation, max(4, int(5000.0 / res ** 2)))
                presence = presence & ~vegetation & ~ndimage.binary_dilation(fields)
                if presence.any():  # neighbouring new halls: their change runs together, their roofs do not
                    b = np.nan_to_num(align.brightness(rel), nan=1.0)
                    roofs, _ = self._rule_buildings(rel, bands, valid, res, b, vegetation)
                    presence = s2change.split_by_roofs(presence, roofs, max(12, int(math.ceil(MIN_BUILDING_M2 / res ** 2))))
                info["s2change"] = about
                return StructureMaps(raster.grid, ("building",), {"building": presence}, {"building": strength},
                                     observed, {**features, **keep}, info)
        shade_dir = shadow_direction(dict(raster.scene.properties), raster.grid.crs)
        presence, strength = self._maps(rel, bands, valid, res, kinds, shade_dir)
        if res <= FINE_MODEL_MAX_RES:
            # 0.3-2 m: building change is what a two-date model learnt on real pairs sees since the site's
            # reference scene, not the disagreement of two per-date roof maps; snow the mask missed is not seen
            seen = valid & ~_snow(bands, res)
            fc = finechange.for_scene(bands, seen, history, presence["building"], strength["building"], res)
            presence["building"], strength["building"], valid, keep, info["finechange"] = fc
            features.update(keep)
        return StructureMaps(raster.grid, kinds, presence, strength, valid, features, info)

    def _maps(self, rel: dict[str, np.ndarray], raw: dict[str, np.ndarray], valid: np.ndarray, res: float,
              kinds: tuple[str, ...], shade_dir: tuple[float, float] = (-0.5, -0.87)
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        b = np.nan_to_num(align.brightness(rel), nan=1.0)
        vegetation = clouds.vegetation(raw, blue_is_roof=True)
        presence: dict[str, np.ndarray] = {}
        strength: dict[str, np.ndarray] = {}
        if res <= FINE_MODEL_MAX_RES:
            building, bstrength = self._learned_buildings(rel, raw, valid & ~vegetation, res)
            # blue (painted steel) roofs, common on new compounds, are absent from the labelled tiles the
            # model learned from: kept by rule (strongly blue against the ground, not plants)
            blue_roof, blue_strength = self._blue_roofs(rel, raw, valid, res, vegetation)
            building |= blue_roof
            bstrength = np.maximum(bstrength, blue_strength)
        else:
            building, bstrength = self._rule_buildings(rel, raw, valid, res, b, vegetation)
        presence["building"] = building
        strength["building"] = bstrength
        if "wall" not in kinds:
            return presence, strength
        # Walls and fences are thin lines whatever the sun does: a wall's sunlit top is a thin
        # bright line, a fence (mesh and posts) a thin dark one. Top-hats keep only features
        # narrower than ~1.5 m; averaging them along 20 m lines keeps only long straight ones.
        w = max(3, int(round(1.5 / res)) | 1)
        wf = max(5, int(round(FENCE_BAND_M / res)) | 1)
        bv = np.where(valid, b, 1.0).astype(np.float32)
        white = np.clip(bv - ndimage.grey_opening(bv, size=(w, w)), 0, 1.5)
        # a fence is its mesh line plus the faint shadow the mesh casts: a faint band up to ~7 m wide
        black = np.clip(ndimage.grey_closing(bv, size=(wf, wf)) - bv, 0, 0.4)
        length_px = int(round(LINE_M / res))
        min_len = LINE_MIN_EXTENT_M / res
        wline = _line_mean(white, length_px)
        near_building = ndimage.binary_dilation(building, iterations=max(1, int(round(3.0 / res))))
        line = (wline > WALL_LINE) & (white > WALL_PIXEL) & valid
        wall = _extent_px(ndimage.binary_dilation(line & ~near_building), min_len)
        wall = _cast_shadow(wall, bv, res, shade_dir)
        presence["wall"] = wall
        # the line's response wherever the line test holds, mapped or not: a wall-like line the context
        # tests turned down (cut under 50 m by snow or cloud, its shadow on masked ground, a long winter
        # shadow read as a roof beside it) is not evidence that no wall stood there (changes.AMBIGUOUS)
        seen_line = wall | ndimage.binary_dilation(line)
        strength["wall"] = np.clip(wline / (2 * WALL_LINE), 0, 1).astype(np.float32) * seen_line
        bline = _line_mean(black, length_px)
        # a wall's or building's shadow has a soft edge that looks like a faint band: keep clear of it
        near_wall = ndimage.binary_dilation(wall, iterations=max(1, int(round(4.0 / res))))
        strong_shadow_edge = ndimage.binary_dilation(b < 0.6, iterations=max(1, int(round(2.5 / res))))
        fence = ((bline > FENCE_LINE) & (black > FENCE_PIXEL) & valid & ~near_building & ~near_wall
                 & ~strong_shadow_edge & ~vegetation)
        fence = _extent_px(fence, min_len)
        # the mesh itself: a thin (<= 1.5 m) dark line along the band; a dirt track, a road or
        # a shadow edge is a wide faint band with no such line inside it
        thin = np.clip(ndimage.grey_closing(bv, size=(w, w)) - bv, 0, 0.4)
        mesh = (_line_mean(thin, length_px) > FENCE_MESH) & valid
        near_mesh = ndimage.binary_dilation(mesh, iterations=max(1, int(round(FENCE_BAND_M / 2 / res))))
        # inside a closed perimeter wall a straight faint band is a courtyard fence even when its
        # mesh is thinner than the pixel (0.6 m and a low sun: the shadow band is all there is)
        fence &= near_mesh | enclosed(wall, res)
        fence = _extent_px(fence, min_len)
        if fence.any():  # the band's centre line: where the fence is, whatever the sun's angle
            fence = _extent_px(ndimage.binary_dilation(skeletonize(fence)), min_len)
        fence = _near_a_wall(fence, wall, res)
        presence["fence"] = fence
        # the band's response wherever it is at least half a fence's, mapped or not: a faint band the
        # context tests turned down is not evidence that no fence stood there (changes.AMBIGUOUS)
        faint = (bline > FENCE_LINE / 2) & valid & ~vegetation & ~near_building & ~near_wall
        strength["fence"] = np.clip(bline / (2 * FENCE_LINE), 0, 1).astype(np.float32) * (fence | faint)
        # towers: small, compact, bright squares with a shadow next to them
        # at least 2 m across in every direction: wider than any wall top, narrower than a building
        kt = max(2, int(math.ceil(2.0 / res)))
        bright_small = ndimage.binary_opening((b > 1.35) & valid, structure=np.ones((kt, kt), bool))
        lo, hi = (int(a / res ** 2) for a in TOWER_M2)
        # a tower on a wall corner can be swept into the building map's blob there, so the map does not
        # exclude towers: a bright roof is too large to pass as one, and a roof unit casts no tall shadow
        halls = np.zeros_like(building)
        towers = _compact(_components(bright_small & ~halls, max(2, lo), max(3, hi)))
        shade = ndimage.binary_dilation(b < 0.6, iterations=max(1, int(round(1.5 / res))))
        lab, n = components.label(towers)
        if n:
            has_shadow = ndimage.maximum(shade, lab, np.arange(1, n + 1))
            towers = np.concatenate([[False], np.asarray(has_shadow, bool)])[lab]
        towers = _tall_and_alone(towers, bright_small & ~halls, bv, res)
        presence["tower"] = towers
        strength["tower"] = np.clip((b - 1.0) / 1.0, 0, 1).astype(np.float32) * towers
        return presence, strength


    def _rule_buildings(self, rel: dict[str, np.ndarray], raw: dict[str, np.ndarray], valid: np.ndarray, res: float,
                        b: np.ndarray, vegetation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coarse imagery (no labelled building maps at 10 m to learn from): bright or blue roofs."""
        blue = np.nan_to_num(rel["blue"] - rel["red"], nan=0.0)
        roof_score = np.maximum((b - 1.25) / 0.8, (blue - 0.45) / 1.0)
        roof = (roof_score > 0) & ~vegetation & valid
        if "swir16" in raw:  # snow the mask missed is bright and white too, but dark in SWIR
            g, sw = np.nan_to_num(raw["green"]), np.nan_to_num(raw["swir16"])
            roof &= ~((g - sw) / np.maximum(g + sw, 1e-4) > 0.4)
        # buildings: roofs at least ~4 m across
        k = max(2, int(round(4.0 / res)))
        opened = ndimage.binary_opening(roof, structure=np.ones((k, k), bool)) if k > 1 else roof
        min_px = max(12, int(math.ceil(MIN_BUILDING_M2 / res ** 2)))
        building = _components(opened, min_px)
        return building, np.clip(roof_score, 0, 1).astype(np.float32) * building

    def _blue_roofs(self, rel: dict[str, np.ndarray], raw: dict[str, np.ndarray], valid: np.ndarray, res: float,
                    vegetation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        blue = np.nan_to_num(rel["blue"] - rel["red"], nan=0.0)
        rr, bb = np.nan_to_num(raw["red"]), np.nan_to_num(raw["blue"])
        hue = (bb - rr) / np.maximum(rr + bb, 1e-4)
        score = np.minimum((blue - 0.45) / 1.0, (hue - BLUE_ROOF_HUE) * 4)
        roof = (score > 0) & ~vegetation & valid
        k = max(2, int(round(4.0 / res)))
        roof = ndimage.binary_opening(roof, structure=np.ones((k, k), bool))
        building = _components(roof, max(12, int(math.ceil(MIN_BUILDING_M2 / res ** 2))))
        return building, np.clip(score + 0.5, 0, 1).astype(np.float32) * building

    def _learned_buildings(self, rel: dict[str, np.ndarray], raw: dict[str, np.ndarray], valid: np.ndarray,
                           res: float) -> tuple[np.ndarray, np.ndarray]:
        """0.3-2 m: the learned model's probability (:mod:`sitewatch.buildings`: the map's boosted trees when
        the model file holds them, else the logistic), smoothed over ~1 m, thresholded, cleaned to
        building-sized blobs; strength is the probability wherever it is at least half the threshold, so a
        faint roof the map turned down is "unknown", not "absent"."""
        c = buildings.cues(rel, raw, valid, res)
        trees = buildings.map_model()
        if trees is None:
            m, settings = buildings.model()["fine"], buildings.MAP_SETTINGS
            p = buildings.probability(c, m)
        else:
            m, settings = trees, buildings.map_settings(trees)
            p = buildings.map_probability(buildings.map_cues(rel, raw, valid, res, base=c), valid, trees)
        del c
        sm = buildings.smoothed(p, res, settings)  # over the map's 1 m: the strength reads it too
        building = buildings.roof_map(p, valid & ~_snow(raw, res), res, settings, smooth=sm)
        p = np.where(valid, sm, 0.0).astype(np.float32)
        thr = float(m["threshold"])
        strength = np.where(p >= thr / 2, np.clip(p, 0, 1), 0.0).astype(np.float32)
        return building, strength


def default_detector() -> StructureDetector:
    return StructureDetector()
