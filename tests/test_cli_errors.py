"""The CLI's own refusals: one line, exit 2, no traceback, nothing written, on the Prefect path too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

IMAGERY = Path(__file__).resolve().parent / "badinput" / "imagery"
SITE, CATALOG = IMAGERY / "site.geojson", IMAGERY / "all-cloud" / "catalog.json"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sitewatch.cli.main", *args], capture_output=True, text=True,
                          timeout=180)


def _one_line(r: subprocess.CompletedProcess, *words: str) -> None:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr, r.stderr
    assert any(all(w in ln for w in words) for ln in lines), r.stderr


@pytest.mark.parametrize("flow", [[], ["--no-prefect"]], ids=["prefect", "library"])
def test_monitor_refuses_a_db_that_is_not_a_geopackage(tmp_path, flow):
    junk = tmp_path / "findings.gpkg"
    junk.write_bytes(b"\x00\x01not sqlite at all" * 200)
    r = _run("monitor", "--sites", str(SITE), "--imagery", str(CATALOG), "--db", str(junk), *flow)
    assert r.returncode == 2
    _one_line(r, str(junk), "not a GeoPackage")
    assert junk.read_bytes().startswith(b"\x00\x01not sqlite")  # untouched


def test_monitor_refuses_a_db_in_a_missing_folder(tmp_path):
    db = tmp_path / "nowhere" / "f.gpkg"
    r = _run("monitor", "--sites", str(SITE), "--imagery", str(CATALOG), "--db", str(db))
    assert r.returncode == 2 and not db.parent.exists()
    _one_line(r, "does not exist")


def test_since_after_until_is_refused_before_anything_is_written(tmp_path):
    db = tmp_path / "f.gpkg"
    r = _run("monitor", "--sites", str(SITE), "--imagery", str(CATALOG), "--db", str(db), "--since", "2021-01-01",
             "--until", "2020-01-01", "--no-prefect")
    assert r.returncode == 2 and not db.exists()
    _one_line(r, "--since 2021-01-01 is after --until 2020-01-01")


def test_debug_is_accepted_after_the_command_and_shows_the_traceback(tmp_path):
    junk = tmp_path / "f.gpkg"
    junk.write_bytes(b"junk" * 100)
    r = _run("verify", "--db", str(junk), "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr
    r = _run("verify", "--db", str(junk))
    assert r.returncode == 1 and "Traceback" not in r.stderr  # a check that failed, in one line


def test_an_empty_reviewer_name_is_refused(tmp_path):
    from sitewatch.store import Store

    db = tmp_path / "f.gpkg"
    Store(db)
    r = _run("review", "confirm", "det-0000", "--db", str(db), "--reviewer", "  ")
    assert r.returncode == 2
    _one_line(r, "reviewer")


@pytest.mark.parametrize("cmd", [["monitor", "--sites", str(SITE), "--workers", "2"],
                                 ["scan", "--region", "80,40,80.1,40.1", "--cluster", "tcp://127.0.0.1:1", "--no-prefect"]],
                         ids=["monitor-workers", "scan-cluster"])
def test_scaling_out_without_the_dask_extra_is_one_line(tmp_path, cmd):
    """An install without the `dask` extra (make demo's): packages that fail to import, as if absent."""
    shadow = tmp_path / "shadow"
    for name in ("dask", "prefect_dask"):
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(f"raise ImportError('No module named {name}')\n")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}
    db = tmp_path / "f.gpkg"
    args = [*cmd, "--imagery", str(CATALOG), "--db", str(db)]
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", *args], capture_output=True, text=True,
                       timeout=180, env=env)
    assert r.returncode == 2, r.stderr
    _one_line(r, "need", "Dask", "sitewatch[dask]")


def test_monitor_without_prefect_runs_the_library_and_says_so(tmp_path):
    """A core install (`pip install .`) has no Prefect: the run completes on the library path, told on stderr."""
    shadow = tmp_path / "shadow" / "prefect"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named prefect')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    db = tmp_path / "f.gpkg"
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "monitor", "--sites", str(SITE),
                        "--imagery", str(CATALOG), "--db", str(db)], capture_output=True, text=True,
                       timeout=180, env=env)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert sum("Prefect is not installed" in ln for ln in r.stderr.splitlines()) == 1, r.stderr
    from sitewatch.store import Store

    runs = Store(str(db)).runs()
    assert [x.status for x in runs] == ["completed"]
