"""Every broken sites file in tests/badinput/sites/ gets exit 2 and one clear stderr line from the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "badinput" / "sites"
EXPECTED: dict[str, str] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def test_corpus_is_complete():
    files = {p.name for p in CORPUS.iterdir() if p.name not in ("expected.json", "make_sites.py")}
    assert len(files) >= 18
    assert files == {k for k in EXPECTED if (CORPUS / k).exists()}
    assert [k for k in EXPECTED if not (CORPUS / k).exists()] == ["does-not-exist.gpkg"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sites_check_refuses(name, tmp_path):
    before = sorted(CORPUS.iterdir())
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "sites", "check", str(CORPUS / name)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert lines[0].startswith("sitewatch: error: ") and str(CORPUS / name) in lines[0]
    assert EXPECTED[name] in lines[0]
    assert sorted(CORPUS.iterdir()) == before and not list(tmp_path.iterdir())  # nothing written


#: A spread of the corpus (text, JSON, CSV, GeoPackage, OSM; ids, geometry, CRS, coordinates)
#: also through ``monitor``, against a findings file that already holds a run: refused before
#: anything is read or written, and the file is left exactly as it was.
THROUGH_MONITOR = ("not-json.geojson", "duplicate-site-id.csv", "path-chars-in-id.csv", "self-intersecting.geojson",
                   "unknown-crs.geojson", "binary-junk.gpkg", "lon-out-of-range.csv", "does-not-exist.gpkg")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A findings GeoPackage with a real run in it (the bad-imagery corpus' good scene)."""
    imagery = HERE / "badinput" / "imagery"
    db = tmp_path_factory.mktemp("stored") / "findings.gpkg"
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "monitor", "--sites",
                        str(imagery / "site.geojson"), "--imagery", str(imagery / "all-cloud"), "--db", str(db),
                        "--no-prefect"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return db, imagery / "all-cloud"


@pytest.mark.parametrize("name", THROUGH_MONITOR)
def test_monitor_refuses_and_keeps_what_is_stored(name, stored, tmp_path):
    db, imagery = stored
    copy = tmp_path / "findings.gpkg"
    copy.write_bytes(db.read_bytes())
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "monitor", "--sites", str(CORPUS / name),
                        "--imagery", str(imagery), "--db", str(copy), "--no-prefect"],
                       capture_output=True, text=True, timeout=60)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert EXPECTED[name] in lines[0] and str(CORPUS / name) in lines[0]
    assert copy.read_bytes() == db.read_bytes()
