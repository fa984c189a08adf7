"""notebooks/timeline.ipynb runs top to bottom on a freshly built demo and shows the chart and levels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "timeline.ipynb"


@pytest.mark.skipif(importlib.util.find_spec("sitewatch.testbed.demo") is None,
                    reason="sitewatch.testbed.demo (make_demo) is not written yet; the notebook builds the demo with it")
def test_timeline_notebook_runs(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("TIMELINE_DIR", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs), "metrics chart not displayed"
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("security level" in t for t in tables), "security level table not displayed"
    folder = tmp_path / "timelines" / "demo-compound"
    for name in ("index.html", "metrics.png", "timelapse.gif", "findings.csv", "findings.geojson", "provenance.csv"):
        assert (folder / name).stat().st_size > 0, name
    assert "level" in text and "changes on the timeline" in text
    # the demo compound loses its fences and towers in 2019: the notebook should show that fall
    assert "desecuritisation: level" in text
