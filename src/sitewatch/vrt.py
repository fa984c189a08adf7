"""A scene as one raster a GIS can open: the image itself, or a VRT of its band files.

``scenes.href`` names the STAC item or the first file; a QGIS user wants the picture. When
red, green and blue are bands 1-3 of one file (a ``visual`` asset, a multi-band GeoTIFF),
that file is the image. When they are separate files (Sentinel-2 COGs on Earth Search), a
small GDAL VRT stacking them in red, green, blue order is written beside the GeoPackage
(``<name>-scenes/<scene_id>.vrt``) and named instead; http(s) bands are referenced through
``/vsicurl/`` so the VRT streams them as the reader does. Bands that need a short-lived
token (Planetary Computer SAS) get no link: it would stop working when the token expires.
The QGIS project (:mod:`sitewatch.qgis`) writes its VRTs here too, naming local band files
relative to the VRT so that the project folder can be moved.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from pathlib import Path
from xml.sax.saxutils import escape

from .scenes import AssetRef, SceneRef

RGB = ("red", "green", "blue")


def gdal_path(href: str) -> str:
    """How GDAL opens ``href``: ``/vsicurl/`` for http(s), the path itself otherwise."""
    return f"/vsicurl/{href}" if href.startswith(("http://", "https://")) else href


def vrt_folder(db: str | os.PathLike[str]) -> Path:
    """Where the VRTs of a GeoPackage's scenes go: ``<folder>/<stem>-scenes``."""
    p = Path(db)
    return p.parent / f"{p.stem}-scenes"


def one_file_image(ref: SceneRef) -> str | None:
    """The file holding red, green and blue as bands 1-3, if there is one."""
    bands = [ref.assets.get(n) for n in RGB]
    if any(b is None or getattr(b, "sas", None) for b in bands):
        return None  # missing, or needs a short-lived token (Planetary Computer): no lasting link
    red, green, blue = bands  # type: ignore[misc]
    if red.href == green.href == blue.href and (red.band, green.band, blue.band) == (1, 2, 3):
        return red.href
    return None


def image_href(ref: SceneRef, folder: Path | None) -> str | None:
    """The href (or written VRT path) a GIS opens to show the scene in colour; None if it cannot be made.

    Never fails the scene: a VRT that cannot be written (no folder, read-only folder, bands in
    different CRSs, an unreachable header) leaves the field empty.
    """
    one = one_file_image(ref)
    if one is not None or folder is None or not all(n in ref.assets for n in RGB) \
            or any(getattr(ref.assets[n], "sas", None) for n in RGB):
        return one
    red, green, blue = (ref.assets[n] for n in RGB)
    key = (str(folder), ref.scene_id, tuple((b.href, b.band) for b in (red, green, blue)))
    with _WRITTEN_LOCK:
        done = _WRITTEN.get(key)
    if done is not None and Path(done).exists():
        return done  # every site over the scene names the same VRT: written once, not once per site
    try:
        path = str(write_vrt(ref.scene_id, (red, green, blue), folder))  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - a convenience link must never fail the scene
        return None
    with _WRITTEN_LOCK:
        _WRITTEN[key] = path
        while len(_WRITTEN) > 4096:
            _WRITTEN.pop(next(iter(_WRITTEN)))
    return path


#: VRTs this process wrote, by (folder, scene, band files): a scene's VRT is the same for every site.
_WRITTEN: dict[tuple[str, str, tuple[tuple[str, int], ...]], str] = {}
_WRITTEN_LOCK = threading.Lock()


def _source_filename(href: str, folder: Path | None) -> str:
    """The ``SourceFilename`` element: relative to ``folder`` for a local file when it is given."""
    if folder is None or gdal_path(href) != href:
        return f'      <SourceFilename relativeToVRT="0">{escape(gdal_path(href))}</SourceFilename>'
    rel = os.path.relpath(Path(href).resolve(), folder.resolve())
    return f'      <SourceFilename relativeToVRT="1">{escape(rel)}</SourceFilename>'


def write_vrt(scene_id: str, bands: tuple[AssetRef, AssetRef, AssetRef], folder: Path, *,
              relative: bool = False) -> Path:
    """Write ``folder/<scene_id>.vrt`` stacking the three bands on the red band's grid (atomically).

    ``relative``: local band files are named relative to the VRT, so a folder holding both (a
    QGIS project's) can be moved; otherwise as given, which a GeoPackage's ``image_href`` needs.
    """
    import rasterio

    from . import httpio

    metas = []
    with rasterio.Env(**httpio.gdal_env()):  # the reader's timeouts and retries for the headers
        for b in bands:
            with rasterio.open(gdal_path(b.href)) as ds:
                metas.append((ds.crs, ds.transform, ds.width, ds.height, ds.dtypes[b.band - 1],
                              ds.nodatavals[b.band - 1]))
    crs, tr, width, height, _, _ = metas[0]
    if any(m[0] != crs for m in metas):
        raise ValueError("bands in different CRSs")
    out = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
           f"  <SRS>{escape(crs.to_wkt())}</SRS>",
           f"  <GeoTransform>{tr.c!r}, {tr.a!r}, {tr.b!r}, {tr.f!r}, {tr.d!r}, {tr.e!r}</GeoTransform>"]
    for i, (b, (_, btr, bw, bh, dtype, nodata), colour) in enumerate(zip(bands, metas, ("Red", "Green", "Blue")),
                                                                      start=1):
        # the band's extent in the red band's pixels (bands of other resolutions are resampled)
        x0, y0 = ~tr * (btr.c, btr.f)
        x1, y1 = ~tr * (btr.c + btr.a * bw, btr.f + btr.e * bh)
        gdal_type = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
                     "float32": "Float32", "float64": "Float64"}.get(dtype, "Float32")
        out += [f'  <VRTRasterBand dataType="{gdal_type}" band="{i}">',
                *([f"    <NoDataValue>{nodata!r}</NoDataValue>"] if nodata is not None else []),
                f"    <ColorInterp>{colour}</ColorInterp>",
                "    <SimpleSource>",
                _source_filename(b.href, folder if relative else None),
                f"      <SourceBand>{b.band}</SourceBand>",
                f'      <SrcRect xOff="0" yOff="0" xSize="{bw}" ySize="{bh}"/>',
                f'      <DstRect xOff="{x0!r}" yOff="{y0!r}" xSize="{x1 - x0!r}" ySize="{y1 - y0!r}"/>',
                "    </SimpleSource>",
                "  </VRTRasterBand>"]
    out.append("</VRTDataset>")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", scene_id) + ".vrt")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path.resolve()
