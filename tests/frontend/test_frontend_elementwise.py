"""ONNX import of the element-wise ops: Mul / Add / Sub of two activations (equal shapes or a
per-channel [N, C, 1, 1] operand), Add / Sub / Mul / Div of a constant (folded into the adjacent
Conv/Gemm where exact, else a per-channel 1x1 depthwise conv), SiLU and GELU fused into one table,
PReLU; each against onnxruntime, and the refusals."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from q4sdk.errors import Q4Error
from q4sdk.frontend import import_onnx_model
from q4sdk.ir.float_exec import run_float

RNG = np.random.default_rng(5)
node = helper.make_node


def _model(nodes, inits: dict, in_shape=(3, 6, 6), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "ew",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _conv(name, x, out, cin=3, cout=4, pads=(1, 1, 1, 1)):
    """A Conv node and its weights."""
    inits = {f"{name}_w": RNG.normal(0, 0.5, (cout, cin, 3, 3)), f"{name}_b": RNG.normal(0, 0.2, cout)}
    return node("Conv", [x, f"{name}_w", f"{name}_b"], [out], name=name, pads=list(pads)), inits


def _import_and_compare(model, in_shape=(3, 6, 6)):
    graph = import_onnx_model(model, "ew")
    x = RNG.normal(0, 1.5, (5, *in_shape)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    np.testing.assert_allclose(run_float(graph, x), ref, rtol=1e-4, atol=1e-5)
    return graph


def _ops(graph):
    return [n.op for n in graph.nodes]


@pytest.mark.parametrize("gate_first", [False, True])
def test_squeeze_excite_mul_broadcasts_the_gate(gate_first):
    c1, i1 = _conv("c1", "x", "h")
    c2, i2 = _conv("c2", "g", "s", cin=4, cout=4, pads=(0, 0, 0, 0))
    i2["c2_w"] = RNG.normal(0, 0.5, (4, 4, 1, 1))
    nodes = [
        c1,
        node("GlobalAveragePool", ["h"], ["g"]),
        c2,
        node("HardSigmoid", ["s"], ["gate"]),
        node("Mul", ["gate", "h"] if gate_first else ["h", "gate"], ["y"], name="se"),
    ]
    graph = _import_and_compare(_model(nodes, {**i1, **i2}))
    mul = graph.nodes[-1]
    assert mul.op == "mul" and mul.inputs == ["h", "gate"] and graph.shapes["y"] == (4, 6, 6)


@pytest.mark.parametrize("op", ["Add", "Sub"])
@pytest.mark.parametrize("per_channel_first", [False, True])
def test_add_and_sub_of_a_per_channel_activation(op, per_channel_first):
    c1, i1 = _conv("c1", "x", "h")
    pair = ["g", "h"] if per_channel_first else ["h", "g"]
    nodes = [c1, node("GlobalAveragePool", ["h"], ["g"]), node(op, pair, ["y"], name="bc")]
    graph = _import_and_compare(_model(nodes, i1))
    last = graph.nodes[-1]
    assert last.op == op.lower() and last.inputs == ["h", "g"]
    assert last.attrs.get("reversed", False) == (op == "Sub" and per_channel_first)


def test_sub_and_mul_of_equal_shapes():
    c1, i1 = _conv("c1", "x", "a")
    c2, i2 = _conv("c2", "x", "b")
    nodes = [c1, c2, node("Sub", ["a", "b"], ["d"]), node("Mul", ["d", "a"], ["y"])]
    assert _ops(_import_and_compare(_model(nodes, {**i1, **i2}))) == ["conv2d", "conv2d", "sub", "mul"]


def test_constants_fold_into_the_conv_before():
    """Conv -> Mul c -> Add c -> Div c -> Sub c: one conv, the same numbers."""
    c1, i1 = _conv("c1", "x", "h")
    inits = {
        **i1,
        "m": RNG.normal(1, 0.3, (1, 4, 1, 1)),
        "a": RNG.normal(0, 1, (4, 1, 1)),
        "d": 2.5,
        "s": 0.3,
    }
    nodes = [
        c1,
        node("Mul", ["m", "h"], ["h1"]),
        node("Add", ["h1", "a"], ["h2"]),
        node("Div", ["h2", "d"], ["h3"]),
        node("Sub", ["s", "h3"], ["y"]),  # c - x: the weights change sign
    ]
    assert _ops(_import_and_compare(_model(nodes, inits))) == ["conv2d"]


def test_constants_after_a_relu_become_a_depthwise_conv():
    c1, i1 = _conv("c1", "x", "h")
    nodes = [c1, node("Relu", ["h"], ["r"]), node("Mul", ["r", "k"], ["m"]), node("Add", ["m", "t"], ["y"])]
    inits = {**i1, "k": RNG.normal(0, 1, (4, 1, 1)), "t": 0.5}
    graph = _import_and_compare(_model(nodes, inits))
    assert _ops(graph) == ["conv2d", "relu", "conv2d"]
    aff = graph.nodes[-1]
    assert aff.attrs["groups"] == 4 and aff.params["weight"].shape == (4, 1, 1, 1)


def test_constants_on_a_vector_fold_into_the_gemm_after():
    """x [N, 6] -> Relu -> * k + t -> Gemm: the affine folds forward into the Gemm (always exact)."""
    inits = {"k": RNG.normal(0, 1, 6), "t": RNG.normal(0, 1, 6), "w": RNG.normal(0, 0.5, (3, 6))}
    nodes = [
        node("Relu", ["x"], ["r"]),
        node("Mul", ["r", "k"], ["m"]),
        node("Add", ["t", "m"], ["a"]),
        node("Gemm", ["a", "w"], ["y"], transB=1),
    ]
    graph = _import_and_compare(_model(nodes, inits, (6,)), (6,))
    assert _ops(graph) == ["relu", "fully_connected"]


@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 1, 1, 1)])
def test_input_normalisation_folds_into_the_first_conv_when_exact(pads):
    """(x - mean) / std -> Conv: folded when the conv has no padding (the network input stays raw);
    with padding the border would see the shift, so a per-channel depthwise conv stays in front."""
    c1, i1 = _conv("c1", "n", "y", pads=pads)
    inits = {**i1, "mean": [[[0.4]], [[-0.2]], [[0.1]]], "std": RNG.uniform(0.5, 2, (1, 3, 1, 1))}
    nodes = [node("Sub", ["x", "mean"], ["c"]), node("Div", ["c", "std"], ["n"]), c1]
    graph = _import_and_compare(_model(nodes, inits))
    assert _ops(graph) == (["conv2d"] if not any(pads) else ["conv2d", "conv2d"])
    assert graph.nodes[0].inputs == ["x"]


def test_scale_only_normalisation_folds_into_a_padded_conv():
    c1, i1 = _conv("c1", "n", "y")
    nodes = [node("Div", ["x", "std"], ["n"]), c1]
    graph = _import_and_compare(_model(nodes, {**i1, "std": RNG.uniform(0.5, 2, (3, 1, 1))}))
    assert _ops(graph) == ["conv2d"]


def test_silu_is_one_table():
    c1, i1 = _conv("c1", "x", "h")
    nodes = [c1, node("Sigmoid", ["h"], ["s"]), node("Mul", ["h", "s"], ["y"])]
    graph = _import_and_compare(_model(nodes, i1))
    assert _ops(graph) == ["conv2d", "unary"] and graph.nodes[-1].attrs == {"fn": "silu"}


def test_sigmoid_read_elsewhere_stays_a_mul():
    c1, i1 = _conv("c1", "x", "h")
    nodes = [
        c1,
        node("Sigmoid", ["h"], ["s"]),
        node("Mul", ["h", "s"], ["m"]),
        node("Add", ["m", "s"], ["y"]),
    ]
    assert _ops(_import_and_compare(_model(nodes, i1))) == ["conv2d", "unary", "mul", "add"]


def _gelu_nodes(x, out, half_first: bool, as_constants: bool):
    names = {"sqrt2": math.sqrt(2), "one": 1.0, "half": 0.5}
    consts = (
        [
            node("Constant", [], [k], value=numpy_helper.from_array(np.array(v, np.float32)))
            for k, v in names.items()
        ]
        if as_constants
        else []
    )
    nodes = [
        *consts,
        node("Div", [x, "sqrt2"], ["gd"]),
        node("Erf", ["gd"], ["ge"]),
        node("Add", ["ge", "one"], ["ga"]),
    ]
    if half_first:  # (x * 0.5) * (1 + erf)
        nodes += [node("Mul", [x, "half"], ["gh"]), node("Mul", ["gh", "ga"], [out])]
    else:  # (x * (1 + erf)) * 0.5
        nodes += [node("Mul", [x, "ga"], ["gm"]), node("Mul", ["gm", "half"], [out])]
    return nodes, {} if as_constants else names


@pytest.mark.parametrize("half_first", [False, True])
@pytest.mark.parametrize("as_constants", [False, True])
def test_gelu_pattern_is_one_table(half_first, as_constants):
    c1, i1 = _conv("c1", "x", "h")
    gelu, inits = _gelu_nodes("h", "y", half_first, as_constants)
    graph = _import_and_compare(_model([c1, *gelu], {**i1, **inits}))
    assert _ops(graph) == ["conv2d", "unary"] and graph.nodes[-1].attrs == {"fn": "gelu"}


def test_gelu_node_of_opset_20():
    c1, i1 = _conv("c1", "x", "h")
    graph = import_onnx_model(_model([c1, node("Gelu", ["h"], ["y"])], i1, opset=20), "g")
    assert _ops(graph) == ["conv2d", "unary"] and graph.nodes[-1].attrs == {"fn": "gelu"}


def test_prelu_per_channel_and_single_slope():
    c1, i1 = _conv("c1", "x", "h")
    inits = {**i1, "slopes": [[[-0.2]], [[0.1]], [[0.3]], [[0.7]]], "one": [0.25]}
    nodes = [c1, node("PRelu", ["h", "slopes"], ["p"]), node("PRelu", ["p", "one"], ["y"])]
    graph = _import_and_compare(_model(nodes, inits))
    assert _ops(graph) == ["conv2d", "prelu", "unary"]
    assert graph.nodes[-1].attrs == {"fn": "leaky_relu", "alpha": 0.25}


@pytest.mark.parametrize(
    "nodes, inits, fragment",
    [
        ([node("Relu", ["x"], ["r"]), node("Div", ["r", "r"], ["y"], name="dv")], {}, "Div by an activation"),
        (
            [
                node("Relu", ["x"], ["r"]),
                node("MaxPool", ["r"], ["m"], kernel_shape=[1, 6]),
                node("Mul", ["r", "m"], ["y"], name="mm"),
            ],
            {},
            "different shapes",
        ),
        (
            [node("Relu", ["x"], ["r"]), node("Mul", ["r", "k"], ["y"], name="mk")],
            {"k": RNG.normal(0, 1, (6, 6))},
            "varies over space",
        ),
        (
            [node("Relu", ["x"], ["r"]), node("Div", ["r", "z"], ["y"], name="dz")],
            {"z": [1.0, 2.0]},
            "does not broadcast",
        ),
        (
            [node("Relu", ["x"], ["r"]), node("Div", ["r", "z"], ["y"], name="d0")],
            {"z": [1.0, 0.0, 2.0]},
            "holds zeros",
        ),
    ],
    ids=["div-activation", "mul-shapes", "mul-spatial-const", "div-bad-const", "div-zero"],
)
def test_refusals_name_the_node(nodes, inits, fragment):
    with pytest.raises(Q4Error) as err:
        import_onnx_model(_model(nodes, inits), "bad")
    assert fragment in str(err.value) and f"'{nodes[-1].name}'" in str(err.value)
