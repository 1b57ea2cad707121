"""ONNX importer: each supported pattern against onnxruntime, and each rejection path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from q4sdk.errors import Q4Error
from q4sdk.frontend import import_onnx_model, load_onnx
from q4sdk.ir.float_exec import run_float

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RESNET8 = SHARED / "models" / "resnet8_cifar10.onnx"

RNG = np.random.default_rng(0)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def make_model(nodes, in_shape, inits=None, opset=17, extra_inputs=()):
    """A one-input one-output model; the input is 'x', the output 'y'."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape), *extra_inputs]
    graph = helper.make_graph(
        nodes,
        "test",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def ort_run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def import_and_compare(model, x, logical_x=None, atol=1e-5):
    """Import ``model``, run it with run_float and check it against onnxruntime; return the graph."""
    graph = import_onnx_model(model, "test")
    ours = run_float(graph, x if logical_x is None else logical_x)
    ref = ort_run(model, x)
    if graph.output_softmax:
        ours = np.exp(ours - ours.max(1, keepdims=True))
        ours /= ours.sum(1, keepdims=True)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=atol)
    return graph


def ops(graph):
    return [n.op for n in graph.nodes]


def node(op, inputs, outputs, name="", **attrs):
    return helper.make_node(op, inputs, outputs, name=name, **attrs)


# ---------------------------------------------------------------- supported patterns vs onnxruntime


def test_conv_batchnorm_relu_folds_bn():
    c = 6
    inits = {"w": rand(c, 3, 3, 3), "g": rand(c) + 2, "b": rand(c), "m": rand(c), "v": np.abs(rand(c)) + 0.5}
    model = make_model(
        [
            node("Conv", ["x", "w"], ["c"], "conv", pads=[1, 1, 1, 1]),
            node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], "bn", epsilon=1e-3),
            node("Relu", ["bn"], ["y"], "relu"),
        ],
        ["N", 3, 7, 7],
        inits,
    )
    graph = import_and_compare(model, rand(2, 3, 7, 7))
    assert ops(graph) == ["conv2d", "relu"]
    assert graph.nodes[0].output == "bn" and graph.shapes["bn"] == (c, 7, 7)
    assert "c" not in graph.shapes


def test_conv_plus_constant_folds_into_bias_and_residual_add_stays():
    inits = {"w": rand(4, 4, 3, 3), "k": rand(1, 4, 1, 1)}
    model = make_model(
        [
            node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            node("Add", ["k", "c"], ["cb"]),
            node("Add", ["cb", "x"], ["y"]),
        ],
        ["N", 4, 5, 5],
        inits,
    )
    graph = import_and_compare(model, rand(3, 4, 5, 5))
    assert ops(graph) == ["conv2d", "add"]
    np.testing.assert_allclose(graph.nodes[0].params["bias"], inits["k"].reshape(4))


def test_depthwise_conv_and_asymmetric_maxpool():
    model = make_model(
        [
            node("Conv", ["x", "w", "b"], ["c"], group=5, pads=[1, 0, 1, 2], strides=[2, 1]),
            node("MaxPool", ["c"], ["y"], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 0, 1]),
        ],
        ["N", 5, 9, 8],
        {"w": rand(5, 1, 3, 3), "b": rand(5)},
    )
    graph = import_and_compare(model, rand(2, 5, 9, 8))
    assert graph.nodes[0].attrs["groups"] == 5 and graph.nodes[0].attrs["pads"] == (1, 0, 1, 2)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_auto_pad_becomes_explicit(auto_pad):
    model = make_model(
        [node("Conv", ["x", "w"], ["y"], auto_pad=auto_pad, strides=[2, 2])],
        ["N", 2, 8, 7],
        {"w": rand(3, 2, 4, 3)},
    )
    graph = import_and_compare(model, rand(2, 2, 8, 7))
    expected = {"SAME_UPPER": (1, 1, 1, 1), "SAME_LOWER": (1, 1, 1, 1), "VALID": (0, 0, 0, 0)}
    # 8 rows, k=4, s=2: total 2 -> 1/1; 7 cols, k=3, s=2: total 2 -> 1/1
    assert graph.nodes[0].attrs["pads"] == expected[auto_pad]


def test_same_lower_puts_the_odd_pad_first():
    model = make_model(
        [node("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER")], ["N", 1, 6, 6], {"w": rand(2, 1, 2, 2)}
    )
    graph = import_and_compare(model, rand(1, 1, 6, 6))
    assert graph.nodes[0].attrs["pads"] == (1, 1, 0, 0)


def test_pad_folds_into_conv():
    pads = np.array([0, 0, 1, 2, 0, 0, 0, 1], np.int64)
    model = make_model(
        [
            node("Pad", ["x", "p"], ["xp"]),
            node("Conv", ["xp", "w"], ["y"], pads=[1, 1, 1, 1]),
        ],
        ["N", 2, 6, 6],
        {"p": pads, "w": rand(3, 2, 3, 3)},
    )
    graph = import_and_compare(model, rand(2, 2, 6, 6))
    assert ops(graph) == ["conv2d"] and graph.nodes[0].attrs["pads"] == (2, 3, 1, 2)


def test_opset18_pad_with_axes_folds_into_conv():
    model = make_model(
        [
            node("Pad", ["x", "p", "", "axes"], ["xp"]),
            node("Conv", ["xp", "w"], ["y"]),
        ],
        ["N", 2, 5, 5],
        {"p": np.array([1, 0, 2, 1], np.int64), "axes": np.array([2, -1], np.int64), "w": rand(3, 2, 3, 3)},
        opset=18,
    )
    graph = import_and_compare(model, rand(2, 2, 5, 5))
    assert ops(graph) == ["conv2d"] and graph.nodes[0].attrs["pads"] == (1, 0, 2, 1)


def test_pad_before_maxpool_folds_only_after_relu():
    pads = np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    unfolded = make_model(
        [node("Pad", ["x", "p"], ["xp"]), node("MaxPool", ["xp"], ["y"], kernel_shape=[3, 3])],
        ["N", 2, 5, 5],
        {"p": pads},
    )
    graph = import_and_compare(unfolded, rand(2, 2, 5, 5) - 3)  # mostly negative: zero pads matter
    assert ops(graph) == ["pad", "maxpool"]
    folded = make_model(
        [
            node("Relu", ["x"], ["r"]),
            node("Pad", ["r", "p"], ["rp"]),
            node("MaxPool", ["rp"], ["y"], kernel_shape=[3, 3]),
        ],
        ["N", 2, 5, 5],
        {"p": pads},
    )
    graph = import_and_compare(folded, rand(2, 2, 5, 5) - 1)
    assert ops(graph) == ["relu", "maxpool"] and graph.nodes[1].attrs["pads"] == (1, 1, 1, 1)


def test_pad_with_two_consumers_is_kept():
    pads = np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    model = make_model(
        [
            node("Pad", ["x", "p"], ["xp"]),
            node("Conv", ["xp", "w"], ["c"]),
            node("Conv", ["xp", "w"], ["d"]),
            node("Add", ["c", "d"], ["y"]),
        ],
        ["N", 2, 4, 4],
        {"p": pads, "w": rand(2, 2, 3, 3)},
    )
    graph = import_and_compare(model, rand(1, 2, 4, 4))
    assert ops(graph) == ["pad", "conv2d", "conv2d", "add"]


@pytest.mark.parametrize("include_pad", [0, 1])
def test_averagepool(include_pad):
    pads = [1, 1, 1, 1] if include_pad else [0, 0, 0, 0]
    model = make_model(
        [
            node(
                "AveragePool",
                ["x"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=pads,
                count_include_pad=include_pad,
            )
        ],
        ["N", 3, 7, 7],
    )
    graph = import_and_compare(model, rand(2, 3, 7, 7))
    assert graph.nodes[0].attrs["count_include_pad"] == bool(include_pad)


def test_pad_folds_into_averagepool_as_counted_padding():
    model = make_model(
        [
            node("Pad", ["x", "p"], ["xp"]),
            node("AveragePool", ["xp"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
        ],
        ["N", 2, 4, 4],
        {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)},
    )
    graph = import_and_compare(model, rand(2, 2, 4, 4))
    assert ops(graph) == ["avgpool"] and graph.nodes[0].attrs["count_include_pad"] is True


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_alpha_beta_trans_b(trans_b):
    b = rand(7, 5) if trans_b else rand(5, 7)
    model = make_model(
        [node("Gemm", ["x", "b", "c"], ["y"], alpha=0.5, beta=2.0, transB=trans_b)],
        ["N", 5],
        {"b": b, "c": rand(1, 7)},
    )
    graph = import_and_compare(model, rand(3, 5))
    assert graph.nodes[0].params["weight"].shape == (7, 5)


def test_matmul_add_becomes_one_dense_and_bn_1d_folds():
    f = 6
    inits = {
        "w": rand(4, f),
        "k": rand(f),
        "g": rand(f) + 2,
        "b": rand(f),
        "m": rand(f),
        "v": np.abs(rand(f)) + 1,
    }
    model = make_model(
        [
            node("MatMul", ["x", "w"], ["mm"]),
            node("Add", ["mm", "k"], ["d"]),
            node("BatchNormalization", ["d", "g", "b", "m", "v"], ["bn"]),
            node("Relu", ["bn"], ["y"]),
        ],
        ["N", 4],
        inits,
    )
    graph = import_and_compare(model, rand(5, 4))
    assert ops(graph) == ["fully_connected", "relu"]


@pytest.mark.parametrize("lo,hi,op", [(0.0, 6.0, "clamp"), (0.0, None, "relu"), (-1.5, None, "clamp")])
def test_clip_from_inputs(lo, hi, op):
    inits = {"lo": np.array(lo, np.float32)}
    names = ["x", "lo"]
    if hi is not None:
        inits["hi"] = np.array(hi, np.float32)
        names.append("hi")
    model = make_model([node("Clip", names, ["y"])], ["N", 3, 4, 4], inits)
    graph = import_and_compare(model, rand(2, 3, 4, 4) * 4)
    assert ops(graph) == [op]
    if op == "clamp":
        assert graph.nodes[0].attrs == {"lo": lo, "hi": np.inf if hi is None else hi}


def test_classifier_head_gap_flatten_gemm_softmax():
    model = make_model(
        [
            node("GlobalAveragePool", ["x"], ["g"]),
            node("Flatten", ["g"], ["f"], axis=1),
            node("Gemm", ["f", "w", "b"], ["logits"], transB=1),
            node("Softmax", ["logits"], ["y"], axis=-1),
        ],
        ["N", 8, 3, 3],
        {"w": rand(10, 8), "b": rand(10)},
    )
    graph = import_and_compare(model, rand(4, 8, 3, 3))
    assert ops(graph) == ["global_avgpool", "reshape", "fully_connected"]
    assert graph.output_softmax and graph.output_name == "logits"


@pytest.mark.parametrize("opset,keepdims", [(17, 0), (18, 1)])
def test_spatial_reducemean_becomes_gap(opset, keepdims):
    if opset >= 18:  # axes moved from an attribute to an input in opset 18
        reduce = node("ReduceMean", ["x", "axes"], ["y"], keepdims=keepdims)
        inits = {"axes": np.array([-1, -2], np.int64)}
    else:
        reduce, inits = node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=keepdims), {}
    graph = import_and_compare(make_model([reduce], ["N", 4, 3, 5], inits, opset=opset), rand(2, 4, 3, 5))
    assert ops(graph) == (["global_avgpool"] if keepdims else ["global_avgpool", "reshape"])


def test_nhwc_transpose_on_input_is_removed():
    model = make_model(
        [
            node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
            node("Conv", ["t", "w"], ["y"], pads=[1, 1, 1, 1]),
        ],
        ["N", 6, 5, 3],
        {"w": rand(4, 3, 3, 3)},
    )
    x_nhwc = rand(2, 6, 5, 3)
    graph = import_and_compare(model, x_nhwc, logical_x=x_nhwc.transpose(0, 3, 1, 2))
    assert graph.input_layout == "NHWC" and graph.input_shape == (3, 6, 5)
    assert graph.nodes[0].inputs == ["x"]


def test_reshape_by_constant_and_by_shape_chain_identity_dropout_removed():
    c = 3
    model = make_model(
        [
            node("Identity", ["x"], ["xi"]),
            node("Shape", ["xi"], ["s"]),
            node("Gather", ["s", "zero"], ["n"], axis=0),
            node("Unsqueeze", ["n", "axes"], ["n1"]),
            node("Concat", ["n1", "minus1"], ["target"], axis=0),
            node("Reshape", ["xi", "target"], ["flat"]),
            node("Dropout", ["flat"], ["drop"]),
            node("Reshape", ["drop", "again"], ["flat2"]),
            node("Gemm", ["flat2", "w"], ["y"], transB=1),
        ],
        ["N", c, 2, 2],
        {
            "zero": np.array(0, np.int64),
            "axes": np.array([0], np.int64),
            "minus1": np.array([-1], np.int64),
            "again": np.array([-1, 12], np.int64),
            "w": rand(5, 12),
        },
    )
    graph = import_and_compare(model, rand(3, c, 2, 2))
    assert ops(graph) == ["reshape", "fully_connected"] and graph.nodes[0].inputs == ["x"]


def test_mlp_on_rank2_input_with_static_batch():
    model = make_model(
        [
            node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
            node("Relu", ["h"], ["r"]),
            node("Reshape", ["r", "shape"], ["rr"]),
            node("Gemm", ["rr", "w2"], ["y"]),
        ],
        [4, 6],
        {"w1": rand(8, 6), "b1": rand(8), "shape": np.array([4, 8], np.int64), "w2": rand(8, 3)},
    )
    graph = import_and_compare(model, rand(4, 6))
    assert graph.input_shape == (6,) and ops(graph) == ["fully_connected", "relu", "fully_connected"]


def test_node_names_default_and_unique():
    model = make_model(
        [
            node("Relu", ["x"], ["a"], "dup"),
            node("Relu", ["a"], ["b"], "dup"),
            node("Relu", ["b"], ["y"]),
        ],
        ["N", 3],
    )
    graph = import_onnx_model(model, "m")
    assert [n.name for n in graph.nodes] == ["dup", "dup_1", "relu_2"]
    assert graph.source_hash == hashlib.sha256(model.SerializeToString()).hexdigest()


def test_load_onnx_hashes_the_file(tmp_path):
    model = make_model([node("Relu", ["x"], ["y"])], ["N", 3, 2, 2])
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    graph = load_onnx(path)
    assert graph.name == "tiny"
    assert graph.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert graph.input_name == "x" and graph.output_name == "y" and graph.input_shape == (3, 2, 2)


def test_resnet8_reference_model_imports():
    if not RESNET8.is_file():
        pytest.skip(f"shared reference model not found at {RESNET8}")
    graph = load_onnx(RESNET8)
    counts = {op: ops(graph).count(op) for op in set(ops(graph))}
    assert counts == {
        "conv2d": 9,
        "relu": 7,
        "add": 3,
        "global_avgpool": 1,
        "reshape": 1,
        "fully_connected": 1,
    }
    assert graph.output_softmax and graph.output_name == "fc_0" and graph.input_shape == (3, 32, 32)
    assert all(p.dtype == np.float32 for n in graph.nodes for p in n.params.values())
    assert graph.nodes[-1].params["weight"].shape == (10, 64)


# ---------------------------------------------------------------- rejections


def expect_error(model, *fragments):
    with pytest.raises(Q4Error) as info:
        import_onnx_model(model, "bad")
    for fragment in fragments:
        assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_unsupported_op_names_node_and_type():
    expect_error(
        make_model([node("Erf", ["x"], ["y"], "act1")], ["N", 4]), "node 'act1'", "unsupported op type 'Erf'"
    )


def test_unnamed_unsupported_op_gets_index_name():
    model = make_model([node("Relu", ["x"], ["r"], "r"), node("Erf", ["r"], ["y"])], ["N", 4])
    expect_error(model, "node 'erf_1'", "'Erf'")


def test_old_opset_rejected():
    model = make_model([node("Relu", ["x"], ["y"])], ["N", 4], opset=11)
    expect_error(model, "opset 11")


def test_softmax_in_the_middle_is_an_op_and_on_the_batch_axis_rejected():
    model = make_model([node("Softmax", ["x"], ["s"], "sm"), node("Relu", ["s"], ["y"])], ["N", 4])
    graph = import_and_compare(model, rand(2, 4))
    assert ops(graph) == ["softmax", "relu"] and not graph.output_softmax
    model = make_model([node("Softmax", ["x"], ["s"], "sm", axis=0), node("Relu", ["s"], ["y"])], ["N", 4])
    expect_error(model, "node 'sm'", "axis 0")


@pytest.mark.parametrize(
    "builder,fragment",
    [
        (
            lambda: make_model(
                [node("MaxPool", ["x"], ["y"], "mp", kernel_shape=[2, 2], dilations=[2, 2])], ["N", 2, 5, 5]
            ),
            "dilations",
        ),
        (
            lambda: make_model(
                [
                    node("Relu", ["x"], ["r"]),
                    node("BatchNormalization", ["r", "v", "v", "v", "v"], ["y"], "bnorm"),
                ],
                ["N", 2, 3, 3],
                {"v": np.ones(2, np.float32)},
            ),
            "Conv",
        ),
        (
            lambda: make_model(
                [
                    node("Relu", ["x"], ["r"]),
                    node("MaxPool", ["x"], ["m"], kernel_shape=[2, 2]),
                    node("Add", ["r", "m"], ["y"], "addbad"),
                ],
                ["N", 2, 3, 3],
            ),
            "different shapes",
        ),
        (
            lambda: make_model(
                [node("Relu", ["x"], ["r"]), node("Add", ["r", "k"], ["y"], "addk")],
                ["N", 2, 3, 3],
                {"k": np.arange(18, dtype=np.float32).reshape(2, 3, 3)},
            ),
            "varies over space",
        ),
        (
            lambda: make_model(
                [node("Conv", ["x", "w"], ["y"], "cmis")], ["N", 3, 4, 4], {"w": rand(2, 4, 1, 1)}
            ),
            "3 channels",
        ),
        (
            lambda: make_model(
                [node("Relu", ["x"], ["r"]), node("Transpose", ["r"], ["y"], "tr", perm=[0, 3, 1, 2])],
                ["N", 3, 4, 4],
            ),
            "layout",
        ),
        (
            lambda: make_model(
                [node("Reshape", ["x", "s"], ["y"], "rs")],
                ["N", 2, 3, 4],
                {"s": np.array([-1, 6, 4], np.int64)},
            ),
            "Reshape",
        ),
        (
            lambda: make_model(
                [node("Pad", ["x", "p"], ["y"], "padc")],
                ["N", 2, 3, 3],
                {"p": np.array([0, 1, 0, 0, 0, 1, 0, 0], np.int64)},
            ),
            "spatial",
        ),
        (
            lambda: make_model(
                [node("Gemm", ["x", "w"], ["y"], "gta", transA=1)], ["N", 3], {"w": rand(3, 3)}
            ),
            "transA",
        ),
        (
            lambda: make_model([node("ReduceMean", ["x"], ["y"], "rm", axes=[1, 2])], ["N", 3, 2, 2]),
            "not adjacent",
        ),
    ],
    ids=[
        "dilation",
        "bn-alone",
        "add-shapes",
        "add-const",
        "channels",
        "transpose",
        "reshape",
        "pad-channels",
        "transA",
        "reducemean-channels-and-h",
    ],
)
def test_rejections_name_the_node(builder, fragment):
    model = builder()
    with pytest.raises(Q4Error) as info:
        import_onnx_model(model, "bad")
    bad_node = [n for n in model.graph.node if n.name][-1].name
    assert f"node '{bad_node}'" in str(info.value) and fragment in str(info.value)


def test_graph_level_rejections():
    extra = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])
    expect_error(
        make_model([node("Add", ["x", "z"], ["y"])], ["N", 4], extra_inputs=[extra]), "exactly one input"
    )
    expect_error(make_model([node("Relu", ["x"], ["y"])], ["N", 3, "H", 4]), "only the batch dimension")
    expect_error(make_model([node("Relu", ["x"], ["y"])], ["N", 3, 4, 4, 4]), "rank must be 4")


def test_missing_truncated_and_non_onnx_files(tmp_path):
    with pytest.raises(Q4Error, match="nope.onnx"):
        load_onnx(tmp_path / "nope.onnx")
    model = make_model([node("Conv", ["x", "w"], ["y"])], ["N", 3, 4, 4], {"w": rand(8, 3, 3, 3)})
    data = model.SerializeToString()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(Q4Error, match="truncated.onnx"):
        load_onnx(truncated)
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(Q4Error, match="notes.onnx"):
        load_onnx(text)
