"""Shared fixtures. Prefect stays out of unit tests; analytics are off everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Under pytest-xdist (make test) each worker gets its own Prefect home, so two workers never share
# one ephemeral server's SQLite database.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
    os.environ["PREFECT_HOME"] = str(_home / "xdist" / os.environ["PYTEST_XDIST_WORKER"])
    # made here with its parents: Prefect makes only the last folder, and a fresh clone has none of them
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def validate_gpkg(path: Path) -> str:
    """GDAL's GeoPackage validator; returns its output, fails the test on any error or warning."""
    r = subprocess.run([sys.executable, "-m", "osgeo_utils.samples.validate_gpkg", str(path)],
                       capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and not out, f"validate_gpkg failed on {path}:\n{out}"
    return out


@pytest.fixture
def gpkg_valid():
    """The GDAL validator as a function: ``gpkg_valid(path)``."""
    return validate_gpkg


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("reference data ../shared/data not present")
    return SHARED_DATA
