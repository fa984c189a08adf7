"""Real imagery sources as they really are: recorded Earth Search (v1, v0) and Planetary Computer
responses (shared/data/stac-recorded, from pystac-client's cassettes) replayed on 127.0.0.1 by
tests/servers.py, with COGs written on each asset's own grid (its recorded ``proj:transform``).

The pixels are made here; the metadata is the services' own. What each provider's numbers mean
(the README of the recordings, with the providers' documents): ES v1 ``sentinel-2-l2a`` and ES v0
DN = reflectance x 10000 (offset already removed); ES ``sentinel-2-c1-l2a`` and PC items of
baseline >= 04.00 DN = reflectance x 10000 + 1000; PC 02.12 DN = reflectance x 10000.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point, shape

from sitewatch import catalog
from sitewatch.catalog import discover, probe, scene_from_item
from sitewatch.errors import FetchError, ImageryError
from sitewatch.reader import read_scene
from tests.servers import RECORDED, SasState, localize_assets, recorded, replay_api, write_cog

# the recorded real responses live in ../shared/data beside the repository, like the other reference data
pytestmark = pytest.mark.skipif(not RECORDED.is_dir(), reason=f"recorded STAC responses not present ({RECORDED})")

ES1 = "earth-search-v1/items/sentinel-2-l2a/"
C1 = "earth-search-v1/items/sentinel-2-c1-l2a/"
PC = "planetary-computer/items/sentinel-2-l2a/"
V0 = "earth-search-v0/items/sentinel-s2-l2a-cogs/"
#: Ground reflectance the COGs encode (what a correct read must give back).
TRUE = {"blue": 0.06, "green": 0.09, "red": 0.12, "nir": 0.30, "swir16": 0.25}
KEYS = {"blue": ("blue", "B02"), "green": ("green", "B03"), "red": ("red", "B04"), "nir": ("nir", "B08"),
        "swir16": ("swir16", "B11"), "scl": ("scl", "SCL", "SCL-20m")}


def site_in(item: dict[str, Any], *others: dict[str, Any]) -> Point:
    """A point well inside the item's footprint (and the others')."""
    g = shape(item["geometry"])
    for o in others:
        g = g.intersection(shape(o["geometry"]))
    return g.representative_point()


def write_item_cogs(item: dict[str, Any], root: Path, site: Point, add: int, half_m: float = 800.0) -> None:
    """Each band asset's COG around ``site`` on its own recorded grid: DN = TRUE x 10000 + ``add``."""
    props = item["properties"]
    epsg = props.get("proj:epsg") or int(str(props.get("proj:code")).split(":")[-1])
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(site.x, site.y)
    for band, keys in KEYS.items():
        key = next((k for k in keys if k in item["assets"]), None)
        if key is None:
            continue
        a = item["assets"][key]
        t = a["proj:transform"]
        res = float(t[0])
        c0 = math.floor((x - half_m - t[2]) / res)
        r0 = math.floor((t[5] - (y + half_m)) / res)
        n = int(2 * half_m / res)
        if band == "scl":
            data = np.full((n, n), 4, np.uint8)  # vegetation: clear ground
        else:
            data = np.full((n, n), round(TRUE[band] * 10000 + add), np.uint16)
        href = a["href"]
        dest = root / href.split("://", 1)[1].split("?")[0]
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_cog(dest, data, f"EPSG:{epsg}", Affine(res, 0, t[2] + c0 * res, 0, -res, t[5] - r0 * res),
                  nodata=0)


def _medians(raster) -> dict[str, float]:
    return {b: float(np.nanmedian(np.where(raster.valid, raster.bands[b], np.nan))) for b in raster.bands}


@pytest.fixture
def pc_signing(monkeypatch):
    """PC's token endpoint pointed at the replay server (set per test through ``point``)."""
    from planetary_computer import sas
    from planetary_computer.settings import Settings

    sas.TOKEN_CACHE.clear()

    def point(url: str) -> None:
        monkeypatch.setattr(Settings.get(), "sas_url", url + "/sas/token")

    yield point
    sas.TOKEN_CACHE.clear()


CASES = [  # provider, recorded item, collection, DN offset in the pixels, the rule sitewatch must name
    ("earth-search-v1", ES1 + "S2A_13TDE_20231008_0_L2A.json", "sentinel-2-l2a", 0, "boa_offset_applied=true"),
    ("earth-search-v1", ES1 + "S2B_24MUV_20250731_0_L2A.json", "sentinel-2-l2a", 0, "boa_offset_applied=true"),
    ("earth-search-v1", C1 + "S2B_T24MUV_20250731T130245_L2A.json", "sentinel-2-c1-l2a", 1000, "raster:bands"),
    ("earth-search-v0", V0 + "S2B_20EPT_20250731_0_L2A.json", "sentinel-s2-l2a-cogs", 0, "boa_offset_applied=true"),
    ("planetary-computer", PC + "S2A_MSIL2A_20190101T000001_R116_T60VUK_20201007T214652.json", "sentinel-2-l2a", 0,
     "baseline 02.12 < 04.00"),
    ("planetary-computer", PC + "S2A_MSIL2A_20220807T064401_R034_T39LXC_20220808T140459.json", "sentinel-2-l2a",
     1000, "baseline 04.00 >= 04.00"),
    ("planetary-computer", PC + "S2B_MSIL2A_20240516T144749_R082_T24WWE_20240516T214920.json", "sentinel-2-l2a",
     1000, "baseline 05.10 >= 04.00"),
]


@pytest.mark.parametrize("provider,rel,coll,add,rule", CASES, ids=[c[1].rsplit("/", 1)[-1][:32] for c in CASES])
def test_reflectance_is_right_per_provider_and_baseline(tmp_path, pc_signing, provider, rel, coll, add, rule):
    item = recorded(rel)
    site = site_in(item)
    write_item_cogs(item, tmp_path, site, add)
    pc = provider == "planetary-computer"
    items: list[dict] = []
    sas = SasState() if pc else None
    with replay_api(provider, items, files=tmp_path, sas=sas, sas_hosts=("sentinel2l2a01.blob.core.windows.net",)) \
            as api:
        pc_signing(api.url)
        items.append(localize_assets(item, api.url + "/files"))
        root = api.url + catalog.urlparse(api.url + {"earth-search-v1": "/v1", "earth-search-v0": "/v0",
                                                     "planetary-computer": "/api/stac/v1"}[provider]).path
        aoi = site.buffer(0.002)
        found = discover(root, collection=coll, aoi=aoi)
        assert [s.scene_id for s in found.scenes] == [item["id"]], found.problems
        ref = found.scenes[0]
        raster = read_scene(ref, aoi)
    assert set(raster.bands) >= {"red", "green", "blue", "nir", "swir16"}  # by eo:bands, ES keys or B0x keys
    assert "scl" in ref.assets  # scl, SCL: the clear SCL mask, not the fallback
    med = _medians(raster)
    for band, want in TRUE.items():
        assert med[band] == pytest.approx(want, abs=0.002), (band, med, ref.properties)
    assert rule in ref.properties["offset_rule"]
    assert ref.properties["processing_baseline"] == catalog.processing_baseline(item["properties"], item["id"])
    if pc:
        assert ref.properties.get("signing") == "planetary-computer SAS" and sas.issued >= 1


def test_same_acquisition_in_l2a_and_c1_reads_the_same(tmp_path):
    """S2B 24MUV 2025-07-31 in both ES v1 collections: two encodings, one ground."""
    reads = {}
    for rel, coll, add in ((ES1 + "S2B_24MUV_20250731_0_L2A.json", "sentinel-2-l2a", 0),
                           (C1 + "S2B_T24MUV_20250731T130245_L2A.json", "sentinel-2-c1-l2a", 1000)):
        item = recorded(rel)
        site = site_in(item)
        write_item_cogs(item, tmp_path, site, add)
        items: list[dict] = []
        with replay_api("earth-search-v1", items, files=tmp_path) as api:
            items.append(localize_assets(item, api.url + "/files"))
            found = discover(api.url + "/v1", collection=coll, aoi=site.buffer(0.002))
            reads[coll] = _medians(read_scene(found.scenes[0], site.buffer(0.002)))
    for band in TRUE:
        assert reads["sentinel-2-l2a"][band] == pytest.approx(reads["sentinel-2-c1-l2a"][band], abs=0.002)


@contextmanager
def pc_api(tmp_path: Path, pc_signing, *its: dict[str, Any]):
    """The recorded PC items (COGs written around their sites, DN offset 1000) behind a replayed PC API
    whose blobs need a SAS token from its own token endpoint; yields the server and its token state."""
    for it in its:
        write_item_cogs(it, tmp_path, site_in(it), 1000)
    items: list[dict] = []
    sas = SasState()
    with replay_api("planetary-computer", items, files=tmp_path, sas=sas,
                    sas_hosts=("sentinel2l2a01.blob.core.windows.net",)) as api:
        pc_signing(api.url)
        items.extend(localize_assets(it, api.url + "/files") for it in its)
        yield api, sas


def test_pc_assets_are_signed_and_an_expired_token_is_renewed(tmp_path, pc_signing):
    first_item = recorded(PC + "S2B_MSIL2A_20230420T040549_R047_T53XNH_20230420T063244.json")
    second_item = recorded(PC + "S2B_MSIL2A_20240516T144749_R082_T24WWE_20240516T214920.json")
    sites = [site_in(first_item), site_in(second_item)]
    with pc_api(tmp_path, pc_signing, first_item, second_item) as (api, sas):
        refs = [discover(api.url + "/api/stac/v1", aoi=s.buffer(0.002)).scenes[0] for s in sites]
        assert all(a.sas == "sentinel2l2a01/sentinel2-l2" for a in refs[0].assets.values())  # the collection's msft:*
        read_scene(refs[0], sites[0].buffer(0.002))
        assert sas.issued == 1  # one token for every band
        sas.revoke()  # the token expires (or is revoked) before the next scene is read
        second = read_scene(refs[1], sites[1].buffer(0.002))
        assert sas.issued == 2  # refused once, renewed once
        assert _medians(second)["blue"] == pytest.approx(TRUE["blue"], abs=0.002)
        # unsigned, an asset is a 403 that says what is missing
        import dataclasses

        bare = dataclasses.replace(refs[1], assets={k: dataclasses.replace(a, sas=None, href=a.href + "?x=1")
                                                    for k, a in refs[1].assets.items()})
        with pytest.raises(FetchError, match="403 Forbidden .* needs credentials"):
            read_scene(bare, sites[1].buffer(0.002))
        # a token endpoint that refuses says so, naming the endpoint
        from planetary_computer import sas as pcsas

        pcsas.TOKEN_CACHE.clear()
        api.fail("/sas/token/sentinel2l2a01/sentinel2-l2", "500", times=None)
        fresh = dataclasses.replace(refs[0], assets={k: dataclasses.replace(a, href=a.href + "?y=1")
                                                     for k, a in refs[0].assets.items()})
        with pytest.raises(FetchError, match=r"no SAS token for sentinel2l2a01/sentinel2-l2 from .*/sas/token"):
            read_scene(fresh, sites[0].buffer(0.002))


def test_one_scene_per_acquisition_over_overlapping_tiles(tmp_path):
    """24MUV, 24MVV, 24MUA: one S2B pass in three MGRS tiles, seconds apart; a site where all three overlap."""
    tiles = [recorded(ES1 + f"S2B_{t}_20250731_0_L2A.json") for t in ("24MUV", "24MVV", "24MUA")]
    g = shape(tiles[0]["geometry"])
    for t in tiles[1:]:
        g = g.intersection(shape(t["geometry"]))
    if g.is_empty:  # only pairs overlap: the site is where the first two do
        g = shape(tiles[0]["geometry"]).intersection(shape(tiles[1]["geometry"]))
    site = g.representative_point()
    items: list[dict] = []
    with replay_api("earth-search-v1", items, page_size=2) as api:
        items.extend(localize_assets(t, api.url + "/files") for t in tiles)
        found = discover(api.url + "/v1", aoi=site.buffer(0.001), per_acquisition=True)
        every = discover(api.url + "/v1", aoi=site.buffer(0.001))  # what a region scan gets: every tile
    over = [t["id"] for t in tiles if shape(t["geometry"]).intersects(site.buffer(0.001))]
    assert len(over) >= 2
    assert sorted(s.scene_id for s in every.scenes) == sorted(over)
    assert len(found.scenes) == 1
    chosen = found.scenes[0]
    assert sorted(chosen.properties["acquisition_tiles"].split(",")) == sorted(over)
    assert "covers 100% of the site" in chosen.properties["tile_choice"]


def test_keys_uppercase_scl_and_band_numbers():
    base = "http://x/items/i.json"
    for rel in (V0 + "S2B_20EPT_20250731_0_L2A.json",
                PC + "S2A_MSIL2A_20190101T000001_N0212_R116_T58UFE_20201007T214651.SAFE.json",
                PC + "S2A_MSIL2A_20220807T064401_R034_T39LXC_20220808T140459.json"):
        ref = scene_from_item(recorded(rel), base, "src")
        assert not isinstance(ref, str), ref
        assert {"red", "green", "blue", "nir", "swir16", "scl"} <= set(ref.assets), (rel, set(ref.assets))
        assert ref.assets["scl"].href.split("?")[0].rsplit("/", 1)[-1].upper().startswith(("SCL", "T")), ref.assets
        assert "SCL" in ref.assets["scl"].href.upper()


def test_landsat_is_refused_in_one_line(tmp_path):
    for rel in ("earth-search-v1/items/landsat-c2-l2/LC08_L2SP_033032_20231008_02_T1.json",
                "planetary-computer/items/landsat-c2-l2/LC09_L2SP_084069_20250722_02_T2.json"):
        why = scene_from_item(recorded(rel), "http://x/i.json", "src")
        assert isinstance(why, str) and "Landsat Collection 2 is not supported" in why and "\n" not in why
    with replay_api("planetary-computer") as api:
        with pytest.raises(ImageryError, match="Landsat Collection 2 is not supported") as e:
            probe(api.url + "/api/stac/v1", collection="landsat-c2-l2")
    assert "\n" not in str(e.value)


def test_other_collections_in_a_search_answer_are_filtered():
    """ES v1 answered a two-collection search with a Sentinel-2 and a Landsat item (recorded)."""
    page = recorded("earth-search-v1/search-multiple-collections-page1.json")
    items: list[dict] = []
    with replay_api("earth-search-v1", items, honour_collections=False) as api:
        items.extend(localize_assets(f, api.url + "/files") for f in page["features"])
        pt = Point(-105.1019, 40.1672)
        found = discover(api.url + "/v1", aoi=pt.buffer(0.001), since=dt.date(2023, 10, 8), until=dt.date(2023, 10, 8))
    assert [s.scene_id for s in found.scenes] == ["S2A_13TDE_20231008_0_L2A"]
    assert not found.problems  # the Landsat item is another collection's, not a problem of this one


def test_collection_url_as_imagery_searches_its_api():
    item = recorded(ES1 + "S2B_21PZT_20231110_0_L2A.json")
    items: list[dict] = []
    with replay_api("earth-search-v1", items) as api:
        items.append(localize_assets(item, api.url + "/files"))
        url = api.url + "/v1/collections/sentinel-2-l2a"
        assert probe(url) == "stac-api"
        found = discover(url, aoi=site_in(item).buffer(0.001))
        assert [s.scene_id for s in found.scenes] == [item["id"]] and found.scenes[0].collection == "sentinel-2-l2a"
        with pytest.raises(ImageryError, match="--collection says 'sentinel-2-c1-l2a'"):
            probe(url, collection="sentinel-2-c1-l2a")


def test_v0_api_without_conforms_to_searches_and_pages():
    item = recorded(V0 + "S2B_20EPT_20250731_0_L2A.json")
    items: list[dict] = []
    with replay_api("earth-search-v0", items, page_size=1) as api:
        items.append(localize_assets(item, api.url + "/files"))
        twin = localize_assets(item, api.url + "/files")  # a second page: same item a day later, under another id
        twin["id"] = item["id"].replace("_0_", "_9_")
        twin["properties"] = {**twin["properties"], "datetime": "2025-08-01T13:19:22Z"}
        items.append(twin)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no raw NoConformsTo (or any other) library warning
            assert probe(api.url + "/v0", collection="sentinel-s2-l2a-cogs") == "stac-api"
            found = discover(api.url + "/v0", collection="sentinel-s2-l2a-cogs", aoi=site_in(item).buffer(0.001))
        pages = [r for r in api.seen("/v0/search")]
    assert [s.scene_id for s in found.scenes] == [item["id"], twin["id"]]
    assert len(pages) >= 2


def test_until_includes_the_whole_day_and_intervals_match_by_interval():
    item = recorded(ES1 + "S2A_13TDE_20231008_0_L2A.json")  # 2023-10-08T18:02:55.276Z
    hag = recorded("planetary-computer/items/3dep-lidar-hag/WY_FEMA_East_B9_2019-hag-2m-1-16.json")
    items: list[dict] = []
    with replay_api("earth-search-v1", items) as api:
        items.append(localize_assets(item, api.url + "/files"))
        found = discover(api.url + "/v1", aoi=site_in(item).buffer(0.001), until=dt.date(2023, 10, 8))
        assert [s.scene_id for s in found.scenes] == [item["id"]]
    items2: list[dict] = []
    with replay_api("planetary-computer", items2) as api:
        items2.append(localize_assets(hag, api.url + "/files"))
        found = discover(api.url + "/api/stac/v1", collection="3dep-lidar-hag", aoi=site_in(hag).buffer(0.001),
                         since=dt.date(2019, 6, 1), until=dt.date(2019, 6, 30))
    # matched by its 2019 interval (then named: it has no bands), not dropped for its null datetime
    assert any("WY_FEMA_East_B9_2019-hag-2m-1-16" in p and "no usable bands" in p for p in found.problems)
    start, end = (catalog._parse_time(hag["properties"][k]) for k in ("start_datetime", "end_datetime"))
    june = (dt.date(2019, 6, 1), dt.date(2019, 6, 30))
    assert catalog._in_range(start, *june, end) and not catalog._in_range(start, *june)


def _sites_file(path: Path, site_id: str, pt: Point, radius_m: int = 300) -> Path:
    path.write_text(f"site_id,name,lon,lat,radius_m\n{site_id},t,{pt.x:.6f},{pt.y:.6f},{radius_m}\n")
    return path


def test_overcast_items_are_stored_unusable_without_a_read(tmp_path, monkeypatch):
    """37WDS 2024-04-19 says eo:cloud_cover 89.5 %: with the limit below that, it is not read."""
    from sitewatch import monitor as mon
    from sitewatch.store import Store

    monkeypatch.setattr(catalog, "MAX_CLOUD_COVER", 80.0)
    item = recorded(ES1 + "S2A_37WDS_20240419_0_L2A.json")
    site = site_in(item)
    write_item_cogs(item, tmp_path / "files", site, 0)
    items: list[dict] = []
    with replay_api("earth-search-v1", items, files=tmp_path / "files") as api:
        items.append(localize_assets(item, api.url + "/files"))
        params = mon.MonitorParams(sites=str(_sites_file(tmp_path / "s.csv", "wds", site)), imagery=api.url + "/v1",
                                   db=str(tmp_path / "f.gpkg"))
        first = mon.run(params).as_dict()
        second = mon.run(params).as_dict()
        file_reads = [r for r in api.seen() if r.path.startswith("/files/")]
    assert first["scenes_unusable"] == 1 and first["scenes_failed"] == 0
    assert "eo:cloud_cover 89.5018% > 80%" in first["unusable"][0]
    assert file_reads == []  # judged from the catalog alone
    stored = Store(tmp_path / "f.gpkg").scenes("wds")
    assert [(s.scene_id, s.status) for s in stored] == [(item["id"], "unusable")] and "overcast" in stored[0].error
    assert second["scenes_found"] == 1 and second["scenes_unusable"] == 0  # not judged again


def test_a_tenth_step_in_a_sites_series_is_warned(tmp_path):
    """The same acquisition read right (c1: the offset applied) and as the bug read it (offset left out)."""
    import dataclasses

    from sitewatch.monitor import reflectance_steps, scene_record
    from sitewatch.sites import Site

    item = recorded(C1 + "S2B_T24MUV_20250731T130245_L2A.json")
    site_pt = site_in(item)
    write_item_cogs(item, tmp_path, site_pt, 1000)
    items: list[dict] = []
    aoi = site_pt.buffer(0.002)
    with replay_api("earth-search-v1", items, files=tmp_path) as api:
        items.append(localize_assets(item, api.url + "/files"))
        ref = discover(api.url + "/v1", collection="sentinel-2-c1-l2a", aoi=aoi).scenes[0]
        right = read_scene(ref, aoi)
        wrong_ref = dataclasses.replace(ref, scene_id=ref.scene_id + "_nooffset",
                                        acquired=ref.acquired + dt.timedelta(days=5),
                                        assets={k: dataclasses.replace(a, offset=0.0) for k, a in ref.assets.items()})
        wrong = read_scene(wrong_ref, aoi)
        again_ref = dataclasses.replace(ref, scene_id=ref.scene_id + "_again", acquired=ref.acquired + dt.timedelta(days=10))
        again = read_scene(again_ref, aoi)
    site = Site("s", aoi)
    recs = [scene_record(site, r.scene, "run", r) for r in (right, wrong, again)]
    steps = reflectance_steps(recs)
    assert len(steps) == 2 and "+0.10" in steps[0] and "-0.10" in steps[1], steps
    assert reflectance_steps([recs[0], recs[2]]) == []  # two right reads: no step
    assert reflectance_steps(recs, new={recs[2].scene_id}) == [steps[1]]  # each step told once


def test_monitor_stores_one_scene_per_acquisition_and_adds_no_other_tile_later(tmp_path):
    from sitewatch import monitor as mon
    from sitewatch.store import Store

    tiles = [recorded(ES1 + f"S2B_{t}_20250731_0_L2A.json") for t in ("24MUV", "24MVV")]
    site = site_in(*tiles)
    for t in tiles:
        write_item_cogs(t, tmp_path / "files", site, 0)
    items: list[dict] = []
    with replay_api("earth-search-v1", items, files=tmp_path / "files") as api:
        items.extend(localize_assets(t, api.url + "/files") for t in tiles)
        params = mon.MonitorParams(sites=str(_sites_file(tmp_path / "s.csv", "ovl", site, 200)),
                                   imagery=api.url + "/v1", db=str(tmp_path / "f.gpkg"))
        first = mon.run(params).as_dict()
        stored = Store(tmp_path / "f.gpkg").scenes("ovl")
        assert first["scenes_found"] == 1 and len(stored) == 1 and stored[0].status == "observed", first
        assert sorted(stored[0].properties["acquisition_tiles"].split(",")) == sorted(t["id"] for t in tiles)
        assert stored[0].properties["offset_rule"].startswith("boa_offset_applied=true")
        # the catalog later lists only the other tile (the chosen one withdrawn): still the same acquisition
        other = next(t for t in tiles if t["id"] != stored[0].scene_id)
        items[:] = [localize_assets(other, api.url + "/files")]
        second = mon.run(params).as_dict()
    assert second["scenes_new"] == 0 and len(Store(tmp_path / "f.gpkg").scenes("ovl")) == 1


def test_recorded_pc_hrefs_are_signed_by_their_blob_account():
    ref = scene_from_item(recorded(PC + "S2A_MSIL2A_20220807T064401_R034_T39LXC_20220808T140459.json"),
                          "https://planetarycomputer.microsoft.com/api/stac/v1/x", "pc")
    assert not isinstance(ref, str)
    assert {a.sas for a in ref.assets.values()} == {"sentinel2l2a01/sentinel2-l2"}
    es = scene_from_item(recorded(ES1 + "S2A_13TDE_20231008_0_L2A.json"), "https://e/x", "es")
    assert not isinstance(es, str) and {a.sas for a in es.assets.values()} == {None}


@pytest.mark.parametrize("imagery_path,collection,message", [
    ("/api/stac/v1", "landsat-c2-l2", "Landsat Collection 2 is not supported"),
    ("/api/stac/v1/collections/sentinel-2-l2a", "landsat-c2-l2", "--collection says 'landsat-c2-l2'"),
])
def test_cli_refuses_in_one_line(tmp_path, imagery_path, collection, message):
    import os
    import subprocess
    import sys

    sites = _sites_file(tmp_path / "s.csv", "a", Point(52.8, -15.7))
    with replay_api("planetary-computer") as api:
        r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "monitor", "--sites", str(sites),
                            "--imagery", api.url + imagery_path, "--collection", collection,
                            "--db", str(tmp_path / "f.gpkg"), "--no-prefect"],
                           capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "f.gpkg").exists()


def test_scan_reads_pc_assets_signed(tmp_path, pc_signing):
    """The region scan opens its own datasets: a PC asset is signed there too (unsigned it is a 403)."""
    import rasterio

    from sitewatch.scan import datasets

    item = recorded(PC + "S2B_MSIL2A_20240516T144749_R082_T24WWE_20240516T214920.json")
    site = site_in(item)
    with pc_api(tmp_path, pc_signing, item) as (api, sas):
        red = discover(api.url + "/api/stac/v1", aoi=site.buffer(0.002)).scenes[0].assets["red"]
        local = tmp_path / item["assets"]["B04"]["href"].split("://", 1)[1].split("?")[0]
        with rasterio.open(local) as ds:
            want = ds.read(1, window=((0, 16), (0, 16)))
            transform = ds.transform
        datasets._LOCAL.datasets.clear()
        with datasets.scan_env():  # the settings the scan's workers read under
            got, _, native = datasets.read_window(red.href, red.band, transform, 16, 16, red.sas)
        assert native and sas.issued >= 1
        assert np.array_equal(got, want)
        datasets._LOCAL.datasets.clear()
        with datasets.scan_env(), pytest.raises(rasterio.errors.RasterioIOError, match="403"):
            datasets.read_window(red.href + "?unsigned=1", red.band, transform, 16, 16)
        datasets._LOCAL.datasets.clear()
