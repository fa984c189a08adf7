"""Small, real ONNX change models built with the ``onnx`` helper (no torch, no trained weights).

``difference_model`` is the one the benchmark runs: mean absolute band difference between the
two dates, a box filter over it, then ``gain * (smoothed - offset)`` as logits. It is a real
network of ONNX operators (Sub, Abs, two Conv, Sub, Mul) with fixed weights, not a trained one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _io(name: str, c: int | str, h: int | str = "H", w: int | str = "W", n: int | str = "N",
        dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, [n, c, h, w])


def save(path: Path, nodes: Sequence[onnx.NodeProto], inputs: Sequence[onnx.ValueInfoProto],
         outputs: Sequence[onnx.ValueInfoProto], inits: Sequence[onnx.TensorProto] = (),
         meta: Mapping[str, str] | None = None) -> Path:
    graph = helper.make_graph(list(nodes), "change", list(inputs), list(outputs), list(inits))
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="sitewatch-tests")
    model.ir_version = 8
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=k, value=str(v))
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def meta(bands: str = "red,green,blue", **kw: object) -> dict[str, str]:
    out = {"sitewatch.bands": bands}
    out.update({f"sitewatch.{k}": str(v) for k, v in kw.items()})
    return out


def difference_model(path: Path, *, bands: int = 3, box: int = 5, offset: float = 0.1, gain: float = 40.0,
                     **metadata: object) -> Path:
    """logits = gain * (box_k(mean_c |after - before|) - offset)."""
    w1 = numpy_helper.from_array(np.full((1, bands, 1, 1), 1.0 / bands, np.float32), "w_mean")
    w2 = numpy_helper.from_array(np.full((1, 1, box, box), 1.0 / box ** 2, np.float32), "w_box")
    off = numpy_helper.from_array(np.array(offset, np.float32), "offset")
    g = numpy_helper.from_array(np.array(gain, np.float32), "gain")
    p = box // 2
    nodes = [helper.make_node("Sub", ["after", "before"], ["d"]),
             helper.make_node("Abs", ["d"], ["a"]),
             helper.make_node("Conv", ["a", "w_mean"], ["m"]),
             helper.make_node("Conv", ["m", "w_box"], ["s"], pads=[p, p, p, p]),
             helper.make_node("Sub", ["s", "offset"], ["z"]),
             helper.make_node("Mul", ["z", "gain"], ["change"])]
    md = {"output": "logits", **metadata}
    return save(path, nodes, [_io("before", bands), _io("after", bands)], [_io("change", 1)],
                [w1, w2, off, g], meta(",".join(["red", "green", "blue", "nir"][:bands]), **md))


def band_model(path: Path, *, bands: int = 3, **metadata: object) -> Path:
    """output = after's first band minus before's first band, as is (per pixel, no neighbours)."""
    starts = numpy_helper.from_array(np.array([0], np.int64), "starts")
    ends = numpy_helper.from_array(np.array([1], np.int64), "ends")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [helper.make_node("Slice", ["after", "starts", "ends", "axes"], ["a0"]),
             helper.make_node("Slice", ["before", "starts", "ends", "axes"], ["b0"]),
             helper.make_node("Sub", ["a0", "b0"], ["change"])]
    return save(path, nodes, [_io("before", bands), _io("after", bands)], [_io("change", 1)],
                [starts, ends, axes], meta(**metadata))


def stride8_model(path: Path, **metadata: object) -> Path:
    """Needs H and W multiples of 8: max-pool by 8, then back up by 8 (a transposed conv)."""
    up = numpy_helper.from_array(np.ones((1, 1, 8, 8), np.float32), "w_up")
    wm = numpy_helper.from_array(np.full((1, 3, 1, 1), 1 / 3, np.float32), "w_mean")
    nodes = [helper.make_node("Sub", ["after", "before"], ["d"]),
             helper.make_node("Abs", ["d"], ["a"]),
             helper.make_node("Conv", ["a", "w_mean"], ["m"]),
             helper.make_node("MaxPool", ["m"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("ConvTranspose", ["p", "w_up"], ["change"], strides=[8, 8])]
    return save(path, nodes, [_io("before", 3), _io("after", 3)], [_io("change", 1)], [up, wm], meta(**metadata))
