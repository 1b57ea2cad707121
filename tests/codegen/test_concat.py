"""The ``concat`` op (each input requantized to the output): ONNX import against onnxruntime, refusal
of inputs that differ in more than the axis, the C against the oracle bit for bit (int8 and packed
4-bit activations), and a fire-module CNN quantize -> generate -> verify at W4A8 and W4A4."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.frontend import import_onnx_model
from q4sdk.ir import fixedpoint
from q4sdk.ir.float_exec import run_float
from q4sdk.ir.oracle import run_oracle
from q4sdk.targets.host_build import CModel
from random_models import _Builder, assert_c_equals_oracle, random_input, random_model
from tests.zoo.e2e import run_end_to_end


def _onnx(nodes, inits: dict, in_shape, name="concat") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def fire_model(rng, axis=1) -> onnx.ModelProto:
    """x [N, 3, 8, 8] -> conv -> relu -> (1x1 conv, relu | 3x3 conv, relu) -> Concat(axis) ->
    (a second Concat with the squeeze tensor itself) -> GlobalAveragePool -> Flatten -> Gemm."""
    inits = {
        "w0": rng.normal(0, 0.5, (4, 3, 3, 3)),
        "b0": rng.normal(0, 0.2, 4),
        "w1": rng.normal(0, 0.5, (5, 4, 1, 1)),
        "b1": rng.normal(0, 0.2, 5),
        "w3": rng.normal(0, 0.3, (3, 4, 3, 3)) * 3,  # a different range: different scales
        "b3": rng.normal(0, 0.2, 3),
        "fw": rng.normal(0, 0.5, (6, 12)),
        "fb": np.zeros(6),
    }
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1], name="squeeze"),
        n("Relu", ["c0"], ["s"], name="relu0"),
        n("Conv", ["s", "w1", "b1"], ["c1"], name="expand1x1"),
        n("Relu", ["c1"], ["e1"], name="relu1"),
        n("Conv", ["s", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], name="expand3x3"),
        n("Relu", ["c3"], ["e3"], name="relu3"),
        n("Concat", ["e1", "e3"], ["cat"], axis=axis, name="cat"),
        n("Concat", ["cat", "s"], ["cat2"], axis=axis, name="cat2"),
        n("GlobalAveragePool", ["cat2"], ["g"], name="gap"),
        n("Flatten", ["g"], ["f"], name="flat"),
        n("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="fc"),
    ]
    return _onnx(nodes, inits, (3, 8, 8), "fire")


def feature_model(rng) -> onnx.ModelProto:
    """x [N, 6] -> two Gemm branches -> Concat(axis=-1) of (N, F) vectors -> Gemm."""
    inits = {
        "wa": rng.normal(0, 0.5, (4, 6)),
        "wb": rng.normal(0, 2.0, (3, 6)),
        "wc": rng.normal(0, 0.5, (2, 7)),
    }
    n = helper.make_node
    nodes = [
        n("Gemm", ["x", "wa"], ["a"], transB=1, name="fa"),
        n("Gemm", ["x", "wb"], ["b"], transB=1, name="fb"),
        n("Concat", ["a", "b"], ["ab"], axis=-1, name="cat"),
        n("Gemm", ["ab", "wc"], ["y"], transB=1, name="fc"),
    ]
    return _onnx(nodes, inits, (6,), "features")


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("axis", [1, -3])
def test_onnx_import_channel_concat_matches_onnxruntime(axis):
    rng = np.random.default_rng(1)
    model = fire_model(rng, axis)
    graph = import_onnx_model(model, "fire")
    cats = [nd for nd in graph.nodes if nd.op == "concat"]
    assert [nd.inputs for nd in cats] == [["e1", "e3"], ["cat", "s"]]
    assert graph.shapes["cat2"] == (12, 8, 8)
    x = rng.normal(0, 1, (5, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), _ort(model, x), rtol=1e-4, atol=1e-5)


def test_onnx_import_feature_concat_matches_onnxruntime():
    rng = np.random.default_rng(2)
    model = feature_model(rng)
    graph = import_onnx_model(model, "features")
    assert [nd.op for nd in graph.nodes] == [
        "fully_connected",
        "fully_connected",
        "concat",
        "fully_connected",
    ]
    x = rng.normal(0, 1, (5, 6)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), _ort(model, x), rtol=1e-4, atol=1e-5)


def test_concat_of_mismatched_shapes_is_listed_with_every_unsupported_node():
    rng = np.random.default_rng(3)
    model = fire_model(rng, axis=2)  # both Concats on H; cat2 only reads the refused cat
    model.graph.node.insert(2, helper.make_node("Erf", ["s"], ["erf"], name="erf"))
    with pytest.raises(Q4Error) as err:
        import_onnx_model(model, "fire")
    msg = str(err.value)
    assert "2 unsupported nodes" in msg, msg
    assert (
        "node 'cat': Concat inputs 'e1' [5, 8, 8] and 'e3' [3, 8, 8] differ in more than the concat axis"
        in msg
    )
    assert "node 'erf'" in msg and "'cat2'" not in msg


def test_lowering_multipliers_are_exact_and_copy_when_quantization_matches():
    """requantize(d, m, s) for the lowered pair is the real ratio rounded; ratio 1 is a copy."""
    m, s = fixedpoint.quantize_multiplier(1.0)
    d = np.arange(-255, 256)
    np.testing.assert_array_equal(fixedpoint.requantize(d, m, s), d)
    m, s = fixedpoint.quantize_multiplier(0.37)
    assert np.abs(fixedpoint.requantize(d, m, s) - d * 0.37).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("seed", range(4))
def test_random_concat_models_c_equals_oracle(tmp_path, seed):
    rng = np.random.default_rng(200 + seed)
    kinds = ("concat", "concat", "conv2d", "add", "maxpool", "clamp")
    model = random_model(rng, n_ops=7, kinds=kinds, name=f"cat{seed}")
    assert any(op.kind == "concat" for op in model.ops)
    generate(model, tmp_path / "gen", "net")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 16))


def test_packed_concat_c_equals_oracle(tmp_path):
    """4-bit tensors stored two per byte, odd channel counts (slices not byte aligned): q4_concat_p4."""
    rng = np.random.default_rng(9)
    b = _Builder(rng, (3, 2, 3), bits=4)
    for _ in range(3):
        b.concat()
    model = b.model("pcat")
    for t in model.tensors.values():
        t.bits = 4
        t.zero_point = min(max(t.zero_point, -8), 7)
    for op in model.ops:
        op.attrs["act_min"] = max(op.attrs["act_min"], -8)
        op.attrs["act_max"] = min(max(op.attrs["act_max"], op.attrs["act_min"]), 7)
    report = generate(model, tmp_path / "gen", "net", pack_activations=True)
    assert "q4_concat_p4.c" in report.kernel_sources
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    xq = random_input(model, rng, 16)
    assert_c_equals_oracle(cm, model, xq)
    np.testing.assert_array_equal(cm.run(xq), run_oracle(model, xq))


@pytest.mark.parametrize("bits", [8, 4])
def test_fire_module_quantize_generate_verify(bits, tmp_path):
    """Default recipe, W4A8 and W4A4: the concat inputs get their own scales, the C is bit-exact
    (run_end_to_end asserts it on every tensor)."""
    rng = np.random.default_rng(4)
    model = fire_model(rng)
    calib = rng.normal(0, 1, (32, 3, 8, 8)).astype(np.float32)
    test = rng.normal(0, 1, (4, 3, 8, 8)).astype(np.float32)
    e2e = run_end_to_end(model, calib, test, tmp_path, bits=bits, name="fire")
    cats = [op for op in e2e.model.ops if op.kind == "concat"]
    assert len(cats) == 2
    scales = {e2e.model.tensors[t].scale for op in cats for t in op.inputs}
    assert len(scales) > 1  # really requantized, not a shared scale
    assert np.isfinite(e2e.int_out).all()
    if bits == 8:
        assert e2e.sqnr_db > 10.0, e2e.sqnr_db


def test_feature_concat_quantize_generate_verify(tmp_path):
    rng = np.random.default_rng(5)
    calib = rng.normal(0, 1, (32, 6)).astype(np.float32)
    e2e = run_end_to_end(feature_model(rng), calib, calib[:4], tmp_path, bits=8, name="feat")
    assert any(op.kind == "concat" for op in e2e.model.ops)
    assert e2e.sqnr_db > 10.0, e2e.sqnr_db
