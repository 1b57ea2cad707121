"""Import of 1-D ([N, C, L]) models and of layout ops (Reshape / Transpose / Squeeze / Unsqueeze /
Slice / Split / Gather, Concat on any axis, ReduceMean over any adjacent axes): the float graph
computes what onnxruntime computes, with the integer kinds the spec names."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from q4sdk.errors import Q4Error
from q4sdk.frontend import import_onnx_model
from q4sdk.ir.float_exec import run_float
from q4sdk.ptq.plan import build_plan
from tests.zoo.models import INPUTS, random_inputs, zoo_onnx

SHAPE_MODELS = [n for n in INPUTS if n.startswith("op_")] + ["kws_1d", "shufflenet_v2_x05"]


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("name", SHAPE_MODELS)
def test_zoo_shape_models_match_onnxruntime(name):
    model = zoo_onnx(name)
    graph = import_onnx_model(model, name)
    assert graph.input_shape == INPUTS[name]
    x = random_inputs(name, 3, seed=5).numpy()
    got = run_float(graph, x)
    if graph.output_softmax:  # the final Softmax over the classes is removed (argmax unchanged)
        got = np.exp(got - got.max(1, keepdims=True)) / np.exp(got - got.max(1, keepdims=True)).sum(
            1, keepdims=True
        )
    np.testing.assert_allclose(got, _ort(model, x), rtol=1e-4, atol=1e-4)
    build_plan(graph)  # every node lowers


def _model(nodes, in_shape, inits=None, opset=17):
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _check(model, in_shape, ops):
    graph = import_onnx_model(model, "m")
    assert [n.op for n in graph.nodes] == ops
    x = np.random.default_rng(0).normal(0, 1, (2, *in_shape)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x).reshape(2, -1), _ort(model, x).reshape(2, -1), rtol=1e-5)
    return graph


def test_channel_shuffle_then_split_is_one_gather_per_output():
    """Reshape -> Transpose -> Reshape -> Split: each half is one gather of the shuffle's input."""
    n = helper.make_node
    model = _model(
        [
            n("Relu", ["x"], ["r"]),
            n("Reshape", ["r", "s5"], ["a"]),
            n("Transpose", ["a"], ["b"], perm=[0, 2, 1, 3, 4]),
            n("Reshape", ["b", "s4"], ["c"]),
            n("Split", ["c", "sp"], ["p", "q"], axis=1),
            n("Concat", ["q", "p"], ["y"], axis=1),
        ],
        (6, 2, 3),
        {"s5": np.array([-1, 2, 3, 2, 3]), "s4": np.array([-1, 6, 2, 3]), "sp": np.array([3, 3])},
    )
    graph = _check(model, (6, 2, 3), ["relu", "gather", "gather", "concat"])
    shuffle = [0, 3, 1, 4, 2, 5]
    assert [g.attrs["index"] for g in graph.nodes[1:3]] == [shuffle[3:], shuffle[:3]]


def test_slice_on_h_and_w_then_gather_on_w_is_one_gather_per_axis():
    """The W slice (step 2) and the W Gather after it fuse into one index table."""
    n = helper.make_node
    model = _model(
        [
            n("Relu", ["x"], ["r"]),
            n("Slice", ["r", "st", "en", "ax", "sp"], ["s"]),
            n("Gather", ["s", "gi"], ["y"], axis=3),
        ],
        (2, 6, 7),
        {
            "st": np.array([1, 0]),
            "en": np.array([-1, 7]),
            "ax": np.array([2, 3]),
            "sp": np.array([1, 2]),
            "gi": np.array([3, 0, 0]),
        },
    )
    graph = _check(model, (2, 6, 7), ["relu", "gather", "gather"])
    assert [(g.attrs["axis"], g.attrs["index"]) for g in graph.nodes[1:]] == [
        (1, [1, 2, 3, 4]),
        (2, [6, 0, 0]),
    ]
    assert graph.shapes["y"] == (2, 4, 3)


def test_rank3_conv_pool_concat_on_l_and_reduce_mean_over_channels():
    n = helper.make_node
    rng = np.random.default_rng(1)
    model = _model(
        [
            n("Conv", ["x", "w"], ["c"], pads=[1, 1], strides=[2]),
            n("MaxPool", ["c"], ["m"], kernel_shape=[2], strides=[1]),
            n("Concat", ["c", "m"], ["cat"], axis=-1),
            n("ReduceMean", ["cat"], ["y"], axes=[1], keepdims=1),
        ],
        (3, 10),
        {"w": rng.normal(0, 1, (4, 3, 3)).astype(np.float32)},
    )
    graph = _check(model, (3, 10), ["conv2d", "maxpool", "concat", "reduce_mean"])
    assert graph.shapes["cat"] == (4, 1, 9) and graph.shapes["y"] == (1, 1, 9)
    assert graph.input_shape == (3, 10) and graph.shapes["x"] == (3, 1, 10)


def test_transpose_that_is_not_one_axis_names_the_node():
    n = helper.make_node
    model = _model(
        [
            n("Relu", ["x"], ["r"]),
            n("Transpose", ["r"], ["t"], "swap", perm=[0, 1, 3, 2]),
            n("Relu", ["t"], ["y"], "after"),
        ],
        (2, 3, 4),
    )
    with pytest.raises(Q4Error, match="Transpose node 'swap'.*more than one axis"):
        import_onnx_model(model, "m")
