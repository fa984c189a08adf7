"""A QGIS project for one site (``sitewatch qgis SITE --db G --out site.qgz``).

A reviewer or journalist gets one file that opens in QGIS 3.22+ with the site outline, its
detections styled by kind and status (the same style :mod:`sitewatch.styles` stores in the
GeoPackage) and every clear scene as a true-colour raster layer, so the machine's claims can be
checked against the pixels they came from. A ``.qgz`` is a zip holding one ``.qgs`` XML file.

Scenes whose red, green and blue are separate files (Sentinel-2 COGs) get a small VRT each,
written beside the project in ``<name>_scenes/``, that stacks the three; a scene with all three
in one file is referenced directly. Remote files are referenced through GDAL's ``/vsicurl/``,
so QGIS reads them by range requests as sitewatch did. Local paths are stored relative to the
project, so the project, the GeoPackage and the VRTs can be moved together.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
import warnings
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

from .errors import InputError, SceneError
from .store import Store
from .vrt import RGB, gdal_path, one_file_image, write_vrt

#: QGIS version the project says it was written by (the oldest it is meant for).
QGIS_VERSION = "3.22.0-Białowieża"


def _rel(path: str | Path, base: Path) -> str:
    """A local path as QGIS writes relative ones (``./x``); remote (``/vsicurl/``) left as is."""
    p = str(path)
    if p.startswith("/vsi"):
        return p
    r = os.path.relpath(Path(p).resolve(), base.resolve())
    return r if r.startswith("..") else f"./{r}"


# --- the project XML ---------------------------------------------------------------------


def _srs(parent: ET.Element, crs: Any) -> None:
    """A ``spatialrefsys`` block QGIS resolves from its authority id (WKT for anything else)."""
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    srs = ET.SubElement(parent, "spatialrefsys", nativeFormat="Wkt")
    ET.SubElement(srs, "wkt").text = c.to_wkt()
    with warnings.catch_warnings():  # PROJ strings lose datum details; QGIS reads the WKT first anyway
        warnings.simplefilter("ignore", UserWarning)
        ET.SubElement(srs, "proj4").text = c.to_proj4()
    auth = c.to_authority()
    ET.SubElement(srs, "srid").text = auth[1] if auth else "0"
    ET.SubElement(srs, "authid").text = ":".join(auth) if auth else ""
    ET.SubElement(srs, "description").text = c.name
    ET.SubElement(srs, "geographicflag").text = "true" if c.is_geographic else "false"


def _renderer(qml: str) -> ET.Element:
    """The ``renderer-v2`` element of a stored QML style."""
    root = ET.fromstring(qml.split("\n", 1)[1] if qml.startswith("<!DOCTYPE") else qml)
    r = root.find("renderer-v2")
    assert r is not None
    return r


def _vector(layers: ET.Element, tree: ET.Element, lid: str, name: str, source: str, geometry: str,
            qml: str) -> None:
    ml = ET.SubElement(layers, "maplayer", type="vector", geometry=geometry, autoRefreshEnabled="0",
                       refreshOnNotifyEnabled="0", hasScaleBasedVisibilityFlag="0", styleCategories="AllStyleCategories")
    ET.SubElement(ml, "id").text = lid
    ET.SubElement(ml, "datasource").text = source
    ET.SubElement(ml, "layername").text = name
    _srs(ET.SubElement(ml, "srs"), "EPSG:4326")
    ET.SubElement(ml, "provider", encoding="UTF-8").text = "ogr"
    ml.append(_renderer(qml))
    ET.SubElement(tree, "layer-tree-layer", id=lid, name=name, source=source, providerKey="ogr",
                  checked="Qt::Checked", expanded="1")


def _raster(layers: ET.Element, group: ET.Element, lid: str, name: str, source: str, crs: Any, dtype: str,
            visible: bool) -> None:
    ml = ET.SubElement(layers, "maplayer", type="raster", autoRefreshEnabled="0", refreshOnNotifyEnabled="0",
                       hasScaleBasedVisibilityFlag="0", styleCategories="AllStyleCategories")
    ET.SubElement(ml, "id").text = lid
    ET.SubElement(ml, "datasource").text = source
    ET.SubElement(ml, "layername").text = name
    _srs(ET.SubElement(ml, "srs"), crs)
    ET.SubElement(ml, "provider").text = "gdal"
    pipe = ET.SubElement(ml, "pipe")
    rend = ET.SubElement(pipe, "rasterrenderer", type="multibandcolor", opacity="1", alphaBand="-1",
                         redBand="1", greenBand="2", blueBand="3")
    top = "255" if dtype == "uint8" else "3000"  # 8-bit visual products; 16-bit reflectance x 10 000
    for colour in ("red", "green", "blue"):
        ce = ET.SubElement(rend, f"{colour}ContrastEnhancement")
        ET.SubElement(ce, "minValue").text = "0"
        ET.SubElement(ce, "maxValue").text = top
        ET.SubElement(ce, "algorithm").text = "StretchToMinimumMaximum"
    ET.SubElement(group, "layer-tree-layer", id=lid, name=name, source=source, providerKey="gdal",
                  checked="Qt::Checked" if visible else "Qt::Unchecked", expanded="0")


def write_project(db: str | os.PathLike[str], site_id: str, out: str | os.PathLike[str]) -> tuple[Path, list[str]]:
    """Write ``out`` (.qgz) for ``site_id``; returns its path and the scenes left out (with why)."""
    from . import styles

    out_path = Path(out)
    if out_path.suffix.lower() != ".qgz":
        raise InputError(f"{out_path}: the project must end in .qgz")
    if not out_path.parent.is_dir():
        raise InputError(f"{out_path}: folder {out_path.parent} does not exist")
    store = Store(db, create=False)
    site = store.site(site_id)
    base = out_path.parent
    gpkg_src = _rel(store.path, base)
    subset = f"\"site_id\" = '{site_id}'"  # site ids are [A-Za-z0-9_.-]: safe in a literal

    root = ET.Element("qgis", projectname=f"sitewatch {site_id}", version=QGIS_VERSION,
                      saveDateTime=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    ET.SubElement(root, "homePath", path="")
    ET.SubElement(root, "title").text = f"sitewatch: {site.name or site_id}"
    _srs(ET.SubElement(root, "projectCrs"), "EPSG:4326")
    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    layers = ET.Element("projectlayers")
    order: list[str] = []

    lid = f"sites_{uuid.uuid4().hex}"
    _vector(layers, tree, lid, f"site {site_id}", f"{gpkg_src}|layername=sites|subset={subset}", "Polygon",
            styles.STYLES["sites"][1]())
    order.append(lid)
    lid = f"detections_{uuid.uuid4().hex}"
    _vector(layers, tree, lid, "detections", f"{gpkg_src}|layername=detections|subset={subset}", "Polygon",
            styles.detections_qml())
    order.append(lid)

    group = ET.SubElement(tree, "layer-tree-group", name="scenes", checked="Qt::Checked", expanded="1")
    ET.SubElement(group, "customproperties")
    skipped: list[str] = []
    vrt_dir = base / f"{out_path.stem}_scenes"
    observed = sorted((s for s in store.scenes(site_id) if s.status == "observed"),
                      key=lambda s: (s.acquired, s.scene_id), reverse=True)  # newest on top
    import rasterio

    from .catalog import find_again
    from .httpio import gdal_env

    for i, rec in enumerate(observed):
        try:
            ref = find_again(rec, site.geometry)
            if ref is None:
                raise SceneError(f"scene {rec.scene_id}: no longer listed by {rec.source or rec.href}")
            one = one_file_image(ref)
            path = gdal_path(one) if one is not None else \
                str(write_vrt(rec.scene_id, tuple(ref.assets[n] for n in RGB), vrt_dir,  # type: ignore[arg-type]
                              relative=True))
            with rasterio.Env(**gdal_env()), rasterio.open(path) as ds:
                crs, dtype = ds.crs, ds.dtypes[0]
        except (SceneError, InputError, rasterio.errors.RasterioIOError, KeyError, OSError, ValueError) as exc:
            skipped.append(f"scene {rec.scene_id}: {str(exc).splitlines()[0][:200]}")
            continue
        lid = f"scene_{uuid.uuid4().hex}"
        _raster(layers, group, lid, f"{rec.date} {rec.scene_id}", _rel(path, base), crs.to_wkt(), dtype, i == 0)
        order.append(lid)

    root.append(layers)
    lo = ET.SubElement(root, "layerorder")
    for lid in order:
        ET.SubElement(lo, "layer", id=lid)
    canvas = ET.SubElement(root, "mapcanvas", name="theMapCanvas")
    ET.SubElement(canvas, "units").text = "degrees"
    ext = ET.SubElement(canvas, "extent")
    minx, miny, maxx, maxy = site.geometry.buffer(0.002).bounds
    for k, v in (("xmin", minx), ("ymin", miny), ("xmax", maxx), ("ymax", maxy)):
        ET.SubElement(ext, k).text = repr(v)
    _srs(ET.SubElement(canvas, "destinationsrs"), "EPSG:4326")
    props = ET.SubElement(root, "properties")
    paths = ET.SubElement(props, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"

    xml = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode")
    tmp = out_path.with_name(out_path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{out_path.stem}.qgs", xml)
    os.replace(tmp, out_path)
    return out_path, skipped
