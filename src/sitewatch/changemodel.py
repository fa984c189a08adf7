"""A trained change model (ONNX) beside, or instead of, the default detector.

Research teams have trained change networks (BIT, ChangeFormer, TinyCD, ...) that sitewatch
cannot ship. This module runs one, exported to ONNX, with onnxruntime on the CPU, while the
rest of the pipeline stays the same: co-registered clear scenes on the site grid, changes
dated by the pair of clear scenes that brackets them and confirmed by the next clear scene,
evidence hashes, review. The contract a model file must meet is checked when it is opened
(:meth:`ChangeModel.open`) and written out in the README:

- two inputs, ``before`` and ``after``, float32 ``[N, C, H, W]``; one output ``[N, 1, H, W]``;
- ``metadata_props``: ``sitewatch.bands`` (required), ``sitewatch.scale``, ``sitewatch.mean``,
  ``sitewatch.std``, ``sitewatch.output``, ``sitewatch.threshold``, ``sitewatch.tile``,
  ``sitewatch.gsd_m``, ``sitewatch.kind`` (see :class:`~sitewatch.modelcontract.Contract` for the defaults).

onnxruntime is an optional extra (``sitewatch[models]``): imported only when a model is opened.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from shapely.ops import unary_union

from .components import find_objects, label
from .detections import Change, as_multipolygon, detection_record, label_polygons, wgs84_outlines
from .grid import Grid
from .modelbands import NODATA, pack
from .modelcontract import Contract, ModelError, parse_contract
from .scenes import SceneRaster
from .store import DetectionRecord
from .structures import StructureMaps

log = logging.getLogger("sitewatch.changemodel")

#: Share of each tile (per side) whose output is thrown away where a neighbouring tile sees
#: the pixel further from its edge: a network's receptive field is cut at tile edges.
MARGIN_FRACTION = 1 / 8
#: Tiles run through the model per call (when its batch dimension is free).
BATCH = 8
#: A region must have been seen clearly in this share of its pixels in both scenes of a pair
#: (the same rule as the default detector's: dates come from scenes that saw the ground).
CLEAR_SHARE = 0.95
#: Smallest reported region per kind, m² and pixels (as the default detector's).
MIN_AREA_M2 = {"building": 60.0, "wall": 8.0, "fence": 3.0, "tower": 3.0}
MIN_PX = {"building": 12, "wall": 10, "fence": 10, "tower": 4}


@dataclass(eq=False)
class ChangeModel:
    """An opened, checked change model: its file's name and SHA-256, its contract, its session."""

    path: Path
    sha256: str
    contract: Contract
    session: Any = field(repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def margin(self) -> int:
        return int(self.contract.tile * MARGIN_FRACTION)

    def evidence(self) -> dict[str, str]:
        """What a detection records about the model that made it."""
        return {"file": self.name, "sha256": self.sha256}

    @classmethod
    def open(cls, path: str | Path) -> ChangeModel:
        """Read, hash and check a model file; ModelError (one line) when it does not meet the contract."""
        p = Path(path)
        where = f"change model {p}"
        if not p.is_file():
            raise ModelError(f"{where}: no such file")
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError(f"{where}: onnxruntime is not installed (pip install 'sitewatch[models]')") from None
        data = p.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors reach the user as our one line, not as onnxruntime's log
        # its intra-op threads (one per physical core) sleep between runs instead of spinning: a spinning
        # thread holds a core the scene's evidence, made beside the model, needs (benchmarks/README.md 9)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ModelError(f"{where}: not an ONNX model onnxruntime can run ({first})") from None
        meta = dict(sess.get_modelmeta().custom_metadata_map)
        contract = parse_contract(meta, sess.get_inputs(), sess.get_outputs(), where)
        return cls(p, sha, contract, sess)

    # --- inputs ---------------------------------------------------------------------------

    def prepare(self, raster: SceneRaster) -> np.ndarray:
        """The scene as the model's input: [C, H, W] float32, scaled and normalised; NaN where no data."""
        self.check_bands(raster)
        return self.normalise(raster.bands, raster.scales)

    def check_bands(self, raster: SceneRaster) -> None:
        """SceneError naming the bands the model reads that the scene lacks."""
        missing = [b for b in self.contract.bands if b not in raster.bands]
        if missing:
            from .errors import SceneError

            raise SceneError(f"scene {raster.scene.scene_id} has no {', '.join(missing)} band for change model "
                             f"{self.name}")

    def normalise(self, bands: Mapping[str, np.ndarray], scales: Mapping[str, Sequence[float]]) -> np.ndarray:
        """Reflectance bands (as the reader gives them) to the model's input [C, H, W]."""
        c = self.contract
        first = bands[c.bands[0]]
        out = np.empty((len(c.bands), *first.shape), np.float32)
        for i, b in enumerate(c.bands):
            # float32 operations in place in the output (no array per step: each new 4 MB array of a
            # 1024² window costs its page faults), in the order ``((x - o) / s / scale - mean) / std``
            x = out[i]
            x[...] = bands[b]
            if c.scale is not None:  # back to the stored values, then the model's own scaling
                s, o = scales.get(b, (1.0, 0.0))
                np.subtract(x, np.float32(o), out=x)
                np.divide(x, np.float32(s), out=x)
                np.divide(x, np.float32(c.scale), out=x)
            np.subtract(x, np.float32(c.mean[i]), out=x)
            np.divide(x, np.float32(c.std[i]), out=x)
        return out

    # --- inference ------------------------------------------------------------------------

    def _run(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """One batch [N, C, h, w] through the session; [N, h, w] probabilities."""
        (out,) = self.session.run(None, {"before": before, "after": after})
        out = np.asarray(out)
        if out.ndim != 4 or out.shape[0] != before.shape[0] or out.shape[1] != 1 or out.shape[2:] != before.shape[2:]:
            raise ModelError(f"change model {self.path}: output has shape {list(out.shape)} for input "
                             f"{list(before.shape)}; the contract needs [N, 1, H, W] of the input's size")
        p = out[:, 0].astype(np.float32)
        if self.contract.output == "logits":
            p = 1.0 / (1.0 + np.exp(-np.clip(p, -60, 60)))
        return np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0)

    def probability(self, before: np.ndarray, after: np.ndarray, *, own: bool = False) -> np.ndarray:
        """Change probability [H, W] of two prepared scenes [C, H, W] on one grid.

        The window is cut into overlapping tiles of the contract's size at the imagery's own
        resolution; each output pixel comes from the tile that sees it furthest from a tile
        edge (a margin of 1/8 of the tile is dropped between tiles). Windows smaller than a
        tile are padded (reflected) to a multiple of 8, or to the fixed input size. Pixels
        without data enter the model as 0 (the band's mean); their output is not used.
        ``own``: the two arrays were made for this call (their no-data is zeroed in place).
        """
        if before.shape != after.shape or before.ndim != 3:
            raise ValueError(f"before {before.shape} and after {after.shape} must be one [C, H, W] shape")
        b, a = _zero_nan(before, own), _zero_nan(after, own)
        _, H, W = b.shape
        T, M = self.contract.tile, self.margin
        spans_y, spans_x = _spans(H, T, M), _spans(W, T, M)
        th, tw = _tile_size(H, T, self.contract.fixed_hw), _tile_size(W, T, self.contract.fixed_hw)
        jobs = [(ys, xs) for ys in spans_y for xs in spans_x]
        out = np.zeros((H, W), np.float32)
        step = self.contract.fixed_batch or BATCH
        for k in range(0, len(jobs), step):
            chunk = jobs[k:k + step]
            bb = np.stack([_cut(b, ys, xs, th, tw) for ys, xs in chunk])
            aa = np.stack([_cut(a, ys, xs, th, tw) for ys, xs in chunk])
            if self.contract.fixed_batch and len(chunk) < step:  # a fixed batch size: fill with copies
                fill = step - len(chunk)
                bb = np.concatenate([bb, np.repeat(bb[-1:], fill, 0)])
                aa = np.concatenate([aa, np.repeat(aa[-1:], fill, 0)])
            p = self._run(bb, aa)
            for (ys, xs), tile in zip(chunk, p):
                (y0, ky0, ky1), (x0, kx0, kx1) = ys, xs
                out[ky0:ky1, kx0:kx1] = tile[ky0 - y0:ky1 - y0, kx0 - x0:kx1 - x0]
        return out


def _zero_nan(x: np.ndarray, own: bool = False) -> np.ndarray:
    """``np.nan_to_num(x, nan=0.0)`` as float32, in one copy (its own tests for infinities skipped
    when there are none: the same array); ``own``: in ``x`` itself when it is float32 (an input
    made for this call alone)."""
    y = x if own and x.dtype == np.float32 else np.array(x, dtype=np.float32)
    np.copyto(y, np.float32(0.0), where=np.isnan(y))
    return y if np.isfinite(y).all() else np.nan_to_num(y, nan=0.0, copy=False)


def _spans(length: int, tile: int, margin: int) -> list[tuple[int, int, int]]:
    """(start, keep_from, keep_to) of each tile along one axis: tiles of ``tile`` pixels that
    overlap by ``2 * margin``, the last one flush with the end; each keeps its centre."""
    if length <= tile:
        return [(0, 0, length)]
    stride = tile - 2 * margin
    starts = list(range(0, length - tile, stride)) + [length - tile]
    out = []
    keep0 = 0
    for i, s in enumerate(starts):  # each keeps on from where the one before stopped
        keep1 = length if i == len(starts) - 1 else s + tile - margin
        out.append((s, keep0, keep1))
        keep0 = keep1
    return out


def _tile_size(length: int, tile: int, fixed: tuple[int, int] | None) -> int:
    if fixed is not None:
        return tile
    return tile if length >= tile else int(math.ceil(length / 8) * 8)


def _cut(x: np.ndarray, ys: tuple[int, int, int], xs: tuple[int, int, int], th: int, tw: int) -> np.ndarray:
    """One tile, padded by reflection (edge-repeat where too small to reflect) to th × tw."""
    y0, x0 = ys[0], xs[0]
    t = x[:, y0:y0 + th, x0:x0 + tw]
    py, px = th - t.shape[1], tw - t.shape[2]
    if py or px:
        mode = "reflect" if py < t.shape[1] and px < t.shape[2] else "edge"
        t = np.pad(t, ((0, 0), (0, py), (0, px)), mode=mode)  # type: ignore[call-overload]
    return t


# --- in the monitor ----------------------------------------------------------------------

_OPEN: dict[tuple[str, int, int], ChangeModel] = {}
_OPEN_LOCK = threading.Lock()


def open_model(path: str | Path) -> ChangeModel:
    """:meth:`ChangeModel.open`, once per file version per process (sites share the session)."""
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return ChangeModel.open(p)  # raises the one-line error
    with _OPEN_LOCK:
        if key not in _OPEN:
            _OPEN[key] = ChangeModel.open(p)
        return _OPEN[key]


PROB = "model.probability"


def unpack(maps: StructureMaps, model: ChangeModel) -> np.ndarray | None:
    """The model's input [C, H, W] from a scene's kept bands (None when they are not kept)."""
    info = _model_info(maps, model)
    if info is None:
        return None
    scales = info.get("band_scales") or {}
    bands = {}
    for b in model.contract.bands:
        a = maps.features.get(f"model.band.{b}")
        if a is None:
            return None
        s, o = scales.get(b, (1.0, 0.0))
        x = a.astype(np.float32)  # (a copy: the stored maps stay as they are)
        if a.dtype != np.float32:
            np.multiply(x, np.float32(s), out=x)
            np.add(x, np.float32(o), out=x)
        np.copyto(x, np.float32(np.nan), where=maps.features[NODATA])
        bands[b] = x
    return model.normalise(bands, scales)


@dataclass(frozen=True)
class ModelDetector:
    """The change model, beside a structure detector (``base``) or alone (``base=None``).

    Each scene's maps keep the bands the model reads (:func:`pack`) so a later run can pair the
    next scene with it without reading old imagery again, and the change probability against
    the scene before it (``info['model']['before_scene_id']`` says which).
    """

    model: ChangeModel
    base: Any = None

    @property
    def name(self) -> str:
        return (f"{self.base.name}+" if self.base is not None else "") + f"model:{self.model.name}"

    @property
    def version(self) -> str:
        return f"{self.base.version if self.base is not None else ''}+{self.model.sha256[:12]}"

    def maps(self, raster: SceneRaster, history: Sequence[StructureMaps] = ()) -> StructureMaps:
        base = self.base.maps(raster, history) if self.base is not None else StructureMaps(
            raster.grid, (), {}, {}, raster.valid.copy())
        self.model.check_bands(raster)
        prev = next((h for h in reversed(history) if _model_info(h, self.model) is not None), None)
        c = self.model.contract
        info: dict[str, Any] = {**self.model.evidence(), "scene_id": raster.scene.scene_id, "kind": c.kind,
                                "threshold": c.threshold}
        if c.gsd_m is not None and not (0.5 <= raster.native_gsd_m / c.gsd_m <= 2.0):
            info["gsd_note"] = (f"imagery at {raster.native_gsd_m:.2f} m, model trained at {c.gsd_m:g} m "
                                "(more than 2x off; not resampled)")
            log.warning("%s: %s", raster.scene.scene_id, info["gsd_note"])
        kept, scales = pack(raster.bands, raster.scales, c.bands)
        info["band_scales"] = scales
        features = {**dict(base.features), **kept}
        if prev is not None:
            before = unpack(prev, self.model)
            assert before is not None
            # (the scene's own input only when there is a scene before it: a site's first scene is kept, not run)
            p = self.model.probability(before, self.model.normalise(raster.bands, raster.scales), own=True)
            p[~(raster.valid & prev.observed)] = 0.0
            features[PROB] = p.astype(np.float16)
            info["before_scene_id"] = _model_info(prev, self.model)["scene_id"]  # type: ignore[index]
        return replace(base, features=features, info={**dict(base.info), "model": info})


def _clear_and_whole(obj: np.ndarray, o0: np.ndarray, o1: np.ndarray) -> bool:
    """Whether both scenes saw at least 95 % of a region clearly, and no more than a tenth of the
    ring two pixels around it is ground either scene did not see (else it runs into unseen
    ground: not whole). ``obj`` and the observed masks are crops of one window."""
    if o0[obj].mean() < CLEAR_SHARE or o1[obj].mean() < CLEAR_SHARE:
        return False
    ring = ndimage.binary_dilation(obj, iterations=2) & ~obj
    return not (ring.any() and ((~o0[ring]).mean() > 0.1 or (~o1[ring]).mean() > 0.1))


class _UnseenBoxes:
    """Whether a window holds a pixel either scene of a pair did not see, in O(1) a window (an
    integral image of the unseen pixels; none built when both scenes saw everything). A region
    whose window both saw whole passes :func:`_clear_and_whole` without its dilation (≈0.1 ms)."""

    def __init__(self, o0: np.ndarray, o1: np.ndarray) -> None:
        unseen = ~(o0 & o1)
        self.sums: np.ndarray | None = None
        if unseen.any():
            s = np.zeros((unseen.shape[0] + 1, unseen.shape[1] + 1), np.int64)
            np.cumsum(np.cumsum(unseen, axis=0, dtype=np.int64), axis=1, out=s[1:, 1:])
            self.sums = s

    def any(self, window: tuple[slice, ...]) -> bool:
        if self.sums is None:
            return False
        h, w = self.sums.shape[0] - 1, self.sums.shape[1] - 1
        r0, r1 = min(window[0].start, h), min(window[0].stop, h)
        c0, c1 = min(window[1].start, w), min(window[1].stop, w)
        s = self.sums
        return bool(s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0] > 0)


def _model_info(maps: StructureMaps, model: ChangeModel | None = None) -> Mapping[str, Any] | None:
    m = maps.info.get("model") if isinstance(maps.info, Mapping) else None
    if not isinstance(m, Mapping) or NODATA not in maps.features:
        return None
    if model is not None and m.get("sha256") != model.sha256:
        return None  # maps made with another model: their inputs may be scaled differently
    return m


def model_changes(observations: Sequence[Any], model: ChangeModel | None = None) -> list[Change]:
    """``<kind>_new`` changes from the model's pair probabilities over a site's observations.

    Consecutive observations (oldest first, one grid) are the pairs; a pair whose stored
    probability was made against another scene (a scene that arrived late) is run again from
    the stored inputs when ``model`` is given. A region (8-connected pixels at or above the
    threshold, of at least the kind's minimum size) is a change when both scenes saw at least
    95% of it clearly; the next scene that sees it clearly must not show it changing again
    (else it is dropped as a one-scene error); in the newest scene it is kept, unconfirmed.
    The score is the region's mean probability.
    """
    obs = [o for o in sorted(observations, key=lambda o: (o.acquired, o.scene_id)) if _model_info(o.maps, model)]
    if len(obs) < 2:
        return []
    ref = _model_info(obs[-1].maps)
    obs = [o for o in obs if _model_info(o.maps)["sha256"] == ref["sha256"]]  # type: ignore[index]
    grid: Grid = obs[0].maps.grid
    obs = [o for o in obs if o.maps.grid.shape == grid.shape]
    probs: list[np.ndarray | None] = [None]
    for i in range(1, len(obs)):
        m = obs[i].maps
        if _model_info(m).get("before_scene_id") == obs[i - 1].scene_id and PROB in m.features:  # type: ignore[union-attr]
            probs.append(m.features[PROB].astype(np.float32))
        elif model is not None:
            p = model.probability(unpack(obs[i - 1].maps, model), unpack(m, model), own=True)  # type: ignore[arg-type]
            p[~(m.observed & obs[i - 1].maps.observed)] = 0.0
            probs.append(p)
        else:
            probs.append(None)
    info = _model_info(obs[-1].maps)
    kind = str(info.get("kind") or (model.contract.kind if model else "building"))  # type: ignore[union-attr]
    thr = float(info.get("threshold") or (model.contract.threshold if model else 0.5))  # type: ignore[union-attr]
    res = grid.res
    min_px = max(MIN_PX[kind], int(math.ceil(MIN_AREA_M2[kind] / res ** 2)))
    out: list[Change] = []
    import rasterio

    # one GDAL environment for every trace (rasterio sets one up per call otherwise)
    with rasterio.Env.from_defaults():
        for i in range(1, len(obs)):
            p = probs[i]
            if p is None:
                continue
            lab, n = label(p >= thr, corners=True)
            if n == 0:
                continue
            O0, O1 = obs[i - 1].maps.observed, obs[i].maps.observed
            kept: list[tuple[int, tuple[slice, ...], np.ndarray, int, bool]] = []
            sizes = np.bincount(lab.ravel(), minlength=n + 1)  # pixels per region, counted in one pass
            unseen = _UnseenBoxes(O0, O1)
            boxes = find_objects(lab)
            for j in np.flatnonzero(sizes >= min_px).tolist():
                if j == 0:
                    continue
                npx = int(sizes[j])
                pad = tuple(slice(max(0, s.start - 3), s.stop + 3) for s in boxes[j - 1])  # type: ignore[union-attr]
                obj = lab[pad] == j
                # (a window both scenes saw whole passes both tests: the original tests only where it did not)
                if unseen.any(pad) and not _clear_and_whole(obj, O0[pad], O1[pad]):
                    continue
                confirmed = False
                dropped = False
                for k in range(i + 1, len(obs)):
                    if obs[k].maps.observed[pad][obj].mean() < CLEAR_SHARE:
                        continue
                    q = probs[k]
                    if q is not None and float(q[pad][obj].mean()) >= thr:
                        dropped = True  # changed again at the next clear look: a one-scene error
                    else:
                        confirmed = q is not None
                    break
                if not dropped:
                    kept.append((j, pad, obj, npx, confirmed))
            # the kept regions' outlines, traced in one pass over the pair's labels: the same vertices
            # as each region's own trace, for one rasterio call instead of one per region
            outlines = label_polygons(lab, [k[0] for k in kept], grid.transform)
            for j, pad, obj, npx, confirmed in kept:
                outline = as_multipolygon(unary_union(outlines[j]))
                p_obj = p[pad][obj]  # (the region's values in raster order, whatever the window)
                mean_p = float(p_obj.mean())
                ev = {"maps": ["model"], "direction": "new", "model": {"file": info["file"], "sha256": info["sha256"]},
                      "detector": f"change model {info['file']} sha256:{info['sha256']}",  # bound into its reviews
                      "score_is": "mean change probability over the region",
                      "magnitude": round(mean_p, 3), "mean_probability": round(mean_p, 4),
                      "max_probability": round(float(p_obj.max()), 4), "pixels": npx,
                      "confirmed_by_next_clear_scene": confirmed,
                      "clear_share_before": round(float(O0[pad][obj].mean()), 3)}
                if "gsd_note" in (_model_info(obs[i].maps) or {}):
                    ev["gsd_note"] = _model_info(obs[i].maps)["gsd_note"]  # type: ignore[index]
                out.append(Change(f"{kind}_new", outline, obs[i - 1].scene_id,
                                  obs[i - 1].acquired.date(), obs[i].scene_id, obs[i].acquired.date(),
                                  npx * res * res, None, round(mean_p, 4), ev))
    return out


def model_detection_records(site_id: str, observations: Sequence[Any], run_id: str,
                            model: ChangeModel | None = None) -> list[DetectionRecord]:
    """The model's changes as detections; their ids include the model's hash, so the same
    outline found by the default detector and by a model are two claims, not one."""
    recs = []
    obs = list(observations)
    if not obs:
        return []
    grid = obs[0].maps.grid
    changes = model_changes(obs, model)
    for c, wgs84 in zip(changes, wgs84_outlines(changes, grid.crs)):  # (one reprojection for all)
        r = detection_record(site_id, c, grid, run_id, wgs84=wgs84)
        key = f"{r.detection_id}|model:{c.evidence['model']['sha256']}"  # type: ignore[index]
        recs.append(replace(r, detection_id="det-" + hashlib.sha256(key.encode()).hexdigest()[:16]))
    return recs


def maker(evidence: Mapping[str, Any]) -> str | None:
    """SHA-256 of the model that made a detection (None: the default detector)."""
    m = evidence.get("model")
    return m.get("sha256") if isinstance(m, Mapping) else None


__all__ = ["ChangeModel", "Contract", "ModelDetector", "ModelError", "model_changes", "model_detection_records",
           "open_model", "parse_contract", "maker"]
