"""A stand-in for TinyCD built layer for layer after its published code, with random fixed weights.

TinyCD (Codegoni et al. 2023, ``AndreaCodegoni/Tiny_model_4_CD``: ``models/change_classifier.py``
and ``models/layers.py``) is, per 256 x 256 pair:

- **backbone**: torchvision's ``efficientnet_b4().features[0:4]`` (width 1.4, depth 1.8), run on
  each date with the same weights: a 3 x 3 stride-2 stem into 48 channels, then MBConv stages
  (1 x 1 expand, depthwise k x k, squeeze-excitation squeezing to a quarter of the block's input
  channels, 1 x 1 project; SiLU; a residual where the shape stays) of (expand, kernel, stride,
  out, blocks) = (1, 3, 1, 24, 2), (6, 3, 2, 32, 4), (6, 5, 2, 56, 4). Batch norm is folded into
  each convolution's bias, as an inference export leaves it.
- **mixing**: each level's before/after features interleaved channel by channel (stack on a new
  axis, reshape) and mixed by a grouped 3 x 3 convolution (two channels a group), PReLU, instance
  norm; the raw images' mix and the first two levels' then go through a pixel-wise MLP (1 x 1
  convolutions with PReLU) down to one channel, a mask: ``MixingMaskAttentionBlock(6, 3, [3, 10,
  5], [10, 5, 1])``, ``(48, 24, [24, 12, 6], [12, 6, 1])``, ``(64, 32, [32, 16, 8], [16, 8, 1])``;
  the deepest level's, ``MixingBlock(112, 56)``, stays 56 channels.
- **decoder**: three ``UpMask`` blocks (bilinear x 2 with aligned corners, times the next level's
  mask, depthwise 3 x 3, PReLU, instance norm, 1 x 1, PReLU, instance norm) of (56 -> 64),
  (64 -> 64), (64 -> 32), then a pixel-wise MLP 32 -> 16 -> 8 -> 1 and a sigmoid.

As the other stand-ins, its output is multiplied by 0 and added to the ``difference`` model's
logits, so the detections stay that model's: it stands for TinyCD's inference cost, not its skill
(no trained weights exist here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: efficientnet_b4's first three MBConv stages after the stem: (expand, kernel, stride, out, blocks)
B4_STAGES = [(1, 3, 1, 24, 2), (6, 3, 2, 32, 4), (6, 5, 2, 56, 4)]
B4_STEM = 48


class Graph:
    """ONNX nodes and fixed random weights, with the parameter count the PyTorch model has (its
    batch norms' weight and bias, not their folded bias) and the multiply-accumulates per pair."""

    def __init__(self, side: int = 256) -> None:
        self.rng = np.random.default_rng(0)
        self.nodes: list = []
        self.inits: list = []
        self.torch_params = 0
        self.macs = 0  # per one side x side pair, convolutions only (as thop / ptflops count)
        self.side = side
        self.k = 0

    def name(self, stem: str) -> str:
        self.k += 1
        return f"{stem}{self.k}"

    def weight(self, value: np.ndarray, stem: str) -> str:
        return self.const(np.asarray(value, np.float32), stem)

    def const(self, value: np.ndarray, stem: str) -> str:
        from onnx import numpy_helper

        n = self.name(stem)
        self.inits.append(numpy_helper.from_array(value, n))
        return n

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, hw: int, *, stride: int = 1, groups: int = 1,
             bias: bool = True, bn: bool = False) -> str:
        """``bias``: the PyTorch layer has one; ``bn``: a batch norm follows it (folded into a bias
        here, counted as its weight and bias)."""
        fan = cin // groups * k * k
        w = self.weight(self.rng.normal(0, np.sqrt(2.0 / fan), (cout, cin // groups, k, k)), "w")
        b = self.weight(self.rng.normal(0, 0.05, cout), "bn" if bn else "b")  # (thop_ops reads "bn")
        self.torch_params += cout * fan + (cout if bias else 0) + (2 * cout if bn else 0)
        out_hw = (hw + 2 * (k // 2) - k) // stride + 1
        self.macs += out_hw * out_hw * cout * fan
        p = k // 2
        return self.node("Conv", [x, w, b], kernel_shape=[k, k], pads=[p, p, p, p], strides=[stride, stride],
                         group=groups)

    def silu(self, x: str) -> str:
        return self.node("Mul", [x, self.node("Sigmoid", [x])])

    def prelu(self, x: str) -> str:
        self.torch_params += 1
        return self.node("PRelu", [x, self.weight(np.full(1, 0.25), "slope")])

    def instance_norm(self, x: str, c: int) -> str:  # affine=False in PyTorch: no parameters
        return self.node("InstanceNormalization", [x, self.weight(np.ones(c), "one"), self.weight(np.zeros(c), "zero")],
                         epsilon=1e-5)

    def squeeze_excite(self, x: str, c: int, squeeze: int) -> str:
        s = self.node("GlobalAveragePool", [x])
        s = self.silu(self.conv(s, c, squeeze, 1, 1))
        s = self.node("Sigmoid", [self.conv(s, squeeze, c, 1, 1)])
        return self.node("Mul", [x, s])

    def mbconv(self, x: str, cin: int, cout: int, expand: int, k: int, stride: int, hw: int) -> tuple[str, int]:
        mid = cin * expand
        y = x
        if mid != cin:
            y = self.silu(self.conv(y, cin, mid, 1, hw, bias=False, bn=True))
        y = self.silu(self.conv(y, mid, mid, k, hw, stride=stride, groups=mid, bias=False, bn=True))
        hw = (hw - 1) // stride + 1
        y = self.squeeze_excite(y, mid, max(1, cin // 4))
        y = self.conv(y, mid, cout, 1, hw, bias=False, bn=True)
        if stride == 1 and cin == cout:
            y = self.node("Add", [y, x])
        return y, hw


def backbone(g: Graph, x: str, layers: list) -> list[tuple[str, int, int]]:
    """efficientnet_b4 features[0:4] on ``x``; each level's (output, channels, side). ``layers`` is
    filled on the first call and replayed on the second, so both dates share the weights."""
    if layers:  # the second date: the same weights (initializers), new nodes
        return _replay(g, x, layers)
    start_nodes, start_macs = len(g.nodes), g.macs
    hw = g.side
    y = g.silu(g.conv(x, 3, B4_STEM, 3, hw, stride=2, bias=False, bn=True))
    hw //= 2
    levels, c = [(y, B4_STEM, hw)], B4_STEM
    for expand, k, stride, cout, blocks in B4_STAGES:
        for i in range(blocks):
            y, hw = g.mbconv(y, c, cout, expand, k, stride if i == 0 else 1, hw)
            c = cout
        levels.append((y, c, hw))
    layers.append((x, start_nodes, len(g.nodes), levels, g.macs - start_macs))
    return levels


def _replay(g: Graph, x: str, layers: list) -> list[tuple[str, int, int]]:
    from onnx import helper

    x0, lo, hi, levels, macs = layers[0]
    g.macs += macs  # the same convolutions, run again
    renamed = {x0: x}
    for n in g.nodes[lo:hi]:
        outs = [o + "_b" for o in n.output]
        renamed.update(zip(n.output, outs))
        ins = [renamed.get(i, i) for i in n.input]
        g.nodes.append(helper.make_node(n.op_type, ins, outs, name="", **{
            a.name: helper.get_attribute_value(a) for a in n.attribute}))
    return [(renamed[y], c, hw) for y, c, hw in levels]


def interleave(g: Graph, x: str, y: str) -> str:
    """``stack((x, y), dim=2)`` and a reshape to ``2C`` channels: x0, y0, x1, y1, ..."""
    ax = g.const(np.array([2], np.int64), "axis")
    s = g.node("Concat", [g.node("Unsqueeze", [x, ax]), g.node("Unsqueeze", [y, ax])], axis=2)
    head = g.const(np.array([0, -1], np.int64), "head")
    shape = g.node("Concat", [head, g.node("Shape", [x], start=2)], axis=0)
    return g.node("Reshape", [s, shape])


def mixing(g: Graph, x: str, y: str, cin: int, cout: int, hw: int) -> str:
    """MixingBlock(cin, cout): interleave, grouped 3 x 3 (cout groups), PReLU, instance norm."""
    z = g.conv(interleave(g, x, y), cin, cout, 3, hw, groups=cout)
    return g.instance_norm(g.prelu(z), cout)


def pixelwise(g: Graph, x: str, fin: list[int], fout: list[int], hw: int, last: str | None = None) -> str:
    for i, (a, b) in enumerate(zip(fin, fout)):
        x = g.conv(x, a, b, 1, hw)
        x = g.node(last, [x]) if last and i == len(fin) - 1 else g.prelu(x)
    return x


def up_mask(g: Graph, x: str, mask: str, nin: int, nout: int, hw: int) -> str:
    """UpMask: bilinear x 2 (aligned corners), times the mask, depthwise 3 x 3, PReLU, instance norm,
    1 x 1, PReLU, instance norm. ``hw``: the output's side."""
    scales = g.const(np.array([1, 1, 2, 2], np.float32), "scales")
    u = g.node("Resize", [x, "", scales], mode="linear", coordinate_transformation_mode="align_corners")
    u = g.node("Mul", [u, mask])
    u = g.instance_norm(g.prelu(g.conv(u, nin, nin, 3, hw, groups=nin)), nin)
    return g.instance_norm(g.prelu(g.conv(u, nin, nout, 1, hw)), nout)


def tinycd_branch(g: Graph, before: str, after: str) -> str:
    """TinyCD's forward pass over the two inputs: its change probability (N x 1 x H x W)."""
    side = g.side
    f0 = pixelwise(g, mixing(g, before, after, 6, 3, side), [3, 10, 5], [10, 5, 1], side)
    layers: list = []
    la, lb = backbone(g, before, layers), backbone(g, after, layers)
    (a1, c1, h1), (a2, c2, h2), (a3, c3, h3) = la[1:]
    b1, b2, b3 = (lv[0] for lv in lb[1:])
    f1 = pixelwise(g, mixing(g, a1, b1, 2 * c1, c1, h1), [24, 12, 6], [12, 6, 1], h1)
    f2 = pixelwise(g, mixing(g, a2, b2, 2 * c2, c2, h2), [32, 16, 8], [16, 8, 1], h2)
    f3 = mixing(g, a3, b3, 2 * c3, c3, h3)
    u = up_mask(g, f3, f2, 56, 64, h2)
    u = up_mask(g, u, f1, 64, 64, h1)
    u = up_mask(g, u, f0, 64, 32, side)
    return pixelwise(g, u, [32, 16, 8], [16, 8, 1], side, last="Sigmoid")


def tinycd_arch_model(path: Path, **meta: object) -> tuple[Path, int, int]:
    """The ``difference`` model's logits plus 0 x TinyCD's output. Returns the path, the parameters
    PyTorch would count for TinyCD (batch norms unfolded) and its multiply-accumulates per 256 x 256
    pair, both counted while building (the script counts the ONNX graph's too)."""
    import onnx_models as om
    from onnx import numpy_helper

    g = Graph()
    prob = tinycd_branch(g, "before", "after")
    consts = {"w_mean": np.full((1, 3, 1, 1), 1 / 3), "w_box": np.full((1, 1, 5, 5), 1 / 25),
              "offset": np.array(0.1), "gain": np.array(40.0), "zero": np.array(0.0)}
    g.inits += [numpy_helper.from_array(v.astype(np.float32), k) for k, v in consts.items()]
    from onnx import helper

    g.nodes += [helper.make_node("Sub", ["after", "before"], ["d"]), helper.make_node("Abs", ["d"], ["a"]),
                helper.make_node("Conv", ["a", "w_mean"], ["m"]),
                helper.make_node("Conv", ["m", "w_box"], ["s"], pads=[2, 2, 2, 2]),
                helper.make_node("Sub", ["s", "offset"], ["z"]), helper.make_node("Mul", ["z", "gain"], ["logit"]),
                helper.make_node("Mul", [prob, "zero"], ["branch"]),
                helper.make_node("Add", ["logit", "branch"], ["change"])]
    out = om.save(path, g.nodes, [om._io("before", 3), om._io("after", 3)], [om._io("change", 1)], g.inits,
                  om.meta(output="logits", **meta))
    return out, g.torch_params, g.macs


def torch_parameters() -> int:
    """TinyCD's parameters as PyTorch counts them (each batch norm's weight and bias, not the folded bias)."""
    g = Graph()
    tinycd_branch(g, "before", "after")
    return g.torch_params


def thop_ops(path: Path, side: int = 256) -> int:
    """The graph's operations per ``side`` x ``side`` pair by thop's rules (``thop/vision``'s hooks
    and ``calc_func``, as stored in ``Lyken17/pytorch-OpCounter``): a convolution its
    multiply-accumulates (no bias), a batch norm with weights 4 per value (its folded bias is named
    ``bn...`` here), an instance norm without 2, a PReLU 1, a bilinear upsampling 11 per output
    value, an adaptive average pool (its window + 1) per output value; SiLU, sigmoid and the
    functional ops (stack, reshape, product, sum) 0, thop having no hook for them."""
    import onnx
    from onnx import shape_inference

    m = onnx.load(str(path))
    for vi in m.graph.input:
        for d, v in zip(vi.type.tensor_type.shape.dim, (1, None, side, side)):
            if v is not None:
                d.ClearField("dim_param")
                d.dim_value = v
    g = shape_inference.infer_shapes(m, data_prop=True).graph
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(g.input) + list(g.value_info) + list(g.output)}
    weights = {t.name: list(t.dims) for t in g.initializer}
    total = 0
    for n in g.node:
        out = int(np.prod(shapes[n.output[0]]))
        if n.op_type == "Conv":
            total += out * int(np.prod(weights[n.input[1]][1:]))
            if len(n.input) > 2 and n.input[2].startswith("bn"):
                total += 4 * out
        elif n.op_type == "InstanceNormalization":
            total += 2 * out
        elif n.op_type == "PRelu":
            total += out
        elif n.op_type == "Resize":
            total += 11 * out
        elif n.op_type == "GlobalAveragePool":
            total += (int(np.prod(shapes[n.input[0]][2:])) + 1) * out
    return total
