"""benchmarks/tinycd_arch.py: the TinyCD stand-in has TinyCD's published size by the paper's own
counting (0.28 M parameters, 1.54 G "FLOPs" by thop's rules per 256 x 256 pair), runs in
onnxruntime, and leaves the difference model's output as it is (its branch is multiplied by 0)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def arch():
    pytest.importorskip("onnx")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import tinycd_arch

    return tinycd_arch


def test_size_is_the_published_one_by_the_papers_counting(arch, tmp_path) -> None:
    path, torch_params, macs = arch.tinycd_arch_model(tmp_path / "t.onnx")
    assert abs(torch_params - 0.28e6) / 0.28e6 < 0.03  # 285,128
    assert arch.torch_parameters() == torch_params
    thop = arch.thop_ops(path)
    assert abs(thop / 1e9 - 1.54) < 0.02  # 1.546 G (the difference model's 2 M MACs included)
    assert 1.2e9 < macs < thop  # the convolutions alone: less than thop's count


def test_runs_and_gives_the_difference_models_output(arch, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    import onnx_models as om

    path, *_ = arch.tinycd_arch_model(tmp_path / "t.onnx")
    diff = om.difference_model(tmp_path / "d.onnx")
    rng = np.random.default_rng(0)
    feed = {k: rng.random((2, 3, 64, 96), np.float32) for k in ("before", "after")}
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    want = ort.InferenceSession(str(diff), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    assert got.shape == (2, 1, 64, 96) and np.array_equal(got, want)
