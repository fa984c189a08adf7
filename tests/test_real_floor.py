"""A guard on detection over real labelled imagery: the LEVIR-CD sample pairs through ``monitor``
(benchmarks/real.py wraps them as a static STAC catalog), with floors below today's figures
(benchmarks/README.md has the table). Fails when building change gets worse, when walls, fences
or towers appear on suburban tiles that hold none, or when a clear real scene is discarded."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "real.py"


def _real():
    spec = importlib.util.spec_from_file_location("real_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["real_bench"] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_levir_samples_through_monitor(shared_data, tmp_path):
    real = _real()
    real.DATA = shared_data
    cases = real.all_cases(tmp_path, {"levir"})
    assert len(cases) == 11
    s = real.score(real.run_all(cases, tmp_path, progress=False))
    # before issue 13's work: F1 0.15, 2 of 105 objects, 14 wall/fence/tower claims per tile
    assert s["pixel"].f1 >= 0.15, s["pixel"]
    assert s["pixel"].precision >= 0.35, s["pixel"]
    assert s["objects"][0] >= 4, s["objects"]
    assert s["barrier_claims"] <= 1.0 * s["barrier_tiles"], (s["barrier_claims"], s["barrier_tiles"])
    assert s["unusable"] == 0 and s["scenes"] == 22
