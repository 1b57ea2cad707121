"""Small hand-built FloatGraphs for tests (no frontend involved)."""

from __future__ import annotations

import numpy as np

from q4sdk.ir.float_graph import FloatGraph, FloatNode


def tiny_resnet(seed: int = 0, c: int = 8, hw: int = 8, classes: int = 5) -> FloatGraph:
    """conv+relu -> [depthwise+relu -> conv] + skip -> add+relu -> maxpool -> avgpool -> gap -> flatten -> dense."""
    rng = np.random.default_rng(seed)

    def w(*shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def b(n):
        return (rng.standard_normal(n) * 0.1).astype(np.float32)

    nodes = [
        FloatNode(
            "conv1",
            "conv2d",
            ["x"],
            "c1",
            {"stride": (1, 1), "pads": (1, 1, 1, 1), "groups": 1},
            {"weight": w(c, 3, 3, 3, fan_in=27), "bias": b(c)},
        ),
        FloatNode("relu1", "relu", ["c1"], "r1"),
        FloatNode(
            "dw",
            "conv2d",
            ["r1"],
            "d1",
            {"stride": (1, 1), "pads": (1, 1, 1, 1), "groups": c},
            {"weight": w(c, 1, 3, 3, fan_in=9), "bias": b(c)},
        ),
        FloatNode("relu2", "relu", ["d1"], "r2"),
        FloatNode(
            "pw",
            "conv2d",
            ["r2"],
            "p1",
            {"stride": (1, 1), "pads": (0, 0, 0, 0), "groups": 1},
            {"weight": w(c, c, 1, 1, fan_in=c), "bias": b(c)},
        ),
        FloatNode("add", "add", ["p1", "r1"], "a1"),
        FloatNode("relu3", "clamp", ["a1"], "r3", {"lo": 0.0, "hi": 6.0}),
        FloatNode("mp", "maxpool", ["r3"], "m1", {"kernel": (2, 2), "stride": (2, 2), "pads": (0, 0, 0, 0)}),
        FloatNode(
            "ap",
            "avgpool",
            ["m1"],
            "v1",
            {"kernel": (2, 2), "stride": (1, 1), "pads": (0, 0, 0, 0), "count_include_pad": True},
        ),
        FloatNode(
            "conv2",
            "conv2d",
            ["v1"],
            "c2",
            {"stride": (2, 2), "pads": (1, 1, 1, 1), "groups": 1},
            {"weight": w(c, c, 3, 3, fan_in=9 * c), "bias": b(c)},
        ),
        FloatNode("flat", "reshape", ["c2"], "f1"),
        FloatNode(
            "fc",
            "fully_connected",
            ["f1"],
            "y",
            {},
            {"weight": w(classes, c * 2 * 2, fan_in=4 * c), "bias": b(classes)},
        ),
    ]
    h2 = hw // 2
    shapes = {
        "x": (3, hw, hw),
        "c1": (c, hw, hw),
        "r1": (c, hw, hw),
        "d1": (c, hw, hw),
        "r2": (c, hw, hw),
        "p1": (c, hw, hw),
        "a1": (c, hw, hw),
        "r3": (c, hw, hw),
        "m1": (c, h2, h2),
        "v1": (c, h2 - 1, h2 - 1),
        "c2": (c, 2, 2),
        "f1": (4 * c,),
        "y": (classes,),
    }
    assert hw == 8
    return FloatGraph("tiny", "x", (3, hw, hw), "y", nodes, shapes)
