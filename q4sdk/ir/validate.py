"""The one validator of the integer IR: is a :class:`QModel` a well-formed integer program?

``save_q4``, ``load_q4`` and the code generator call :func:`validate_model`; nothing downstream
repeats its checks. It checks tensors, op order, attrs and arrays per op kind (names and dtypes
from ``q4sdk.ir.ops.OPS``, value ranges), the output shape of every op (``SHAPE_RULES``, one
function per kind), activation clamps within the output's range, equal quantization across the
same-quant kinds, and the integer ranges every kernel relies on (requantization multipliers and
shifts, INT4 weights, int32 accumulators). Every fault is one :class:`Q4Error` that names the
model and the op / tensor / field.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from q4sdk.errors import Q4Error
from q4sdk.ir.fixedpoint import ADD_MULT_LIMIT, ADD_SHIFT_MAX, MULT_MIN, SHIFT_MAX, SHIFT_MIN, TERM_MULT_LIMIT
from q4sdk.ir.ops import OPS, QOP_KINDS, RESIZE_MAX_SCALE, RESIZE_MODES, OpSpec, attr
from q4sdk.ir.qmodel import QModel, QOp, QTensor

#: op arrays holding INT4 weights
INT4_ARRAYS = ("weight", "weight2")
INT4_MIN, INT4_MAX = -8, 7
#: |x - zx| * |w| for int8 activations and int4 weights: a bound for one product of a layer
MAX_PRODUCT = 255 * 8
#: the kernels accumulate in int32
ACC_LIMIT = 1 << 31
INPUT_LAYOUTS = ("NCHW", "NHWC")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ")"


def _window_out(in_shape, kernel, stride, pads, what: str, dilation=(1, 1)) -> tuple[int, int]:
    h, w = in_shape[0], in_shape[1]
    t, l, b, r = pads
    ho = (h + t + b - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (w + l + r - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    if ho < 1 or wo < 1:
        raise Q4Error(
            f"{what}: window {kernel[0]}x{kernel[1]} does not fit the padded input {_fmt_shape(in_shape)}"
        )
    return ho, wo


def _check_tensor(key: str, t: QTensor) -> None:
    what = f"tensor '{key}'"
    if not isinstance(t, QTensor):
        raise Q4Error(f"{what}: expected a QTensor, got {type(t).__name__}")
    if t.name != key:
        raise Q4Error(f"{what}: field 'name' is '{t.name}', not its key")
    if (
        not isinstance(t.shape, (tuple, list))
        or not t.shape
        or not all(_is_int(d) and d >= 1 for d in t.shape)
    ):
        raise Q4Error(f"{what}: field 'shape' must be a non-empty list of positive ints, got {t.shape!r}")
    if not _is_int(t.bits) or t.bits not in (4, 8):
        raise Q4Error(f"{what}: field 'bits' must be 4 or 8, got {t.bits!r}")
    if (
        not isinstance(t.scale, (float, int, np.floating))
        or isinstance(t.scale, bool)
        or not math.isfinite(t.scale)
        or t.scale <= 0
    ):
        raise Q4Error(f"{what}: field 'scale' must be finite and > 0, got {t.scale!r}")
    if not _is_int(t.zero_point) or not t.qmin <= t.zero_point <= t.qmax:
        raise Q4Error(
            f"{what}: field 'zero_point' must be an int in [{t.qmin}, {t.qmax}], got {t.zero_point!r}"
        )


def _check_attrs(op: QOp, spec: OpSpec, what: str) -> None:
    if not isinstance(op.attrs, dict):
        raise Q4Error(f"{what}: attrs must be a dict")
    missing = sorted(set(spec.attrs) - set(op.attrs))
    extra = sorted(set(op.attrs) - set(spec.attrs) - set(spec.optional_attrs))
    if missing:
        raise Q4Error(f"{what}: missing attr '{missing[0]}'")
    if extra:
        known = ", ".join(sorted({**spec.attrs, **spec.optional_attrs})) or "none"
        raise Q4Error(f"{what}: unexpected attr '{extra[0]}' (a {op.kind} has: {known})")
    for name, length in {**spec.attrs, **spec.optional_attrs}.items():
        if name not in op.attrs:
            continue
        v = op.attrs[name]
        if length == 0:
            if not _is_int(v):
                raise Q4Error(f"{what}: attr '{name}' must be an int, got {v!r}")
        elif not isinstance(v, (list, tuple)) or len(v) != length or not all(_is_int(x) for x in v):
            raise Q4Error(f"{what}: attr '{name}' must be a list of {length} ints, got {v!r}")
    for name, lo in (
        ("stride", 1),
        ("kernel", 1),
        ("pads", 0),
        ("dilation", 1),
        ("groups", 1),
        ("count_pads", 0),
    ):
        values = list(np.atleast_1d(op.attrs.get(name, [lo])))
        if min(values) < lo:
            raise Q4Error(f"{what}: attr '{name}' values must be >= {lo}, got {values}")


def _check_requant(m: np.ndarray, s: np.ndarray, what: str) -> None:
    """Single-term requantization: multipliers 0 or in [2^30, 2^31), shifts in range."""
    bad_m = (m != 0) & (m < MULT_MIN)
    if bad_m.any():
        raise Q4Error(
            f"{what}: array 'multiplier' values must be 0 or in [2^30, 2^31), got {int(m[bad_m].flat[0])}"
        )
    _check_shift(s, what)


def _check_shift(s: np.ndarray, what: str) -> None:
    if s.size and (s.min() < SHIFT_MIN or s.max() > SHIFT_MAX):
        raise Q4Error(
            f"{what}: array 'shift' values must lie in [{SHIFT_MIN}, {SHIFT_MAX}], got [{s.min()}, {s.max()}]"
        )


def _check_arrays(op: QOp, spec: OpSpec, what: str) -> None:
    if not isinstance(op.arrays, dict):
        raise Q4Error(f"{what}: arrays must be a dict")
    missing = sorted(set(spec.arrays) - set(op.arrays))
    extra = sorted(set(op.arrays) - set(spec.arrays) - set(spec.optional))
    if missing:
        raise Q4Error(f"{what}: missing array '{missing[0]}'")
    if extra:
        known = ", ".join(sorted(spec.arrays)) or "none"
        raise Q4Error(f"{what}: unexpected array '{extra[0]}' (a {op.kind} has: {known})")
    for name, dtype in {**spec.arrays, **spec.optional}.items():
        if name not in op.arrays:
            continue
        a = op.arrays[name]
        if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype):
            got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise Q4Error(f"{what}: array '{name}' must be {dtype}, got {got}")
    for name in INT4_ARRAYS:
        if name not in op.arrays:
            continue
        w = op.arrays[name]
        if w.size == 0:
            raise Q4Error(f"{what}: array '{name}' {_fmt_shape(w.shape)} is empty")
        if w.min() < INT4_MIN or w.max() > INT4_MAX:
            raise Q4Error(
                f"{what}: array '{name}' values must lie in [{INT4_MIN}, {INT4_MAX}] (INT4), "
                f"got [{w.min()}, {w.max()}]"
            )
        if w.shape != op.arrays["weight"].shape:
            raise Q4Error(
                f"{what}: array 'weight2' {_fmt_shape(w.shape)} must have the shape of 'weight' "
                f"{_fmt_shape(op.arrays['weight'].shape)}"
            )
    terms = n_terms(op)
    if terms > 1:
        m, s = op.arrays["multiplier"], op.arrays["shift"]
        if m.ndim != 2 or m.shape[0] != terms:
            raise Q4Error(
                f"{what}: array 'multiplier' of a {terms}-term layer must be [{terms}, O], "
                f"got {_fmt_shape(m.shape)}"
            )
        if np.abs(m.astype(np.int64)).max(initial=0) >= TERM_MULT_LIMIT:
            raise Q4Error(
                f"{what}: array 'multiplier' values of a multi-term layer must lie in (-2^29, 2^29)"
            )
        _check_shift(s, what)
    elif "shift" in op.arrays:  # single-term requantization (add has its own, checked with its shape)
        _check_requant(op.arrays["multiplier"], op.arrays["shift"], what)


def n_terms(op: QOp) -> int:
    """Number of (input, weight) terms of a layer: 1, or up to 4 for a multi-term layer."""
    if "weight" not in op.arrays:
        return 1
    return len(op.inputs) * (2 if "weight2" in op.arrays else 1)


def _check_per_channel(op: QOp, n: int, names, what: str) -> None:
    for name in names:
        a = op.arrays[name]
        if name == "multiplier" and n_terms(op) > 1:
            if a.shape[1:] != (n,):
                raise Q4Error(
                    f"{what}: array 'multiplier' must have shape ({n_terms(op)}, {n}), "
                    f"got {_fmt_shape(a.shape)}"
                )
            continue
        if a.shape != (n,):
            raise Q4Error(f"{what}: array '{name}' must have shape ({n},), got {_fmt_shape(a.shape)}")


def _check_bias(op: QOp, k: int, what: str) -> None:
    """The int32 accumulator of a layer holds the bias plus K products, each at most MAX_PRODUCT."""
    bias = op.arrays["bias"].astype(np.int64)
    if (np.abs(bias) + k * MAX_PRODUCT >= ACC_LIMIT).any():
        raise Q4Error(f"{what}: bias too large: the int32 accumulator could overflow (K={k})")


# ------------------------------------------------------------------ shape rules, one per kind
# Each returns the output shape the op must have (None: checked inside), given the input tensors.


def _conv2d_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, w, g = ins[0], op.arrays["weight"], attr(op, "groups")
    if w.ndim != 4 or w.shape[3] * g != x.shape[2] or w.shape[0] % g:
        raise Q4Error(
            f"{what}: array 'weight' {_fmt_shape(w.shape)} must be [O, kh, kw, I / groups] with "
            f"I = {x.shape[2]} (input '{x.name}' {_fmt_shape(x.shape)}), groups = {g} dividing O"
        )
    ho, wo = _window_out(
        x.shape, w.shape[1:3], op.attrs["stride"], op.attrs["pads"], what, attr(op, "dilation")
    )
    _check_per_channel(op, w.shape[0], ("bias", "multiplier", "shift"), what)
    _check_bias(op, int(np.prod(w.shape[1:])), what)
    return ho, wo, w.shape[0]


def _depthwise_conv2d_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, w = ins[0], op.arrays["weight"]
    if w.ndim != 3 or w.shape[0] % x.shape[2]:
        raise Q4Error(
            f"{what}: array 'weight' {_fmt_shape(w.shape)} must be [C * m, kh, kw] with "
            f"C = {x.shape[2]} (input '{x.name}' {_fmt_shape(x.shape)}) and channel multiplier m >= 1"
        )
    ho, wo = _window_out(
        x.shape, w.shape[1:3], op.attrs["stride"], op.attrs["pads"], what, attr(op, "dilation")
    )
    _check_per_channel(op, w.shape[0], ("bias", "multiplier", "shift"), what)
    _check_bias(op, int(w.shape[1] * w.shape[2]), what)
    return ho, wo, w.shape[0]


def _fully_connected_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, w = ins[0], op.arrays["weight"]
    if w.ndim != 2 or w.shape[1] != x.size:
        raise Q4Error(
            f"{what}: array 'weight' {_fmt_shape(w.shape)} must be [O, I] with "
            f"I = {x.size} (input '{x.name}' {_fmt_shape(x.shape)})"
        )
    _check_per_channel(op, w.shape[0], ("bias", "multiplier", "shift"), what)
    _check_bias(op, int(w.shape[1]), what)
    return (w.shape[0],)


def _add_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, m = ins[0], op.arrays["multiplier"]
    if m.shape != (2,):
        raise Q4Error(f"{what}: array 'multiplier' must have shape (2,), got {_fmt_shape(m.shape)}")
    if m.min() < 0 or m.max() >= ADD_MULT_LIMIT:
        raise Q4Error(f"{what}: array 'multiplier' values must lie in [0, 2^21), got {m.tolist()}")
    if not 1 <= op.attrs["shift"] <= ADD_SHIFT_MAX:
        raise Q4Error(f"{what}: attr 'shift' must lie in [1, {ADD_SHIFT_MAX}], got {op.attrs['shift']}")
    if tuple(ins[1].shape) != tuple(x.shape):
        raise Q4Error(
            f"{what}: inputs '{x.name}' {_fmt_shape(x.shape)} and '{ins[1].name}' "
            f"{_fmt_shape(ins[1].shape)} differ in shape"
        )
    return tuple(x.shape)


def _check_window_sum(kernel, what: str) -> None:
    if kernel[0] * kernel[1] * 255 >= ACC_LIMIT:
        raise Q4Error(f"{what}: window {kernel[0]}x{kernel[1]} too large for an int32 accumulator")


def _avgpool_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x = ins[0]
    (kh, kw), pads = op.attrs["kernel"], op.attrs["pads"]
    ho, wo = _window_out(x.shape, (kh, kw), op.attrs["stride"], pads, what)
    counted = "count_pads" in op.attrs
    _check_per_channel(op, kh * kw if counted else 1, ("multiplier", "shift"), what)
    _check_window_sum((kh, kw), what)
    if counted:
        _check_windows_hit(
            x.shape, (kh, kw), op.attrs["stride"], pads, (ho, wo), what, op.attrs["count_pads"]
        )
    return ho, wo, x.shape[2]


def _global_avgpool_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x = ins[0]
    _check_per_channel(op, 1, ("multiplier", "shift"), what)
    _check_window_sum(x.shape[:2], what)
    return 1, 1, x.shape[2]


def _maxpool_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, (kh, kw), pads = ins[0], op.attrs["kernel"], op.attrs["pads"]
    ho, wo = _window_out(x.shape, (kh, kw), op.attrs["stride"], pads, what)
    if pads[0] >= kh or pads[2] >= kh or pads[1] >= kw or pads[3] >= kw:
        raise Q4Error(f"{what}: attr 'pads' {list(pads)} must be smaller than the kernel {[kh, kw]}")
    return ho, wo, x.shape[2]


def _check_windows_hit(in_shape, kernel, stride, pads, out_hw, what: str, counted) -> None:
    """Every window overlaps the input grown by ``counted`` pads (else it has no divisor);
    windows start at -pads top / left."""
    for axis, name in ((0, "rows"), (1, "columns")):
        first_end = kernel[axis] - pads[axis]  # the first window is [-pad, kernel - pad)
        last_start = (out_hw[axis] - 1) * stride[axis] - pads[axis]
        if first_end <= -counted[axis] or last_start >= in_shape[axis] + counted[axis + 2]:
            what_pads = f"attr 'pads' {list(pads)}" + (
                f", 'count_pads' {list(counted)}" if any(counted) else ""
            )
            raise Q4Error(
                f"{what}: a {kernel[0]}x{kernel[1]} window with {what_pads} covers "
                f"no input {name} (input {_fmt_shape(in_shape)})"
            )


def _same_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    return tuple(ins[0].shape)


def _pad_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, (t, l, b, r) = ins[0], op.attrs["pads"]
    return x.shape[0] + t + b, x.shape[1] + l + r, x.shape[2]


def _reshape_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x = ins[0]
    if out.size != x.size:
        raise Q4Error(
            f"{what}: output '{out.name}' {_fmt_shape(out.shape)} does not have the "
            f"{x.size} elements of input '{x.name}' {_fmt_shape(x.shape)}"
        )
    return None


def _residual_split_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    """A residual_split reads an 8-bit fine-grid tensor F and writes a 4-bit X1 (part 0, scale
    16 S_F, zero point coarse_zero_point) or X2 (part 1, scale S_F)."""
    x = ins[0]
    part, zc = op.attrs["part"], op.attrs["coarse_zero_point"]
    if part not in (0, 1):
        raise Q4Error(f"{what}: attr 'part' must be 0 (coarse) or 1 (residual), got {part}")
    if x.bits != 8 or out.bits != 4:
        raise Q4Error(
            f"{what}: reads an 8-bit tensor and writes a 4-bit one, got input '{x.name}' "
            f"{x.bits} bits, output '{out.name}' {out.bits} bits"
        )
    if not out.qmin <= zc <= out.qmax:
        raise Q4Error(f"{what}: attr 'coarse_zero_point' must lie in [{out.qmin}, {out.qmax}], got {zc}")
    scale, zp = (x.scale * 16, zc) if part == 0 else (x.scale, out.zero_point)
    if out.scale != scale or out.zero_point != zp:
        raise Q4Error(
            f"{what}: output '{out.name}' must have scale {scale!r} and zero point {zp} "
            f"(input '{x.name}' scale {x.scale!r})"
        )
    if tuple(out.shape) != tuple(x.shape):
        raise Q4Error(
            f"{what}: output '{out.name}' {_fmt_shape(out.shape)} must have the shape of "
            f"input '{x.name}' {_fmt_shape(x.shape)}"
        )
    return None


def _lut_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, table = ins[0], op.arrays["table"]
    if table.shape != (1 << x.bits,):
        raise Q4Error(
            f"{what}: array 'table' must have shape ({1 << x.bits},), one entry per code of "
            f"input '{x.name}' ({x.bits} bits), got {_fmt_shape(table.shape)}"
        )
    if table.min() < out.qmin or table.max() > out.qmax:
        raise Q4Error(
            f"{what}: array 'table' values must lie in [{out.qmin}, {out.qmax}] (output "
            f"'{out.name}', {out.bits} bits), got [{table.min()}, {table.max()}]"
        )
    return tuple(x.shape)


def concat_axis(ins: list[QTensor], out: QTensor) -> int:
    """The axis a concat joins on: the one where the output differs from its first input (the
    channel axis, the last, when they do not differ in one axis)."""
    x = ins[0]
    differ = [i for i, (a, b) in enumerate(zip(x.shape, out.shape)) if a != b]
    return differ[0] if len(differ) == 1 and len(x.shape) == len(out.shape) else len(x.shape) - 1


def _concat_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    axis = concat_axis(ins, out)
    rest = [d for i, d in enumerate(ins[0].shape) if i != axis]
    for t in ins[1:]:
        if len(t.shape) != len(ins[0].shape) or [d for i, d in enumerate(t.shape) if i != axis] != rest:
            raise Q4Error(
                f"{what}: inputs '{ins[0].name}' {_fmt_shape(ins[0].shape)} and '{t.name}' "
                f"{_fmt_shape(t.shape)} differ in more than the concat axis {axis}"
            )
    for key in ("multiplier", "shift"):
        if op.arrays[key].shape != (len(ins),):
            raise Q4Error(
                f"{what}: array '{key}' must have shape ({len(ins)},), one per input, "
                f"got {_fmt_shape(op.arrays[key].shape)}"
            )
    m, s = op.arrays["multiplier"], op.arrays["shift"]
    if m.min() < 0 or s.min() < SHIFT_MIN or s.max() > SHIFT_MAX:
        raise Q4Error(
            f"{what}: multipliers must be >= 0 and shifts in [{SHIFT_MIN}, {SHIFT_MAX}], "
            f"got {m.tolist()} and {s.tolist()}"
        )
    shape = list(ins[0].shape)
    shape[axis] = sum(int(t.shape[axis]) for t in ins)
    return tuple(shape)


def _gather_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, index, axis = ins[0], op.arrays["index"], op.attrs["axis"]
    if not 0 <= axis < len(x.shape):
        raise Q4Error(f"{what}: attr 'axis' must lie in [0, {len(x.shape) - 1}], got {axis}")
    if index.ndim != 1 or index.size == 0:
        raise Q4Error(f"{what}: array 'index' must be a non-empty list, got {_fmt_shape(index.shape)}")
    if index.min() < 0 or index.max() >= x.shape[axis]:
        raise Q4Error(
            f"{what}: array 'index' values must lie in [0, {x.shape[axis] - 1}] (axis {axis} of input "
            f"'{x.name}' {_fmt_shape(x.shape)}), got [{index.min()}, {index.max()}]"
        )
    return (*x.shape[:axis], index.size, *x.shape[axis + 1 :])


def _reduce_mean_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, (first, last) = ins[0], op.attrs["axes"]
    if not 0 <= first <= last < len(x.shape):
        raise Q4Error(
            f"{what}: attr 'axes' must be [first, last] axes of input '{x.name}', got {[first, last]}"
        )
    _check_per_channel(op, 1, ("multiplier", "shift"), what)
    if int(np.prod(x.shape[first : last + 1])) * 255 >= ACC_LIMIT:
        raise Q4Error(f"{what}: {int(np.prod(x.shape[first : last + 1]))} elements too many for an int32 sum")
    return tuple(1 if first <= i <= last else d for i, d in enumerate(x.shape))


SOFTMAX_ONE = 1 << 15  # table[0]: exp(0) in the softmax table's fixed point
SOFTMAX_MAX = (1 << 16) - 1  # the largest steps and axis length (unsigned 32-bit arithmetic)


def _softmax_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, table, axis, steps = ins[0], op.arrays["table"], op.attrs["axis"], op.attrs["steps"]
    if not 0 <= axis < len(x.shape):
        raise Q4Error(f"{what}: attr 'axis' must lie in [0, {len(x.shape) - 1}], got {axis}")
    if not 1 <= steps <= SOFTMAX_MAX:
        raise Q4Error(f"{what}: attr 'steps' must lie in [1, {SOFTMAX_MAX}], got {steps}")
    if x.shape[axis] > SOFTMAX_MAX:
        raise Q4Error(f"{what}: axis {axis} of input '{x.name}' is longer than {SOFTMAX_MAX}")
    if table.shape != (1 << x.bits,):
        raise Q4Error(
            f"{what}: array 'table' must have shape ({1 << x.bits},), one entry per code difference of "
            f"input '{x.name}' ({x.bits} bits), got {_fmt_shape(table.shape)}"
        )
    if table.min() < 0 or table.max() > SOFTMAX_ONE or table[0] < 1:
        raise Q4Error(f"{what}: array 'table' values must lie in [0, 2^15] with table[0] >= 1")
    return tuple(x.shape)


def _check_channel_operand(ins: list[QTensor], what: str) -> tuple:
    """The second input of mul / addsub: a's shape, or one value per channel (1, 1, C) of an (H, W, C) a."""
    a, b = (tuple(int(d) for d in t.shape) for t in ins)
    if b != a and not (len(a) == 3 and b == (1, 1, a[2])):
        raise Q4Error(
            f"{what}: input '{ins[1].name}' {_fmt_shape(b)} must have the shape of '{ins[0].name}' "
            f"{_fmt_shape(a)} or be one value per channel (1, 1, C)"
        )
    return a


def _mul_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    for key in ("multiplier", "shift"):
        if op.arrays[key].shape != (1,):
            raise Q4Error(
                f"{what}: array '{key}' must have shape (1,), got {_fmt_shape(op.arrays[key].shape)}"
            )
    return _check_channel_operand(ins, what)


def _addsub_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    m = op.arrays["multiplier"]
    if m.shape != (2,):
        raise Q4Error(f"{what}: array 'multiplier' must have shape (2,), got {_fmt_shape(m.shape)}")
    if np.abs(m.astype(np.int64)).max() >= ADD_MULT_LIMIT:
        raise Q4Error(f"{what}: array 'multiplier' values must lie in (-2^21, 2^21), got {m.tolist()}")
    if not 1 <= op.attrs["shift"] <= ADD_SHIFT_MAX:
        raise Q4Error(f"{what}: attr 'shift' must lie in [1, {ADD_SHIFT_MAX}], got {op.attrs['shift']}")
    return _check_channel_operand(ins, what)


def _lut_channel_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, table = ins[0], op.arrays["table"]
    want = (int(x.shape[-1]), 1 << x.bits)
    if table.shape != want:
        raise Q4Error(
            f"{what}: array 'table' must have shape {_fmt_shape(want)}, one row per channel and one "
            f"entry per code of input '{x.name}' ({x.bits} bits), got {_fmt_shape(table.shape)}"
        )
    if table.min() < out.qmin or table.max() > out.qmax:
        raise Q4Error(
            f"{what}: array 'table' values must lie in [{out.qmin}, {out.qmax}] (output "
            f"'{out.name}', {out.bits} bits), got [{table.min()}, {table.max()}]"
        )
    return tuple(x.shape)


def _conv_transpose_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, w = ins[0], op.arrays["weight"]
    if w.ndim != 4 or w.shape[3] != x.shape[2]:
        raise Q4Error(
            f"{what}: array 'weight' {_fmt_shape(w.shape)} must be [O, kh, kw, I] with "
            f"I = {x.shape[2]} (input '{x.name}' {_fmt_shape(x.shape)})"
        )
    stride, pads, out_pad = op.attrs["stride"], op.attrs["pads"], op.attrs["output_padding"]
    if min(out_pad) < 0 or out_pad[0] >= stride[0] or out_pad[1] >= stride[1]:
        raise Q4Error(f"{what}: attr 'output_padding' {list(out_pad)} must lie in [0, stride {list(stride)})")
    ho, wo = (
        (x.shape[i] - 1) * stride[i] - pads[i] - pads[i + 2] + w.shape[1 + i] + out_pad[i] for i in range(2)
    )
    if ho < 1 or wo < 1:
        raise Q4Error(f"{what}: pads {list(pads)} leave no output of the input {_fmt_shape(x.shape)}")
    _check_per_channel(op, w.shape[0], ("bias", "multiplier", "shift"), what)
    _check_bias(op, int(np.prod(w.shape[1:])), what)
    return ho, wo, w.shape[0]


def _resize_shape(op: QOp, ins: list[QTensor], out: QTensor, what: str):
    x, scale = ins[0], op.attrs["scale"]
    if not 0 <= op.attrs["mode"] < len(RESIZE_MODES):
        raise Q4Error(f"{what}: attr 'mode' must be 0 (nearest) or 1 (bilinear), got {op.attrs['mode']}")
    if min(scale) < 1 or max(scale) > RESIZE_MAX_SCALE:
        raise Q4Error(f"{what}: attr 'scale' {list(scale)} must lie in [1, {RESIZE_MAX_SCALE}]")
    return x.shape[0] * scale[0], x.shape[1] * scale[1], x.shape[2]


ShapeRule = Callable[[QOp, list, QTensor, str], "tuple | None"]
SHAPE_RULES: dict[str, ShapeRule] = {
    "conv2d": _conv2d_shape,
    "depthwise_conv2d": _depthwise_conv2d_shape,
    "fully_connected": _fully_connected_shape,
    "add": _add_shape,
    "avgpool": _avgpool_shape,
    "global_avgpool": _global_avgpool_shape,
    "maxpool": _maxpool_shape,
    "clamp": _same_shape,
    "pad": _pad_shape,
    "reshape": _reshape_shape,
    "residual_split": _residual_split_shape,
    "lut": _lut_shape,
    "concat": _concat_shape,
    "mul": _mul_shape,
    "addsub": _addsub_shape,
    "lut_channel": _lut_channel_shape,
    "conv_transpose": _conv_transpose_shape,
    "resize": _resize_shape,
    "gather": _gather_shape,
    "reduce_mean": _reduce_mean_shape,
    "softmax": _softmax_shape,
}


def _check_shapes(op: QOp, ins: list[QTensor], out: QTensor, what: str) -> None:
    """Shape rules per op kind (channels-last tensors, see q4sdk/ir/qmodel.py)."""
    x = ins[0]
    if OPS[op.kind].spatial and len(x.shape) != 3:
        raise Q4Error(f"{what}: input '{x.name}' must be (H, W, C), got {_fmt_shape(x.shape)}")
    for extra in ins[1:] if OPS[op.kind].weighted else ():
        if tuple(extra.shape) != tuple(x.shape):
            raise Q4Error(
                f"{what}: second input '{extra.name}' {_fmt_shape(extra.shape)} must have the "
                f"shape of '{x.name}' {_fmt_shape(x.shape)}"
            )
    expected = SHAPE_RULES[op.kind](op, ins, out, what)
    if expected is not None and tuple(int(d) for d in out.shape) != tuple(int(d) for d in expected):
        raise Q4Error(
            f"{what}: output '{out.name}' has shape {_fmt_shape(out.shape)}, expected {_fmt_shape(expected)}"
        )


def _check_quant(op: QOp, x: QTensor, out: QTensor, what: str) -> None:
    if "act_min" in op.attrs:
        lo, hi = op.attrs["act_min"], op.attrs["act_max"]
        if not out.qmin <= lo <= hi <= out.qmax:
            raise Q4Error(
                f"{what}: attrs act_min={lo}, act_max={hi} must satisfy "
                f"{out.qmin} <= act_min <= act_max <= {out.qmax} (output '{out.name}', "
                f"{out.bits} bits)"
            )
    if OPS[op.kind].same_quant:
        for f in ("bits", "scale", "zero_point"):
            if getattr(out, f) != getattr(x, f):
                raise Q4Error(
                    f"{what}: output '{out.name}' field '{f}' ({getattr(out, f)!r}) must "
                    f"equal input '{x.name}' ({getattr(x, f)!r})"
                )


def _split_pair(inputs, splits: dict[str, QOp]) -> bool:
    """True if ``inputs`` are the X1 and X2 tensors split from one fine-grid tensor, in that order."""
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        return False
    a, b = splits.get(inputs[0]), splits.get(inputs[1])
    return (
        a is not None
        and b is not None
        and a.inputs == b.inputs
        and a.attrs.get("part") == 0
        and b.attrs.get("part") == 1
    )


def _n_inputs(op: QOp, spec: OpSpec, model: QModel, splits: dict, any_second_input: bool) -> tuple[int, ...]:
    """The input counts ``op`` may have. A multi-term layer reads a second input: the model's
    residual input, or the (X1, X2) pair of a residual_split (or any tensor of its input's shape
    with ``any_second_input``)."""
    if len(spec.inputs) == 1 or not spec.weighted or not isinstance(op.inputs, (list, tuple)):
        return spec.inputs
    if any_second_input:
        return spec.inputs
    residual = model.meta.get("input_residual") if isinstance(model.meta, dict) else None
    if residual and list(op.inputs) == [model.input, residual]:
        return (2,)  # a layer reading the residual-quantized model input
    if splits and _split_pair(op.inputs, splits):
        return (2,)  # a layer reading a residual-quantized activation (X1, X2)
    return (spec.n_inputs,)


def _check_op(op: QOp, model: QModel, available: set[str], splits: dict, any_second_input: bool) -> None:
    what = f"op '{getattr(op, 'name', '?')}' ({getattr(op, 'kind', '?')})"
    if not isinstance(op, QOp):
        raise Q4Error(f"{what}: expected a QOp, got {type(op).__name__}")
    if op.kind not in OPS:
        raise Q4Error(f"{what}: unknown op kind '{op.kind}' (known: {', '.join(QOP_KINDS)})")
    spec = OPS[op.kind]
    if not isinstance(op.inputs, (list, tuple)) or len(op.inputs) not in _n_inputs(
        op, spec, model, splits, any_second_input
    ):
        many = len(spec.inputs) > 1 and not spec.weighted  # concat: any count in a range
        count = f"{spec.inputs[0]} to {spec.inputs[-1]}" if many else str(spec.n_inputs)
        raise Q4Error(f"{what}: needs {count} input(s), got {op.inputs!r}")
    for name in op.inputs:
        if name not in model.tensors:
            raise Q4Error(f"{what}: input '{name}' is not a tensor of the model")
        if name not in available:
            raise Q4Error(
                f"{what}: input '{name}' is not produced by an earlier op (ops must be in topological order)"
            )
    if op.output not in model.tensors:
        raise Q4Error(f"{what}: output '{op.output}' is not a tensor of the model")
    if op.output in available:
        raise Q4Error(
            f"{what}: output '{op.output}' is already produced "
            f"{'as the model input' if op.output == model.input else 'by an earlier op'}"
        )
    _check_attrs(op, spec, what)
    _check_arrays(op, spec, what)
    ins = [model.tensors[n] for n in op.inputs]
    out = model.tensors[op.output]
    _check_shapes(op, ins, out, what)
    _check_quant(op, ins[0], out, what)


def _check_model_fields(model: QModel) -> None:
    if not isinstance(model, QModel):
        raise Q4Error(f"expected a QModel, got {type(model).__name__}")
    if not isinstance(model.name, str) or not model.name:
        raise Q4Error("field 'name' must be a non-empty string")
    if not isinstance(model.tensors, dict):
        raise Q4Error("field 'tensors' must be a dict")
    for key, t in model.tensors.items():
        _check_tensor(key, t)
    for field_name in ("input", "output"):
        name = getattr(model, field_name)
        if name not in model.tensors:
            raise Q4Error(f"field '{field_name}': '{name}' is not a tensor of the model")
    if not isinstance(model.meta, dict):
        raise Q4Error("field 'meta' must be a dict")
    layout = model.meta.get("input_layout", "NCHW")
    if layout not in INPUT_LAYOUTS:
        raise Q4Error(f"meta 'input_layout' must be NCHW or NHWC, got {layout!r}")
    residual = model.meta.get("input_residual")
    if residual is not None:
        if residual not in model.tensors:
            raise Q4Error(f"meta 'input_residual': '{residual}' is not a tensor of the model")
        r, x = model.tensors[residual], model.tensors[model.input]
        if (
            tuple(r.shape) != tuple(x.shape)
            or r.zero_point != 0
            or r.bits != x.bits
            or r.scale != x.scale / (1 << x.bits)
        ):
            raise Q4Error(
                f"tensor '{residual}': a residual input must have the input's shape and bits, "
                f"zero point 0 and scale = input scale / 2^bits"
            )


def validate_model(model: QModel, *, any_second_input: bool = False) -> None:
    """Check that ``model`` is a well-formed integer program, or raise :class:`Q4Error`.

    Checks tensors (bits 4/8, finite positive scale, zero point in range), op order (every input is
    the model input or produced by an earlier op; every tensor produced once), attrs and arrays per
    op kind (names, dtypes, value ranges), shapes per op kind, activation clamps within the output's
    range, equal quantization across the same-quant kinds and the int32 accumulator bounds. The
    message names the model and the op/tensor/field at fault.

    A multi-term layer's second input must be the model's residual input or the X2 of a split
    pair, as the quantizer writes them; ``any_second_input`` accepts any tensor of the first
    input's shape (the kernels and the oracle compute that too; the code generator's tests use it).
    """
    prefix = f"model '{getattr(model, 'name', '?')}'"
    try:
        _check_model_fields(model)
        available = {model.input}
        residual = model.meta.get("input_residual")
        if residual is not None:
            available.add(residual)
        op_names: set[str] = set()
        splits: dict[str, QOp] = {}
        for op in model.ops:
            _check_op(op, model, available, splits, any_second_input)
            if op.kind == "residual_split":
                splits[op.output] = op
            if not isinstance(op.name, str) or not op.name:
                raise Q4Error(f"op '{op.name}' ({op.kind}): name must be a non-empty string")
            if op.name in op_names:
                raise Q4Error(f"op '{op.name}' ({op.kind}): op name used twice")
            op_names.add(op.name)
            available.add(op.output)
        orphans = [n for n in model.tensors if n not in available]
        if orphans:
            raise Q4Error(f"tensor '{orphans[0]}' is neither the model input nor produced by any op")
    except Q4Error as e:
        raise Q4Error(f"{prefix}: {e}") from None
