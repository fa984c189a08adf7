"""The default detector: per-date maps of buildings, walls, fences and watchtowers.

Every scene is first co-registered to the site's first clear scene and normalised to its
own open ground (:mod:`sitewatch.align`), so the maps of different dates are comparable.
Then, in units of "ground brightness" (1.0 = this scene's typical open ground):

- **buildings**: roofs, bright or blue/grey against the ground, not vegetation, at least a
  few metres across (an opening removes wall tops and towers), and large enough to be a
  building at this resolution;
- **walls**: long, straight, strongly dark lines (the shadow a 3-6 m wall casts), found by
  averaging a darkness response along lines in eight directions over 20 m;
- **fences**: the same line test at low contrast (wire mesh and its faint shadow), away
  from walls and buildings;
- **towers**: small (4-40 m²), compact, bright squares, each with a dark shadow beside it.

Walls, fences and towers only from imagery of about 1 m or finer
(:func:`sitewatch.structures.kinds_for_gsd`); coarser scenes map buildings only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from . import align, clouds
from .scenes import SceneRaster
from .structures import StructureMaps, enclosed, kinds_for_gsd

#: Line length over which wall and fence darkness is averaged, metres.
LINE_M = 20.0
#: Local background window for line darkness, metres.
BACKGROUND_M = 12.0
#: Smallest building footprint, m² (and never under 12 pixels).
MIN_BUILDING_M2 = 60.0
#: Tower footprint range, m².
TOWER_M2 = (4.0, 40.0)
#: Wall darkness: mean along the line, and at the pixel.
WALL_LINE, WALL_PIXEL = 0.15, 0.12
#: Widest faint band (mesh line and its shadow) read as a fence, metres.
FENCE_BAND_M = 11.0
#: Fence darkness: mean along the line (low contrast).
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
    lab, n = ndimage.label(mask)
    if not n:
        return mask
    sizes = ndimage.sum_labels(mask, lab, np.arange(1, n + 1))
    ok = (sizes >= min_px) & ((sizes <= max_px) if max_px else True)
    lut = np.concatenate([[False], ok])
    return lut[lab]


def _compact(mask: np.ndarray, max_aspect: float = 2.0) -> np.ndarray:
    """Keep roughly square components (towers), not slivers."""
    lab, n = ndimage.label(mask)
    if not n:
        return mask
    keep = np.zeros(n + 1, bool)
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is not None:
            h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
            keep[i] = max(h, w) <= max_aspect * min(h, w)
    return keep[lab]


def _extent_px(mask: np.ndarray, min_len_px: float) -> np.ndarray:
    """Keep components whose longest side is at least ``min_len_px`` (lines, not blobs)."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if not n:
        return mask
    keep = np.zeros(n + 1, bool)
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is not None:
            keep[i] = math.hypot(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) >= min_len_px
    return keep[lab]


class StructureDetector:
    """Maps buildings, walls, fences and towers in one scene, aligned to the site's first scene."""

    name = "sitewatch-structures"
    version = "1"

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
            dx, dy, quality = align.phase_shift(ref.astype(np.float32), bright_raw, valid)
            info["shift_quality"] = round(quality, 3)
            if math.hypot(dx, dy) > align.MAX_SHIFT_PX:
                info["shift_rejected"] = [round(dx, 2), round(dy, 2)]
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
        presence, strength = self._maps(rel, bands, valid, res, kinds)
        return StructureMaps(raster.grid, kinds, presence, strength, valid, features, info)

    def _maps(self, rel: dict[str, np.ndarray], raw: dict[str, np.ndarray], valid: np.ndarray, res: float,
              kinds: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        b = np.nan_to_num(align.brightness(rel), nan=1.0)
        blue = np.nan_to_num(rel["blue"] - rel["red"], nan=0.0)
        vegetation = clouds.vegetation(raw, blue_is_roof=True)
        roof_score = np.maximum((b - 1.25) / 0.8, (blue - 0.45) / 1.0)
        roof = (roof_score > 0) & ~vegetation & valid
        if "swir16" in raw:  # snow the mask missed is bright and white too, but dark in SWIR
            g, sw = np.nan_to_num(raw["green"]), np.nan_to_num(raw["swir16"])
            roof &= ~((g - sw) / np.maximum(g + sw, 1e-4) > 0.4)
        presence: dict[str, np.ndarray] = {}
        strength: dict[str, np.ndarray] = {}
        # buildings: roofs at least ~4 m across
        k = max(2, int(round(4.0 / res)))
        opened = ndimage.binary_opening(roof, structure=np.ones((k, k), bool)) if k > 1 else roof
        min_px = max(12, int(math.ceil(MIN_BUILDING_M2 / res ** 2)))
        building = _components(opened, min_px)
        presence["building"] = building
        strength["building"] = np.clip(roof_score, 0, 1).astype(np.float32) * building
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
        min_len = 15.0 / res
        wline = _line_mean(white, length_px)
        near_building = ndimage.binary_dilation(building, iterations=max(1, int(round(3.0 / res))))
        wall = (wline > WALL_LINE) & (white > WALL_PIXEL) & valid & ~near_building
        wall = _extent_px(ndimage.binary_dilation(wall), min_len)
        presence["wall"] = wall
        strength["wall"] = np.clip(wline / (2 * WALL_LINE), 0, 1).astype(np.float32) * wall
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
            from skimage.morphology import skeletonize

            fence = _extent_px(ndimage.binary_dilation(skeletonize(fence)), min_len)
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
        towers = _compact(_components(bright_small & ~building, max(2, lo), max(3, hi)))
        shade = ndimage.binary_dilation(b < 0.6, iterations=max(1, int(round(1.5 / res))))
        lab, n = ndimage.label(towers)
        if n:
            has_shadow = ndimage.maximum(shade, lab, np.arange(1, n + 1))
            towers = np.concatenate([[False], np.asarray(has_shadow, bool)])[lab]
        presence["tower"] = towers
        strength["tower"] = np.clip((b - 1.0) / 1.0, 0, 1).astype(np.float32) * towers
        return presence, strength


def default_detector() -> StructureDetector:
    return StructureDetector()
