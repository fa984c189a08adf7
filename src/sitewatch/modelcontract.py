"""The contract a change model file must meet (README, "A trained change model"), checked when it is opened.

Kept apart from running the model so the rules a model's author reads are in one short place:
its inputs and output, and what each ``sitewatch.*`` metadata key means and defaults to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InputError
from .scenes import BANDS
from .structures import KINDS

#: Prefix of the contract's metadata keys.
PREFIX = "sitewatch."


class ModelError(InputError):
    """A change model file does not meet the contract (exit 2, nothing written)."""


@dataclass(frozen=True)
class Contract:
    """What a model file says about itself (its ``metadata_props``), checked.

    Attributes:
        bands: band common names, in input channel order.
        scale: divide the stored values by this to get the model's 0..1 input; None: use the
            reflectance as sitewatch reads it (the reader's own scaling).
        mean / std: per band, applied after scaling: ``(x - mean) / std``.
        output: ``probability`` or ``logits`` (a sigmoid is applied to logits).
        threshold: probability at and above which a pixel is changed.
        tile: tile side in pixels (a multiple of 8); fixed input sizes override it.
        gsd_m: resolution the model was trained at (informational).
        kind: what its change means (``building`` gives ``building_new`` detections).
    """

    bands: tuple[str, ...]
    scale: float | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    output: str = "probability"
    threshold: float = 0.5
    tile: int = 256
    gsd_m: float | None = None
    kind: str = "building"
    fixed_hw: tuple[int, int] | None = None
    fixed_batch: int | None = None


def _floats(name: str, text: str, where: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ModelError(f"{where}: metadata {PREFIX}{name} {text!r} is not a comma-separated list of numbers") \
            from None


def _number(name: str, text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ModelError(f"{where}: metadata {PREFIX}{name} {text!r} is not a number") from None
    if not math.isfinite(v):
        raise ModelError(f"{where}: metadata {PREFIX}{name} {text!r} is not a finite number")
    return v


def parse_contract(meta: Mapping[str, str], inputs: Sequence[Any], outputs: Sequence[Any], where: str) -> Contract:
    """The contract from a model's inputs, outputs and metadata; ModelError naming the first problem."""
    names = sorted(i.name for i in inputs)
    if names != ["after", "before"]:
        raise ModelError(f"{where}: inputs are {', '.join(map(repr, names)) or 'none'}; the contract needs "
                         "exactly two, named 'before' and 'after'")
    for i in inputs:
        if i.type != "tensor(float)":
            raise ModelError(f"{where}: input {i.name!r} is {i.type}; the contract needs float32 (tensor(float))")
        if len(i.shape) != 4:
            raise ModelError(f"{where}: input {i.name!r} has shape {list(i.shape)}; the contract needs [N, C, H, W]")
    if len(outputs) != 1:
        raise ModelError(f"{where}: {len(outputs)} outputs; the contract needs exactly one, [N, 1, H, W]")
    out = outputs[0]
    if len(out.shape) != 4 or (isinstance(out.shape[1], int) and out.shape[1] != 1):
        raise ModelError(f"{where}: output {out.name!r} has shape {list(out.shape)}; the contract needs [N, 1, H, W]")
    if "float" not in str(out.type):
        raise ModelError(f"{where}: output {out.name!r} is {out.type}; the contract needs float")
    shapes = {tuple(i.shape) for i in inputs}
    if len(shapes) != 1:
        raise ModelError(f"{where}: inputs 'before' and 'after' have different shapes {sorted(map(list, shapes))}")
    n, c, h, w = next(iter(shapes))

    def get(key: str) -> str | None:
        v = meta.get(PREFIX + key)
        return None if v is None or not str(v).strip() else str(v).strip()

    def positive(key: str) -> float | None:
        """An optional number that must be above zero when given (a scale, a pixel size)."""
        if (text := get(key)) is None:
            return None
        v = _number(key, text, where)
        if v <= 0:
            raise ModelError(f"{where}: metadata {PREFIX}{key} must be positive, not {text!r}")
        return v

    raw_bands = get("bands")
    if raw_bands is None:
        raise ModelError(f"{where}: metadata {PREFIX}bands is missing (comma-separated band names, "
                         "e.g. red,green,blue)")
    bands = tuple(b.strip() for b in raw_bands.split(","))
    unknown = [b for b in bands if b not in BANDS]
    if unknown:
        raise ModelError(f"{where}: metadata {PREFIX}bands names {', '.join(map(repr, unknown))}; "
                         f"sitewatch reads {', '.join(BANDS)}")
    if len(set(bands)) != len(bands):
        raise ModelError(f"{where}: metadata {PREFIX}bands lists a band twice: {raw_bands!r}")
    if isinstance(c, int) and c != len(bands):
        raise ModelError(f"{where}: inputs have {c} channels but metadata {PREFIX}bands names {len(bands)}")
    scale = positive("scale")
    mean = _floats("mean", get("mean") or ",".join(["0"] * len(bands)), where)
    std = _floats("std", get("std") or ",".join(["1"] * len(bands)), where)
    for name, vals in (("mean", mean), ("std", std)):
        if len(vals) != len(bands):
            raise ModelError(f"{where}: metadata {PREFIX}{name} has {len(vals)} values for {len(bands)} bands")
    if any(not (v > 0 and math.isfinite(v)) for v in std):
        raise ModelError(f"{where}: metadata {PREFIX}std must be positive for every band, not {get('std')!r}")
    output = get("output") or "probability"
    if output not in ("probability", "logits"):
        raise ModelError(f"{where}: metadata {PREFIX}output is {output!r}; it must be 'probability' or 'logits'")
    threshold = _number("threshold", get("threshold") or "0.5", where)
    if not 0 < threshold < 1:
        raise ModelError(f"{where}: metadata {PREFIX}threshold {threshold} is not between 0 and 1")
    tile_f = _number("tile", get("tile") or "256", where)
    tile = int(tile_f)
    if tile != tile_f or tile < 16 or tile % 8:
        raise ModelError(f"{where}: metadata {PREFIX}tile {get('tile')!r} is not a whole multiple of 8 of at least 16")
    gsd = positive("gsd_m")
    kind = get("kind") or "building"
    if kind not in KINDS:
        raise ModelError(f"{where}: metadata {PREFIX}kind is {kind!r}; it must be one of {', '.join(KINDS)}")
    fixed = None
    if isinstance(h, int) or isinstance(w, int):
        if not (isinstance(h, int) and isinstance(w, int)) or h != w or h < 16:
            raise ModelError(f"{where}: inputs have shape {[n, c, h, w]}; H and W must both be free or "
                             "equal and fixed (a square tile of at least 16)")
        fixed, tile = (h, w), h
    return Contract(bands, scale, mean, std, output, threshold, tile, gsd, kind, fixed,
                    n if isinstance(n, int) else None)
