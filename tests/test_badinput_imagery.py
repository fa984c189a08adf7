"""Broken imagery sources: one clear line, a defined exit code, and nothing lost or half-written.

Whole-source problems stop the run before the GeoPackage exists (exit 2); one broken
scene or item is named and the rest stored (exit 1); scenes that show nothing are stored
as unusable and named (exit 0); scenes in other CRSs are simply reprojected.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "badinput" / "imagery"
CASES = json.loads((HERE / "expected.json").read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_imagery(case, tmp_path, gpkg_valid):
    want = CASES[case]
    db = tmp_path / "f.gpkg"
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "monitor", "--sites", str(HERE / "site.geojson"),
                        "--imagery", str(HERE / case), "--db", str(db), "--no-prefect"],
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "━" not in ln]
    assert r.returncode == want["exit"], r.stderr
    assert "Traceback" not in r.stderr
    if want["stderr"]:
        hits = [ln for ln in lines if want["stderr"] in ln]
        assert len(hits) == 1, lines
    else:
        assert not lines, lines
    if want.get("written") is False:
        assert not db.exists()
        assert len(lines) == 1 and lines[0].startswith("sitewatch: error: ")
        return
    gpkg_valid(db)
    con = sqlite3.connect(db)
    status = dict(con.execute("SELECT scene_id, status FROM scenes").fetchall())
    for key in ("observed", "failed", "unusable"):
        for scene in want.get(key, []):
            assert status.get(scene) == key, status
    runs = [s for (s,) in con.execute("SELECT status FROM runs")]
    assert runs == ["partial" if want["exit"] == 1 else "completed"]
