"""Vegetation indices and their thresholds, in one place.

Green plants change with the seasons, so every detector keeps them out of what it calls
construction; the index and the bar each one uses are defined here and nowhere else.
"""

from __future__ import annotations

import numpy as np

#: NDVI above this is green plants in one scene: the vegetation mask
#: (:func:`sitewatch.clouds.vegetation`) and the open ground a scene is levelled against
#: (:func:`sitewatch.align.ground_levels`).
NDVI_PLANTS = 0.25
#: The wide-area scan's bar (:mod:`sitewatch.scan.blocks`): a changed pixel above this NDVI on
#: either date is a season, not construction. The scan's figures in ``benchmarks/README.md``
#: were measured with it; it is not :data:`NDVI_PLANTS`, and making them one would change them.
NDVI_SEASONAL = 0.3
#: Excess green above this is green plants where there is no near infrared (RGB imagery).
EXCESS_GREEN_PLANTS = 0.06


def ndvi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Normalised difference vegetation index, ``(nir - red) / (nir + red)`` (0 where both are 0)."""
    return (nir - red) / np.maximum(nir + red, 1e-4)


def excess_green(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Excess green, ``(2 green - red - blue) / (red + green + blue)``: plants from RGB alone."""
    return (2 * green - red - blue) / np.maximum(red + green + blue, 1e-4)
