"""The importer on the real published lists and on tiny copies with the same quirks; `sites add`."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path

import pyogrio
import pytest
from click.testing import CliRunner
from pyproj import Geod
from shapely.geometry import MultiPolygon, Point, box

from sitewatch.cli.sites import command as sites_cli
from sitewatch.errors import SitesError
from sitewatch.osm import read_osm
from sitewatch.siteimport import BFN_CREDIT, append_site, import_sites, read_bfn, read_table, write_sites
from sitewatch.sites import Site, read_sites
from sitewatch.store import DetectionRecord, Store

GEOD = Geod(ellps="WGS84")
BFN_HEADER = ["id", "Name", "id_sub", "Town", "Prefecture", "lat", "long", "facility type", "corroboration level",
              "ETNAM ", "Shawn Zhang list", "Shawn Zhang #", "ASPI 2020 #", "XJVDB", "Media reports", "Researchers",
              "Links", "Links 2"]


def _bfn_row(i: str, name: str, lon: float, lat: float, link: str = "", town: str = "Ürümqi") -> list[str]:
    return [i, name, "", town, "Ürümqi", repr(lat), repr(lon), "camp", "corroborated", "C_QE01 ", "", "", "12",
            "", "", "", link, ""]


def _bfn_bytes(rows: list[list[str]]) -> bytes:
    """As published: tab-separated, CP850, CRLF, blank rows after the header."""
    lines = ["\t".join(BFN_HEADER), "\t" * (len(BFN_HEADER) - 1), "\t" * (len(BFN_HEADER) - 1)]
    lines += ["\t".join(r) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode("cp850")


DAMAGED = "https://medium.com/@x/satellite-imagery-re-education-Pre-2016 programme - detention centre-4-ab"

# Outline A contains point 1; point 2 is a neighbour 200 m east of A; outline B has only point 3,
# 200 m north of it; relation C (a ring split over two ways) has no point; way D is not closed.
OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6">
 <node id="1" lon="87.998" lat="42.998"/><node id="2" lon="88.002" lat="42.998"/>
 <node id="3" lon="88.002" lat="43.002"/><node id="4" lon="87.998" lat="43.002"/>
 <node id="11" lon="88.998" lat="42.998"/><node id="12" lon="89.002" lat="42.998"/>
 <node id="13" lon="89.002" lat="43.002"/><node id="14" lon="88.998" lat="43.002"/>
 <node id="21" lon="89.998" lat="42.998"/><node id="22" lon="90.002" lat="42.998"/>
 <node id="23" lon="90.002" lat="43.002"/><node id="24" lon="89.998" lat="43.002"/>
 <way id="100"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="1"/>
  <tag k="amenity" v="prison"/><tag k="prison_camp" v="re-education"/>
  <tag k="name" v="甲中心"/><tag k="name:en" v="A Centre"/><tag k="name:zh-Hans" v="甲中心"/></way>
 <way id="200"><nd ref="11"/><nd ref="12"/><nd ref="13"/><nd ref="14"/><nd ref="11"/>
  <tag k="amenity" v="school"/><tag k="prison_camp" v="re-education"/></way>
 <way id="301"><nd ref="21"/><nd ref="22"/><nd ref="23"/></way>
 <way id="302"><nd ref="23"/><nd ref="24"/><nd ref="21"/></way>
 <way id="400"><nd ref="1"/><nd ref="12"/><nd ref="23"/>
  <tag k="amenity" v="prison"/><tag k="prison_camp" v="re-education"/></way>
 <way id="500"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="1"/><tag k="amenity" v="prison"/></way>
 <relation id="900"><member type="way" ref="301" role="outer"/><member type="way" ref="302" role="outer"/>
  <tag k="type" v="multipolygon"/><tag k="amenity" v="prison"/><tag k="prison_camp" v="re-education"/>
  <tag k="name" v="C"/></relation>
</osm>
"""


@pytest.fixture
def quirky(tmp_path: Path) -> dict[str, Path]:
    bfn = tmp_path / "all_locations.csv"
    bfn.write_bytes(_bfn_bytes([
        _bfn_row("1", "A - I", 88.0, 43.0, DAMAGED),
        _bfn_row("2", "A - II", 88.0045, 43.0),
        _bfn_row("3", "B - I", 89.0, 43.0038),
        _bfn_row("4", "Far - I", 91.0, 43.0),
        _bfn_row("", "no id", 91.0, 43.0),
        _bfn_row("6", "bad lat", 91.0, 143.0),
    ]))
    old = tmp_path / "old.csv"
    old.write_text("name_id,id,latitude,longitude,status\nA - I,1,43.0,88.0,corroborated\n"
                   "Gone,7,44.0,92.0,corroborated\n", encoding="utf-8")
    osm = tmp_path / "camps.osm"
    osm.write_text(OSM, encoding="utf-8")
    return {"bfn": bfn, "old": old, "osm": osm}


def test_table_quirks_sniffed(quirky):
    header, rows, enc, delim = read_table(quirky["bfn"])
    assert (enc, delim) == ("cp850", "\t") and "etnam" in header and len(rows) == 6
    recs, skipped, _ = read_bfn(quirky["bfn"])
    assert [r["bfn_id"] for r in recs] == ["1", "2", "3", "4"]
    assert recs[0]["town"] == "Ürümqi" and recs[0]["etnam"] == "C_QE01"
    assert recs[0]["links"] == DAMAGED.replace("Pre-2016 programme - detention centre", "camp")
    assert [s.reason for s in skipped] == ["no id", "no usable lat/long"]


def test_osm_ways_and_multipolygon_relations(quirky):
    outlines, skipped = read_osm(quirky["osm"])
    assert sorted(o.osm_id for o in outlines) == ["relation/900", "way/100", "way/200"]
    assert [(s.record, s.reason) for s in skipped] == [("way 400", "is not a closed ring")]
    rel = next(o for o in outlines if o.osm_id == "relation/900")
    assert rel.polygon.equals(box(89.998, 42.998, 90.002, 43.002))


def test_merge_points_into_outlines(quirky, tmp_path, gpkg_valid):
    rep = import_sites([quirky["bfn"], quirky["old"], quirky["osm"]])
    by = {s.site_id: s for s in rep.sites}
    assert sorted(by) == ["bfn-1", "bfn-2", "bfn-3", "bfn-4", "osm-relation-900"]
    assert by["bfn-1"].properties["geometry_source"] == "osm_outline"
    assert by["bfn-1"].properties["osm_id"] == "way/100" and by["bfn-1"].properties["name_zh"] == "甲中心"
    # the neighbour of an outline someone is inside keeps its own circle; the lone near point takes B
    assert by["bfn-2"].properties["geometry_source"] == "buffered_point"
    assert by["bfn-3"].properties["osm_id"] == "way/200" and "m outside the OSM outline" in by["bfn-3"].notes
    area = abs(GEOD.geometry_area_perimeter(by["bfn-4"].geometry)[0])
    assert area == pytest.approx(math.pi * 500**2, rel=0.01)
    assert rep.matched_points == 2 and rep.matched_outlines == 2 and rep.osm_only == 1
    assert any("withdrawn" in s.reason and s.record == "id 7" for s in rep.skipped)
    assert BFN_CREDIT in by["bfn-4"].properties["attribution"] and "ODbL" in by["bfn-1"].properties["licence"]

    out = write_sites(rep.sites, tmp_path / "out.gpkg", description="test")
    gpkg_valid(out)
    back = {s.site_id: s for s in read_sites(out)}
    assert back.keys() == by.keys()
    assert back["bfn-1"].geometry.equals(by["bfn-1"].geometry) and back["bfn-1"].name == "A - I"
    assert back["bfn-4"].properties["lat"] == 43.0 and back["osm-relation-900"].properties["lat"] is None


def test_generic_sources_pass_through_and_clash(quirky, tmp_path):
    clean = tmp_path / "clean.csv"
    clean.write_text("site_id,name,lon,lat\nmine,Mine,80,40\nbfn-1,clash,80.1,40\n")
    rep = import_sites([quirky["bfn"], clean])
    ids = [s.site_id for s in rep.sites]
    assert "mine" in ids and ids.count("bfn-1") == 1
    assert any(s.reason == "site_id already imported" for s in rep.skipped)
    with pytest.raises(SitesError, match="no such source file"):
        import_sites([tmp_path / "missing.csv"])


def test_cli_import_summary(quirky, tmp_path):
    out = tmp_path / "s.gpkg"
    r = CliRunner().invoke(sites_cli, ["import", str(quirky["bfn"]), str(quirky["osm"]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "2 points matched 2 OSM outlines; 2 points buffered; 1 outlines without a point" in r.output
    assert "skipped all_locations.csv: line 8: no id" in r.output
    assert f"{out}: 5 sites written" in r.output
    assert pyogrio.read_info(out)["features"] == 5


def test_real_lists(shared_data, tmp_path, gpkg_valid):
    d = shared_data / "xinjiang-sites"
    recs, skipped, ncols = read_bfn(d / "210720_all_locations_BFN.csv")
    assert len(recs) == 551 and not skipped and ncols == 20
    assert any(r.get("prefecture") == "Ürümqi" for r in recs)
    assert not any("Pre-2016 programme" in r.get("links", "") for r in recs)
    rep = import_sites([d / "210720_all_locations_BFN.csv", d / "Xinjiang_camps_database_BuzzFeed.csv",
                        d / "reedcamps.osm"])
    assert rep.read["210720_all_locations_BFN.csv"] == 551 and rep.read["reedcamps.osm"] == 110
    assert rep.matched_outlines > 0 and rep.matched_points > 0
    assert len(rep.sites) == 551 + rep.osm_only
    out = write_sites(rep.sites, tmp_path / "x.gpkg")
    gpkg_valid(out)
    assert len(read_sites(out)) == len(rep.sites)


def test_shipped_geopackage_reads_back(gpkg_valid):
    f = Path(__file__).resolve().parents[1] / "geodata" / "xinjiang_sites.gpkg"
    gpkg_valid(f)
    sites = read_sites(f)
    assert len(sites) > 500 and all(s.properties.get("licence") for s in sites)
    assert {s.properties["geometry_source"] for s in sites} == {"osm_outline", "buffered_point"}


# --- sites add --from-detection ------------------------------------------------------------


@pytest.fixture
def findings(tmp_path) -> Path:
    s = Store(tmp_path / "f.gpkg")
    s.upsert_sites([Site("s1", box(88.0, 43.0, 88.01, 43.01), "One", "n")])
    run = s.start_run("scan", {})
    s.save_detections([DetectionRecord(
        detection_id="d1", site_id="s1", kind="building_new", before_date=dt.date(2018, 1, 1),
        after_date=dt.date(2019, 5, 4), before_scene_id="x", after_scene_id="a", area_m2=1200.0, length_m=None,
        score=0.8, geometry=MultiPolygon([box(88.001, 43.001, 88.002, 43.002)]), run_id=run)])
    return s.path


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg"])
def test_add_from_detection(findings, tmp_path, suffix, gpkg_valid):
    sites = tmp_path / f"sites{suffix}"
    if suffix == ".geojson":
        sites.write_text(json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"site_id": "old"}, "geometry": {"type": "Point",
                                                                            "coordinates": [80, 40]}}]}))
    else:
        write_sites([Site("old", box(80, 40, 80.01, 40.01), "Old")], sites)
    args = ["add", "--from-detection", "d1", "--db", str(findings), "--sites", str(sites)]
    r = CliRunner().invoke(sites_cli, args)
    assert r.exit_code == 0, r.output
    new = {s.site_id: s for s in read_sites(sites)}
    assert set(new) == {"old", "site-d1"}
    g = new["site-d1"].geometry
    assert g.contains(box(88.001, 43.001, 88.002, 43.002))
    assert g.contains(Point(88.001, 43.001 - 0.0017)) and not g.contains(Point(88.001, 43.001 - 0.0020))
    assert new["site-d1"].properties["detection_id"] == "d1"
    if suffix == ".gpkg":
        gpkg_valid(sites)
    before = sites.read_bytes()
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "sites", *args], capture_output=True, text=True)
    assert r.returncode == 2 and "already in the file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sites.read_bytes() == before
    r = CliRunner().invoke(sites_cli, [*args, "--site-id", "../evil"])
    assert isinstance(r.exception, SitesError) and sites.read_bytes() == before


def test_add_refuses_csv_and_unknown_detection(findings, tmp_path):
    csv_file = tmp_path / "s.csv"
    csv_file.write_text("site_id,lon,lat\na,80,40\n")
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "sites", "add", "--from-detection", "d1",
                        "--db", str(findings), "--sites", str(csv_file)], capture_output=True, text=True)
    assert r.returncode == 2 and "GeoJSON or GeoPackage" in r.stderr
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "sites", "add", "--from-detection", "nope",
                        "--db", str(findings), "--sites", str(tmp_path / "n.geojson")], capture_output=True, text=True)
    assert r.returncode == 2 and "no detection 'nope'" in r.stderr
    assert not (tmp_path / "n.geojson").exists()
    with pytest.raises(SitesError):
        append_site(csv_file, Site("x", box(0, 0, 1, 1)))
