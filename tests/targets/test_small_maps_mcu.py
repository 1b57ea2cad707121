"""Layers on small feature maps: 1x1 convolutions on few output pixels run as one fully_connected
call per pixel (``q4sdk.codegen.kernels.pointwise_as_fc``), and depthwise layers on one output
pixel take the portable kernel where the DSP one is slower; bit-exact with the oracle.

One model holds 1x1 conv2d layers with 36, 4, 2 and 1 output pixels, single-term, dual-weight and
two-input (residual), strided, one padded, and at K above and below 32 (a global average pool
brings the map to one pixel, so every pixel of the strided layers reaches the output). It is generated for the
Cortex-M4 (mps2-an386), the Cortex-M55 (mps3-an547) and the host (portable kernels), each layer's
kernel is checked against the rule of docs/kernels.md ("Small feature maps"), and it runs
bit-exact under QEMU (with per-layer profiles naming the kernel each layer called) and on the host
under ASan / UBSan.

Tests that need the Arm toolchain or QEMU skip without them, and fail instead when CI is set.
"""

from __future__ import annotations

import numpy as np
import pytest

from mcu.harness import require_tools
from q4sdk.codegen.render import render
from q4sdk.ir.oracle import run_oracle
from q4sdk.ir.qmodel import QModel
from q4sdk.targets.boards import load_board
from q4sdk.targets.run import run_on_board
from random_models import _Builder, assert_c_equals_oracle, build_c, random_input, sanitized_outputs

FC, FC_TERMS = "q4_fully_connected_s4", "q4_fully_connected_s4_terms"
CONV, CONV_TERMS = "q4_conv2d_s4", "q4_conv2d_s4_terms"
# (op, pixels, K, what it is): the kernel each layer calls on each target
LAYERS = {
    "pw36": (36, 40, "single"),
    "pw4_dual": (4, 48, "dual weights, stride 3"),
    "pw4_k40": (4, 40, "single"),
    "pw4_k24": (4, 24, "single, K < 32"),
    "pw2_res": (2, 40, "two inputs, stride (1, 2)"),
    "pw2_k24": (2, 24, "single"),
    "pw1_dual": (1, 24, "dual weights, stride 2 on a 1x1 map"),
    "pw1": (1, 32, "single"),
    "pw2_padded": (2, 10, "single, padded: stays a conv"),
}
EXPECTED = {
    "mps2-an386": {
        "pw36": CONV + "_dsp",
        "pw4_dual": FC_TERMS + "_dsp",
        "pw4_k40": FC + "_dsp",
        "pw4_k24": CONV + "_dsp",
        "pw2_res": FC_TERMS + "_dsp",
        "pw2_k24": FC + "_dsp",
        "pw1_dual": FC_TERMS + "_dsp",
        "pw1": FC + "_dsp",
        "pw2_padded": CONV + "_dsp",
    },
    "mps3-an547": {
        "pw36": CONV + "_mve",
        "pw4_dual": CONV_TERMS + "_mve",
        "pw4_k40": CONV + "_mve",
        "pw4_k24": CONV + "_mve",
        "pw2_res": FC_TERMS + "_mve",
        "pw2_k24": FC + "_mve",
        "pw1_dual": FC_TERMS + "_mve",
        "pw1": FC + "_mve",
        "pw2_padded": CONV + "_mve",
    },
    None: {  # portable kernels: the fc kernel up to 16 pixels
        "pw36": CONV,
        "pw4_dual": FC_TERMS,
        "pw4_k40": FC,
        "pw4_k24": FC,
        "pw2_res": FC_TERMS,
        "pw2_k24": FC,
        "pw1_dual": FC_TERMS,
        "pw1": FC,
        "pw2_padded": CONV,
    },
}


def pointwise_model(bits: int = 8) -> QModel:
    """The 1x1 convs of ``LAYERS``, chained from a 6x6x40 input."""
    rng = np.random.default_rng(13)
    b = _Builder(rng, (6, 6, 40), bits=bits)

    def conv(name, src, o, stride=(1, 1), pads=(0, 0, 0, 0), dual=False, second=None) -> str:
        h, w, c = b.tensors[src].shape
        ho = (h + pads[0] + pads[2] - 1) // stride[0] + 1
        wo = (w + pads[1] + pads[3] - 1) // stride[1] + 1
        out = b.tensor((ho, wo, o), bits)
        m, s = b.requant(o, 400.0 * np.sqrt(c), out)
        arrays = {"weight": b.weights((o, 1, 1, c)), "bias": b.bias(o, c), "multiplier": m, "shift": s}
        if dual:
            arrays["weight2"] = b.weights((o, 1, 1, c))
        inputs = [src] + ([second] if second else [])
        attrs = {"stride": list(stride), "pads": list(pads), **b.act(out)}
        b.emit("conv2d", inputs, out, attrs, arrays)
        op = b.ops[-1]
        op.name = name
        if dual or second:
            terms = len(inputs) * (2 if dual else 1)
            op.arrays["multiplier"] = rng.integers(-(1 << 28), 1 << 28, size=(terms, o)).astype(np.int32)
            op.arrays["shift"] = np.clip(s - 2, 1, 62).astype(np.int32)
        return out

    t = conv("pw36", b.input, 48)
    dual4 = conv("pw4_dual", t, 40, stride=(3, 3), dual=True)
    t = conv("pw4_k40", dual4, 24)
    t = conv("pw4_k24", t, 40)
    t = conv("pw2_res", t, 24, stride=(1, 2), second=dual4)
    t = conv("pw2_k24", t, 24)
    b.cur = t
    b.global_avgpool()  # every pixel reaches the output
    t = conv("pw1_dual", b.cur, 32, stride=(2, 2), dual=True)
    t = conv("pw1", t, 10)
    b.cur = conv("pw2_padded", t, 8, pads=(0, 0, 1, 0))
    return b.model("pointwise")


@pytest.fixture(scope="module")
def model() -> QModel:
    m = pointwise_model()
    for op in m.ops[:6] + m.ops[7:]:  # the model is what the table says (op 6: global_avgpool)
        pixels, k = LAYERS[op.name][:2]
        assert int(np.prod(m.tensors[op.output].shape[:2])) == pixels and op.arrays["weight"].shape[3] == k
    return m


@pytest.fixture(scope="module")
def inputs(model) -> np.ndarray:
    return random_input(model, np.random.default_rng(5), 3)


@pytest.mark.parametrize("board_name", ["mps2-an386", "mps3-an547", None])
def test_each_layer_calls_the_kernel_of_the_rule(board_name, model):
    board = load_board(board_name) if board_name else None
    files, report = render(model, "net", board, "optimised" if board else "portable")
    convs = [op for op in report.ops if op.name in LAYERS]
    assert {op.name: op.kernel for op in convs} == EXPECTED[board_name]
    assert all(op.kind == "conv2d" for op in convs)  # the ops stay conv2d ops
    # the fc kernels' sources are shipped; the scratch covers the fc variants' (2 or 4 bytes per K)
    assert any(name.endswith("q4_fully_connected_s4_terms.c") for name in files)
    if board is not None:
        assert report.scratch_bytes >= 4 * 48


def test_portable_fc_calls_are_bit_exact_layer_by_layer_and_under_sanitizers(model, inputs, tmp_path):
    assert_c_equals_oracle(build_c(model, tmp_path), model, inputs)  # every layer's output
    got = sanitized_outputs(model, inputs, tmp_path)
    np.testing.assert_array_equal(got, run_oracle(model, inputs).reshape(len(inputs), -1))


@pytest.mark.parametrize("board_name", ["mps2-an386", "mps3-an547"])
def test_fc_calls_run_bit_exact_on_the_board(board_name, model, inputs, tmp_path):
    board = load_board(board_name)
    require_tools(board, for_running=True)
    run = run_on_board(model, board, inputs, tmp_path)
    assert run.ok and run.first_mismatch is None
    assert {layer.op: layer.kernel for layer in run.layers if layer.op in LAYERS} == EXPECTED[board_name]
    assert all(layer.instructions > 0 for layer in run.layers)


def test_4_bit_model_runs_bit_exact_on_the_cortex_m4(tmp_path):
    """At 4 bits the conv layers take the _a4_dsp kernel; the routed ones the same fc kernels."""
    board = load_board("mps2-an386")
    require_tools(board, for_running=True)
    model = pointwise_model(bits=4)
    run = run_on_board(model, board, random_input(model, np.random.default_rng(6), 2), tmp_path)
    assert run.ok and run.first_mismatch is None
    kernels = {layer.op: layer.kernel for layer in run.layers}
    assert kernels["pw1"] == FC + "_dsp" and kernels["pw36"] == CONV + "_a4_dsp"


def depthwise_model() -> QModel:
    """Depthwise layers on 2x2 and 1x1 maps: 3x3 at stride 1 (2x2 -> 2x2), 3x3 at stride 2
    (2x2 -> 1x1), 3x3 and 5x5 on a 1x1 map, and a dual-weight 3x3 on a 1x1 map."""
    rng = np.random.default_rng(17)
    b = _Builder(rng, (2, 2, 20), bits=8)

    def dw(name, k, stride, dual=False):
        h, w, c = b.tensors[b.cur].shape
        p = k // 2
        ho, wo = (h + 2 * p - k) // stride + 1, (w + 2 * p - k) // stride + 1
        out = b.tensor((ho, wo, c), 8)
        m, s = b.requant(c, 80.0 * k, out)
        arrays = {"weight": b.weights((c, k, k)), "bias": b.bias(c, k * k), "multiplier": m, "shift": s}
        if dual:
            arrays["weight2"] = b.weights((c, k, k))
            arrays["multiplier"] = rng.integers(-(1 << 28), 1 << 28, size=(2, c)).astype(np.int32)
            arrays["shift"] = np.clip(s - 2, 1, 62).astype(np.int32)
        attrs = {"stride": [stride, stride], "pads": [p] * 4, **b.act(out)}
        b.cur = b.emit("depthwise_conv2d", [b.cur], out, attrs, arrays)
        b.ops[-1].name = name

    dw("dw3_2x2", 3, 1)
    dw("dw3_s2_to_1x1", 3, 2)
    dw("dw3_1x1", 3, 1)
    dw("dw5_1x1", 5, 1)
    dw("dw3_1x1_dual", 3, 1, dual=True)
    return b.model("depthwise_small")


def test_depthwise_on_one_pixel_runs_the_portable_kernel_where_it_is_faster(tmp_path):
    """On the Cortex-M4 a depthwise layer with one output pixel whose window is mostly padding
    (3x3 on 1x1, 5x5 on 1x1, every multi-term one) calls the portable kernel, the others the DSP
    one; the Cortex-M55 keeps its Helium kernels. Bit-exact under QEMU."""
    model = depthwise_model()
    dsp, portable = "q4_depthwise_conv2d_s4_dsp", "q4_depthwise_conv2d_s4"
    expected = {
        "dw3_2x2": dsp,
        "dw3_s2_to_1x1": dsp,  # the window covers the 2x2 input: 4 of 9 taps inside
        "dw3_1x1": portable,
        "dw5_1x1": portable,
        "dw3_1x1_dual": portable + "_terms",
    }
    _, report = render(model, "net", load_board("mps2-an386"), "optimised")
    assert {op.name: op.kernel for op in report.ops} == expected
    _, report = render(model, "net", load_board("mps3-an547"), "optimised")
    assert all(op.kernel.endswith("_mve") for op in report.ops)
    board = load_board("mps2-an386")
    require_tools(board, for_running=True)
    run = run_on_board(model, board, random_input(model, np.random.default_rng(8), 2), tmp_path)
    assert run.ok and run.first_mismatch is None
    assert {layer.op: layer.kernel for layer in run.layers} == expected
