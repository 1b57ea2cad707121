"""The ``lut`` op (unary nonlinearities by table lookup), end to end: ONNX import of each
function against onnxruntime, the C against the oracle bit for bit (int8 and packed 4-bit
activations), and quantize -> generate -> verify on a tiny model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from q4sdk.check.verify import verify
from q4sdk.codegen.render import generate
from q4sdk.frontend import import_onnx_model
from q4sdk.ir.float_exec import run_float
from q4sdk.ir.oracle import quantize_input, run_oracle
from q4sdk.ir.q4file import load_q4, save_q4
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import Recipe
from q4sdk.targets.host_build import CModel
from random_models import _Builder, assert_c_equals_oracle, random_input, random_model

FUNCTIONS = {  # ONNX op -> (attrs, float64 reference)
    "Sigmoid": ({}, lambda x: 1 / (1 + np.exp(-x))),
    "Tanh": ({}, np.tanh),
    "HardSigmoid": ({"alpha": 0.25, "beta": 0.4}, lambda x: np.clip(0.25 * x + 0.4, 0, 1)),
    "HardSwish": ({}, lambda x: x * np.clip(x / 6 + 0.5, 0, 1)),
    "LeakyRelu": ({"alpha": 0.1}, lambda x: np.where(x >= 0, x, 0.1 * x)),
}


def _model(op: str, attrs: dict, rng) -> onnx.ModelProto:
    """x [N, 3, 6, 6] -> Conv 3x3 -> <op> -> GlobalAveragePool -> Flatten -> Gemm -> y."""
    inits = {
        "w": rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32),
        "b": rng.normal(0, 0.3, 4).astype(np.float32),
        "fw": rng.normal(0, 0.5, (5, 4)).astype(np.float32),
        "fb": np.zeros(5, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node(op, ["c"], ["u"], name="act", **attrs),
        helper.make_node("GlobalAveragePool", ["u"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "lut",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("op", sorted(FUNCTIONS))
def test_onnx_import_matches_onnxruntime(op):
    rng = np.random.default_rng(1)
    model = _model(op, FUNCTIONS[op][0], rng)
    graph = import_onnx_model(model, "lut")
    assert [n.op for n in graph.nodes] == ["conv2d", "unary", "global_avgpool", "reshape", "fully_connected"]
    x = rng.normal(0, 2, (8, 3, 6, 6)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    np.testing.assert_allclose(run_float(graph, x), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", sorted(FUNCTIONS))
def test_quantize_generate_verify(op, tmp_path):
    """The table is f on every dequantized input code, rounded at the output scale; the C runs it
    bit-exact against the oracle."""
    rng = np.random.default_rng(2)
    graph = import_onnx_model(_model(op, FUNCTIONS[op][0], rng), "lut")
    calib = rng.normal(0, 2, (32, 3, 6, 6)).astype(np.float32)
    model = quantize_graph(graph, calib, Recipe(activation_bits=8))
    save_q4(model, tmp_path / "m.q4")
    model = load_q4(tmp_path / "m.q4")
    lut = next(o for o in model.ops if o.kind == "lut")
    t_in, t_out = model.tensors[lut.inputs[0]], model.tensors[lut.output]
    codes = np.arange(t_in.qmin, t_in.qmax + 1)
    real = FUNCTIONS[op][1](t_in.scale * (codes - t_in.zero_point).astype(np.float64))
    v = real / t_out.scale
    expect = np.clip(
        np.trunc(v) + np.where(np.abs(v - np.trunc(v)) >= 0.5, np.sign(v), 0) + t_out.zero_point,
        t_out.qmin,
        t_out.qmax,
    )
    np.testing.assert_array_equal(lut.arrays["table"], expect.astype(np.int8))
    generate(model, tmp_path / "gen", "lut")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    xq = quantize_input(model, calib)
    assert_c_equals_oracle(cm, model, xq)
    assert verify(model, cm, xq).ok


@pytest.mark.parametrize("seed", range(4))
def test_random_lut_models_c_equals_oracle(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    model = random_model(rng, n_ops=6, kinds=("lut", "lut", "conv2d", "add", "maxpool"), name=f"lut{seed}")
    assert any(op.kind == "lut" for op in model.ops)
    generate(model, tmp_path / "gen", "net")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 16))


def test_packed_lut_c_equals_oracle(tmp_path):
    """4-bit input and output stored two per byte: the 16-entry table through q4_lut_p4."""
    rng = np.random.default_rng(7)
    b = _Builder(rng, (5, 3, 3), bits=4)
    for _ in range(3):
        b.lut()
    model = b.model("plut")
    for t in model.tensors.values():
        t.bits = 4
        t.zero_point = min(max(t.zero_point, -8), 7)
    for op in model.ops:  # tables within the (now 4-bit) output range, 16 entries
        op.arrays["table"] = rng.integers(-8, 8, size=16).astype(np.int8)
    report = generate(model, tmp_path / "gen", "net", pack_activations=True)
    assert "q4_lut_p4.c" in report.kernel_sources
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    xq = random_input(model, rng, 16)
    assert_c_equals_oracle(cm, model, xq)
    np.testing.assert_array_equal(cm.run(xq), run_oracle(model, xq))
