"""The worked notebooks run top to bottom: the demo map on a freshly built demo, and the
Earth Search notebook offline against a local STAC API in Earth Search's shape."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
GEODATA = Path(__file__).resolve().parents[1] / "geodata" / "xinjiang_sites.gpkg"


def _run(name: str, cwd: Path) -> tuple[list[dict], str]:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs) + "".join(
        o.get("data", {}).get("text/plain", "") for o in outputs)
    return outputs, text


@pytest.mark.parametrize("name", ["demo_map.ipynb"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_DIR", str(tmp_path))
    _, text = _run(name, tmp_path)
    assert "detections drawn" in text
    assert "metrics over time: 7 scenes" in text
    assert "building_new" in text, "the detections table"
    assert (tmp_path / "demo-compound_map.png").stat().st_size > 10_000
    assert (tmp_path / "demo-compound_metrics.png").stat().st_size > 5_000


def _xinjiang_series(out: Path):
    """Synthetic Sentinel-2-like scenes over the notebook's two real sites, one 2024 season: the demo's
    10 m site moved onto each (its halls appear between the second and third scene)."""
    import sitewatch
    from sitewatch.testbed.demo import demo_sites, write_series

    sites = sitewatch.read_sites(GEODATA).set_index("site_id")
    s2 = next(s for s in demo_sites() if s.site_id == "demo-s2")
    dates = [dt.date(2024, 5, 12), dt.date(2024, 6, 21), dt.date(2024, 8, 5), dt.date(2024, 9, 14)]
    epochs = tuple(dataclasses.replace(e, date=d) for e, d in zip((s2.epochs[i] for i in (0, 2, 4, 5)), dates))
    series = [dataclasses.replace(s2, site_id=sid, lon=sites.loc[sid, "lon"], lat=sites.loc[sid, "lat"],
                                  epochs=epochs, collection="sentinel-2-l2a") for sid in ("bfn-108", "bfn-110")]
    return write_series(out, series, seed=2024)


def test_earth_search_notebook_runs_offline(tmp_path, monkeypatch):
    from servers import earth_search_item, serve_dir, stac_api

    bundle = _xinjiang_series(tmp_path / "imagery")
    with serve_dir(bundle.catalog_path.parent) as files:
        items = []
        for p in sorted(bundle.catalog_path.parent.glob("sentinel-2-l2a/*/*.json")):
            it = json.loads(p.read_text())
            hrefs = {k: f"{files.url}/sentinel-2-l2a/{it['id']}/{a['href']}" for k, a in it["assets"].items()}
            items.append(earth_search_item(it["id"], it["properties"]["datetime"], it["bbox"], hrefs, offset=0.0,
                                           epsg=it["properties"]["proj:epsg"]))
        assert len(items) == 8
        with stac_api(items, max_limit=5) as api:
            out = tmp_path / "out"
            out.mkdir()
            monkeypatch.setenv("SITEWATCH_STAC_URL", api.url)
            monkeypatch.setenv("SITEWATCH_SITES", str(GEODATA))
            monkeypatch.setenv("SITEWATCH_OUT", str(out))
            _, text = _run("earth_search.ipynb", tmp_path)
            searches = [q for q in api.seen() if q.path.startswith("/search")]
    assert searches, "the notebook must search the STAC API it was pointed at"
    assert "bfn-108: 4 scenes found, 4 to read" in text and "bfn-110: 4 scenes found, 4 to read" in text
    assert "run completed: 8 scenes read" in text
    assert (out / "two_sites.png").stat().st_size > 5_000
    import sitewatch

    f = sitewatch.open(out / "findings.gpkg")
    assert set(f.sites().site_id) == {"bfn-108", "bfn-110"}
    assert set(f.detections().kind) == {"building_new"}, "the halls planted at both sites"
