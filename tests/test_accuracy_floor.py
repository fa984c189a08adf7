"""A regression guard on detection quality: one small generated series, a floor well below the
benchmark's figures (benchmarks/README.md has the real table), through the real pipeline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"


def _accuracy():
    spec = importlib.util.spec_from_file_location("accuracy_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    acc = _accuracy()
    # the 0.5 m control has a snowy first scene (a wall that must not become "new" when snow cuts it)
    keep = {"bench-build-0.5m", "bench-s2-10m", "bench-control-10m", "bench-control-0.5m"}
    sites = [s for s in acc.benchmark_sites() if s[0].site_id in keep]
    mp = pytest.MonkeyPatch()
    mp.setattr(acc, "benchmark_sites", lambda seed=acc.SEED, quick=False: sites)
    try:
        yield acc.score_generated(tmp_path_factory.mktemp("acc"))
    finally:
        mp.undo()


def test_accuracy_floor_on_a_generated_series(generated):
    g = generated
    fams = g["families"]
    assert fams["building"].recall >= 0.9
    assert fams["tower"].recall >= 0.95 and fams["wall"].recall == 1.0  # issue 13: towers >= 0.95
    assert sum(m.tp for m in fams.values()) >= 0.85 * sum(m.tp + m.fn for m in fams.values())
    assert sum(m.valid_dates for m in fams.values()) >= 0.9 * sum(m.tp for m in fams.values())
    assert not g["control_detections"], [(f.site_id, f.kind, f.before_date) for f in g["control_detections"]]


@pytest.mark.xfail(strict=True, reason=(
    "0.3-2 m building maps are now the reference's roofs, the change a model learnt on real LEVIR-CD pairs "
    "sees since, and the scene's own per-date roof map (sitewatch.finechange); that per-date map over-maps the "
    "renderer's compound (as in test_changes) and dates one extra building_new (2019-04) and its removal at "
    "bench-build-0.5m: precision 13 of 15 = 0.87. Real imagery is the judge: LEVIR-CD held out by pair, "
    "pixel F1 0.25 -> 0.55, objects 6 -> 76 of 105 (benchmarks/README.md section 2)"))
def test_building_precision_floor_on_a_generated_series(generated):
    assert generated["families"]["building"].precision >= 0.9
