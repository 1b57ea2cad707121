"""Float graph: the model as the frontends hand it to the quantizer.

One input, one output, nodes in topological order. Shapes are per sample (no batch
dimension) in the model's logical layout: ``(C, H, W)`` for feature maps, ``(F,)`` for
vectors. The frontends canonicalise ONNX / PyTorch into these ops:

================  =================================================================
op                attrs / params
================  =================================================================
conv2d            attrs: stride (sh, sw), pads (top, left, bottom, right), dilation (dh, dw),
                  groups (dividing C_in and C_out); params: weight [O, I/groups, kh, kw],
                  bias [O] (zeros when the model has none). BatchNorm is already folded in.
fully_connected   params: weight [O, I], bias [O]
relu              --
clamp             attrs: lo, hi (floats; Relu6 is clamp(0, 6))
add               two inputs of equal shape, or the second (C, 1, 1) added at every pixel
avgpool           attrs: kernel (kh, kw), stride, pads, count_include_pad (bool); optional
                  count_pads (t, l, b, r): each window divides by its taps inside the input
                  grown by these pads (ONNX count_include_pad=0, or a ceil_mode window)
maxpool           attrs: kernel, stride, pads (a ceil_mode window's overhang is in the
                  bottom / right pads, padding never wins)
global_avgpool    output (C, 1, 1)
reshape           output (C*H*W,) in C-order of the (C, H, W) input (a flatten); with attr
                  shape: that (C', H', W') shape, whose channels-last bytes are the input's
gather            attrs: axis (0 = C, 1 = H, 2 = W of (C, H, W); 0 of (F,)), index (ints): the
                  input's slices at those positions along that axis (channel shuffle, Slice,
                  Split, Gather)
reduce_mean       attrs: axes (of (C, H, W) / (F,)): the mean over them, keeping them as size 1
softmax           attrs: axis (of (C, H, W) / (F,)): softmax along it (not the final one over
                  the classes, which is removed: ``output_softmax``)
unary             attrs: fn ("sigmoid", "tanh", "hard_sigmoid" with alpha, beta,
                  "hard_swish", "leaky_relu" with alpha, "silu" = x sigmoid(x), "gelu" =
                  x (1 + erf(x / sqrt 2)) / 2): an element-wise nonlinearity
pad               attrs: pads (top, left, bottom, right); constant zero (only when it could
                  not be folded into the next conv / pool)
concat            2 or more inputs joined on attr axis (default 0: C of (C, H, W), F of (F,))
mul               a * b: b of a's shape or (C, 1, 1), multiplied at every pixel
sub               a - b (b - a with attr reversed): b of a's shape or (C, 1, 1)
prelu             params: slope [C] (one per channel; a scalar slope is a leaky_relu ``unary``)
conv_transpose    attrs: stride, pads (top, left, bottom, right), output_padding (oh, ow);
                  params: weight [O, I, kh, kw] (the ONNX weight [I, O, kh, kw] with its first two
                  axes swapped, so axis 0 is the output channel as for conv2d), bias [O].
                  Output H = (H_in - 1) sh - top - bottom + kh + oh (the same for W)
resize            attrs: mode ("nearest" | "bilinear", half-pixel centres), scale (sh, sw):
                  integer up-sampling factors
================  =================================================================

Where an op is the same as an integer op kind it has the same name (``q4sdk.ir.ops``: each kind
lists the float ops that lower to it); a ``conv2d`` with one input channel per group lowers to
``depthwise_conv2d`` and ``relu`` to ``clamp``, ``unary`` to ``lut``, ``prelu`` to ``lut_channel``;
``sub``, and ``add`` with a (C, 1, 1) second input, lower to ``addsub``.

An ``[N, C, L]`` tensor (1-D models) is held as ``(C, 1, L)``: the same bytes, so every (C, H, W)
op serves it; ``input_shape`` is the user's ``(C, L)``, ``shapes[input_name]`` the held one.

A layout ``Transpose`` at the input is removed by the frontend and recorded in
``input_layout`` ("NCHW" or "NHWC", the layout the *user's data* has); a trailing
``Softmax`` is removed and recorded in ``output_softmax`` (argmax is unchanged, the
integer program outputs the logits).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FLOAT_OPS = (
    "conv2d",
    "fully_connected",
    "relu",
    "clamp",
    "add",
    "avgpool",
    "maxpool",
    "global_avgpool",
    "reshape",
    "pad",
    "unary",
    "concat",
    "mul",
    "sub",
    "prelu",
    "conv_transpose",
    "resize",
    "gather",
    "reduce_mean",
    "softmax",
)


@dataclass
class FloatNode:
    name: str
    op: str
    inputs: list[str]
    output: str
    attrs: dict = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class FloatGraph:
    name: str
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    nodes: list[FloatNode]
    shapes: dict[str, tuple[int, ...]]
    input_layout: str = "NCHW"
    output_softmax: bool = False
    source_hash: str = ""

    def held_input(self, x: np.ndarray) -> np.ndarray:
        """Input samples ``[N, *input_shape]`` as the graph holds them (``[N, C, 1, L]`` for 1-D)."""
        return x.reshape(len(x), *self.shapes[self.input_name])

    def node_by_output(self) -> dict[str, FloatNode]:
        return {n.output: n for n in self.nodes}

    def consumers(self) -> dict[str, list[FloatNode]]:
        out: dict[str, list[FloatNode]] = {}
        for n in self.nodes:
            for i in n.inputs:
                out.setdefault(i, []).append(n)
        return out
