import numpy as np

from graphs import tiny_resnet
from q4sdk.ir.float_exec import run_float
from q4sdk.ir.float_graph import FloatGraph, FloatNode
from q4sdk.ptq.cle import absorb_bias, channel_ranges, equalizable_pairs, equalize


def _conv(name, x, y, w, b, pads, groups=1):
    attrs = {"stride": (1, 1), "pads": pads, "dilation": (1, 1), "groups": groups}
    return FloatNode(
        name, "conv2d", [x], y, attrs, {"weight": w.astype(np.float32), "bias": b.astype(np.float32)}
    )


def _chain(seed=0):
    """conv -> relu -> depthwise -> relu -> pointwise -> gap -> flatten -> dense -> relu -> dense,
    with output channels of every layer scaled by factors spanning two decades."""
    rng = np.random.default_rng(seed)

    def skew(n):
        return 10.0 ** rng.uniform(-1, 1, n)

    c, o = 8, 6
    nodes = [
        _conv(
            "conv1",
            "x",
            "c1",
            rng.standard_normal((c, 3, 3, 3)) * skew(c)[:, None, None, None],
            rng.standard_normal(c) * skew(c),
            (1, 1, 1, 1),
        ),
        FloatNode("relu1", "relu", ["c1"], "r1"),
        _conv(
            "dw",
            "r1",
            "d1",
            rng.standard_normal((c, 1, 3, 3)) * skew(c)[:, None, None, None],
            rng.standard_normal(c),
            (1, 1, 1, 1),
            groups=c,
        ),
        FloatNode("relu2", "clamp", ["d1"], "r2", {"lo": 0.0, "hi": float("inf")}),
        _conv("pw", "r2", "p1", rng.standard_normal((o, c, 1, 1)), rng.standard_normal(o), (0, 0, 0, 0)),
        FloatNode("gap", "global_avgpool", ["p1"], "g1"),
        FloatNode("flat", "reshape", ["g1"], "f1"),
        FloatNode(
            "fc1",
            "fully_connected",
            ["f1"],
            "h1",
            {},
            {
                "weight": (rng.standard_normal((10, o)) * skew(10)[:, None]).astype(np.float32),
                "bias": rng.standard_normal(10).astype(np.float32),
            },
        ),
        FloatNode("relu3", "relu", ["h1"], "h2"),
        FloatNode(
            "fc2",
            "fully_connected",
            ["h2"],
            "y",
            {},
            {
                "weight": rng.standard_normal((4, 10)).astype(np.float32),
                "bias": rng.standard_normal(4).astype(np.float32),
            },
        ),
    ]
    shapes = {
        "x": (3, 6, 6),
        "c1": (c, 6, 6),
        "r1": (c, 6, 6),
        "d1": (c, 6, 6),
        "r2": (c, 6, 6),
        "p1": (o, 6, 6),
        "g1": (o, 1, 1),
        "f1": (o,),
        "h1": (10,),
        "h2": (10,),
        "y": (4,),
    }
    return FloatGraph("chain", "x", (3, 6, 6), "y", nodes, shapes)


def _imbalance(ranges):
    return float(ranges.max() / ranges.min())


def test_pairs_found_and_branches_or_relu6_skipped():
    names = [(a.name, m.name if m else None, b.name) for a, m, b in equalizable_pairs(_chain())]
    assert names == [("conv1", "relu1", "dw"), ("dw", "relu2", "pw"), ("fc1", "relu3", "fc2")]
    # tiny_resnet: conv1's output feeds the skip connection too; relu3 is a clip(0, 6)
    assert [(a.name, b.name) for a, _, b in equalizable_pairs(tiny_resnet())] == [("dw", "pw")]


def test_equalize_keeps_the_function_and_balances_ranges():
    g = _chain()
    before = {n.name: {k: v.copy() for k, v in n.params.items()} for n in g.nodes}
    x = np.random.default_rng(1).standard_normal((16, 3, 6, 6)).astype(np.float32)
    eq = equalize(g, iters=4)
    y0, y1 = run_float(g, x), run_float(eq, x)
    assert np.allclose(y0, y1, rtol=1e-4, atol=1e-4 * np.abs(y0).max())
    for n in g.nodes:  # input graph untouched
        for k, v in n.params.items():
            assert np.array_equal(v, before[n.name][k]) and v.dtype == np.float32
    nodes0, nodes1 = g.node_by_output(), eq.node_by_output()
    # a lone pair is balanced exactly: fc1's row ranges equal fc2's column ranges
    r1, _ = channel_ranges(nodes1["h1"])
    _, r2 = channel_ranges(nodes1["y"])
    assert np.allclose(r1, r2, rtol=1e-5)
    for out in ("c1", "d1", "h1"):
        assert _imbalance(channel_ranges(nodes1[out])[0]) < 0.3 * _imbalance(channel_ranges(nodes0[out])[0])


def test_equalize_tiny_resnet_depthwise_pair():
    g = tiny_resnet()
    x = np.random.default_rng(2).standard_normal((8, 3, 8, 8)).astype(np.float32)
    eq = equalize(g)
    y0 = run_float(g, x)
    assert np.allclose(y0, run_float(eq, x), rtol=1e-4, atol=1e-4 * np.abs(y0).max())
    r_dw, _ = channel_ranges(eq.node_by_output()["d1"])
    _, r_pw = channel_ranges(eq.node_by_output()["p1"])
    assert np.allclose(r_dw, r_pw, rtol=1e-5)


def test_absorb_bias_moves_offsets_and_keeps_the_function():
    rng = np.random.default_rng(3)
    c = 6
    w1 = rng.standard_normal((c, 4, 1, 1)) * 0.2
    b1 = np.linspace(3.0, 8.0, c)  # large positive pre-activation means
    nodes = [
        _conv("l1", "x", "z", w1, b1, (0, 0, 0, 0)),
        FloatNode("relu", "relu", ["z"], "a"),
        _conv("l2", "a", "y", rng.standard_normal((3, c, 1, 1)), rng.standard_normal(3), (0, 0, 0, 0)),
    ]
    shapes = {"x": (4, 5, 5), "z": (c, 5, 5), "a": (c, 5, 5), "y": (3, 5, 5)}
    g = FloatGraph("absorb", "x", (4, 5, 5), "y", nodes, shapes)
    x = rng.standard_normal((64, 4, 5, 5)).astype(np.float32)
    y0, acts = run_float(g, x, capture=True)
    z = acts["z"].astype(np.float64)
    stats = {"z": (z.mean(axis=(0, 2, 3)), z.std(axis=(0, 2, 3)))}
    ab = absorb_bias(g, stats)
    c_moved = g.nodes[0].params["bias"] - ab.nodes[0].params["bias"]
    assert np.all(c_moved >= 0) and c_moved.min() > 1.0  # every channel had mean - 3 std > 0
    y1, acts1 = run_float(ab, x, capture=True)
    # exact wherever z >= c; here essentially everywhere
    assert np.mean(np.abs(y1 - y0) < 1e-4) > 0.99
    assert acts1["a"].max(axis=(0, 2, 3)).max() < acts["a"].max(axis=(0, 2, 3)).max()
    assert np.array_equal(absorb_bias(g, {}).nodes[2].params["bias"], g.nodes[2].params["bias"])


def test_absorb_bias_dense_and_depthwise_sums():
    g = _chain(seed=4)
    stats = {"c1": (np.full(8, 5.0), np.ones(8)), "h1": (np.full(10, 2.0), np.full(10, 0.5))}
    ab = absorb_bias(g, stats)
    nodes0, nodes1 = g.node_by_output(), ab.node_by_output()
    w_dw = nodes0["d1"].params["weight"].astype(np.float64)
    expect_dw = nodes0["d1"].params["bias"] + 2.0 * w_dw.reshape(8, -1).sum(axis=1)
    assert np.allclose(nodes1["d1"].params["bias"], expect_dw, rtol=1e-5)
    expect_fc2 = nodes0["y"].params["bias"] + nodes0["y"].params["weight"] @ np.full(10, 0.5)
    assert np.allclose(nodes1["y"].params["bias"], expect_fc2, rtol=1e-5)
    assert np.allclose(nodes1["h1"].params["bias"], nodes0["h1"].params["bias"] - 0.5)
