"""The change models ``model.py`` runs: ``difference`` and the stand-ins for the networks issue 14
names, built with the onnx helper (no torch, no trained weights), and their size counted from the
graph. See ``model.py``'s docstring and benchmarks/README.md section 9 for what each stands for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

SIDE = 256


#: Stand-ins for the networks issue 14 names, matched on compute (multiply-accumulates per 256 x 256
#: pair, the "FLOPs" of change-detection papers, counted by thop/ptflops as MACs) and parameters as
#: the TinyCD paper's comparison table gives them (Codegoni et al. 2023): name -> (published
#: parameters, published G MAC per pair, branch plan). A plan is [(channels, repeats), ...]: the
#: first stage at full resolution (a 3 -> channels stem, then ``repeats`` same-width 3 x 3
#: convolutions), each later one a stride-2 convolution into ``channels`` and then ``repeats``
#: same-width ones; a transposed convolution brings the last stage back to full resolution.
STANDINS: dict[str, tuple[float, float, list[tuple[int, int]]]] = {
    "tinycd-size": (0.28e6, 1.54, [(16, 2), (32, 1), (64, 6)]),
    "bit-size": (3.55e6, 10.6, [(32, 10), (64, 0), (128, 1), (256, 5)]),
    "changeformer-size": (41.0e6, 202.8, [(64, 66), (128, 0), (256, 0), (512, 16)]),
}


def standin_model(path: Path, plan: list[tuple[int, int]], **meta: object) -> Path:
    """The difference model's output plus a zero-weighted branch of convolutions laid out by ``plan``
    (see STANDINS), with fixed random weights: the same detections as ``difference`` at the
    inference cost of a network of that size and compute."""
    import onnx_models as om
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def conv(x: str, cin: int, cout: int, name: str, stride: int = 1) -> str:
        w = numpy_helper.from_array((rng.normal(0, 1 / np.sqrt(9 * cin), (cout, cin, 3, 3))).astype(np.float32), f"w_{name}")
        inits.append(w)
        nodes.append(helper.make_node("Conv", [x, f"w_{name}"], [f"c_{name}"], pads=[1, 1, 1, 1], strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [f"c_{name}"], [name]))
        return name

    up = 2 ** (len(plan) - 1)
    width = plan[-1][0]
    inits += [numpy_helper.from_array(np.full((1, 3, 1, 1), 1 / 3, np.float32), "w_mean"),
              numpy_helper.from_array(np.full((1, 1, 5, 5), 1 / 25, np.float32), "w_box"),
              numpy_helper.from_array(np.array(0.1, np.float32), "offset"),
              numpy_helper.from_array(np.array(40.0, np.float32), "gain"),
              numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
              numpy_helper.from_array(np.ones((width, 1, up, up), np.float32) / width, "w_up")]
    nodes += [helper.make_node("Sub", ["after", "before"], ["d"]), helper.make_node("Abs", ["d"], ["a"]),
              helper.make_node("Conv", ["a", "w_mean"], ["m"]),
              helper.make_node("Conv", ["m", "w_box"], ["s"], pads=[2, 2, 2, 2]),
              helper.make_node("Sub", ["s", "offset"], ["z"]), helper.make_node("Mul", ["z", "gain"], ["logit"])]
    x, cin = "d", 3
    for i, (c, repeats) in enumerate(plan):
        x, cin = conv(x, cin, c, f"s{i}_in", 1 if i == 0 else 2), c
        for k in range(repeats):
            x = conv(x, c, c, f"s{i}_{k}")
    nodes += [helper.make_node("ConvTranspose", [x, "w_up"], ["up"], strides=[up, up]),
              helper.make_node("Mul", ["up", "zero"], ["branch"]),
              helper.make_node("Add", ["logit", "branch"], ["change"])]
    return om.save(path, nodes, [om._io("before", 3), om._io("after", 3)], [om._io("change", 1)], inits,
                   om.meta(output="logits", **meta))


def parameters(path: Path) -> int:
    import onnx

    return int(sum(np.prod(t.dims) for t in onnx.load(str(path)).graph.initializer))


def macs(path: Path, side: int = SIDE) -> int:
    """Multiply-accumulates of one ``side`` x ``side`` pair, counted from the graph's Conv and
    ConvTranspose shapes (ONNX shape inference with the inputs fixed at 1 x C x side x side);
    element-wise operators are left out, as thop and ptflops leave them out."""
    import onnx
    from onnx import shape_inference

    m = onnx.load(str(path))
    for vi in m.graph.input:
        dims = vi.type.tensor_type.shape.dim
        for d, v in zip(dims, (1, None, side, side)):
            if v is not None:
                d.ClearField("dim_param")
                d.dim_value = v
    g = shape_inference.infer_shapes(m, data_prop=True).graph  # (data_prop: shapes through Reshape)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(g.input) + list(g.value_info) + list(g.output)}
    weights = {t.name: list(t.dims) for t in g.initializer}
    total = 0
    for n in g.node:
        if n.op_type not in ("Conv", "ConvTranspose"):
            continue
        counted = n.output[0] if n.op_type == "Conv" else n.input[0]
        if not all(shapes.get(counted, [])):
            raise ValueError(f"{n.op_type} {counted}: shape not inferred ({shapes.get(counted)})")
        # Conv: each output value costs cin/group * kh * kw; ConvTranspose: each input value cout/group * kh * kw
        total += int(np.prod(shapes[counted])) * int(np.prod(weights[n.input[1]][1:]))
    return total


#: TinyCD's published size (Codegoni et al. 2023): parameters, G "FLOPs" (MACs) per 256 x 256 pair
TINYCD_PUBLISHED = (0.28e6, 1.54)
MODELS = ["difference", *STANDINS, "tinycd-arch"]


def build(name: str, work: Path, **meta: object) -> Path:
    """Model ``name`` (one of MODELS) written into ``work``."""
    import onnx_models as om

    if name == "difference":
        return om.difference_model(work / "difference.onnx", **meta)
    if name == "tinycd-arch":
        from tinycd_arch import tinycd_arch_model

        return tinycd_arch_model(work / "tinycd-arch.onnx", **meta)[0]
    return standin_model(work / f"{name}.onnx", STANDINS[name][2], **meta)


def published(name: str) -> tuple[float, float] | None:
    if name == "tinycd-arch":
        return TINYCD_PUBLISHED
    return STANDINS[name][:2] if name in STANDINS else None

