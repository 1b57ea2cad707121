"""The up-sampling ops ``conv_transpose`` and ``resize``: ONNX import (as torch exports them) against
onnxruntime, refusals listed with every other unsupported node, the oracle against the float
semantics, the C against the oracle bit for bit (int8, multi-term and packed 4-bit activations), and
quantize -> generate -> verify with dual weights and a residual-quantized input on a conv_transpose.
The per-op zoo models (``op_conv_transpose``, ``op_resize_*``) and ``tiny_unet`` run end to end in
``tests/zoo/test_zoo.py``."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.frontend import import_onnx_model
from q4sdk.ir.fixedpoint import round_half_away
from q4sdk.ir.float_exec import FLOAT_FUNCTIONS, run_float
from q4sdk.ir.oracle import run_oracle
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.ptq.recipe import preset
from q4sdk.targets.host_build import CModel
from random_models import _Builder, assert_c_equals_oracle, random_input, random_model, sanitized_outputs
from tests.zoo.e2e import run_end_to_end


def _export(module: nn.Module, shape) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (torch.randn(1, *shape),),
            buf,
            opset_version=17,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
        )
    return onnx.load_from_string(buf.getvalue())


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


class _Up(nn.Module):
    def __init__(self, layer: nn.Module, then=None):
        super().__init__()
        self.layer, self.then = layer, then

    def forward(self, x):
        y = self.layer(x)
        return self.then(y) if self.then is not None else y


# (kernel, stride, padding, output_padding): the decoder cases and the corners of the pads
CONV_TRANSPOSE_CASES = [(2, 2, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (3, 1, 1, 0), (3, 2, 0, 1), (4, 2, 2, 1)]


@pytest.mark.parametrize("k, s, p, op", CONV_TRANSPOSE_CASES)
def test_onnx_conv_transpose_import_matches_onnxruntime(k, s, p, op):
    torch.manual_seed(k * 10 + s + p + op)
    model = _export(_Up(nn.ConvTranspose2d(4, 3, k, s, padding=p, output_padding=op)), (4, 5, 6))
    graph = import_onnx_model(model, "ct")
    assert [n.op for n in graph.nodes] == ["conv_transpose"]
    assert graph.nodes[0].params["weight"].shape == (3, 4, k, k)  # [O, I, kh, kw]
    x = np.random.default_rng(0).normal(0, 1, (3, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), _ort(model, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "layer",
    [
        lambda x: F.interpolate(x, scale_factor=2.0, mode="nearest"),
        lambda x: F.interpolate(x, scale_factor=(2.0, 3.0), mode="nearest"),
        lambda x: F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False),
        lambda x: F.interpolate(x, scale_factor=3.0, mode="bilinear", align_corners=False),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Upsample(scale_factor=4, mode="bilinear"),
    ],
    ids=["nearest2", "nearest2x3", "bilinear2", "bilinear3", "upsample_nearest", "upsample_bilinear4"],
)
def test_onnx_resize_import_matches_onnxruntime(layer):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, padding=1)
            self.up = layer if isinstance(layer, nn.Module) else None

        def forward(self, x):
            y = self.conv(x)
            return self.up(y) if self.up is not None else layer(y)

    torch.manual_seed(0)
    model = _export(M(), (2, 5, 4))
    graph = import_onnx_model(model, "up")
    assert [n.op for n in graph.nodes] == ["conv2d", "resize"]
    x = np.random.default_rng(1).normal(0, 1, (3, 2, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(run_float(graph, x), _ort(model, x), rtol=1e-5, atol=1e-5)


def test_unsupported_up_sampling_is_listed_with_every_unsupported_node():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.grouped = nn.ConvTranspose2d(4, 4, 2, 2, groups=2)
            self.dilated = nn.ConvTranspose2d(4, 4, 2, 2, dilation=2)

        def forward(self, x):
            a = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
            b = F.interpolate(x, scale_factor=1.5, mode="nearest")
            return self.grouped(a).sum() + self.dilated(x).sum() + b.sum()

    model = _export(M(), (4, 4, 4))
    with pytest.raises(Q4Error) as err:
        import_onnx_model(model, "bad")
    msg = str(err.value)
    assert "grouped ConvTranspose (group=2)" in msg
    assert "ConvTranspose dilations [2, 2] are not supported" in msg
    assert "coordinate_transformation_mode 'align_corners'" in msg
    assert "Resize by [1.0, 1.5, 1.5] is not supported" in msg


def _op_model(kind, x_shape, out_shape, attrs, arrays, bits=8, zp=3) -> QModel:
    x = QTensor("x", x_shape, bits, 0.1, zp)
    same = kind == "resize"
    y = QTensor("y", out_shape, bits, 0.1 if same else 1.0, zp if same else 0)
    return QModel("m", "x", "y", {"x": x, "y": y}, [QOp("op", kind, ["x"], "y", attrs, arrays)], {})


@pytest.mark.parametrize("k, s, p, op", CONV_TRANSPOSE_CASES)
def test_oracle_conv_transpose_is_the_float_transposed_convolution(k, s, p, op):
    """With multiplier 2^30, shift 30 (requantize = identity) the oracle's output is the float
    transposed convolution of (x - z_x) with the integer weights, plus the bias."""
    rng = np.random.default_rng(k + s + p)
    h, w, ci, o = 4, 3, 2, 3
    wq = rng.integers(-2, 3, (o, k, k, ci)).astype(np.int8)
    bias = rng.integers(-5, 6, o).astype(np.int32)
    ho, wo = (h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op
    attrs = {
        "stride": [s, s],
        "pads": [p, p, p, p],
        "output_padding": [op, op],
        "act_min": -128,
        "act_max": 127,
    }
    arrays = {
        "weight": wq,
        "bias": bias,
        "multiplier": np.full(o, 1 << 30, np.int32),
        "shift": np.full(o, 30, np.int32),
    }
    model = _op_model("conv_transpose", (h, w, ci), (ho, wo, o), attrs, arrays)
    xq = rng.integers(-3, 5, (2, h, w, ci)).astype(np.int8)
    got = run_oracle(model, xq)
    ref = FLOAT_FUNCTIONS["conv_transpose"](
        [torch.as_tensor(xq.transpose(0, 3, 1, 2).astype(np.float32) - 3.0)],
        {"stride": (s, s), "pads": (p, p, p, p), "output_padding": (op, op)},
        {"weight": wq.transpose(0, 3, 1, 2).astype(np.float32), "bias": bias.astype(np.float32)},
    )
    np.testing.assert_array_equal(got, ref.numpy().transpose(0, 2, 3, 1).astype(np.int64))


@pytest.mark.parametrize("scale", [(2, 2), (3, 1), (4, 2), (1, 3)])
def test_oracle_bilinear_resize_is_the_float_one_rounded_half_away(scale):
    rng = np.random.default_rng(scale[0] * 7 + scale[1])
    h, w, c, zp = 3, 4, 2, -5
    model = _op_model(
        "resize", (h, w, c), (h * scale[0], w * scale[1], c), {"mode": 1, "scale": list(scale)}, {}, zp=zp
    )
    xq = rng.integers(-128, 128, (3, h, w, c)).astype(np.int8)
    got = run_oracle(model, xq)
    d = torch.as_tensor(xq.transpose(0, 3, 1, 2).astype(np.float64) - zp)
    ref = F.interpolate(d, scale_factor=scale, mode="bilinear", align_corners=False).numpy()
    expected = round_half_away(np.round(ref * 4 * scale[0] * scale[1]) / (4 * scale[0] * scale[1])) + zp
    np.testing.assert_array_equal(got, expected.transpose(0, 2, 3, 1))
    assert got.min() >= xq.min() and got.max() <= xq.max()  # a convex combination: no clamp needed


def test_oracle_nearest_resize_copies():
    xq = np.arange(24, dtype=np.int8).reshape(1, 2, 3, 4)
    model = _op_model("resize", (2, 3, 4), (4, 9, 4), {"mode": 0, "scale": [2, 3]}, {})
    np.testing.assert_array_equal(run_oracle(model, xq)[0, 3, 7], xq[0, 1, 2])


@pytest.mark.parametrize("seed", range(6))
def test_random_up_sampling_models_c_equals_oracle(tmp_path, seed):
    """Random chains with conv_transpose (strides 1-3, kernels 1-4, pads, output padding, sometimes
    multi-term) and resize (nearest / bilinear, factors 1-4)."""
    rng = np.random.default_rng(300 + seed)
    kinds = ("conv_transpose", "conv_transpose", "resize", "resize", "conv2d", "clamp")
    model = random_model(rng, n_ops=6, kinds=kinds, name=f"up{seed}")
    generate(model, tmp_path / "gen", "net")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 8))


def test_every_up_sampling_form_c_equals_oracle(tmp_path):
    """One model holding each form: bilinear and nearest resize, single- and multi-term
    conv_transpose (a dual weight and a second input)."""
    rng = np.random.default_rng(7)
    b = _Builder(rng, (3, 4, 3), bits=8)
    b.resize(mode=1)
    b.conv_transpose()
    b.resize(mode=0)
    while not any(op.kind == "conv_transpose" and len(op.inputs) == 2 for op in b.ops):
        b.cur = b.input
        b.conv_transpose()
    model = b.model("forms")
    assert {op.kind for op in model.ops} == {"resize", "conv_transpose"}
    generate(model, tmp_path / "gen", "net")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 8))


def test_sanitizers_on_up_sampling_model(tmp_path):
    """ASan + UBSan build: the taps at every border (pads, output padding, clamped bilinear taps)
    stay inside the buffers."""
    rng = np.random.default_rng(5)
    model = random_model(rng, n_ops=6, kinds=("conv_transpose", "resize"), name="san")
    assert {"conv_transpose", "resize"} <= {op.kind for op in model.ops}
    xq = random_input(model, rng, 8)
    out = sanitized_outputs(model, xq, tmp_path)
    np.testing.assert_array_equal(out, run_oracle(model, xq).reshape(len(xq), -1))


def test_packed_up_sampling_c_equals_oracle(tmp_path):
    """4-bit tensors stored two per byte, odd channel counts: q4_conv_transpose_s4_p4 (and its
    terms form), q4_resize_p4 (both modes)."""
    rng = np.random.default_rng(11)
    b = _Builder(rng, (3, 3, 3), bits=4)
    b.resize(mode=1)
    b.conv_transpose()
    b.resize(mode=0)
    b.conv_transpose()
    b.resize(mode=1)
    model = b.model("pup")
    for t in model.tensors.values():
        t.bits = 4
        t.zero_point = min(max(t.zero_point, -8), 7)
    for op in model.ops:
        if "act_min" in op.attrs:
            op.attrs["act_min"] = max(op.attrs["act_min"], -8)
            op.attrs["act_max"] = min(max(op.attrs["act_max"], op.attrs["act_min"]), 7)
    report = generate(model, tmp_path / "gen", "net", pack_activations=True)
    assert "q4_resize_p4.c" in report.kernel_sources
    assert "q4_conv_transpose_s4_p4.c" in report.kernel_sources or (
        "q4_conv_transpose_s4_terms_p4.c" in report.kernel_sources
    )
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    xq = random_input(model, rng, 16)
    assert_c_equals_oracle(cm, model, xq)


def test_conv_transpose_dual_and_residual_quantize_generate_verify(tmp_path):
    """W4A4 with a dual weight on the conv_transpose (the last layer) and its input
    residual-quantized: the multi-term kernel, bit-exact end to end."""
    torch.manual_seed(3)
    module = nn.Sequential(
        nn.Conv2d(3, 6, 3, 2, padding=1), nn.ReLU(), nn.ConvTranspose2d(6, 1, 4, 2, padding=1)
    ).eval()
    calib = torch.randn(32, 3, 8, 8).numpy()
    recipe = preset("default", 4, dual_layers=["@last"], residual_activations=["@last_input"], refine_iters=0)
    e2e = run_end_to_end(module, calib, calib[:4], tmp_path, bits=4, name="ctdual", recipe=recipe)
    (ct,) = [op for op in e2e.model.ops if op.kind == "conv_transpose"]
    assert "weight2" in ct.arrays and len(ct.inputs) == 2
    assert e2e.sqnr_db > 5.0, e2e.sqnr_db
