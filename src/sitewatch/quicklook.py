"""Quicklooks: what a person looks at. RGB PNGs of a scene on its site grid.

Stored with each scene so reviews and timelines can show the pixels that were analysed
even when the original imagery is no longer reachable. One fixed reflectance stretch for
every scene, so that brightness differences between dates are real, not display artefacts.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from PIL import Image

#: Reflectance mapped to 0..255 (linear, then a mild gamma), the same for every scene.
STRETCH = (0.0, 0.35)
GAMMA = 1 / 1.6
#: Longest side of a stored quicklook, pixels.
MAX_SIDE = 2048
#: zlib level of the stored PNGs (lossless whatever the level: only size and encoding time change).
PNG_LEVEL = 1


def rgb8(bands: Mapping[str, np.ndarray], valid: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB (H, W, 3); invalid pixels grey so clouds and gaps are plain to see. (Band by band
    into 8 bits, then interleaved: the same bytes as stretching the stacked float image, with no
    3-channel float32 copy: a third less time.)"""
    chans = []
    for name in ("red", "green", "blue"):
        v = _display(bands[name])
        if valid is not None:
            v = np.where(valid, v, v // np.uint8(3) + np.uint8(90))  # dimmed where the ground was not seen
        chans.append(v)
    return np.stack(chans, axis=-1)


def _display(x: np.ndarray) -> np.ndarray:
    """Reflectance (float32, NaN = no data) to display levels: the fixed stretch and gamma."""
    lo, hi = STRETCH
    v = np.clip((np.nan_to_num(x.astype(np.float32), nan=0.0) - lo) / (hi - lo), 0, 1) ** GAMMA
    return (v * 255 + 0.5).astype(np.uint8)


def png(rgb: np.ndarray, max_side: int = MAX_SIDE) -> bytes:
    img = Image.fromarray(rgb)
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    # zlib level 1: the same pixels, encoded 2.5-8x faster than optimize=True (which was the monitor's
    # largest own cost per scene), for files 4-17% larger (LEVIR, OSCD and generated quicklooks)
    img.save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def load(png_bytes: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB"))
