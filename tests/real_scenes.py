"""Every clear real scene in ``../shared/data`` as reflectance bands, for mask tests and benchmarks.

All of these scenes are clear (no cloud, no snow): a mask that hides much of any of them eats
clear ground. Bands are scaled as the reader scales them (8-bit / 255, Sentinel-2 L1C / 10 000);
the SpaceNet panchromatic tile is stretched to its 11-bit range (the reader's uint16 default
would make it dark, the easy case for a cloud test) and given as red = green = blue.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

OSCD_BANDS = (("blue", "B02"), ("green", "B03"), ("red", "B04"), ("nir", "B08"), ("swir16", "B11"))


def _rgb(a: np.ndarray) -> dict[str, np.ndarray]:
    return {"red": a[0], "green": a[1], "blue": a[2]}


def oscd_bands(city_dir: Path, date: int) -> dict[str, np.ndarray]:
    """One OSCD date on its 10 m bands' own pixels (B11, 20 m, resampled onto them)."""
    import rasterio
    from scipy import ndimage

    out: dict[str, np.ndarray] = {}
    for name, band in OSCD_BANDS:
        with rasterio.open(city_dir / f"imgs_{date}" / f"{band}.tif") as ds:
            out[name] = ds.read(1).astype(np.float32) * np.float32(1e-4)
    h, w = out["red"].shape
    sw = out["swir16"]
    sw = ndimage.zoom(sw, (h / sw.shape[0], w / sw.shape[1]), order=1)
    out["swir16"] = np.pad(sw, ((0, max(0, h - sw.shape[0])), (0, max(0, w - sw.shape[1]))), mode="edge")[:h, :w]
    return out


def scenes(data: Path) -> Iterator[tuple[str, dict[str, np.ndarray], float]]:
    """(name, bands, pixel size in metres) for every real scene under ``data``."""
    import rasterio
    from PIL import Image

    for f in sorted((data / "levir-cd-samples").glob("[AB]/*.png")):
        a = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
        yield f"levir-cd-samples/{f.parent.name}/{f.name}", _rgb(a), 0.5
    for city in sorted(p for p in (data / "oscd-dev").iterdir() if (p / "cm.tif").exists()):
        for date in (1, 2):
            yield f"oscd-dev/{city.name}/imgs_{date}", oscd_bands(city, date), 10.0
    br = data / "buildings-real"
    rgb = [(br / "inria-austin" / "austin_rgb_0p3m.tif", 0.3), (br / "spacenet-rio" / "rio_rgb_0p5m.tif", 0.5)]
    rgb += [(f, 0.45) for f in sorted((br / "xbd-joplin" / "images").glob("*.png"))]
    rgb += [(f, 0.02) for f in sorted((br / "opencities-accra" / "images").glob("*.tif"))]
    for f, res in rgb:
        with rasterio.open(f) as ds:
            a = ds.read([1, 2, 3]).astype(np.float32) / 255
        yield str(f.relative_to(data)), _rgb(a), res
    pan = br / "spacenet-atlanta" / "atlanta_pan_0p5m.tif"
    with rasterio.open(pan) as ds:
        p = ds.read(1).astype(np.float32) / 2047
    yield str(pan.relative_to(data)), {"red": p, "green": p, "blue": p}, 0.5
