"""Regenerate the broken sites files of this folder (run from the repository root).

Each file breaks one rule of the sites contract; expected.json maps it to a piece of the one-line
error ``sitewatch sites check`` must print. The text files are written here too so that the
corpus can be rebuilt exactly; the GeoPackages need pyogrio.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely

HERE = Path(__file__).resolve().parent


def fc(*features: dict, **extra: object) -> str:
    return json.dumps({"type": "FeatureCollection", **extra, "features": list(features)})


def feat(props: dict, geometry: dict | None) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def square(x: float, y: float, d: float = 0.01) -> list:
    return [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]]


TEXT = {
    "empty.geojson": "",
    "not-json.geojson": "{\"type\": \"FeatureCollection\", \"features\": [\n",
    "not-a-featurecollection.geojson": json.dumps({"type": "Topology", "objects": {}}),
    "missing-site-id.geojson": fc(feat({"name": "no id"}, {"type": "Point", "coordinates": [88, 43]})),
    "null-geometry.geojson": fc(feat({"site_id": "a"}, None)),
    "self-intersecting.geojson": fc(feat({"site_id": "bowtie"}, {"type": "Polygon", "coordinates": [
        [[88, 43], [88.01, 43.01], [88.01, 43], [88, 43.01], [88, 43]]]})),
    "too-short-ring.geojson": fc(feat({"site_id": "a"}, {"type": "Polygon", "coordinates": [[[88, 43], [88.1, 43]]]})),
    "lat-out-of-range.geojson": fc(feat({"site_id": "a"}, {"type": "Point", "coordinates": [88, 95]})),
    "nan-coordinates.geojson": '{"type":"FeatureCollection","features":[{"type":"Feature","properties":'
                               '{"site_id":"a"},"geometry":{"type":"Point","coordinates":[NaN,43]}}]}',
    "unknown-crs.geojson": fc(feat({"site_id": "a"}, {"type": "Point", "coordinates": [500000, 4760000]}),
                              crs={"type": "name", "properties": {"name": "EPSG:999999"}}),
    "linestring.geojson": fc(feat({"site_id": "wall"}, {"type": "LineString", "coordinates": [[88, 43], [88.1, 43]]})),
    "far-apart-parts.geojson": fc(feat({"site_id": "two"}, {"type": "MultiPolygon", "coordinates": [
        square(88, 43), square(89, 43)]})),
    "feature-not-object.geojson": fc("not a feature"),  # type: ignore[arg-type]
    "duplicate-site-id.csv": "site_id,name,lon,lat\nkash-1,A,76.05,39.43\nkash-1,B,76.06,39.44\n",
    "path-chars-in-id.csv": "site_id,name,lon,lat\n../../etc/passwd,x,76.05,39.43\n",
    "lon-out-of-range.csv": "site_id,name,lon,lat\na,x,200,39.43\n",
    "text-in-lat.csv": "site_id,name,lon,lat\na,x,76.05,abc\n",
    "negative-radius.csv": "site_id,name,lon,lat,radius_m\na,x,76.05,39.43,-5\n",
    "projected-coordinates.csv": "site_id,name,lon,lat\na,x,430000,4365000\n",
    "missing-columns.csv": "id,name,x,y\n1,a,76.05,39.43\n",
    "ragged-row.csv": "site_id,name,lon,lat\na,x,76.05,39.43,extra\n",
    "header-only.csv": "site_id,name,lon,lat\n",
    "missing-lat.csv": "site_id,name,lon,lat\na,x,76.05,\n",
    "crosses-antimeridian.csv": "site_id,name,lon,lat\na,x,179.9999,0\n",
    "not-osm.osm": "<html><body>not OSM</body></html>\n",
    "unclosed-way.osm": '<?xml version="1.0"?>\n<osm version="0.6">\n'
                        ' <node id="1" lon="88" lat="43"/><node id="2" lon="88.01" lat="43"/>'
                        '<node id="3" lon="88.01" lat="43.01"/>\n'
                        ' <way id="7"><nd ref="1"/><nd ref="2"/><nd ref="3"/>'
                        '<tag k="amenity" v="prison"/><tag k="prison_camp" v="re-education"/></way>\n</osm>\n',
    "spreadsheet.xlsx": "PK not really a spreadsheet",
}


def _gpkg(name: str, fields: list[str], values: list[list], geoms: list | None, crs: str | None,
          geometry_type: str | None = "Polygon") -> None:
    path = HERE / name
    path.unlink(missing_ok=True)
    g = None if geoms is None else np.array([shapely.to_wkb(x) for x in geoms], dtype=object)
    pyogrio.raw.write(str(path), g, fields=fields, field_data=[np.array(v, dtype=object) for v in values],
                      layer="sites", driver="GPKG", crs=crs, geometry_type=geometry_type)


def main() -> None:
    for name, body in TEXT.items():
        (HERE / name).write_text(body, encoding="utf-8")
    (HERE / "binary-junk.gpkg").write_bytes(bytes(range(256)) * 8)
    (HERE / "binary.csv").write_bytes(b"\x00\x01\x02site_id\x00" * 20)
    sq = shapely.box(88, 43, 88.01, 43.01)
    _gpkg("no-geometry-column.gpkg", ["site_id"], [["a"]], None, None, None)
    _gpkg("no-crs.gpkg", ["site_id"], [["a"]], [shapely.box(430000, 4365000, 431000, 4366000)], None)
    _gpkg("no-site-id-field.gpkg", ["name"], [["a"]], [sq], "EPSG:4326")
    _gpkg("duplicate-site-id.gpkg", ["site_id"], [["a", "a"]], [sq, sq], "EPSG:4326")
    _gpkg("null-site-id.gpkg", ["site_id"], [[None]], [sq], "EPSG:4326")
    path = HERE / "sqlite-not-geopackage.gpkg"
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE sites (site_id TEXT, lon REAL, lat REAL)")
    con.commit()
    con.close()


if __name__ == "__main__":
    main()
