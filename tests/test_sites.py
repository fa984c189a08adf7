"""read_sites: the three formats, CRSs, point buffers, and that bad input is always a SitesError."""

from __future__ import annotations

import json
import math
import string

import numpy as np
import pyogrio.raw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod
from shapely.geometry import Point, Polygon, box, mapping
from shapely import to_wkb

from sitewatch.errors import SitesError
from sitewatch.grid import to_crs
from sitewatch.sites import DEFAULT_RADIUS_M, Site, read_sites

GEOD = Geod(ellps="WGS84")


def _area_m2(poly: Polygon) -> float:
    return abs(GEOD.geometry_area_perimeter(poly)[0])


def _fc(features: list[dict], **extra) -> str:
    return json.dumps({"type": "FeatureCollection", "features": features, **extra})


def _feat(props: dict, geom) -> dict:
    return {"type": "Feature", "properties": props, "geometry": mapping(geom) if geom is not None else None}


def _write_gpkg(path, ids, geoms, crs="EPSG:4326", extra: dict | None = None, geometry_type="Polygon"):
    fields = ["site_id", *(extra or {})]
    values = [np.array(ids, dtype=object), *(np.array(v, dtype=object) for v in (extra or {}).values())]
    pyogrio.raw.write(str(path), np.array([to_wkb(g) for g in geoms], dtype=object), fields=fields,
                      field_data=values, layer="sites", driver="GPKG", crs=crs, geometry_type=geometry_type)


def test_csv_points_buffered_on_the_ground(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("site_id,name,lon,lat,radius_m,notes\nkash-1,Kashgar I,76.05575,39.4316667,,seen 2019\n"
                 "big,,80.0,41.0,1000,\n")
    sites = read_sites(f)
    assert [s.site_id for s in sites] == ["kash-1", "big"]
    assert sites[0].name == "Kashgar I" and sites[0].notes == "seen 2019" and sites[1].name is None
    for s, r in zip(sites, (DEFAULT_RADIUS_M, 1000.0)):
        assert _area_m2(s.geometry) == pytest.approx(math.pi * r * r, rel=0.01)
        assert s.geometry.is_valid
    c = sites[0].geometry.centroid
    assert GEOD.inv(c.x, c.y, 76.05575, 39.4316667)[2] < 1.0
    assert sites[1].properties["radius_m"] == "1000"


def test_tab_separated_cp1252_csv(tmp_path):
    f = tmp_path / "s.csv"
    f.write_bytes("site_id\tname\tlon\tlat\r\n\r\na\tÜrümqi\t87.6\t43.8\r\n".encode("cp1252"))
    (s,) = read_sites(f)
    assert s.name == "Ürümqi"


def test_geojson_polygon_kept_and_properties_json_safe(tmp_path):
    poly = box(88.0, 43.0, 88.01, 43.01)
    f = tmp_path / "s.geojson"
    f.write_text(_fc([_feat({"site_id": "p1", "name": "P", "tier": 3, "tags": ["a"], "x": None}, poly)]))
    (s,) = read_sites(f)
    assert s.geometry.equals(poly)
    assert s.properties == {"tier": 3, "tags": "['a']", "x": None}
    json.dumps(dict(s.properties))


def test_geojson_projected_crs_member(tmp_path):
    poly = box(88.0, 43.0, 88.01, 43.01)
    utm = to_crs(poly, "EPSG:4326", "EPSG:32645")
    f = tmp_path / "s.geojson"
    f.write_text(_fc([_feat({"site_id": "u"}, utm)],
                     crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32645"}}))
    (s,) = read_sites(f)
    assert s.geometry.symmetric_difference(poly).area < 1e-10


def test_gpkg_projected_polygons_and_points(tmp_path):
    poly = box(88.0, 43.0, 88.01, 43.01)
    f = tmp_path / "s.gpkg"
    _write_gpkg(f, ["a"], [to_crs(poly, "EPSG:4326", "EPSG:32645")], crs="EPSG:32645", extra={"name": ["A"]})
    (s,) = read_sites(f)
    assert s.name == "A" and s.geometry.symmetric_difference(poly).area < 1e-10
    g = tmp_path / "p.gpkg"
    _write_gpkg(g, ["a", "b"], [Point(88, 43), Point(88.1, 43)], geometry_type="Point",
                extra={"radius_m": [200.0, None]})
    a, b = read_sites(g)
    assert _area_m2(a.geometry) == pytest.approx(math.pi * 200**2, rel=0.01)
    assert _area_m2(b.geometry) == pytest.approx(math.pi * DEFAULT_RADIUS_M**2, rel=0.01)


def test_multipolygon_close_parts_become_hull_far_parts_refused(tmp_path):
    near = {"type": "MultiPolygon", "coordinates": [
        [[[88.0, 43.0], [88.001, 43.0], [88.001, 43.001], [88.0, 43.0]]],
        [[[88.002, 43.0], [88.003, 43.0], [88.003, 43.001], [88.002, 43.0]]]]}
    f = tmp_path / "m.geojson"
    f.write_text(_fc([{"type": "Feature", "properties": {"site_id": "m"}, "geometry": near}]))
    (s,) = read_sites(f)
    assert isinstance(s.geometry, Polygon) and s.geometry.bounds[2] == pytest.approx(88.003)
    far = json.loads(json.dumps(near))
    far["coordinates"][1] = [[[89.0, 43.0], [89.001, 43.0], [89.001, 43.001], [89.0, 43.0]]]
    f.write_text(_fc([{"type": "Feature", "properties": {"site_id": "m"}, "geometry": far}]))
    with pytest.raises(SitesError, match="apart; give each part its own site_id"):
        read_sites(f)


@pytest.mark.parametrize("body, message", [
    ("site_id,lon,lat\na,1,2\na,3,4\n", "duplicate site_id 'a'"),
    ("site_id,lon,lat\n../x,1,2\n", "must be 1-64 characters"),
    ("site_id,lon,lat\na,1,abc\n", "lat 'abc' is not a number"),
    ("site_id,lon,lat,radius_m\na,1,2,-5\n", "radius_m -5 must be above 0"),
    ("site_id,lon,lat\na,200,2\n", "longitude 200 is outside"),
    ("site_id,lon,lat\na,500000,4400000\n", "projected coordinates without a CRS?"),
    ("site_id,lon,lat\na,1,2,3\n", "4 fields but the header has 3"),
    ("site_id,lon,lat\na,179.9999,0\n", "crosses the antimeridian"),
    ("name,lon,lat\na,1,2\n", "lacks site_id"),
    ("site_id,lon,lat\n", "no sites in the file"),
])
def test_csv_errors_name_the_record(tmp_path, body, message):
    f = tmp_path / "bad.csv"
    f.write_text(body)
    with pytest.raises(SitesError, match=None) as e:
        read_sites(f)
    assert message in str(e.value) and str(f) in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(SitesError, match="no such sites file"):
        read_sites(tmp_path / "nope.gpkg")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(SitesError, match="unknown sites format"):
        read_sites(tmp_path / "x.xlsx")


# --- properties ---------------------------------------------------------------------------

ids = st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=64)
lons = st.floats(-179.0, 179.0, allow_nan=False)
lats = st.floats(-79.0, 83.0, allow_nan=False)
radii = st.floats(10.0, 5000.0)
names = st.one_of(st.none(), st.text(min_size=1, max_size=40).filter(lambda t: t.strip() == t and "\x00" not in t))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.tuples(ids, names, lons, lats, radii), min_size=1, max_size=5,
                        unique_by=lambda r: r[0]))
def test_valid_records_round_trip_through_geojson(tmp_path, records):
    f = tmp_path / "r.geojson"
    f.write_text(_fc([_feat({"site_id": i, "name": n, "radius_m": r}, Point(x, y)) for i, n, x, y, r in records]),
                 encoding="utf-8")
    sites = read_sites(f)
    assert [s.site_id for s in sites] == [r[0] for r in records]
    for s, (i, n, x, y, r) in zip(sites, records):
        assert isinstance(s, Site) and s.geometry.is_valid and s.name == (n.strip() or None if n else None)
        assert _area_m2(s.geometry) == pytest.approx(math.pi * r * r, rel=0.02)
        assert s.geometry.contains(Point(x, y))


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                           lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=5), c,
                                                                                       max_size=3)), max_leaves=12)
geometries = st.one_of(json_values, st.fixed_dictionaries({
    "type": st.sampled_from(["Point", "Polygon", "MultiPolygon", "LineString", "Nope"]),
    "coordinates": json_values}))
features = st.one_of(json_values, st.fixed_dictionaries({
    "type": st.just("Feature"),
    "properties": st.one_of(json_values, st.fixed_dictionaries({"site_id": json_values, "radius_m": json_values})),
    "geometry": geometries}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(json_values, st.fixed_dictionaries({"type": st.just("FeatureCollection"),
                                                         "features": st.lists(features, max_size=3)})))
def test_garbage_geojson_is_a_sites_error_or_valid(tmp_path, doc):
    f = tmp_path / "g.geojson"
    f.write_text(json.dumps(doc))
    try:
        sites = read_sites(f)
    except SitesError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(s.geometry.is_valid and s.geometry.geom_type == "Polygon" for s in sites)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8"))),
       suffix=st.sampled_from([".csv", ".geojson", ".gpkg", ".json"]))
def test_garbage_bytes_is_a_sites_error(tmp_path, data, suffix):
    f = tmp_path / f"g{suffix}"
    f.write_bytes(b"site_id,lon,lat\n" + data if suffix == ".csv" and data[:1] != b"\x00" else data)
    try:
        read_sites(f)
    except SitesError as exc:
        assert "\n" not in str(exc)
