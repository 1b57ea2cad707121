"""The importer lists every unsupported node at once, and refuses malformed data naming it (D3)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from q4sdk.errors import Q4Error
from q4sdk.frontend import import_onnx_model
from q4sdk.frontend.onnx_import import UnsupportedModel, check_onnx_model, supported_op_types
from tests.frontend.test_frontend_onnx import import_and_compare, make_model, rand

node = helper.make_node


def issues_of(model):
    with pytest.raises(UnsupportedModel) as info:
        import_onnx_model(model, "m")
    assert "\n" not in str(info.value)
    return info.value.issues


def test_every_unsupported_node_is_listed_once():
    model = make_model(
        [
            node("Conv", ["x", "w"], ["c"], "conv"),
            node("Erf", ["c"], ["s"], "erf"),  # op type
            node("Conv", ["s", "w2"], ["d"], "neg", pads=[1, 1, -1, -1]),  # attribute
            node("BatchNormalization", ["d", "g", "b", "m", "v"], ["bn"], "bn"),  # fine once 'neg' works
            node("Softplus", ["bn"], ["t"], "sp"),  # after an unsupported node: still listed
            node("GlobalAveragePool", ["t"], ["y"], "gap"),
        ],
        ["N", 3, 8, 8],
        {
            "w": rand(4, 3, 3, 3),
            "w2": rand(4, 4, 3, 3),
            "g": np.ones(4, np.float32),
            "b": np.zeros(4, np.float32),
            "m": np.zeros(4, np.float32),
            "v": np.ones(4, np.float32),
        },
    )
    found = issues_of(model)
    assert [(i.node, i.op_type, i.op_level) for i in found] == [
        ("erf", "Erf", True),
        ("neg", "Conv", False),
        ("sp", "Softplus", True),
    ]
    assert "negative pads [1, 1, -1, -1]" in found[1].message


def test_rank3_model_lists_only_its_real_issues():
    """[N, C, L] models are supported: only the missing op is listed, and the nodes after it are
    still checked (with the inferred [N, C, L] shapes)."""
    model = make_model(
        [
            node("Conv", ["x", "w"], ["c"], "conv1d", pads=[1, 1]),
            node("Relu", ["c"], ["r"], "relu"),
            node("MaxPool", ["r"], ["p"], "pool", kernel_shape=[2], strides=[2]),
            node("Erf", ["p"], ["s"], "erf"),
            node("ReduceMean", ["s"], ["g"], "mean", axes=[2], keepdims=0),
            node("Gemm", ["g", "fc"], ["y"], "fc", transB=1),
        ],
        ["N", 4, 10],
        {"w": rand(6, 4, 3), "fc": rand(3, 6)},
    )
    found = issues_of(model)
    assert [(i.node, i.op_level) for i in found] == [("erf", True)]


@pytest.mark.parametrize("op", ["LSTM", "GRU", "LayerNormalization"])
def test_recurrent_and_attention_ops_say_not_yet(op):
    found = issues_of(make_model([node(op, ["x"], ["y"], "blk")], ["N", 4]))
    assert found[0].op_level and "not supported yet" in found[0].message


def test_matmul_of_two_activations_says_not_yet():
    model = make_model([node("Relu", ["x"], ["a"]), node("MatMul", ["x", "a"], ["y"], "attn")], ["N", 4])
    (issue,) = issues_of(model)
    assert (
        issue.node == "attn" and "two activations" in issue.message and "not supported yet" in issue.message
    )


def test_check_returns_the_graph_or_the_issues():
    good = make_model([node("Relu", ["x"], ["y"])], ["N", 4])
    graph, found = check_onnx_model(good, "g")
    assert graph is not None and found == []
    graph, found = check_onnx_model(make_model([node("Erf", ["x"], ["y"], "e")], ["N", 4]), "b")
    assert graph is None and found[0].node == "e"
    assert {"Conv", "Gemm", "Relu", "Clip", "Add"} <= set(supported_op_types())


# ---------------------------------------------------------------- malformed data (D3)


def conv_model(w, b):
    return make_model([node("Conv", ["x", "w", "b"], ["y"], "conv_0")], ["N", 3, 4, 4], {"w": w, "b": b})


@pytest.mark.parametrize(
    "where,value,kind", [("w", np.nan, "NaN"), ("w", np.inf, "Inf"), ("b", np.nan, "NaN")]
)
def test_nan_or_inf_parameter_names_node_and_initializer(where, value, kind):
    w, b = rand(2, 3, 3, 3), rand(2)
    (w if where == "w" else b).flat[1] = value
    with pytest.raises(Q4Error) as info:
        import_onnx_model(conv_model(w, b), "m")
    assert "node 'conv_0'" in str(info.value) and f"'{where}'" in str(info.value) and kind in str(info.value)


def test_nan_gemm_weight_is_refused():
    w = rand(3, 4)
    w[0, 0] = np.nan
    with pytest.raises(Q4Error, match="'fc'.*NaN"):
        import_onnx_model(
            make_model([node("Gemm", ["x", "fc"], ["y"], "g", transB=1)], ["N", 4], {"fc": w}), "m"
        )


def test_batchnorm_negative_variance_is_refused():
    var = np.array([1.0, -0.5], np.float32)
    model = make_model(
        [
            node("Conv", ["x", "w"], ["c"], "conv"),
            node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], "bn"),
        ],
        ["N", 3, 4, 4],
        {
            "w": rand(2, 3, 1, 1),
            "g": np.ones(2, np.float32),
            "b": np.zeros(2, np.float32),
            "m": np.zeros(2, np.float32),
            "v": var,
        },
    )
    with pytest.raises(Q4Error, match="node 'bn'.*variance 'v' is negative in channel 1"):
        import_onnx_model(model, "m")


def test_initializer_with_dims_but_no_data_is_refused():
    model = conv_model(rand(2, 3, 3, 3), rand(2))
    model.graph.initializer[0].ClearField("float_data")
    model.graph.initializer[0].ClearField("raw_data")
    with pytest.raises(Q4Error, match="initializer 'w': declares shape \\[2, 3, 3, 3\\]"):
        import_onnx_model(model, "m")


@pytest.mark.parametrize("fused", [True, False])
def test_clip_with_min_above_max_outputs_max(fused):
    """ONNX (and onnxruntime): every output is max. Fused after a conv it is a clip to [max, max];
    alone, a zero-weight depthwise conv whose bias is max."""
    first = node("Conv", ["x", "w"], ["c"], "conv") if fused else node("Relu", ["x"], ["c"], "relu")
    model = make_model(
        [first, node("Clip", ["c", "lo", "hi"], ["y"], "clip")],
        ["N", 3, 4, 4],
        {"w": rand(3, 3, 1, 1), "lo": np.array(2.0, np.float32), "hi": np.array(0.5, np.float32)},
    )
    graph = import_and_compare(model, rand(2, 3, 4, 4))
    assert graph.nodes[-1].op == ("clamp" if fused else "conv2d")


def test_torch_rank3_module_lists_the_missing_ops():
    import torch
    import torch.nn as nn

    from q4sdk.frontend import from_torch

    class KWS(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv1d(8, 4, 3, padding=1), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.erf(self.conv(x)).mean(2))

    with pytest.raises(UnsupportedModel) as info:
        from_torch(KWS(), torch.zeros(1, 8, 10))
    found = info.value.issues
    assert [i.op_type for i in found] == ["Erf"]
