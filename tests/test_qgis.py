"""``sitewatch qgis SITE --db G --out site.qgz``: a QGIS project whose every layer opens.

QGIS itself is not installed here, so the project is checked the way QGIS reads it: a zip
with one .qgs XML document of QGIS's shape, every datasource (GeoPackage layers with their
subset, scene rasters and VRTs, paths relative to the project) opened by GDAL, the subset
selecting only the site's features, the detections carrying the GeoPackage's stored style,
and each VRT giving back the pixels of the band files it stacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio

from sitewatch.testbed.demo import make_demo
from sitewatch.monitor import MonitorParams, run
from sitewatch.store import Store

SITE = "demo-s2"


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    root = tmp_path_factory.mktemp("qgisdemo")
    bundle = make_demo(root / "data")
    db = root / "findings.gpkg"
    run(MonitorParams(sites=str(bundle.sites_path), imagery=str(bundle.catalog_path), db=str(db),
                      site_ids=(SITE, "demo-compound")))
    return db


def qgis(*args: str):
    return subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "qgis", *args], capture_output=True, text=True,
                          timeout=300, env=os.environ.copy())


def _open_source(source: str, base: Path, provider: str):
    """Open a QGIS datasource as QGIS's ogr/gdal providers would; returns (features or raster dataset)."""
    parts = source.split("|")
    path = parts[0] if parts[0].startswith("/vsi") else str((base / parts[0]).resolve())
    opts = dict(p.split("=", 1) for p in parts[1:])
    if provider == "ogr":
        _, _, _, fields = pyogrio.raw.read(path, layer=opts["layername"], where=opts.get("subset"), columns=["site_id"])
        return list(fields[0])
    return rasterio.open(path)


def test_project_opens_every_layer_and_shows_only_the_site(findings, tmp_path):
    out = tmp_path / "proj" / "site.qgz"
    out.parent.mkdir()
    r = qgis(SITE, "--db", str(findings), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        assert names == ["site.qgs"]
        text = z.read("site.qgs").decode()
    assert text.startswith("<!DOCTYPE qgis")
    root = ET.fromstring(text.split("\n", 1)[1])
    assert root.tag == "qgis" and root.get("version", "").startswith("3.22")
    assert root.find("properties/Paths/Absolute").text == "false"
    layers = root.findall("projectlayers/maplayer")
    ids = [m.find("id").text for m in layers]
    assert [x.get("id") for x in root.findall("layerorder/layer")] == ids
    tree_ids = {x.get("id") for x in root.iter("layer-tree-layer")}
    assert tree_ids == set(ids), "every layer is in the layer tree"

    store = Store(findings)
    observed = [s for s in store.scenes(SITE) if s.status == "observed"]
    vectors = [m for m in layers if m.get("type") == "vector"]
    rasters = [m for m in layers if m.get("type") == "raster"]
    assert [m.find("layername").text for m in vectors] == [f"site {SITE}", "detections"]
    assert len(rasters) == len(observed) == 8
    for m in vectors:
        assert m.find("provider").text == "ogr" and m.find("srs/spatialrefsys/authid").text == "EPSG:4326"
        site_ids = _open_source(m.find("datasource").text, out.parent, "ogr")
        assert site_ids and set(site_ids) == {SITE}, "the subset shows this site only (the file has two)"
    dets = vectors[1]
    assert len(_open_source(dets.find("datasource").text, out.parent, "ogr")) == len(store.detections(site_id=SITE))
    rules = dets.findall("renderer-v2/rules/rule")
    assert dets.find("renderer-v2").get("type") == "RuleRenderer" and len(rules) == 24
    assert any(r.get("filter") == "\"kind\" = 'building_new' AND \"status\" = 'pending'" for r in rules)

    checked = [x.get("checked") for x in root.iter("layer-tree-layer") if x.get("providerKey") == "gdal"]
    assert checked.count("Qt::Checked") == 1, "only the newest scene is shown at first"
    for m in rasters:
        assert m.find("pipe/rasterrenderer").get("type") == "multibandcolor"
        src = m.find("datasource").text
        assert src.endswith(".vrt") and src.startswith("./site_scenes/")
        with _open_source(src, out.parent, "gdal") as ds:
            assert ds.count == 3 and ds.crs is not None
            scene_id = Path(src).stem
            item = json.loads(Path(next(s.href for s in observed if s.scene_id == scene_id)).read_text())
            for band, key in enumerate(("red", "green", "blue"), start=1):
                href = Path(item["assets"][key]["href"])
                src_file = href if href.is_absolute() else Path(next(s.href for s in observed
                                                                     if s.scene_id == scene_id)).parent / href
                with rasterio.open(src_file) as b:
                    assert np.array_equal(ds.read(band), b.read(1)), f"{scene_id} {key}"


def test_project_moves_with_its_files(findings, tmp_path):
    out = tmp_path / "a" / "site.qgz"
    out.parent.mkdir()
    local_db = out.parent / "findings.gpkg"
    local_db.write_bytes(findings.read_bytes())
    assert qgis(SITE, "--db", str(local_db), "--out", str(out)).returncode == 0
    moved = tmp_path / "b"
    out.parent.rename(moved)
    with zipfile.ZipFile(moved / "site.qgz") as z:
        root = ET.fromstring(z.read("site.qgs").decode().split("\n", 1)[1])
    for m in root.findall("projectlayers/maplayer"):
        src = m.find("datasource").text
        assert src.startswith("./"), src
        if m.get("type") == "vector":
            assert _open_source(src, moved, "ogr")
        else:
            _open_source(src, moved, "gdal").close()


@pytest.mark.parametrize("args, says", [
    (("nowhere", "--out", "{tmp}/x.qgz"), "no site 'nowhere'"),
    ((SITE, "--out", "{tmp}/x.qgs"), "must end in .qgz"),
    ((SITE, "--out", "{tmp}/missing/x.qgz"), "does not exist"),
])
def test_bad_input_is_one_line_and_nothing_written(findings, tmp_path, args, says):
    r = qgis(*(a.format(tmp=tmp_path) for a in args), "--db", str(findings))
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("sitewatch: error: ") and says in line
    assert not list(tmp_path.iterdir())
