"""Float reference executor: each op against a plain numpy definition, capture/batching, ResNet-8 vs ORT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from q4sdk.errors import Q4Error
from q4sdk.ir.float_exec import run_float
from q4sdk.ir.float_graph import FloatGraph, FloatNode

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RESNET8 = SHARED / "models" / "resnet8_cifar10.onnx"
CIFAR_TEST = SHARED / "data" / "cifar10_test.npz"


def windows(x, kernel, stride, pads, fill):
    """All pooling/conv windows of NCHW ``x``: array [N, C, OH, OW, kh, kw]."""
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    kh, kw = kernel
    oh = (xp.shape[2] - kh) // stride[0] + 1
    ow = (xp.shape[3] - kw) // stride[1] + 1
    out = np.empty(x.shape[:2] + (oh, ow, kh, kw), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = xp[:, :, i * stride[0] : i * stride[0] + kh, j * stride[1] : j * stride[1] + kw]
    return out


def one_node_graph(op, in_shape, out_shape, attrs=None, params=None):
    node = FloatNode("n", op, ["x"], "y", attrs or {}, params or {})
    return FloatGraph("g", "x", in_shape, "y", [node], {"x": in_shape, "y": out_shape})


RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 7, 6)).astype(np.float32)


def test_conv_with_asymmetric_pads_stride_and_groups():
    pads, stride = (1, 0, 2, 1), (2, 1)
    for groups, c_out in ((1, 5), (4, 4)):
        w = RNG.standard_normal((c_out, 4 // groups, 3, 2)).astype(np.float32)
        b = RNG.standard_normal(c_out).astype(np.float32)
        win = windows(X, (3, 2), stride, pads, 0.0)  # N C OH OW kh kw
        if groups == 1:
            ref = np.einsum("ncijhw,ochw->noij", win, w) + b[None, :, None, None]
        else:
            ref = np.einsum("ncijhw,chw->ncij", win, w[:, 0]) + b[None, :, None, None]
        graph = one_node_graph(
            "conv2d",
            (4, 7, 6),
            ref.shape[1:],
            {"stride": stride, "pads": pads, "dilation": (1, 1), "groups": groups},
            {"weight": w, "bias": b},
        )
        np.testing.assert_allclose(run_float(graph, X), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("include_pad", [True, False])
def test_avgpool_counts_padding_as_told(include_pad):
    pads = (1, 1, 0, 1)
    win = windows(X, (3, 3), (2, 2), pads, 0.0)
    ones = windows(np.ones_like(X), (3, 3), (2, 2), pads, 0.0)
    ref = win.mean(axis=(4, 5)) if include_pad else win.sum(axis=(4, 5)) / ones.sum(axis=(4, 5))
    graph = one_node_graph(
        "avgpool",
        (4, 7, 6),
        ref.shape[1:],
        {"kernel": (3, 3), "stride": (2, 2), "pads": pads, "count_include_pad": include_pad},
    )
    np.testing.assert_allclose(run_float(graph, X), ref, rtol=1e-5, atol=1e-6)


def test_maxpool_ignores_padding_and_pad_adds_zeros():
    x = X - 5.0  # all negative: a zero pad would win every border window
    pads = (1, 0, 1, 1)
    ref = windows(x, (2, 3), (1, 2), pads, -np.inf).max(axis=(4, 5))
    graph = one_node_graph(
        "maxpool", (4, 7, 6), ref.shape[1:], {"kernel": (2, 3), "stride": (1, 2), "pads": pads}
    )
    np.testing.assert_array_equal(run_float(graph, x), ref)
    padded = one_node_graph("pad", (4, 7, 6), (4, 9, 7), {"pads": pads})
    np.testing.assert_array_equal(run_float(padded, x), np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 1))))


def test_chain_capture_and_batching():
    w = RNG.standard_normal((3, 16)).astype(np.float32)
    b = RNG.standard_normal(3).astype(np.float32)
    nodes = [
        FloatNode("clip", "clamp", ["x"], "c", {"lo": -0.5, "hi": 1.0}),
        FloatNode("relu", "relu", ["x"], "r"),
        FloatNode("add", "add", ["c", "r"], "a"),
        FloatNode("gap", "global_avgpool", ["a"], "g"),
        FloatNode("flat", "reshape", ["a"], "f"),
        FloatNode("fc", "fully_connected", ["f"], "y", {}, {"weight": w, "bias": b}),
    ]
    shapes = {
        "x": (4, 2, 2),
        "c": (4, 2, 2),
        "r": (4, 2, 2),
        "a": (4, 2, 2),
        "g": (4, 1, 1),
        "f": (16,),
        "y": (3,),
    }
    graph = FloatGraph("g", "x", (4, 2, 2), "y", nodes, shapes)
    x = RNG.standard_normal((7, 4, 2, 2)).astype(np.float32)
    a = np.clip(x, -0.5, 1.0) + np.maximum(x, 0)
    out, captured = run_float(graph, x, capture=True, batch_size=3)
    assert set(captured) == {"c", "r", "a", "g", "f", "y"}
    assert all(captured[k].shape == (7, *shapes[k]) for k in captured)
    np.testing.assert_allclose(captured["g"][:, :, 0, 0], a.mean(axis=(2, 3)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out, a.reshape(7, 16) @ w.T + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out, captured["y"])
    np.testing.assert_allclose(run_float(graph, x, batch_size=256), out, rtol=1e-6, atol=1e-6)
    assert run_float(graph, x[:0]).shape == (0, 3)


def test_wrong_input_shape_is_a_q4error():
    graph = one_node_graph("relu", (4, 7, 6), (4, 7, 6))
    with pytest.raises(Q4Error, match=r"\[N, 4, 7, 6\]"):
        run_float(graph, X[:, :3])


def test_resnet8_matches_onnxruntime():
    if not (RESNET8.is_file() and CIFAR_TEST.is_file()):
        pytest.skip(f"shared ResNet-8 model or CIFAR-10 data not found under {SHARED}")
    import onnx
    import onnxruntime as ort

    from q4sdk.frontend import load_onnx

    x = np.load(CIFAR_TEST)["x"][:64].astype(np.float32).transpose(0, 3, 1, 2)
    graph = load_onnx(RESNET8)
    logits, captured = run_float(graph, x, capture=True, batch_size=32)

    model = onnx.load(RESNET8)
    model.graph.output.append(onnx.helper.make_tensor_value_info("fc_0", onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    probs_ref, logits_ref = session.run(["output", "fc_0"], {"input": x})

    np.testing.assert_allclose(logits, logits_ref, rtol=1e-4, atol=1e-4)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(probs, probs_ref, atol=1e-5)
    assert captured["relu_6"].shape == (64, 64, 8, 8) and captured["relu_6"].min() >= 0
