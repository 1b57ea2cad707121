"""The integer oracle: a numpy interpreter of docs/integer-spec.md.

This is the single Python implementation of the integer semantics. The generated C, every optimised
kernel and every board must agree with it bit for bit. Activations are int8 arrays, channels-last,
with a leading batch axis: ``[N, H, W, C]`` for feature maps, ``[N, F]`` for vectors.

Integer GEMMs run through float BLAS for speed. That is exact while every partial sum is an integer
of magnitude below 2^24 (float32) or 2^53 (float64): with |x - zx| <= 255 and |w| <= 8 a dot product
of length K is bounded by K * 2040, so float32 is exact for K <= 8224 and float64 beyond. The bound
is checked before each GEMM (``_exact_matmul``).
"""

from __future__ import annotations

import numpy as np

from q4sdk.ir.fixedpoint import requantize, requantize_terms
from q4sdk.ir.ops import attr
from q4sdk.ir.qmodel import QModel, QOp, QTensor

_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53


def _exact_matmul(a: np.ndarray, b: np.ndarray, bound_a: int, bound_b: int) -> np.ndarray:
    """Integer matrix product a @ b (a [M, K], b [K, O]) computed exactly through float BLAS."""
    k = a.shape[1]
    bound = k * bound_a * bound_b
    if bound < _F32_EXACT:
        dt = np.float32
    elif bound < _F64_EXACT:
        dt = np.float64
    else:  # pragma: no cover - far outside any int32-accumulating kernel
        raise ValueError("integer GEMM too large to evaluate exactly")
    out = a.astype(dt, copy=False) @ b.astype(dt, copy=False)
    return np.rint(out).astype(np.int64)


def _pad_nhwc(x: np.ndarray, pads, value: int) -> np.ndarray:
    t, l, b, r = pads
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)


def _windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, dilation=(1, 1)) -> np.ndarray:
    """[N, H, W, C] -> [N, Ho, Wo, kh, kw, C] view of all windows (taps ``dilation`` apart)."""
    n, h, w, c = x.shape
    dh, dw = dilation
    ho = (h - dh * (kh - 1) - 1) // sh + 1
    wo = (w - dw * (kw - 1) - 1) // sw + 1
    sn, sh_, sw_, sc = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, ho, wo, kh, kw, c), (sn, sh_ * sh, sw_ * sw, sh_ * dh, sw_ * dw, sc), writeable=False
    )


def _finish(accs: list[np.ndarray], op: QOp, out_t: QTensor) -> np.ndarray:
    """Requantize-and-clamp; a multi-term layer (dual weights / residual input) rounds once."""
    if len(accs) == 1:
        y = out_t.zero_point + requantize(accs[0], op.arrays["multiplier"], op.arrays["shift"])
    else:
        y = out_t.zero_point + requantize_terms(accs, op.arrays["multiplier"], op.arrays["shift"])
    return np.clip(y, op.attrs["act_min"], op.attrs["act_max"]).astype(np.int8)


def _weight_terms(op: QOp) -> list[np.ndarray]:
    """The INT4 weight tensors of a layer: one, or two for a dual layer."""
    return [op.arrays[k] for k in ("weight", "weight2") if k in op.arrays]


def _term_inputs(xs: list[np.ndarray], ts: list[QTensor]) -> list[tuple[np.ndarray, QTensor]]:
    """The input tensors of a layer: one, or two for a residual-quantized input."""
    return list(zip(xs, ts))


def conv2d(xs: list[np.ndarray], op: QOp, ts: list[QTensor], out_t: QTensor) -> np.ndarray:
    terms = _weight_terms(op)  # each [O, kh, kw, I / groups]
    o, kh, kw, ci = terms[0].shape
    sh, sw = op.attrs["stride"]
    g = attr(op, "groups")  # group j: input channels [j ci, (j+1) ci) -> outputs [j o/g, (j+1) o/g)
    accs = []
    for x, in_t in _term_inputs(xs, ts):
        # x - zx is an exact small integer in float32; padding is the zero point, i.e. 0 here
        xp = _pad_nhwc(x.astype(np.float32) - np.float32(in_t.zero_point), op.attrs["pads"], 0)
        win = _windows(xp, kh, kw, sh, sw, attr(op, "dilation"))  # [N, Ho, Wo, kh, kw, I]
        n, ho, wo = win.shape[:3]
        for w in terms:
            parts = []
            for j in range(g):
                cols = win[..., j * ci : (j + 1) * ci].reshape(n * ho * wo, kh * kw * ci)
                wj = w[j * (o // g) : (j + 1) * (o // g)].reshape(o // g, -1)
                parts.append(_exact_matmul(cols, wj.T, 255, 8))
            accs.append(np.concatenate(parts, axis=1))
    accs[0] += op.arrays["bias"].astype(np.int64)
    return _finish(accs, op, out_t).reshape(n, ho, wo, o)


def depthwise_conv2d(xs: list[np.ndarray], op: QOp, ts: list[QTensor], out_t: QTensor) -> np.ndarray:
    terms = [w.astype(np.int64) for w in _weight_terms(op)]  # each [C * m, kh, kw]
    sh, sw = op.attrs["stride"]
    accs = []
    for x, in_t in _term_inputs(xs, ts):
        # output channel o reads input channel o // m (channel multiplier m = O / C)
        src = np.arange(terms[0].shape[0]) // (terms[0].shape[0] // x.shape[-1])
        xp = _pad_nhwc(x.astype(np.int64) - in_t.zero_point, op.attrs["pads"], 0)[..., src]
        win = _windows(xp, terms[0].shape[1], terms[0].shape[2], sh, sw, attr(op, "dilation"))
        accs += [np.einsum("nhwijc,cij->nhwc", win, w) for w in terms]  # win [N, Ho, Wo, kh, kw, O]
    accs[0] += op.arrays["bias"].astype(np.int64)
    return _finish(accs, op, out_t)


def fully_connected(xs: list[np.ndarray], op: QOp, ts: list[QTensor], out_t: QTensor) -> np.ndarray:
    accs = []
    for x, in_t in _term_inputs(xs, ts):
        xi = x.reshape(x.shape[0], -1).astype(np.float32) - np.float32(in_t.zero_point)
        accs += [_exact_matmul(xi, w.T, 255, 8) for w in _weight_terms(op)]  # each w [O, I]
    accs[0] += op.arrays["bias"].astype(np.int64)
    return _finish(accs, op, out_t)


def add(a: np.ndarray, b: np.ndarray, op: QOp, ta: QTensor, tb: QTensor, out_t: QTensor) -> np.ndarray:
    ma, mb = (int(v) for v in op.arrays["multiplier"])
    s = int(op.attrs["shift"])
    acc = (a.astype(np.int64) - ta.zero_point) * ma + (b.astype(np.int64) - tb.zero_point) * mb
    y = out_t.zero_point + ((acc + (1 << (s - 1))) >> s)
    return np.clip(y, op.attrs["act_min"], op.attrs["act_max"]).astype(np.int8)


def avgpool(x: np.ndarray, op: QOp, in_t: QTensor, out_t: QTensor) -> np.ndarray:
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["stride"]
    xp = _pad_nhwc(x.astype(np.int64) - in_t.zero_point, op.attrs["pads"], 0)
    acc = _windows(xp, kh, kw, sh, sw).sum(axis=(3, 4))
    if "count_pads" not in op.attrs:
        return _finish([acc], op, out_t)
    # the divisor d of each window: its taps inside the input grown by count_pads; entry d - 1
    t, l, b, r = op.attrs["pads"]
    ct, cl, cb, cr = op.attrs["count_pads"]
    counts = []
    for size, k, s, p, lo, hi, n_out in (
        (x.shape[1], kh, sh, t, ct, cb, acc.shape[1]),
        (x.shape[2], kw, sw, l, cl, cr, acc.shape[2]),
    ):
        start = np.arange(n_out) * s - p
        counts.append(np.minimum(start + k, size + hi) - np.maximum(start, -lo))
    d = (counts[0][:, None] * counts[1][None, :])[None, :, :, None] - 1
    y = out_t.zero_point + requantize(acc, op.arrays["multiplier"][d], op.arrays["shift"][d])
    return np.clip(y, op.attrs["act_min"], op.attrs["act_max"]).astype(np.int8)


def global_avgpool(x: np.ndarray, op: QOp, in_t: QTensor, out_t: QTensor) -> np.ndarray:
    acc = (x.astype(np.int64) - in_t.zero_point).sum(axis=(1, 2), keepdims=True)
    return _finish([acc], op, out_t)


def maxpool(x: np.ndarray, op: QOp, in_t: QTensor, out_t: QTensor) -> np.ndarray:
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["stride"]
    xp = _pad_nhwc(x.astype(np.int16), op.attrs["pads"], -1000)  # padding never wins
    return _windows(xp, kh, kw, sh, sw).max(axis=(3, 4)).astype(np.int8)


def clamp(x: np.ndarray, op: QOp) -> np.ndarray:
    return np.clip(x, op.attrs["act_min"], op.attrs["act_max"]).astype(np.int8)


def pad(x: np.ndarray, op: QOp, in_t: QTensor) -> np.ndarray:
    return _pad_nhwc(x, op.attrs["pads"], in_t.zero_point).astype(np.int8)


def residual_split(x: np.ndarray, op: QOp, in_t: QTensor, out_t: QTensor) -> np.ndarray:
    """One of the two INT4 tensors of a residual-quantized activation, recoded from its 8-bit
    fine-grid tensor ``x`` (docs/integer-spec.md, residual_split)."""
    b = out_t.bits
    lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
    zc = int(op.attrs["coarse_zero_point"])
    d = x.astype(np.int64) - in_t.zero_point
    c = np.clip(((d + (1 << (b - 1)) + 256) >> b) - (256 >> b) + zc, lo, hi)
    if op.attrs["part"] == 0:
        return c.astype(np.int8)
    return np.clip(d - (c - zc) * (1 << b) + out_t.zero_point, lo, hi).astype(np.int8)


def lut(x: np.ndarray, op: QOp, in_t: QTensor) -> np.ndarray:
    """y = table[x - qmin] (docs/integer-spec.md, lut)."""
    return op.arrays["table"][x.astype(np.int64) - in_t.qmin].astype(np.int8)


def concat(xs: list[np.ndarray], op: QOp, ts: list[QTensor], out_t: QTensor) -> np.ndarray:
    """Each input requantized to the output, channel slices side by side (docs/integer-spec.md, concat)."""
    parts = []
    for x, t, m, s in zip(xs, ts, op.arrays["multiplier"], op.arrays["shift"]):
        y = out_t.zero_point + requantize(x.astype(np.int64) - t.zero_point, int(m), int(s))
        parts.append(np.clip(y, op.attrs["act_min"], op.attrs["act_max"]))
    axis = [i for i, (a, b) in enumerate(zip(ts[0].shape, out_t.shape)) if a != b]
    return np.concatenate(parts, axis=1 + axis[0] if len(axis) == 1 else -1).astype(np.int8)


def mul(a: np.ndarray, b: np.ndarray, op: QOp, ta: QTensor, tb: QTensor, out_t: QTensor) -> np.ndarray:
    """zy + requantize((a - za) * (b - zb)); a (1, 1, C) ``b`` is read at every pixel
    (docs/integer-spec.md, mul)."""
    acc = (a.astype(np.int64) - ta.zero_point) * (b.astype(np.int64) - tb.zero_point)
    y = out_t.zero_point + requantize(acc, int(op.arrays["multiplier"][0]), int(op.arrays["shift"][0]))
    return np.clip(y, op.attrs["act_min"], op.attrs["act_max"]).astype(np.int8)


def addsub(a: np.ndarray, b: np.ndarray, op: QOp, ta: QTensor, tb: QTensor, out_t: QTensor) -> np.ndarray:
    """add with signed multipliers; a (1, 1, C) ``b`` is read at every pixel (docs/integer-spec.md, addsub)."""
    ma, mb = (int(v) for v in op.arrays["multiplier"])
    s = int(op.attrs["shift"])
    acc = (a.astype(np.int64) - ta.zero_point) * ma + (b.astype(np.int64) - tb.zero_point) * mb
    y = out_t.zero_point + ((acc + (1 << (s - 1))) >> s)
    return np.clip(y, op.attrs["act_min"], op.attrs["act_max"]).astype(np.int8)


def lut_channel(x: np.ndarray, op: QOp, in_t: QTensor) -> np.ndarray:
    """y = table[c, x - qmin] for channel c, the last axis (docs/integer-spec.md, lut_channel)."""
    table = op.arrays["table"]
    return table[np.arange(table.shape[0]), x.astype(np.int64) - in_t.qmin].astype(np.int8)


def reshape(x: np.ndarray, op: QOp, in_t: QTensor, out_t: QTensor) -> np.ndarray:
    return x.reshape((x.shape[0],) + tuple(out_t.shape))


def conv_transpose(xs: list[np.ndarray], op: QOp, ts: list[QTensor], out_t: QTensor) -> np.ndarray:
    """Every input pixel scatters x * w into a (kh, kw) patch of the full output at stride steps;
    the pads crop it, the output padding extends it with bias-only rows / columns
    (docs/integer-spec.md, conv_transpose)."""
    terms = _weight_terms(op)  # each [O, kh, kw, I]
    o, kh, kw, ci = terms[0].shape
    sh, sw = op.attrs["stride"]
    pt, pl = op.attrs["pads"][:2]
    n, h, wd = xs[0].shape[:3]
    ho, wo = out_t.shape[:2]
    full_h, full_w = max((h - 1) * sh + kh, pt + ho), max((wd - 1) * sw + kw, pl + wo)
    accs = []
    for x, in_t in _term_inputs(xs, ts):
        xi = x.reshape(-1, ci).astype(np.float32) - np.float32(in_t.zero_point)
        for w in terms:
            prod = _exact_matmul(xi, w.transpose(3, 0, 1, 2).reshape(ci, -1), 255, 8)
            prod = prod.reshape(n, h, wd, o, kh, kw)
            full = np.zeros((n, full_h, full_w, o), np.int64)
            for ky in range(kh):
                for kx in range(kw):
                    full[:, ky : ky + (h - 1) * sh + 1 : sh, kx : kx + (wd - 1) * sw + 1 : sw] += prod[
                        ..., ky, kx
                    ]
            accs.append(full[:, pt : pt + ho, pl : pl + wo])
    accs[0] += op.arrays["bias"].astype(np.int64)
    return _finish(accs, op, out_t)


def resize_taps(size: int, scale: int) -> tuple[np.ndarray, ...]:
    """Bilinear taps of one axis up-sampled by ``scale``: output o = s i + r has the fractional
    source offset d = 2r + 1 - s in units of 1/(2s); it reads i0 = i (d >= 0) or i - 1 (d < 0) and
    i0 + 1, both clamped to [0, size - 1], with integer weights (2s - f, f), f = d mod 2s."""
    o = np.arange(size * scale)
    d = 2 * (o % scale) + 1 - scale
    i0 = o // scale - (d < 0)
    f = np.where(d < 0, d + 2 * scale, d)
    return np.clip(i0, 0, size - 1), np.clip(i0 + 1, 0, size - 1), 2 * scale - f, f


def resize(x: np.ndarray, op: QOp, in_t: QTensor) -> np.ndarray:
    """Nearest: a copy of x[o // s]. Bilinear: zx + round_half_away(sum of wy wx (x - zx) / (4 sh sw))
    over the 2 x 2 taps (docs/integer-spec.md, resize)."""
    sh, sw = op.attrs["scale"]
    if op.attrs["mode"] == 0:
        return np.repeat(np.repeat(x, sh, axis=1), sw, axis=2)
    d = x.astype(np.int64) - in_t.zero_point
    y0, y1, wy0, wy1 = resize_taps(x.shape[1], sh)
    x0, x1, wx0, wx1 = resize_taps(x.shape[2], sw)
    rows = wy0[:, None, None] * d[:, y0] + wy1[:, None, None] * d[:, y1]  # [N, Ho, W, C]
    acc = wx0[:, None] * rows[:, :, x0] + wx1[:, None] * rows[:, :, x1]  # [N, Ho, Wo, C]
    den = 4 * sh * sw
    q = np.sign(acc) * ((np.abs(acc) + den // 2) // den)
    return (q + in_t.zero_point).astype(np.int8)


#: kind -> f(inputs, op, input tensors, output tensor): the integer semantics of every op kind
def gather(x: np.ndarray, op: QOp) -> np.ndarray:
    """Slices along stored axis ``axis`` picked by ``index`` (docs/integer-spec.md, gather)."""
    return np.take(x, op.arrays["index"].astype(np.int64), axis=1 + int(op.attrs["axis"]))


def reduce_mean(x: np.ndarray, op: QOp, in_t: QTensor, out_t: QTensor) -> np.ndarray:
    """The requantized sum over stored axes axes[0]..axes[1], kept (docs/integer-spec.md, reduce_mean)."""
    first, last = op.attrs["axes"]
    axes = tuple(range(1 + first, 2 + last))
    acc = (x.astype(np.int64) - in_t.zero_point).sum(axis=axes, keepdims=True)
    return _finish([acc], op, out_t)


def softmax(x: np.ndarray, op: QOp, out_t: QTensor) -> np.ndarray:
    """e = table[max - x] along stored axis ``axis``; y = z_y + (e * steps + sum // 2) // sum, clamped
    (docs/integer-spec.md, softmax)."""
    a = 1 + int(op.attrs["axis"])
    xi = x.astype(np.int64)
    e = op.arrays["table"].astype(np.int64)[xi.max(axis=a, keepdims=True) - xi]
    total = e.sum(axis=a, keepdims=True)
    y = out_t.zero_point + (e * int(op.attrs["steps"]) + total // 2) // total
    return np.clip(y, out_t.qmin, out_t.qmax).astype(np.int8)


OP_FUNCTIONS = {
    "conv2d": conv2d,
    "depthwise_conv2d": depthwise_conv2d,
    "fully_connected": fully_connected,
    "add": lambda xs, op, ts, out_t: add(xs[0], xs[1], op, ts[0], ts[1], out_t),
    "avgpool": lambda xs, op, ts, out_t: avgpool(xs[0], op, ts[0], out_t),
    "global_avgpool": lambda xs, op, ts, out_t: global_avgpool(xs[0], op, ts[0], out_t),
    "maxpool": lambda xs, op, ts, out_t: maxpool(xs[0], op, ts[0], out_t),
    "clamp": lambda xs, op, ts, out_t: clamp(xs[0], op),
    "pad": lambda xs, op, ts, out_t: pad(xs[0], op, ts[0]),
    "reshape": lambda xs, op, ts, out_t: reshape(xs[0], op, ts[0], out_t),
    "residual_split": lambda xs, op, ts, out_t: residual_split(xs[0], op, ts[0], out_t),
    "lut": lambda xs, op, ts, out_t: lut(xs[0], op, ts[0]),
    "concat": concat,
    "mul": lambda xs, op, ts, out_t: mul(xs[0], xs[1], op, ts[0], ts[1], out_t),
    "addsub": lambda xs, op, ts, out_t: addsub(xs[0], xs[1], op, ts[0], ts[1], out_t),
    "lut_channel": lambda xs, op, ts, out_t: lut_channel(xs[0], op, ts[0]),
    "conv_transpose": conv_transpose,
    "resize": lambda xs, op, ts, out_t: resize(xs[0], op, ts[0]),
    "gather": lambda xs, op, ts, out_t: gather(xs[0], op),
    "reduce_mean": lambda xs, op, ts, out_t: reduce_mean(xs[0], op, ts[0], out_t),
    "softmax": lambda xs, op, ts, out_t: softmax(xs[0], op, out_t),
}


def run_op(op: QOp, args: list[np.ndarray], model: QModel) -> np.ndarray:
    if op.kind not in OP_FUNCTIONS:
        raise ValueError(f"op '{op.name}': unknown kind '{op.kind}'")
    return OP_FUNCTIONS[op.kind](args, op, [model.tensors[i] for i in op.inputs], model.tensors[op.output])


def input_shape(model: QModel) -> tuple[int, ...]:
    """Shape of one int8 input sample: the input tensor's, or ``(2, *shape)`` for a residual input
    (the coarse tensor X1 followed by the residual tensor X2, as the C API takes it)."""
    shape = tuple(model.input_tensor.shape)
    return (2,) + shape if model.meta.get("input_residual") else shape


def run_oracle(model: QModel, xq: np.ndarray, capture: bool = False, batch_size: int = 512):
    """Run the integer program on int8 input ``xq`` [N, *input.shape].

    Returns the int8 output [N, *output.shape], or ``(output, {tensor: int8 array})`` with every tensor
    (the input included) when ``capture`` is true. Input codes outside their tensor's [qmin, qmax]
    raise ValueError (the generated ``<name>_run`` returns an error for them).
    """
    xq = np.asarray(xq)
    if xq.shape[1:] != input_shape(model):
        raise ValueError(f"oracle input shape {xq.shape[1:]} != model input {input_shape(model)}")
    if xq.dtype != np.int8:
        raise ValueError(f"oracle input must be int8, got {xq.dtype}")
    res = model.meta.get("input_residual")
    for i, t in enumerate([model.input_tensor, *([model.tensors[res]] if res else [])]):
        codes = xq[:, i] if res else xq
        if codes.size and (codes.min() < t.qmin or codes.max() > t.qmax):
            raise ValueError(
                f"oracle input codes of tensor '{t.name}' must lie in [{t.qmin}, {t.qmax}] "
                f"({t.bits} bits), got [{codes.min()}, {codes.max()}]"
            )
    outs, caps = [], []
    for start in range(0, max(len(xq), 1), batch_size):
        chunk = xq[start : start + batch_size]
        vals = {model.input: chunk[:, 0], res: chunk[:, 1]} if res else {model.input: chunk}
        for op in model.ops:
            vals[op.output] = run_op(op, [vals[i] for i in op.inputs], model)
        outs.append(vals[model.output])
        if capture:
            caps.append(vals)
    out = np.concatenate(outs) if outs else np.zeros((0,) + tuple(model.output_tensor.shape), np.int8)
    if not capture:
        return out
    merged = {k: np.concatenate([c[k] for c in caps]) for k in caps[0]}
    return out, merged


def quantize_input(model: QModel, x: np.ndarray) -> np.ndarray:
    """Float input in the user's layout -> int8 channels-last, as the generated ``_quantize_input`` does.

    A residual input (``meta["input_residual"]``) yields ``[N, 2, *shape]``: X1 as usual, and X2 the
    error of X1 in units of S1 / 2^bits: ``e = v - (q1 - z1)``, ``q2 = clamp(round(e * 2^bits))``.
    """
    from q4sdk.ir.fixedpoint import round_half_away

    t = model.input_tensor
    x = np.asarray(x, np.float32)
    layout = model.meta.get("input_layout", "NCHW")
    if layout == "NCHW" and len(t.shape) == 3:  # [N, C, H, W] or [N, C, L] (held as [N, C, 1, L])
        h, w, c = t.shape
        x = x.reshape(len(x), c, h, w).transpose(0, 2, 3, 1)
    v = x * np.float32(1.0 / t.scale)
    q1 = np.clip(round_half_away(v) + np.float32(t.zero_point), t.qmin, t.qmax)
    shape = (x.shape[0],) + tuple(t.shape)
    if not model.meta.get("input_residual"):
        return q1.astype(np.int8).reshape(shape)
    r = model.tensors[model.meta["input_residual"]]
    v = np.where(np.isnan(v), np.float32(0), np.clip(v, -1024, 1024)).astype(np.float32)
    e = (v - (q1 - np.float32(t.zero_point))) * np.float32(1 << t.bits)
    q2 = np.clip(round_half_away(e) + np.float32(r.zero_point), r.qmin, r.qmax)
    return np.stack([q1.astype(np.int8).reshape(shape), q2.astype(np.int8).reshape(shape)], axis=1)


def dequantize_output(model: QModel, q: np.ndarray) -> np.ndarray:
    t = model.output_tensor
    return (np.float32(t.scale) * (q.astype(np.float32) - np.float32(t.zero_point))).astype(np.float32)
