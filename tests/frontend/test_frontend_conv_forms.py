"""The convolution and pooling forms of issue 12 against onnxruntime: grouped convolution,
depthwise with a channel multiplier, dilation (with explicit and SAME pads), asymmetric pads, and
MaxPool / AveragePool with ceil_mode=1 and either count_include_pad."""

from __future__ import annotations

import numpy as np
import pytest

from q4sdk.ptq.plan import build_plan
from tests.frontend.test_frontend_onnx import import_and_compare, make_model, node, rand


def _conv(c_in, c_out, group, h=9, **attrs):
    w = rand(c_out, c_in // group, *attrs.pop("k", (3, 3)))
    model = make_model(
        [node("Conv", ["x", "w", "b"], ["y"], "conv", group=group, **attrs)],
        ["N", c_in, h, h],
        {"w": w, "b": rand(c_out)},
    )
    return import_and_compare(model, rand(2, c_in, h, h))


@pytest.mark.parametrize(
    "c_in,c_out,group,kind",
    [(8, 12, 4, "conv2d"), (6, 6, 3, "conv2d"), (4, 8, 4, "depthwise_conv2d"), (3, 9, 3, "depthwise_conv2d")],
)
def test_grouped_and_multiplier_convs(c_in, c_out, group, kind):
    graph = _conv(c_in, c_out, group, pads=[1, 0, 2, 1], strides=[2, 1])
    assert graph.nodes[0].attrs["groups"] == group
    assert [s.kind for s in build_plan(graph)] == [kind]


def test_dilated_conv_and_depthwise():
    graph = _conv(4, 6, 1, h=11, dilations=[2, 3], strides=[1, 2], pads=[2, 1, 3, 0])
    assert graph.nodes[0].attrs["dilation"] == (2, 3)
    graph = _conv(4, 8, 4, h=11, dilations=[3, 2], pads=[0, 2, 1, 3])
    assert graph.nodes[0].attrs["dilation"] == (3, 2)


def test_dilated_same_pads_span_the_dilated_kernel():
    """onnxruntime refuses dilation with auto_pad SAME; the ONNX rule pads the span d (k - 1) + 1."""
    from q4sdk.frontend import import_onnx_model

    model = make_model(
        [node("Conv", ["x", "w"], ["y"], "conv", dilations=[2, 3], auto_pad="SAME_UPPER")],
        ["N", 2, 9, 10],
        {"w": rand(3, 2, 3, 3)},
    )
    graph = import_onnx_model(model, "m")
    assert graph.nodes[0].attrs["pads"] == (2, 3, 2, 3) and graph.shapes["y"] == (3, 9, 10)


@pytest.mark.parametrize(
    "h,k,s,pads",
    [
        (7, 3, 2, [0, 0, 0, 0]),  # ceil adds a window past the end
        (6, 3, 2, [1, 1, 1, 1]),  # the last window reaches past the padding
        (4, 1, 2, [0, 0, 0, 0]),  # ceil's extra window would start past the input: dropped
        (7, 3, 3, [0, 1, 1, 0]),  # asymmetric pads
        (8, 2, 2, [1, 0, 0, 1]),
    ],
)
@pytest.mark.parametrize("op,cip", [("MaxPool", None), ("AveragePool", 0), ("AveragePool", 1)])
def test_pools_with_ceil_mode(h, k, s, pads, op, cip):
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": pads, "ceil_mode": 1}
    if cip is not None:
        attrs["count_include_pad"] = cip
    model = make_model([node(op, ["x"], ["y"], "pool", **attrs)], ["N", 3, h, h + 1])
    graph = import_and_compare(model, rand(2, 3, h, h + 1))
    a = graph.nodes[0].attrs
    assert a["pads"][:2] == tuple(pads[:2]) and min(a["pads"]) >= 0


def test_averagepool_without_counted_pads_keeps_its_old_form():
    model = make_model(
        [
            node(
                "AveragePool", ["x"], ["y"], "ap", kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1
            )
        ],
        ["N", 2, 7, 7],
    )
    graph = import_and_compare(model, rand(2, 2, 7, 7))
    assert "count_pads" not in graph.nodes[0].attrs  # a fixed divisor: the .q4 is as before


@pytest.mark.parametrize("op,cip", [("MaxPool", None), ("AveragePool", 0), ("AveragePool", 1)])
def test_pad_node_folds_into_a_ceil_mode_pool(op, cip):
    """The ceil_mode rule sees the Pad node's output as the pool's input; the Pad folds into the
    pool unless a maxpool window would then hold padding only."""
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1}
    if cip is not None:
        attrs["count_include_pad"] = cip
    model = make_model(
        [
            node("Relu", ["x"], ["r"]),
            node("Pad", ["r", "p"], ["rp"]),
            node(op, ["rp"], ["y"], "pool", **attrs),
        ],
        ["N", 2, 7, 6],  # padded to 9 x 7: ceil_mode adds a row and a column of windows
        {"p": np.array([0, 0, 0, 1, 0, 0, 2, 0], np.int64)},
    )
    graph = import_and_compare(model, rand(2, 2, 7, 6))
    assert graph.shapes["y"][1:] == (5, 4)
    # the last row of windows holds only the Pad's zeros: a maxpool (-inf padding) keeps the Pad
    expected = ["relu", "pad", "maxpool"] if op == "MaxPool" else ["relu", "avgpool"]
    assert [n.op for n in graph.nodes] == expected
