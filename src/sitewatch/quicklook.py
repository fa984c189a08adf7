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
    """uint8 RGB (H, W, 3); invalid pixels grey so clouds and gaps are plain to see."""
    lo, hi = STRETCH
    rgb = np.stack([bands["red"], bands["green"], bands["blue"]], axis=-1).astype(np.float32)
    rgb = np.clip((np.nan_to_num(rgb, nan=0.0) - lo) / (hi - lo), 0, 1) ** GAMMA
    out = (rgb * 255 + 0.5).astype(np.uint8)
    if valid is not None:
        dim = ~valid
        out[dim] = (out[dim].astype(np.uint16) // 3 + 90).astype(np.uint8)
    return out


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
