"""The quantizer's integer form of the convolution and pooling forms agrees with the float model
to within the output's rounding: grouped, dilated and channel-multiplier convolutions, and pools
with ceil_mode / count_include_pad=0 (a divisor per window)."""

from __future__ import annotations

import numpy as np
import pytest

from q4sdk.frontend import import_onnx_model
from q4sdk.ir import oracle
from q4sdk.ir.float_exec import run_float
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import preset
from tests.frontend.test_frontend_onnx import make_model, node, rand


def _quantize(model, x):
    graph = import_onnx_model(model, "m")
    q = quantize_graph(graph, x, preset("default", 8))
    yq = oracle.run_oracle(q, oracle.quantize_input(q, x))
    y = oracle.dequantize_output(q, yq).transpose(0, 3, 1, 2).reshape(len(x), -1)  # NHWC -> NCHW
    return q, y, run_float(graph, x).reshape(len(x), -1), q.output_tensor.scale


@pytest.mark.parametrize("cip", [0, 1])
def test_pool_divisors_per_window_match_float(cip):
    """A lone pool: its integer output is the float one rounded (input rounding adds < 1 LSB)."""
    x = rand(16, 3, 8, 8)  # rows: 5 windows with ceil_mode, the last one past the padding
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=1, count_include_pad=cip)
    q, y, ref, scale = _quantize(
        make_model([node("AveragePool", ["x"], ["y"], "ap", **attrs)], ["N", 3, 8, 8]), x
    )
    op = q.ops[0]
    assert op.attrs["count_pads"] == ([1, 0, 1, 1] if cip else [0, 0, 0, 0])
    assert op.arrays["multiplier"].shape == (9,)
    assert np.abs(y - ref).max() <= 1.5 * scale


@pytest.mark.parametrize(
    "c_in,c_out,group,attrs",
    [
        (8, 12, 4, {"pads": [1, 1, 1, 1]}),  # grouped
        (4, 8, 4, {"pads": [2, 0, 1, 2], "dilations": [2, 1]}),  # multiplier 2, dilated
        (6, 6, 1, {"pads": [2, 2, 2, 2], "dilations": [2, 2]}),  # dilated
    ],
)
def test_conv_forms_track_float(c_in, c_out, group, attrs):
    x = rand(16, c_in, 9, 9)
    w, b = rand(c_out, c_in // group, 3, 3, scale=0.3), rand(c_out, scale=0.1)
    model = make_model(
        [node("Conv", ["x", "w", "b"], ["y"], "conv", group=group, **attrs)],
        ["N", c_in, 9, 9],
        {"w": w, "b": b},
    )
    q, y, ref, _ = _quantize(model, x)
    assert set(q.ops[0].attrs) >= ({"groups"} if 1 < group < c_in else set())
    sqnr = 10 * np.log10((ref**2).sum() / ((y - ref) ** 2).sum())
    assert sqnr > 15, sqnr  # INT4 weights: about 20 dB on a random layer
