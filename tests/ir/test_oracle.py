"""Each op of the oracle against its float meaning, within the quantization error."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from q4sdk.ir import oracle
from q4sdk.ir.fixedpoint import add_multipliers, quantize_multiplier, quantize_multipliers
from q4sdk.ir.qmodel import QModel, QOp, QTensor

RNG = np.random.default_rng(0)


def _q(x, t: QTensor):
    return np.clip(np.rint(x / t.scale) + t.zero_point, t.qmin, t.qmax).astype(np.int8)


def _dq(q, t: QTensor):
    return t.scale * (q.astype(np.float64) - t.zero_point)


def _model(op, tensors, inp, out):
    return QModel("m", inp, out, {t.name: t for t in tensors}, [op])


@pytest.mark.parametrize(
    "stride,pads,zp_in", [((1, 1), (1, 1, 1, 1), 0), ((2, 2), (0, 1, 1, 0), -128), ((2, 1), (0, 0, 0, 0), 5)]
)
def test_conv2d_matches_float(stride, pads, zp_in):
    n, h, w, ci, co, k = 4, 7, 6, 3, 5, 3
    tin = QTensor("x", (h, w, ci), 8, 0.05, zp_in)
    x_real = RNG.uniform(-3, 3, (n, h, w, ci))
    xq = _q(x_real, tin)
    wq = RNG.integers(-8, 8, (co, k, k, ci)).astype(np.int8)
    ws = RNG.uniform(0.01, 0.05, co)
    bias_real = RNG.uniform(-0.5, 0.5, co)
    bias = np.rint(bias_real / (tin.scale * ws)).astype(np.int32)
    # float reference on the dequantized input with the dequantized weights
    xt = torch.as_tensor(_dq(xq, tin)).permute(0, 3, 1, 2)
    wt = torch.as_tensor(wq.astype(np.float64) * ws[:, None, None, None]).permute(0, 3, 1, 2)
    t, l, b, r = pads
    yf = F.conv2d(F.pad(xt, (l, r, t, b)), wt, torch.as_tensor(bias * tin.scale * ws), stride=stride)
    yf = yf.permute(0, 2, 3, 1).numpy()
    tout = QTensor("y", yf.shape[1:], 8, float(np.abs(yf).max() / 100), -3)
    m, s = quantize_multipliers(tin.scale * ws / tout.scale)
    op = QOp(
        "c",
        "conv2d",
        ["x"],
        "y",
        {"stride": list(stride), "pads": list(pads), "act_min": -128, "act_max": 127},
        {"weight": wq, "bias": bias, "multiplier": m, "shift": s},
    )
    y = oracle.run_oracle(_model(op, [tin, tout], "x", "y"), xq)
    assert y.shape == (n,) + yf.shape[1:]
    assert np.abs(_dq(y, tout) - yf).max() <= tout.scale * 0.5001


def test_depthwise_and_fc_and_relu_clamp():
    tin = QTensor("x", (5, 5, 4), 4, 0.3, -8)
    xq = RNG.integers(-8, 8, (3, 5, 5, 4)).astype(np.int8)
    wq = RNG.integers(-8, 8, (4, 3, 3)).astype(np.int8)
    ws = np.full(4, 0.1)
    xt = torch.as_tensor(_dq(xq, tin)).permute(0, 3, 1, 2)
    yf = F.conv2d(F.pad(xt, (1, 1, 1, 1)), torch.as_tensor(wq[:, None] * 0.1), groups=4)
    yf = torch.relu(yf).permute(0, 2, 3, 1).numpy()
    tout = QTensor("y", (5, 5, 4), 4, float(yf.max() / 15), -8)
    m, s = quantize_multipliers(tin.scale * ws / tout.scale)
    op = QOp(
        "d",
        "depthwise_conv2d",
        ["x"],
        "y",
        {"stride": [1, 1], "pads": [1, 1, 1, 1], "act_min": -8, "act_max": 7},
        {"weight": wq, "bias": np.zeros(4, np.int32), "multiplier": m, "shift": s},
    )
    y = oracle.run_oracle(_model(op, [tin, tout], "x", "y"), xq)
    assert y.min() >= -8  # the ReLU clamp at the zero point
    assert np.abs(_dq(y, tout) - yf).max() <= tout.scale * 0.5001

    tv = QTensor("v", (6,), 8, 0.02, 0)
    vq = RNG.integers(-128, 128, (10, 6)).astype(np.int8)
    w = RNG.integers(-8, 8, (3, 6)).astype(np.int8)
    yf = _dq(vq, tv) @ (w.T * 0.05)
    to = QTensor("o", (3,), 8, float(np.abs(yf).max() / 120), 0)
    m, s = quantize_multipliers(np.full(3, tv.scale * 0.05 / to.scale))
    op = QOp(
        "fc",
        "fully_connected",
        ["v"],
        "o",
        {"act_min": -128, "act_max": 127},
        {"weight": w, "bias": np.zeros(3, np.int32), "multiplier": m, "shift": s},
    )
    y = oracle.run_oracle(_model(op, [tv, to], "v", "o"), vq)
    assert np.abs(_dq(y, to) - yf).max() <= to.scale * 0.5001


def test_add_of_differently_scaled_inputs():
    ta = QTensor("a", (4, 4, 2), 8, 0.1, -10)
    tb = QTensor("b", (4, 4, 2), 8, 0.37, 3)
    to = QTensor("y", (4, 4, 2), 8, 0.5, 0)
    a = RNG.integers(-128, 128, (2, 4, 4, 2)).astype(np.int8)
    b = RNG.integers(-128, 128, (2, 4, 4, 2)).astype(np.int8)
    ma, mb, s = add_multipliers(ta.scale / to.scale, tb.scale / to.scale)
    op = QOp(
        "add",
        "add",
        ["a", "b"],
        "y",
        {"shift": s, "act_min": -128, "act_max": 127},
        {"multiplier": np.array([ma, mb], np.int32)},
    )
    m = QModel("m", "a", "y", {t.name: t for t in (ta, tb, to)}, [op])
    y = oracle.add(a, b, op, ta, tb, to)
    ref = np.clip(np.rint((_dq(a, ta) + _dq(b, tb)) / to.scale), -128, 127)
    assert np.abs(y - ref).max() <= 1
    assert (np.abs(y - ref) == 1).mean() < 0.01  # off by one only at near-ties
    assert m.ops[0].kind == "add"


def test_pools():
    tin = QTensor("x", (6, 6, 3), 8, 0.1, -20)
    x = RNG.integers(-128, 128, (2, 6, 6, 3)).astype(np.int8)
    mp = QOp("mp", "maxpool", ["x"], "y", {"kernel": [3, 3], "stride": [2, 2], "pads": [1, 1, 1, 1]})
    y = oracle.maxpool(x, mp, tin, tin)
    ref = F.max_pool2d(torch.as_tensor(x.astype(np.float32)).permute(0, 3, 1, 2), 3, 2, padding=1)
    assert (y == ref.permute(0, 2, 3, 1).numpy().astype(np.int8)).all()

    m, s = quantize_multiplier(1.0 / 36)
    tg = QTensor("g", (1, 1, 3), 8, 0.1, -20)
    gap = QOp(
        "g",
        "global_avgpool",
        ["x"],
        "g",
        {"act_min": -128, "act_max": 127},
        {"multiplier": np.array([m], np.int32), "shift": np.array([s], np.int32)},
    )
    y = oracle.global_avgpool(x, gap, tin, tg)
    ref = (x.astype(np.float64) + 20).mean(axis=(1, 2), keepdims=True) - 20
    assert np.abs(y - ref).max() <= 0.5 + 1e-9

    m, s = quantize_multiplier(1.0 / 4)
    ap = QOp(
        "a",
        "avgpool",
        ["x"],
        "y",
        {"kernel": [2, 2], "stride": [2, 2], "pads": [0, 0, 0, 0], "act_min": -128, "act_max": 127},
        {"multiplier": np.array([m], np.int32), "shift": np.array([s], np.int32)},
    )
    y = oracle.avgpool(x, ap, tin, tin)
    ref = (
        F.avg_pool2d(torch.as_tensor(x.astype(np.float64) + 20).permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
        - 20
    )
    assert np.abs(y - ref.numpy()).max() <= 0.5 + 1e-9


def test_pad_fills_zero_point_and_reshape_keeps_bytes():
    tin = QTensor("x", (2, 2, 1), 4, 1.0, -8)
    x = np.full((1, 2, 2, 1), 3, np.int8)
    p = oracle.pad(x, QOp("p", "pad", ["x"], "y", {"pads": [1, 0, 0, 1]}), tin)
    assert p.shape == (1, 3, 3, 1) and p[0, 0, 0, 0] == -8 and p[0, 1, 0, 0] == 3 and p[0, 1, 2, 0] == -8


def test_quantize_input_layout_ties_and_nan():
    t = QTensor("x", (2, 2, 3), 8, 0.5, -128)
    m = QModel("m", "x", "x", {"x": t}, [], {"input_layout": "NCHW"})
    x = np.zeros((1, 3, 2, 2), np.float32)
    x[0, 1, 0, 1] = 0.25  # 0.5 -> rounds away to 1
    x[0, 2, 1, 1] = np.nan  # -> zero point
    x[0, 0, 1, 0] = 1e9  # saturates
    q = oracle.quantize_input(m, x)
    assert q.shape == (1, 2, 2, 3)
    assert q[0, 0, 1, 1] == -127 and q[0, 1, 1, 2] == -128 and q[0, 1, 0, 0] == 127


def test_oracle_rejects_wrong_input():
    t = QTensor("x", (2,), 8, 1.0, 0)
    m = QModel("m", "x", "x", {"x": t}, [])
    with pytest.raises(ValueError):
        oracle.run_oracle(m, np.zeros((1, 3), np.int8))
    with pytest.raises(ValueError):
        oracle.run_oracle(m, np.zeros((1, 2), np.int16))
