"""Discovery from the three imagery sources, band mapping, filtering, and probe's one-line errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from servers import earth_search_item, serve_dir, stac_api, write_cog
from shapely.geometry import box

from sitewatch.catalog import discover, probe
from sitewatch.errors import ImageryError, SceneError

AOI = box(87.60, 43.80, 87.63, 43.82)  # ~2.4 x 2.2 km near Urumqi (UTM 45N)
OVER = (87.0, 43.5, 88.2, 44.3)
AWAY = (75.0, 39.0, 76.0, 40.0)
ES_KEYS = ("red", "green", "blue", "nir", "swir16", "scl")


def _es(item_id: str, when: str, bbox=OVER, **kw) -> dict:
    return earth_search_item(item_id, when, bbox, {k: f"./{item_id}_{k}.tif" for k in ES_KEYS}, **kw)


def _by_common_name(item_id: str, when: str, jp2_first: bool = False) -> dict:
    """Assets keyed by band id (B04...), found only through eo:bands common_name, and a multi-band file."""
    it = earth_search_item(item_id, when, OVER, {})
    for key, cn in (("B04", "red"), ("B03", "green"), ("B02", "blue")):
        if jp2_first:
            it["assets"][key + "-jp2"] = {"href": f"./{key}.jp2", "type": "image/jp2",
                                          "eo:bands": [{"name": key, "common_name": cn}]}
        it["assets"][key] = {"href": f"./{key}.tif", "type": "image/tiff; application=geotiff",
                             "eo:bands": [{"name": key, "common_name": cn}],
                             "raster:bands": [{"scale": 0.0002, "offset": 0.0}]}
    it["assets"]["extra"] = {"href": "./nir_swir.tif", "type": "image/tiff",
                             "eo:bands": [{"name": "B08", "common_name": "nir"}, {"name": "B11", "common_name": "swir16"}]}
    return it


def _bare_keys(item_id: str, when: str) -> dict:
    """Earth Search keys only: no eo:bands, no raster:bands."""
    it = earth_search_item(item_id, when, OVER, {})
    it["assets"] = {k: {"href": f"./{k}.tif"} for k in ("red", "green", "blue", "scl")}
    return it


def _no_bands(item_id: str, when: str) -> dict:
    it = earth_search_item(item_id, when, OVER, {})
    it["assets"] = {"thumbnail": {"href": "./thumb.jpg"}, "metadata": {"href": "./meta.xml"}}
    return it


def write_static(root: Path, items: list[dict]) -> Path:
    """catalog.json -> collection -> items, relative links, as pystac writes self-contained catalogs."""
    (root / "s2").mkdir(parents=True)
    links = [{"rel": "root", "href": "./catalog.json"}, {"rel": "child", "href": "./s2/collection.json"}]
    (root / "catalog.json").write_text(json.dumps({"type": "Catalog", "stac_version": "1.0.0", "id": "root",
                                                   "description": "test", "links": links}))
    clinks = [{"rel": "root", "href": "../catalog.json"}, {"rel": "parent", "href": "../catalog.json"}]
    for it in items:
        d = root / "s2" / it["id"]
        d.mkdir()
        it = {**it, "links": [{"rel": "root", "href": "../../catalog.json"}]}
        (d / f"{it['id']}.json").write_text(json.dumps(it))
        clinks.append({"rel": "item", "href": f"./{it['id']}/{it['id']}.json"})
    (root / "s2" / "collection.json").write_text(json.dumps({
        "type": "Collection", "stac_version": "1.0.0", "id": "sentinel-2-l2a", "description": "t", "license": "CC-BY-4.0",
        "extent": {"spatial": {"bbox": [list(OVER)]}, "temporal": {"interval": [[None, None]]}}, "links": clinks}))
    return root / "catalog.json"


ITEMS = [
    _es("S2A_0301", "2024-03-01T05:10:00Z"),
    _by_common_name("S2B_0501", "2024-05-01T05:10:00Z"),
    _es("S2A_0401_far", "2024-04-01T05:10:00Z", bbox=AWAY),
    _es("S2A_1201", "2023-12-01T05:10:00Z"),
    _bare_keys("S2A_0601", "2024-06-01T05:10:00Z"),
    _es("S2A_0501", "2024-05-01T05:10:00Z"),
]


@pytest.fixture
def static_catalog(tmp_path) -> Path:
    return write_static(tmp_path / "cat", ITEMS + [_no_bands("S2X_nobands", "2024-04-15T00:00:00Z")])


def test_static_local_filters_sorts_and_maps(static_catalog):
    assert probe(str(static_catalog)) == "static"
    found = discover(str(static_catalog), aoi=AOI, since=dt.date(2024, 1, 1))
    ids = [s.scene_id for s in found.scenes]
    assert ids == ["S2A_0301", "S2A_0501", "S2B_0501", "S2A_0601"]  # by (acquired, scene_id); far and old ones out
    first = found.scenes[0]
    assert first.source == str(static_catalog) and first.collection == "sentinel-2-l2a"
    assert first.acquired == dt.datetime(2024, 3, 1, 5, 10, tzinfo=dt.timezone.utc)
    assert set(first.assets) == set(ES_KEYS)
    red = first.assets["red"]
    assert Path(red.href).is_absolute() and red.href == str(static_catalog.parent / "s2" / "S2A_0301" / "S2A_0301_red.tif")
    assert (red.band, red.scale, red.offset) == (1, 0.0001, -0.1)
    assert first.assets["scl"].scale == 1.0
    assert first.gsd_m == 10.0 and first.footprint is not None and first.footprint.contains(AOI)
    assert first.href.endswith("S2A_0301.json")
    props = dict(first.properties)
    assert props["platform"] == "sentinel-2a" and props["eo:cloud_cover"] == 5.0 and props["proj:epsg"] == 32645
    assert "s2:unused" not in props
    json.dumps(props)


def test_band_mapping_prefers_cog_over_jp2_twin(tmp_path):
    cat = write_static(tmp_path / "c", [_by_common_name("J", "2024-01-01T00:00:00Z", jp2_first=True)])
    (s,) = discover(str(cat), aoi=AOI).scenes
    assert s.assets["red"].href.endswith("B04.tif")


def test_band_mapping_by_common_name_and_band_indexes(static_catalog):
    s = next(x for x in discover(str(static_catalog), aoi=AOI).scenes if x.scene_id == "S2B_0501")
    assert s.assets["red"].href.endswith("B04.tif") and s.assets["red"].scale == 0.0002
    assert s.assets["green"].href.endswith("B03.tif") and s.assets["blue"].href.endswith("B02.tif")
    assert (Path(s.assets["nir"].href).name, s.assets["nir"].band) == ("nir_swir.tif", 1)
    assert (Path(s.assets["swir16"].href).name, s.assets["swir16"].band) == ("nir_swir.tif", 2)


def test_band_mapping_by_asset_key(static_catalog):
    s = next(x for x in discover(str(static_catalog), aoi=AOI).scenes if x.scene_id == "S2A_0601")
    assert set(s.assets) == {"red", "green", "blue", "scl"}
    assert s.assets["red"].href.endswith("S2A_0601/red.tif") and s.assets["red"].scale == 1.0  # reader scales by dtype


def test_visual_asset_gives_rgb(tmp_path):
    it = earth_search_item("V1", "2024-02-02T00:00:00Z", OVER, {"visual": "./TCI.tif"})
    cat = write_static(tmp_path / "c", [it])
    (s,) = discover(str(cat), aoi=AOI).scenes
    assert {k: v.band for k, v in s.assets.items()} == {"red": 1, "green": 2, "blue": 3}
    assert len({v.href for v in s.assets.values()}) == 1


def test_item_without_bands_is_named_not_dropped(static_catalog):
    found = discover(str(static_catalog), aoi=AOI)
    assert "S2X_nobands" not in [s.scene_id for s in found.scenes]
    (p,) = found.problems
    assert "S2X_nobands" in p and "no usable bands" in p and "\n" not in p


def test_until_is_inclusive(static_catalog):
    found = discover(str(static_catalog), aoi=AOI, since=dt.date(2024, 5, 1), until=dt.date(2024, 5, 1))
    assert [s.scene_id for s in found.scenes] == ["S2A_0501", "S2B_0501"]


def test_item_geometry_outside_aoi_though_bbox_overlaps(tmp_path):
    it = _es("L", "2024-01-01T00:00:00Z")
    it["geometry"] = {"type": "Polygon", "coordinates": [[[87.0, 43.5], [87.5, 43.5], [87.5, 44.3], [87.0, 43.5]]]}
    assert discover(str(write_static(tmp_path / "c", [it])), aoi=AOI).scenes == []


def test_static_over_http_uses_urls(static_catalog):
    with serve_dir(static_catalog.parent) as srv:
        url = srv.url + "/catalog.json"
        assert probe(url) == "static"
        found = discover(url, aoi=AOI, since=dt.date(2024, 1, 1))
        assert [s.scene_id for s in found.scenes] == ["S2A_0301", "S2A_0501", "S2B_0501", "S2A_0601"]
        red = found.scenes[0].assets["red"].href
        assert red == srv.url + "/s2/S2A_0301/S2A_0301_red.tif"
        assert found.scenes[0].source == url
        assert any(r.path == "/s2/collection.json" for r in srv.seen())


def test_static_over_http_survives_a_flaky_server(static_catalog, monkeypatch):
    from sitewatch import httpio

    monkeypatch.setattr(httpio, "BACKOFF_S", 0.01)
    with serve_dir(static_catalog.parent) as srv:
        srv.fail("/s2/collection.json", "500", times=2)
        found = discover(srv.url + "/catalog.json", aoi=AOI)
        assert len(found.scenes) == 5 and len(srv.seen("/s2/collection.json")) == 3


# --- STAC API ------------------------------------------------------------------------------------


def _api_items(n: int = 7) -> list[dict]:
    out = [_es(f"S2A_{i:02d}", f"2024-0{1 + i % 6}-{10 + i}T05:00:00Z", self_href=f"http://x/items/S2A_{i:02d}")
           for i in range(n)]
    out.append(_es("S2A_far", "2024-03-03T05:00:00Z", bbox=AWAY))
    other = _es("S2C1_0", "2024-03-04T05:00:00Z")
    other["collection"] = "sentinel-2-c1-l2a"
    return [*out, other]


def test_stac_api_pages_and_filters():
    with stac_api(_api_items(), ["sentinel-2-l2a", "sentinel-2-c1-l2a"], max_limit=3) as api:
        assert probe(api.url) == "stac-api"
        found = discover(api.url, aoi=AOI)
        searches = api.seen("/search")
    ids = [s.scene_id for s in found.scenes]
    assert sorted(ids) == [f"S2A_{i:02d}" for i in range(7)]  # not the far one, not the other collection
    assert ids == [s.scene_id for s in sorted(found.scenes, key=lambda s: (s.acquired, s.scene_id))]
    assert len(searches) >= 3  # 7 items, 3 a page
    s = found.scenes[0]
    assert s.collection == "sentinel-2-l2a" and s.source == api.url and s.href.startswith("http://x/items/")
    assert s.assets["red"].scale == 0.0001 and s.assets["red"].offset == -0.1


def test_stac_api_date_range_and_search_url():
    with stac_api(_api_items(), max_limit=2) as api:
        found = discover(api.url + "/search", aoi=AOI, since=dt.date(2024, 2, 1), until=dt.date(2024, 3, 31))
    assert {s.date.month for s in found.scenes} == {2, 3} and found.scenes


def test_stac_api_named_collection():
    with stac_api(_api_items(), ["sentinel-2-l2a", "sentinel-2-c1-l2a"]) as api:
        assert probe(api.url, collection="sentinel-2-c1-l2a") == "stac-api"
        found = discover(api.url, collection="sentinel-2-c1-l2a", aoi=AOI)
    assert [s.scene_id for s in found.scenes] == ["S2C1_0"]


def test_stac_api_unknown_collection_is_an_input_error():
    with stac_api(_api_items()) as api:
        with pytest.raises(ImageryError) as e:
            probe(api.url, collection="nope-l9")
    assert "nope-l9" in str(e.value) and api.url in str(e.value) and "\n" not in str(e.value)


def test_stac_api_down_is_a_fetch_error(monkeypatch):
    monkeypatch.setenv("SITEWATCH_HTTP_RETRIES", "1")
    monkeypatch.setenv("SITEWATCH_HTTP_TIMEOUT", "2")
    with stac_api(_api_items()) as api:
        api.fail("/search", "500", times=None)
        with pytest.raises(SceneError) as e:
            discover(api.url, aoi=AOI)
    assert api.url in str(e.value) and "\n" not in str(e.value)


# --- folder of GeoTIFFs ----------------------------------------------------------------------------


def _tif(path: Path, n: int = 3, *, tags=None, descriptions=None, crs="EPSG:32645", x0=548_500.0, y0=4_851_500.0):
    data = np.full((n, 64, 64), 1000, dtype="uint16")
    return write_cog(path, data, crs, Affine(10, 0, x0, 0, -10, y0), tags=tags, descriptions=descriptions)


def test_folder_dates_bands_and_footprints(tmp_path):
    d = tmp_path / "tifs"
    d.mkdir()
    _tif(d / "scene_a.tif", 4, tags={"TIFFTAG_DATETIME": "2024:05:06 05:12:13"})
    _tif(d / "b_20240301.tif", 3)
    _tif(d / "c-2024-04-02.tif", 4, descriptions=["nir", "red", "green", "blue"])
    _tif(d / "far_2024-04-03.tif", 3, x0=200_000.0, y0=4_000_000.0)
    _tif(d / "nodate.tif", 3)
    assert probe(str(d)) == "folder"
    found = discover(str(d), aoi=AOI)
    assert [s.scene_id for s in found.scenes] == ["b_20240301", "c-2024-04-02", "scene_a"]
    b, c, a = found.scenes
    assert a.acquired == dt.datetime(2024, 5, 6, 5, 12, 13, tzinfo=dt.timezone.utc)
    assert {k: v.band for k, v in a.assets.items()} == {"red": 1, "green": 2, "blue": 3, "nir": 4}
    assert {k: v.band for k, v in c.assets.items()} == {"nir": 1, "red": 2, "green": 3, "blue": 4}
    assert set(b.assets) == {"red", "green", "blue"} and b.date == dt.date(2024, 3, 1)
    assert a.footprint is not None and a.footprint.intersects(AOI) and a.gsd_m == 10.0
    assert a.source == str(d) and a.href == str(d / "scene_a.tif")
    assert any("nodate" in p and "no date" in p for p in found.problems)
    assert discover(str(d), aoi=AOI, since=dt.date(2024, 4, 1), until=dt.date(2024, 4, 30)).scenes[0].scene_id \
        == "c-2024-04-02"


def test_folder_in_geographic_crs(tmp_path):
    d = tmp_path / "g"
    d.mkdir()
    write_cog(d / "g_2024-01-01.tif", np.ones((3, 50, 50), "uint8"), "EPSG:4326",
              Affine(0.001, 0, 87.59, 0, -0.001, 43.83))
    (s,) = discover(str(d), aoi=AOI).scenes
    assert s.footprint.bounds == pytest.approx((87.59, 43.78, 87.64, 43.83))


# --- probe errors ------------------------------------------------------------------------------------


def _one_line_naming(exc: pytest.ExceptionInfo, where: str) -> str:
    msg = str(exc.value)
    assert where in msg and "\n" not in msg and "Traceback" not in msg
    assert exc.value.exit_code == 2
    return msg


def test_probe_missing_path(tmp_path):
    p = str(tmp_path / "nowhere" / "catalog.json")
    with pytest.raises(ImageryError) as e:
        probe(p)
    assert "no such file" in _one_line_naming(e, p)


def test_probe_broken_json(tmp_path):
    p = tmp_path / "catalog.json"
    p.write_text('{"type": "Catalog", "links": [')
    with pytest.raises(ImageryError) as e:
        probe(str(p))
    assert "broken JSON" in _one_line_naming(e, str(p))


def test_probe_json_that_is_not_stac(tmp_path):
    p = tmp_path / "catalog.json"
    p.write_text('{"hello": "world"}')
    with pytest.raises(ImageryError) as e:
        probe(str(p))
    assert "not a STAC" in _one_line_naming(e, str(p))


def test_probe_binary_file(tmp_path):
    p = tmp_path / "catalog.json"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ImageryError) as e:
        probe(str(p))
    _one_line_naming(e, str(p))


def test_probe_empty_folder(tmp_path):
    with pytest.raises(ImageryError) as e:
        probe(str(tmp_path))
    assert "no GeoTIFF" in _one_line_naming(e, str(tmp_path))


def test_probe_folder_with_catalog_is_static(static_catalog):
    assert probe(str(static_catalog.parent)) == "static"
    assert len(discover(str(static_catalog.parent), aoi=AOI).scenes) == 5


def test_probe_http_not_json(tmp_path):
    (tmp_path / "catalog.json").write_text("<html>404 but 200</html>")
    with serve_dir(tmp_path) as srv:
        url = srv.url + "/catalog.json"
        with pytest.raises(ImageryError) as e:
            probe(url)
    _one_line_naming(e, url)


def test_stac_api_recovers_from_two_500s_and_a_429(monkeypatch):
    from sitewatch import httpio

    monkeypatch.setattr(httpio, "BACKOFF_S", 0.05)
    with stac_api(_api_items(), max_limit=3) as api:
        api.fail("/search", "500", times=2)
        found = discover(api.url, aoi=AOI)
        assert len(found.scenes) == 7
        api.fail("/search", "429", times=1, retry_after=1)  # RFC 9110: whole seconds
        assert len(discover(api.url, aoi=AOI).scenes) == 7


def test_static_broken_child_link_is_named_and_the_rest_kept(tmp_path):
    cat = write_static(tmp_path / "c", [_es("A", "2024-01-01T00:00:00Z")])
    doc = json.loads(cat.read_text())
    doc["links"].append({"rel": "child", "href": "./gone/collection.json"})
    cat.write_text(json.dumps(doc))
    with serve_dir(cat.parent) as srv:
        found = discover(srv.url + "/catalog.json", aoi=AOI)
    assert [s.scene_id for s in found.scenes] == ["A"]
    (p,) = found.problems
    assert "gone/collection.json" in p and "404" in p and "\n" not in p


def test_folder_one_file_per_band(tmp_path):
    d = tmp_path / "bands"
    d.mkdir()
    for b in ("red", "green", "blue", "nir", "scl"):
        _tif(d / f"S1_20240301_{b}.tif", 1)
    (s,) = discover(str(d), aoi=AOI).scenes
    assert s.scene_id == "S1_20240301" and set(s.assets) == {"red", "green", "blue", "nir", "scl"}
    assert Path(s.assets["scl"].href).name == "S1_20240301_scl.tif" and s.assets["scl"].band == 1


def test_folder_unreadable_tiff_is_named(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    _tif(d / "ok_2024-01-01.tif", 3)
    (d / "bad_2024-01-02.tif").write_text("<html>not a tiff</html>")
    found = discover(str(d), aoi=AOI)
    assert [s.scene_id for s in found.scenes] == ["ok_2024-01-01"]
    (p,) = found.problems
    assert "bad_2024-01-02.tif" in p and "\n" not in p


def test_item_dates_start_datetime_and_unusable(tmp_path):
    a = _es("A", "2024-01-01T00:00:00Z")
    a["properties"]["datetime"] = None
    a["properties"]["start_datetime"] = "2024-02-03T04:05:06Z"
    b = _es("B", "2024-01-01T00:00:00Z")
    b["properties"]["datetime"] = "yesterday"
    found = discover(str(write_static(tmp_path / "c", [a, b])), aoi=AOI)
    (s,) = found.scenes
    assert s.scene_id == "A" and s.acquired == dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    (p,) = found.problems
    assert "B" in p and "datetime" in p


def test_gsd_from_red_asset_metadata(tmp_path):
    it = _es("A", "2024-01-01T00:00:00Z")
    del it["properties"]["gsd"]
    it["assets"]["red"]["raster:bands"][0]["spatial_resolution"] = 10
    it["assets"]["scl"]["gsd"] = 20
    (s,) = discover(str(write_static(tmp_path / "c", [it])), aoi=AOI).scenes
    assert s.gsd_m == 10.0


def test_item_collection_field_wins(tmp_path):
    it = _es("A", "2024-01-01T00:00:00Z", collection="sentinel-2-c1-l2a")
    (s,) = discover(str(write_static(tmp_path / "c", [it])), aoi=AOI).scenes
    assert s.collection == "sentinel-2-c1-l2a"


def test_static_catalog_collection_is_a_filter_and_an_unknown_one_is_refused(tmp_path):
    """A static catalog of two collections: --collection reads only that one; a misspelled one is
    refused in one line naming the collections there are (it used to be ignored: everything read)."""
    a = write_static(tmp_path / "a", [_es("S2A_0301", "2024-03-01T05:10:00Z")])
    b = write_static(tmp_path / "b", [_es("S2B_0302", "2024-03-02T05:10:00Z", collection="sentinel-2-c1-l2a")])
    coll = b.parent / "s2" / "collection.json"
    coll.write_text(coll.read_text().replace('"id": "sentinel-2-l2a"', '"id": "sentinel-2-c1-l2a"'))
    top = tmp_path / "catalog.json"
    top.write_text(json.dumps({"type": "Catalog", "stac_version": "1.0.0", "id": "top", "description": "t",
                               "links": [{"rel": "child", "href": "./a/catalog.json"},
                                         {"rel": "child", "href": "./b/catalog.json"}]}))
    assert [s.scene_id for s in discover(str(top), aoi=AOI).scenes] == ["S2A_0301", "S2B_0302"]
    assert probe(str(top), collection="sentinel-2-c1-l2a") == "static"
    assert [s.scene_id for s in discover(str(top), collection="sentinel-2-c1-l2a", aoi=AOI).scenes] == ["S2B_0302"]
    assert [s.scene_id for s in discover(str(a), collection="sentinel-2-l2a", aoi=AOI).scenes] == ["S2A_0301"]
    with pytest.raises(ImageryError) as exc:
        probe(str(top), collection="sentinel-2-l2A")
    line = _one_line_naming(exc, str(top))
    assert "'sentinel-2-l2A'" in line and "sentinel-2-c1-l2a, sentinel-2-l2a" in line
    with pytest.raises(ImageryError, match="'nope' is not in this static catalog"):
        discover(str(top), collection="nope", aoi=AOI)
    folder = tmp_path / "tifs"
    folder.mkdir()
    _tif(folder / "S2_2024-03-01.tif")
    with pytest.raises(ImageryError, match="has no collections"):
        probe(str(folder), collection="sentinel-2-l2a")
