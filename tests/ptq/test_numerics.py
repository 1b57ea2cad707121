"""Numerics that survive trained weights (q4sdk/ptq/numerics.py): each degenerate case quantizes,
generates C that is bit-exact with the oracle, and stays close to the float model."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from q4sdk.check.report import numerics_notes
from q4sdk.errors import Q4Error
from q4sdk.frontend import import_onnx_model
from q4sdk.ir import fixedpoint, oracle
from q4sdk.ptq import numerics
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import preset
from tests.zoo.e2e import run_end_to_end

RNG = np.random.default_rng(0)
CALIB = RNG.normal(size=(64, 3, 12, 12)).astype(np.float32)
TEST = RNG.normal(size=(8, 3, 12, 12)).astype(np.float32)


class SmallCNN(nn.Module):
    def __init__(self, act=nn.ReLU):
        super().__init__()
        torch.manual_seed(0)
        self.c1, self.b1, self.a1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), act()
        self.c2, self.b2, self.a2 = nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), act()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.a1(self.b1(self.c1(x)))
        x = self.a2(self.b2(self.c2(x)))
        return self.fc(x.mean((2, 3)))


def export(module: nn.Module) -> onnx.ModelProto:
    """As a user exports: TorchScript exporter, opset 17."""
    module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            (torch.as_tensor(CALIB[:1]),),
            buf,
            opset_version=17,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
        )
    return onnx.load_from_string(buf.getvalue())


def pathological(edit, act=nn.ReLU) -> onnx.ModelProto:
    m = SmallCNN(act)
    with torch.no_grad():
        for bn in (m.b1, m.b2):  # trained-looking BatchNorm statistics
            bn.running_mean.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.bias.normal_(0, 0.2)
        edit(m)
    return export(m)


def check(model, tmp_path, bits=8, min_sqnr=15.0, cases=(), unsigned=False):
    recipe = preset("default", bits, unsigned_activations=unsigned)
    run = run_end_to_end(model, CALIB, TEST, tmp_path, bits=bits, recipe=recipe)  # asserts C == oracle
    assert np.isfinite(run.int_out).all()
    assert run.sqnr_db >= min_sqnr, run.sqnr_db
    found = {n["case"] for n in run.model.meta.get("numerics", [])}
    assert set(cases) <= found, found
    return run


def layer(model, name_part):
    return next(op for op in model.ops if name_part in op.name and "weight" in op.arrays)


@pytest.mark.parametrize("bits", [8, 4])
def test_dead_channel_kernel_1e30_is_a_zero_kernel_carried_by_its_bias(tmp_path, bits):
    """The issue's reproducer: one output channel's kernel times 1e-30 (a trained model's dead channel)."""

    def edit(m):
        m.c2.weight[3] *= 1e-30

    run = check(
        pathological(edit), tmp_path, bits, min_sqnr=12.0 if bits == 4 else 15.0, cases=["zero_kernel"]
    )
    op = layer(run.model, "c2")
    assert not op.arrays["weight"][3].any()
    rec = next(n for n in run.model.meta["numerics"] if n["case"] == "zero_kernel")
    assert rec["channel"] == 3 and rec["max_abs_weight"] < 1e-29
    assert any(
        "zero kernel (channels 3)" in n and "c2" in n for n in numerics_notes(run.model)
    )  # q4sdk report
    # the channel is the bias itself: its integer output equals the float one to an output step
    xq = oracle.quantize_input(run.model, TEST)
    _, caps = oracle.run_oracle(run.model, xq, capture=True)
    t = run.model.tensors[op.output]
    got = t.scale * (caps[op.output][..., 3].astype(np.float64) - t.zero_point)
    expect = max(rec["bias"], 0.0)  # ReLU after the folded BatchNorm
    assert np.abs(got - expect).max() <= t.scale


def test_mobilenet_like_dead_channels_1e16_to_1e30(tmp_path):
    def edit(m):
        for c, f in zip((0, 2, 5, 7), (1e-16, 1e-20, 1e-25, 1e-30)):
            m.c2.weight[c] *= f

    run = check(pathological(edit), tmp_path, cases=["zero_kernel"])
    chans = sorted(n["channel"] for n in run.model.meta["numerics"] if n["case"] == "zero_kernel")
    assert chans == [0, 2, 5, 7]


def test_all_zero_layer_and_constant_channels(tmp_path):
    """All-zero conv weights: with zero biases the layer's output is 0 (an exact layer: its SQNR is
    recorded as None, not inf); with biases every channel is a constant."""

    def zero(m):
        m.c2.weight.zero_()
        m.c2.bias.zero_()
        m.b2.bias.zero_()
        m.b2.running_mean.zero_()

    run = check(pathological(zero), tmp_path, min_sqnr=-np.inf, cases=["output_scale_floor"])
    assert not layer(run.model, "c2").arrays["weight"].any()
    np.testing.assert_allclose(run.int_out, run.float_out, atol=2 * run.model.output_tensor.scale)

    def constant(m):
        m.c2.weight.zero_()

    run = check(pathological(constant), tmp_path, min_sqnr=25.0)


def test_scale_zero_kernel_keeps_its_bias():
    """A kernel whose scale is 0 (the lowering used to drop its bias) computes its bias."""
    from q4sdk.ir.float_graph import FloatNode
    from q4sdk.ptq.pipeline import LayerWeights
    from q4sdk.ptq.plan import Step

    w = np.zeros((2, 3, 1, 1), np.float32)
    node = FloatNode("c", "conv2d", ["x"], "y", {"groups": 1}, {"weight": w, "bias": np.array([0.5, -2.0])})
    step = Step("conv2d", node, ["x"], "y", "y", None)
    lw = LayerWeights(np.zeros(w.shape, np.int8), np.zeros(2), np.array([0.5, -2.0]))
    numerics.fit_bias(step, lw, [0.01], sy=0.02)
    assert (lw.scales > 0).all() and [r["case"] for r in lw.stats["numerics"]] == ["zero_kernel"] * 2
    bias_int = np.rint(lw.bias / (0.01 * lw.scales))
    m, s = numerics.requant_multipliers("c", 0.01 * lw.scales / 0.02, [])
    out = fixedpoint.requantize(bias_int.astype(np.int64), m.astype(np.int64), s.astype(np.int64))
    np.testing.assert_array_equal(out, [25, -100])  # 0.5 / 0.02, -2.0 / 0.02


def test_dead_relu_review_reproducer(tmp_path):
    """Review D3: a ReLU whose output is 0 on every calibration sample (bias -100)."""
    rng = np.random.default_rng(0)
    f = lambda n, a: nh.from_array(np.asarray(a, np.float32), n)  # noqa: E731
    g = h.make_graph(
        [
            h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
            h.make_node("Relu", ["c1"], ["r1"]),
            h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
            h.make_node("GlobalAveragePool", ["c2"], ["g"]),
            h.make_node("Flatten", ["g"], ["y"]),
        ],
        "dead",
        [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 12, 12])],
        [h.make_tensor_value_info("y", T.FLOAT, None)],
        [
            f("w1", rng.normal(0, 0.3, (4, 3, 3, 3))),
            f("b1", [-100] * 4),
            f("w2", rng.normal(0, 0.3, (4, 4, 3, 3))),
            f("b2", [0.1, -0.2, 0.3, 0.05]),
        ],
    )
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    for bits, unsigned in ((8, False), (4, False), (4, True)):
        run = check(model, tmp_path, bits, min_sqnr=20.0, cases=["output_scale_floor"], unsigned=unsigned)
        np.testing.assert_allclose(
            run.int_out, [[0.1, -0.2, 0.3, 0.05]] * len(TEST), atol=run.model.output_tensor.scale
        )


def test_tiny_range_layer(tmp_path):
    """A whole layer scaled by 1e-20: its outputs are tiny but not zero; the next layer sees them as 0."""

    def edit(m):
        m.c2.weight *= 1e-20
        m.b2.weight *= 1e-20
        m.b2.bias *= 1e-20

    check(pathological(edit), tmp_path, min_sqnr=15.0)


def test_huge_bias(tmp_path):
    """A channel with a bias of 1e8 (the kernel is invisible next to it at any scale that fits int32)."""

    def edit(m):
        m.b2.bias[2] = 1e8

    run = check(pathological(edit), tmp_path, min_sqnr=15.0)
    assert any(
        n["channel"] == 2 and n["case"] in ("zero_kernel", "coarse_kernel")
        for n in run.model.meta["numerics"]
    )


def test_saturating_relu6(tmp_path):
    """ReLU6 whose input is always above 6: a constant 6 channel, and one always below 0."""

    def edit(m):
        m.b2.bias[1] = 100.0
        m.b2.bias[4] = -100.0

    check(pathological(edit, act=nn.ReLU6), tmp_path, min_sqnr=15.0)


def test_clip_min_above_max_quantizes(tmp_path):
    """Clip(min=2, max=0.5) after a conv (review D3): every output 0.5."""
    m = pathological(lambda m: None)
    graph = m.graph
    last_conv = [n for n in graph.node if n.op_type == "Conv"][-1]
    relu = next(n for n in graph.node if n.input and n.input[0] == last_conv.output[0])
    graph.initializer.extend(
        [nh.from_array(np.array(2.0, np.float32), "lo"), nh.from_array(np.array(0.5, np.float32), "hi")]
    )
    relu.op_type = "Clip"
    relu.input.extend(["lo", "hi"])
    check(m, tmp_path, min_sqnr=15.0)


def test_multipliers_encode_the_extreme_cases_exactly():
    notes: list = []
    m, s = numerics.requant_multipliers("l", np.array([3e9, 1e-40, 0.25, 0.0]), notes)
    assert [n["case"] for n in notes] == ["saturating_multiplier", "negligible_multiplier"]
    acc = np.array([-3, -1, 0, 1, 2], np.int64)
    big = fixedpoint.requantize(acc, int(m[0]), int(s[0]))
    assert (np.sign(big) == np.sign(acc)).all() and (np.abs(big[acc != 0]) > 255).all()
    tiny = fixedpoint.requantize(np.array([-(2**31), 2**31 - 1], np.int64), int(m[1]), int(s[1]))
    assert (tiny == 0).all()
    assert (m[2], s[2]) == fixedpoint.quantize_multiplier(0.25)


def test_all_zero_calibration_is_refused_before_work():
    model = pathological(lambda m: None)
    graph = import_onnx_model(model, "m")
    with pytest.raises(Q4Error, match="calibration data: every value is 0"):
        quantize_graph(graph, np.zeros_like(CALIB), preset("default", 8))


def test_float_overflow_is_refused_naming_the_layer():
    """Finite weights whose products overflow float32: the float model does not run."""
    g = h.make_graph(
        [h.make_node("Conv", ["x", "w"], ["y"], "big")],
        "big",
        [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 12, 12])],
        [h.make_tensor_value_info("y", T.FLOAT, None)],
        [nh.from_array(np.full((2, 3, 3, 3), 3e38, np.float32), "w")],
    )
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    graph = import_onnx_model(model, "m")
    with pytest.raises(Q4Error, match="node 'big'.*not finite"):
        quantize_graph(graph, np.abs(CALIB), preset("default", 8))


def test_cli_degenerate_models(tmp_path, capsys):
    """Through the CLI: a dead-channel model quantizes (exit 0); a NaN weight fails at import with one
    line naming the node and the initializer (exit 2), and no .q4 is written."""
    from q4sdk.cli import main

    dead = pathological(lambda m: m.c2.weight[3].mul_(1e-30))
    onnx.save(dead, tmp_path / "dead.onnx")
    np.savez(tmp_path / "calib.npz", x=CALIB)
    assert (
        main(
            [
                "quantize",
                str(tmp_path / "dead.onnx"),
                "--calib",
                str(tmp_path / "calib.npz"),
                "-o",
                str(tmp_path / "dead.q4"),
                "-q",
            ]
        )
        == 0
    )
    bad = pathological(lambda m: m.c1.weight[0, 0, 0].fill_(float("nan")))
    onnx.save(bad, tmp_path / "nan.onnx")
    capsys.readouterr()
    assert (
        main(
            [
                "quantize",
                str(tmp_path / "nan.onnx"),
                "--calib",
                str(tmp_path / "calib.npz"),
                "-o",
                str(tmp_path / "nan.q4"),
                "-q",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: node '/c1/Conv'") and "NaN" in err[0]
    assert not (tmp_path / "nan.q4").exists()
