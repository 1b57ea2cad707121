"""The ``.q4`` file: one versioned, self-describing, checksummed file that holds a :class:`QModel`.

Layout (integers little-endian; ``docs/q4-format.md`` is the full specification)::

    0       magic b"Q4SDK\\0\\0\\0"                           8 bytes
    8       format version, u32 (= 1)
    12      manifest length M, u64
    20      data section length D, u64
    28      manifest: UTF-8 JSON, sorted keys            M bytes
            zero bytes up to the next multiple of 64     -> data start S
    S       data section: array blobs, each starting at a multiple of 64 from S   D bytes
    S + D   sha256 of bytes [0, S + D)                   32 bytes

INT4 weights are stored packed (``pack_int4_rows``, encoding ``int4_rows``); every other array is
stored raw, little-endian. No pickle is involved anywhere. :func:`load_q4` checks every byte and
every field and then the model itself (:func:`validate_model`); any fault is a one-line
:class:`Q4Error` that names the file and the field.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from q4sdk.errors import Q4Error
from q4sdk.ir.limits import INT32_LIMIT, check_limits, printable
from q4sdk.ir.fixedpoint import ADD_MULT_LIMIT, ADD_SHIFT_MAX, MULT_MIN, SHIFT_MAX, SHIFT_MIN, TERM_MULT_LIMIT
from q4sdk.ir.packing import pack_int4_rows, unpack_int4_rows
from q4sdk.ir.qmodel import QOP_KINDS, QModel, QOp, QTensor

MAGIC = b"Q4SDK\0\0\0"
FORMAT_VERSION = 1
FORMAT_NAME = "q4sdk-model"
ALIGN = 64
_HEADER = struct.Struct("<8sIQQ")  # magic, version, manifest length, data length
_SHA_LEN = 32

#: dtypes an array may have in a .q4 file (always stored little-endian)
ARRAY_DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float32")
ENCODINGS = ("raw", "int4_rows")
#: op arrays holding INT4 weights; stored packed when int8 with every value in [-8, 7]
INT4_ARRAYS = ("weight", "weight2")
INT4_MIN, INT4_MAX = -8, 7


# ----------------------------------------------------------------------------------------------
# The op table as data: inputs, attrs and arrays of every op kind (see q4sdk/qmodel.py)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OpSignature:
    """What an op kind carries. ``attrs`` maps attr name -> list length (0 for a scalar int).

    Layers with ``optional`` arrays may be multi-term (docs/integer-spec.md): a second INT4 weight
    tensor ``weight2`` (dual) and/or a second input (the model's residual input tensor).
    """
    n_inputs: int
    attrs: dict
    arrays: dict  # array name -> dtype name
    optional: dict = field(default_factory=dict)


_ACT = {"act_min": 0, "act_max": 0}
_WINDOW = {"kernel": 2, "stride": 2, "pads": 4}
_CONV_ARRAYS = {"weight": "int8", "bias": "int32", "multiplier": "int32", "shift": "int32"}
_POOL_ARRAYS = {"multiplier": "int32", "shift": "int32"}
_DUAL = {"weight2": "int8"}

OP_SIGNATURES: dict[str, OpSignature] = {
    "conv2d": OpSignature(1, {"stride": 2, "pads": 4, **_ACT}, _CONV_ARRAYS, _DUAL),
    "depthwise_conv2d": OpSignature(1, {"stride": 2, "pads": 4, **_ACT}, _CONV_ARRAYS, _DUAL),
    "fully_connected": OpSignature(1, dict(_ACT), _CONV_ARRAYS, _DUAL),
    "add": OpSignature(2, {"shift": 0, **_ACT}, {"multiplier": "int32"}),
    "avgpool": OpSignature(1, {**_WINDOW, **_ACT}, _POOL_ARRAYS),
    "global_avgpool": OpSignature(1, dict(_ACT), _POOL_ARRAYS),
    "maxpool": OpSignature(1, dict(_WINDOW), {}),
    "clamp": OpSignature(1, dict(_ACT), {}),
    "pad": OpSignature(1, {"pads": 4}, {}),
    "reshape": OpSignature(1, {}, {}),
    # part 0 writes X1 (the coarse tensor), part 1 X2 (the residual) of a residual-quantized
    # activation held at 8 bits on the fine grid (docs/integer-spec.md, residual_split)
    "residual_split": OpSignature(1, {"part": 0, "coarse_zero_point": 0}, {}),
}

#: ops whose output reuses the input's quantization parameters
SAME_QUANT_KINDS = ("maxpool", "clamp", "pad", "reshape")


# ----------------------------------------------------------------------------------------------
# Model validation
# ----------------------------------------------------------------------------------------------

def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ")"


def _window_out(in_shape, kernel, stride, pads, what: str) -> tuple[int, int]:
    h, w = in_shape[0], in_shape[1]
    t, l, b, r = pads
    ho = (h + t + b - kernel[0]) // stride[0] + 1
    wo = (w + l + r - kernel[1]) // stride[1] + 1
    if ho < 1 or wo < 1:
        raise Q4Error(f"{what}: window {kernel[0]}x{kernel[1]} does not fit the padded input "
                      f"{_fmt_shape(in_shape)}")
    return ho, wo


def _check_tensor(key: str, t: QTensor) -> None:
    what = f"tensor '{key}'"
    if not isinstance(t, QTensor):
        raise Q4Error(f"{what}: expected a QTensor, got {type(t).__name__}")
    if t.name != key:
        raise Q4Error(f"{what}: field 'name' is '{t.name}', not its key")
    if (not isinstance(t.shape, (tuple, list)) or not t.shape
            or not all(_is_int(d) and d >= 1 for d in t.shape)):
        raise Q4Error(f"{what}: field 'shape' must be a non-empty list of positive ints, got {t.shape!r}")
    if not _is_int(t.bits) or t.bits not in (4, 8):
        raise Q4Error(f"{what}: field 'bits' must be 4 or 8, got {t.bits!r}")
    if (not isinstance(t.scale, (float, int, np.floating)) or isinstance(t.scale, bool)
            or not math.isfinite(t.scale) or t.scale <= 0):
        raise Q4Error(f"{what}: field 'scale' must be finite and > 0, got {t.scale!r}")
    if not _is_int(t.zero_point) or not t.qmin <= t.zero_point <= t.qmax:
        raise Q4Error(f"{what}: field 'zero_point' must be an int in [{t.qmin}, {t.qmax}], "
                      f"got {t.zero_point!r}")


def _check_attrs(op: QOp, sig: OpSignature, what: str) -> None:
    if not isinstance(op.attrs, dict):
        raise Q4Error(f"{what}: attrs must be a dict")
    missing = sorted(set(sig.attrs) - set(op.attrs))
    extra = sorted(set(op.attrs) - set(sig.attrs))
    if missing:
        raise Q4Error(f"{what}: missing attr '{missing[0]}'")
    if extra:
        known = ", ".join(sorted(sig.attrs)) or "none"
        raise Q4Error(f"{what}: unexpected attr '{extra[0]}' (a {op.kind} has: {known})")
    for name, length in sig.attrs.items():
        v = op.attrs[name]
        if length == 0:
            if not _is_int(v):
                raise Q4Error(f"{what}: attr '{name}' must be an int, got {v!r}")
        elif (not isinstance(v, (list, tuple)) or len(v) != length or not all(_is_int(x) for x in v)):
            raise Q4Error(f"{what}: attr '{name}' must be a list of {length} ints, got {v!r}")
    for name, lo in (("stride", 1), ("kernel", 1), ("pads", 0)):
        if name in op.attrs and min(op.attrs[name]) < lo:
            raise Q4Error(f"{what}: attr '{name}' values must be >= {lo}, got {list(op.attrs[name])}")
    if op.kind == "add" and not 1 <= op.attrs["shift"] <= ADD_SHIFT_MAX:
        raise Q4Error(f"{what}: attr 'shift' must lie in [1, {ADD_SHIFT_MAX}], got {op.attrs['shift']}")


def _check_arrays(op: QOp, sig: OpSignature, what: str) -> None:
    if not isinstance(op.arrays, dict):
        raise Q4Error(f"{what}: arrays must be a dict")
    missing = sorted(set(sig.arrays) - set(op.arrays))
    extra = sorted(set(op.arrays) - set(sig.arrays) - set(sig.optional))
    if missing:
        raise Q4Error(f"{what}: missing array '{missing[0]}'")
    if extra:
        known = ", ".join(sorted(sig.arrays)) or "none"
        raise Q4Error(f"{what}: unexpected array '{extra[0]}' (a {op.kind} has: {known})")
    for name, dtype in {**sig.arrays, **sig.optional}.items():
        if name not in op.arrays:
            continue
        a = op.arrays[name]
        if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype):
            got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise Q4Error(f"{what}: array '{name}' must be {dtype}, got {got}")
    for name in ("weight", "weight2"):
        if name not in op.arrays:
            continue
        w = op.arrays[name]
        if w.size == 0:
            raise Q4Error(f"{what}: array '{name}' {_fmt_shape(w.shape)} is empty")
        if w.min() < INT4_MIN or w.max() > INT4_MAX:
            raise Q4Error(f"{what}: array '{name}' values must lie in [{INT4_MIN}, {INT4_MAX}] (INT4), "
                          f"got [{w.min()}, {w.max()}]")
        if w.shape != op.arrays["weight"].shape:
            raise Q4Error(f"{what}: array 'weight2' {_fmt_shape(w.shape)} must have the shape of 'weight' "
                          f"{_fmt_shape(op.arrays['weight'].shape)}")
    terms = n_terms(op)
    if terms > 1:
        m, s = op.arrays["multiplier"], op.arrays["shift"]
        if m.ndim != 2 or m.shape[0] != terms:
            raise Q4Error(f"{what}: array 'multiplier' of a {terms}-term layer must be [{terms}, O], "
                          f"got {_fmt_shape(m.shape)}")
        if np.abs(m.astype(np.int64)).max(initial=0) >= TERM_MULT_LIMIT:
            raise Q4Error(f"{what}: array 'multiplier' values of a multi-term layer must lie in "
                          f"(-2^29, 2^29)")
        if s.size and (s.min() < SHIFT_MIN or s.max() > SHIFT_MAX):
            raise Q4Error(f"{what}: array 'shift' values must lie in [{SHIFT_MIN}, {SHIFT_MAX}], "
                          f"got [{s.min()}, {s.max()}]")
    elif "shift" in op.arrays and op.kind != "add":
        m, s = op.arrays["multiplier"], op.arrays["shift"]
        bad_m = (m != 0) & (m < MULT_MIN)
        if bad_m.any():
            raise Q4Error(f"{what}: array 'multiplier' values must be 0 or in [2^30, 2^31), "
                          f"got {int(m[bad_m].flat[0])}")
        if s.size and (s.min() < SHIFT_MIN or s.max() > SHIFT_MAX):
            raise Q4Error(f"{what}: array 'shift' values must lie in [{SHIFT_MIN}, {SHIFT_MAX}], "
                          f"got [{s.min()}, {s.max()}]")
    if op.kind == "add":
        m = op.arrays["multiplier"]
        if m.shape != (2,):
            raise Q4Error(f"{what}: array 'multiplier' must have shape (2,), got {_fmt_shape(m.shape)}")
        if m.min() < 0 or m.max() >= ADD_MULT_LIMIT:
            raise Q4Error(f"{what}: array 'multiplier' values must lie in [0, 2^21), got {m.tolist()}")


def n_terms(op: QOp) -> int:
    """Number of (input, weight) terms of a layer: 1, or up to 4 for a multi-term layer."""
    if "weight" not in op.arrays:
        return 1
    return len(op.inputs) * (2 if "weight2" in op.arrays else 1)


def _check_per_channel(op: QOp, n: int, names, what: str) -> None:
    for name in names:
        a = op.arrays[name]
        if name == "multiplier" and n_terms(op) > 1:
            continue  # checked as [T, O] with the arrays
        if a.shape != (n,):
            raise Q4Error(f"{what}: array '{name}' must have shape ({n},), got {_fmt_shape(a.shape)}")


def _check_shapes(op: QOp, ins: list[QTensor], out: QTensor, what: str) -> None:
    """Shape rules per op kind (channels-last tensors, see q4sdk/qmodel.py)."""
    k, x = op.kind, ins[0]
    spatial = k in ("conv2d", "depthwise_conv2d", "avgpool", "global_avgpool", "maxpool", "pad")
    if spatial and len(x.shape) != 3:
        raise Q4Error(f"{what}: input '{x.name}' must be (H, W, C), got {_fmt_shape(x.shape)}")
    expected = None
    if k == "conv2d":
        w = op.arrays["weight"]
        if w.ndim != 4 or w.shape[3] != x.shape[2]:
            raise Q4Error(f"{what}: array 'weight' {_fmt_shape(w.shape)} must be [O, kh, kw, I] with "
                          f"I = {x.shape[2]} (input '{x.name}' {_fmt_shape(x.shape)})")
        ho, wo = _window_out(x.shape, w.shape[1:3], op.attrs["stride"], op.attrs["pads"], what)
        expected = (ho, wo, w.shape[0])
        _check_per_channel(op, w.shape[0], ("bias", "multiplier", "shift"), what)
    elif k == "depthwise_conv2d":
        w = op.arrays["weight"]
        if w.ndim != 3 or w.shape[0] != x.shape[2]:
            raise Q4Error(f"{what}: array 'weight' {_fmt_shape(w.shape)} must be [C, kh, kw] with "
                          f"C = {x.shape[2]} (input '{x.name}' {_fmt_shape(x.shape)})")
        ho, wo = _window_out(x.shape, w.shape[1:3], op.attrs["stride"], op.attrs["pads"], what)
        expected = (ho, wo, w.shape[0])
        _check_per_channel(op, w.shape[0], ("bias", "multiplier", "shift"), what)
    elif k == "fully_connected":
        w = op.arrays["weight"]
        if w.ndim != 2 or w.shape[1] != x.size:
            raise Q4Error(f"{what}: array 'weight' {_fmt_shape(w.shape)} must be [O, I] with "
                          f"I = {x.size} (input '{x.name}' {_fmt_shape(x.shape)})")
        expected = (w.shape[0],)
        _check_per_channel(op, w.shape[0], ("bias", "multiplier", "shift"), what)
    elif k == "add":
        if tuple(ins[1].shape) != tuple(x.shape):
            raise Q4Error(f"{what}: inputs '{x.name}' {_fmt_shape(x.shape)} and '{ins[1].name}' "
                          f"{_fmt_shape(ins[1].shape)} differ in shape")
        expected = tuple(x.shape)
    elif k in ("avgpool", "maxpool"):
        ho, wo = _window_out(x.shape, op.attrs["kernel"], op.attrs["stride"], op.attrs["pads"], what)
        expected = (ho, wo, x.shape[2])
    elif k == "global_avgpool":
        expected = (1, 1, x.shape[2])
    elif k == "clamp":
        expected = tuple(x.shape)
    elif k == "pad":
        t, l, b, r = op.attrs["pads"]
        expected = (x.shape[0] + t + b, x.shape[1] + l + r, x.shape[2])
    elif k == "reshape" and out.size != x.size:
        raise Q4Error(f"{what}: output '{out.name}' {_fmt_shape(out.shape)} does not have the "
                      f"{x.size} elements of input '{x.name}' {_fmt_shape(x.shape)}")
    if k in ("avgpool", "global_avgpool"):
        _check_per_channel(op, 1, ("multiplier", "shift"), what)
    if expected is not None and tuple(int(d) for d in out.shape) != tuple(int(d) for d in expected):
        raise Q4Error(f"{what}: output '{out.name}' has shape {_fmt_shape(out.shape)}, "
                      f"expected {_fmt_shape(expected)}")


def _check_quant(op: QOp, x: QTensor, out: QTensor, what: str) -> None:
    if "act_min" in op.attrs:
        lo, hi = op.attrs["act_min"], op.attrs["act_max"]
        if not out.qmin <= lo <= hi <= out.qmax:
            raise Q4Error(f"{what}: attrs act_min={lo}, act_max={hi} must satisfy "
                          f"{out.qmin} <= act_min <= act_max <= {out.qmax} (output '{out.name}', "
                          f"{out.bits} bits)")
    if op.kind in SAME_QUANT_KINDS:
        for f in ("bits", "scale", "zero_point"):
            if getattr(out, f) != getattr(x, f):
                raise Q4Error(f"{what}: output '{out.name}' field '{f}' ({getattr(out, f)!r}) must "
                              f"equal input '{x.name}' ({getattr(x, f)!r})")


def _split_pair(inputs, splits: dict[str, QOp]) -> bool:
    """True if ``inputs`` are the X1 and X2 tensors split from one fine-grid tensor, in that order."""
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        return False
    a, b = splits.get(inputs[0]), splits.get(inputs[1])
    return (a is not None and b is not None and a.inputs == b.inputs
            and a.attrs.get("part") == 0 and b.attrs.get("part") == 1)


def _check_split(op: QOp, x: QTensor, out: QTensor, what: str) -> None:
    """A residual_split reads an 8-bit fine-grid tensor F and writes a 4-bit X1 (part 0, scale
    16 S_F, zero point coarse_zero_point) or X2 (part 1, scale S_F)."""
    part, zc = op.attrs["part"], op.attrs["coarse_zero_point"]
    if part not in (0, 1):
        raise Q4Error(f"{what}: attr 'part' must be 0 (coarse) or 1 (residual), got {part}")
    if x.bits != 8 or out.bits != 4:
        raise Q4Error(f"{what}: reads an 8-bit tensor and writes a 4-bit one, got input '{x.name}' "
                      f"{x.bits} bits, output '{out.name}' {out.bits} bits")
    if not out.qmin <= zc <= out.qmax:
        raise Q4Error(f"{what}: attr 'coarse_zero_point' must lie in [{out.qmin}, {out.qmax}], got {zc}")
    scale, zp = (x.scale * 16, zc) if part == 0 else (x.scale, out.zero_point)
    if out.scale != scale or out.zero_point != zp:
        raise Q4Error(f"{what}: output '{out.name}' must have scale {scale!r} and zero point {zp} "
                      f"(input '{x.name}' scale {x.scale!r})")
    if tuple(out.shape) != tuple(x.shape):
        raise Q4Error(f"{what}: output '{out.name}' {_fmt_shape(out.shape)} must have the shape of "
                      f"input '{x.name}' {_fmt_shape(x.shape)}")


def _check_op(op: QOp, model: QModel, available: set[str], splits: dict | None = None) -> None:
    what = f"op '{getattr(op, 'name', '?')}' ({getattr(op, 'kind', '?')})"
    if not isinstance(op, QOp):
        raise Q4Error(f"{what}: expected a QOp, got {type(op).__name__}")
    if op.kind not in OP_SIGNATURES:
        raise Q4Error(f"{what}: unknown op kind '{op.kind}' (known: {', '.join(QOP_KINDS)})")
    sig = OP_SIGNATURES[op.kind]
    residual = model.meta.get("input_residual") if isinstance(model.meta, dict) else None
    n_in = sig.n_inputs
    if sig.optional and residual and list(op.inputs) == [model.input, residual]:
        n_in = 2  # a layer reading the residual-quantized model input
    if sig.optional and splits and _split_pair(op.inputs, splits):
        n_in = 2  # a layer reading a residual-quantized activation (X1, X2)
    if not isinstance(op.inputs, (list, tuple)) or len(op.inputs) != n_in:
        raise Q4Error(f"{what}: needs {sig.n_inputs} input(s), got {op.inputs!r}")
    for name in op.inputs:
        if name not in model.tensors:
            raise Q4Error(f"{what}: input '{name}' is not a tensor of the model")
        if name not in available:
            raise Q4Error(f"{what}: input '{name}' is not produced by an earlier op (ops must be in "
                          f"topological order)")
    if op.output not in model.tensors:
        raise Q4Error(f"{what}: output '{op.output}' is not a tensor of the model")
    if op.output in available:
        raise Q4Error(f"{what}: output '{op.output}' is already produced "
                      f"{'as the model input' if op.output == model.input else 'by an earlier op'}")
    _check_attrs(op, sig, what)
    _check_arrays(op, sig, what)
    ins = [model.tensors[n] for n in op.inputs]
    out = model.tensors[op.output]
    _check_shapes(op, ins, out, what)
    _check_quant(op, ins[0], out, what)
    if op.kind == "residual_split":
        _check_split(op, ins[0], out, what)


def validate_model(model: QModel) -> None:
    """Check that ``model`` is a well-formed integer program, or raise :class:`Q4Error`.

    Checks tensors (bits 4/8, finite positive scale, zero point in range), op order (every input is
    the model input or produced by an earlier op; every tensor produced once), attrs and arrays per
    op kind (names, dtypes, value ranges), shapes per op kind, activation clamps within the output's
    range and equal quantization across maxpool/clamp/pad/reshape. The message names the model and
    the op/tensor/field at fault.
    """
    prefix = f"model '{getattr(model, 'name', '?')}'"
    try:
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
        available = {model.input}
        residual = model.meta.get("input_residual")
        if residual is not None:
            if residual not in model.tensors:
                raise Q4Error(f"meta 'input_residual': '{residual}' is not a tensor of the model")
            r, x = model.tensors[residual], model.tensors[model.input]
            if tuple(r.shape) != tuple(x.shape) or r.zero_point != 0 or r.bits != x.bits \
                    or r.scale != x.scale / (1 << x.bits):
                raise Q4Error(f"tensor '{residual}': a residual input must have the input's shape and bits, "
                              f"zero point 0 and scale = input scale / 2^bits")
            available.add(residual)
        op_names: set[str] = set()
        splits: dict[str, QOp] = {}
        for op in model.ops:
            _check_op(op, model, available, splits)
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


# ----------------------------------------------------------------------------------------------
# Equality
# ----------------------------------------------------------------------------------------------

def _plain(v):
    """attrs / meta value -> canonical plain-Python form (tuples as lists, numpy scalars as Python)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def first_difference(a: QModel, b: QModel) -> str | None:
    """The first field in which two models differ (``None`` when equal).

    Arrays must match in dtype, shape and bytes; scales must be the same float; attrs and meta
    compare as plain values (a tuple equals the list with the same items).
    """
    for f in ("name", "input", "output"):
        if getattr(a, f) != getattr(b, f):
            return f"field '{f}': {getattr(a, f)!r} != {getattr(b, f)!r}"
    if list(a.tensors) != list(b.tensors):
        return f"tensor names differ: {list(a.tensors)} != {list(b.tensors)}"
    for name, ta in a.tensors.items():
        tb = b.tensors[name]
        for f in ("name", "bits", "scale", "zero_point"):
            if getattr(ta, f) != getattr(tb, f):
                return f"tensor '{name}' field '{f}': {getattr(ta, f)!r} != {getattr(tb, f)!r}"
        if tuple(ta.shape) != tuple(tb.shape):
            return f"tensor '{name}' field 'shape': {ta.shape} != {tb.shape}"
    if len(a.ops) != len(b.ops):
        return f"op count: {len(a.ops)} != {len(b.ops)}"
    for i, (oa, ob) in enumerate(zip(a.ops, b.ops)):
        for f in ("name", "kind", "output"):
            if getattr(oa, f) != getattr(ob, f):
                return f"ops[{i}] field '{f}': {getattr(oa, f)!r} != {getattr(ob, f)!r}"
        if list(oa.inputs) != list(ob.inputs):
            return f"op '{oa.name}' field 'inputs': {oa.inputs} != {ob.inputs}"
        if _plain(oa.attrs) != _plain(ob.attrs):
            return f"op '{oa.name}' field 'attrs': {oa.attrs} != {ob.attrs}"
        if list(oa.arrays) != list(ob.arrays):
            return f"op '{oa.name}' array names: {list(oa.arrays)} != {list(ob.arrays)}"
        for name, xa in oa.arrays.items():
            xb = ob.arrays[name]
            if xa.dtype != xb.dtype or xa.shape != xb.shape or xa.tobytes() != xb.tobytes():
                return f"op '{oa.name}' array '{name}' differs"
    if _plain(a.meta) != _plain(b.meta):
        return f"field 'meta': {a.meta} != {b.meta}"
    return None


def models_equal(a: QModel, b: QModel) -> bool:
    """True when the two models are equal field by field, arrays bit for bit."""
    return first_difference(a, b) is None


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

def _sdk_version() -> str:
    import q4sdk

    return str(getattr(q4sdk, "__version__", "0"))


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _check_json(v, field: str) -> None:
    """``meta`` must be plain JSON so that it loads back exactly."""
    if v is None or isinstance(v, (bool, str)) or _is_int(v):
        return
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            raise Q4Error(f"field '{field}': {v!r} is not a finite number")
        return
    if isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _check_json(x, f"{field}[{i}]")
        return
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise Q4Error(f"field '{field}': key {k!r} is not a string")
            _check_json(x, f"{field}.{k}")
        return
    raise Q4Error(f"field '{field}': {type(v).__name__} is not JSON (use dict/list/str/int/float/bool/None)")


def _stored_form(name: str, a: np.ndarray) -> tuple[bytes, str]:
    """An array's bytes in the file and their encoding."""
    if (name in INT4_ARRAYS and a.dtype == np.int8 and a.size
            and a.min() >= INT4_MIN and a.max() <= INT4_MAX):
        return pack_int4_rows(a.reshape(a.shape[0], -1)).tobytes(), "int4_rows"
    return np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes(), "raw"


def _encode(model: QModel) -> bytes:
    """The complete file contents for a validated model."""
    data = bytearray()
    ops = []
    for op in model.ops:
        arrays = []
        for name, a in op.arrays.items():
            blob, encoding = _stored_form(name, a)
            offset = _align(len(data))
            data += bytes(offset - len(data)) + blob
            arrays.append({"name": name, "dtype": a.dtype.name, "shape": [int(d) for d in a.shape],
                           "encoding": encoding, "offset": offset, "nbytes": len(blob),
                           "sha256": hashlib.sha256(blob).hexdigest()})
        ops.append({"name": op.name, "kind": op.kind, "inputs": list(op.inputs), "output": op.output,
                    "attrs": _plain(op.attrs), "arrays": arrays})
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "q4sdk_version": _sdk_version(),
        "name": model.name,
        "input": model.input,
        "output": model.output,
        "tensors": [{"name": t.name, "shape": [int(d) for d in t.shape], "bits": int(t.bits),
                     "scale": float(t.scale), "zero_point": int(t.zero_point)}
                    for t in model.tensors.values()],
        "ops": ops,
        "meta": _plain(model.meta),
    }
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, len(text), len(data)) + text
    body = head + bytes(_align(len(head)) - len(head)) + bytes(data)
    return body + hashlib.sha256(body).digest()


def save_q4(model: QModel, path, *, overwrite: bool = False) -> None:
    """Write ``model`` to ``path`` as a ``.q4`` file (validated first; atomic; deterministic bytes).

    Refuses to replace an existing file unless ``overwrite`` is true. Nothing is left behind on error.
    """
    p = Path(path)
    check_limits(model)
    validate_model(model)
    _check_json(model.meta, "meta")
    contents = _encode(model)
    if p.exists() and not overwrite:
        raise Q4Error(f"{p}: file exists (pass overwrite=True to replace it)")
    if not p.parent.is_dir():
        raise Q4Error(f"{p}: directory '{p.parent}' does not exist")
    tmp = p.parent / f".{p.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(contents)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise Q4Error(f"{p}: cannot write ({e.strerror or e})") from None
        raise


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------

class _Manifest:
    """Typed, strict access to the JSON manifest; every error names the file and the field path."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, field: str, msg: str) -> Q4Error:
        return Q4Error(f"{self.file}: field '{field}': {msg}")

    def obj(self, v, field: str, keys: tuple[str, ...]) -> dict:
        if not isinstance(v, dict):
            raise self.fail(field, f"expected an object, got {type(v).__name__}")
        missing = [k for k in keys if k not in v]
        extra = sorted(set(v) - set(keys))
        if missing:
            raise self.fail(f"{field}.{missing[0]}" if field else missing[0], "missing")
        if extra:
            raise self.fail(f"{field}.{extra[0]}" if field else extra[0], "unknown field")
        return v

    def get_int(self, v, field: str, lo: int | None = None, hi: int | None = None) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.fail(field, f"expected an int, got {_shown(v)}")
        if lo is not None and v < lo:
            raise self.fail(field, f"must be >= {lo}, got {v}")
        if hi is not None and v >= hi:
            raise self.fail(field, f"must be < {hi}, got {v}")
        return v

    def get_str(self, v, field: str) -> str:
        if not isinstance(v, str):
            raise self.fail(field, f"expected a string, got {_shown(v)}")
        return v

    def get_list(self, v, field: str) -> list:
        if not isinstance(v, list):
            raise self.fail(field, f"expected a list, got {type(v).__name__}")
        return v

    def get_ints(self, v, field: str, lo: int | None = None, hi: int | None = None) -> list[int]:
        return [self.get_int(x, f"{field}[{i}]", lo, hi) for i, x in enumerate(self.get_list(v, field))]

    def get_strs(self, v, field: str) -> list[str]:
        return [self.get_str(x, f"{field}[{i}]") for i, x in enumerate(self.get_list(v, field))]

    def get_number(self, v, field: str) -> float:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise self.fail(field, f"expected a number, got {_shown(v)}")
        try:
            return float(v)
        except OverflowError:
            raise self.fail(field, f"{_shown(v)} does not fit a float") from None


def _shown(v) -> str:
    """A manifest value for a one-line message: printable and at most 80 characters."""
    try:
        text = json.dumps(v, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = type(v).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _q(v) -> str:
    """A manifest string in quotes, printable, for a one-line message (other values as JSON)."""
    if isinstance(v, str):
        text = printable(v)
        return f"'{text}'" if len(text) <= 80 else f"'{text[:77]}...'"
    return _shown(v)


_TOP_KEYS = ("format", "version", "q4sdk_version", "name", "input", "output", "tensors", "ops", "meta")
_TENSOR_KEYS = ("name", "shape", "bits", "scale", "zero_point")
_OP_KEYS = ("name", "kind", "inputs", "output", "attrs", "arrays")
_ARRAY_KEYS = ("name", "dtype", "shape", "encoding", "offset", "nbytes", "sha256")


def _read_container(file: str) -> tuple[dict, memoryview, int]:
    """Check the byte-level container; return (manifest JSON, data section, file size)."""
    try:
        raw = Path(file).read_bytes()
    except FileNotFoundError:
        raise Q4Error(f"{file}: no such file") from None
    except OSError as e:
        raise Q4Error(f"{file}: cannot read ({e.strerror or e})") from None
    n = len(raw)
    if raw[:len(MAGIC)] != MAGIC[:min(n, len(MAGIC))]:
        raise Q4Error(f"{file}: not a .q4 file (bad magic {raw[:len(MAGIC)]!r}, expected {MAGIC!r})")
    if n < _HEADER.size:
        raise Q4Error(f"{file}: truncated: {n} bytes, shorter than the {_HEADER.size}-byte header")
    _, version, mlen, dlen = _HEADER.unpack_from(raw)
    if version != FORMAT_VERSION:
        raise Q4Error(f"{file}: field 'version': unsupported .q4 format version {version} "
                      f"(this q4sdk reads version {FORMAT_VERSION})")
    data_start = _align(_HEADER.size + mlen)
    expected = data_start + dlen + _SHA_LEN
    if n < expected:
        raise Q4Error(f"{file}: truncated: {n} bytes, the header announces {expected}")
    if n > expected:
        raise Q4Error(f"{file}: {n - expected} unexpected bytes after the checksum (file is {n} "
                      f"bytes, the header announces {expected})")
    body = memoryview(raw)[:data_start + dlen]
    if hashlib.sha256(body).digest() != raw[-_SHA_LEN:]:
        raise Q4Error(f"{file}: checksum mismatch: the file is corrupt")
    manifest_end = _HEADER.size + mlen
    if any(raw[manifest_end:data_start]):
        raise Q4Error(f"{file}: padding after the manifest is not zero")

    def reject_constant(name):
        raise ValueError(f"{name} is not allowed")

    def no_duplicates(pairs):
        obj: dict = {}
        for k, v in pairs:
            if k in obj:
                raise ValueError(f"duplicate key '{k}'")
            obj[k] = v
        return obj

    try:
        manifest = json.loads(raw[_HEADER.size:manifest_end].decode("utf-8"),
                              object_pairs_hook=no_duplicates, parse_constant=reject_constant)
    except RecursionError:
        raise Q4Error(f"{file}: field 'manifest': JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise Q4Error(f"{file}: field 'manifest': malformed JSON ({printable(str(e))[:200]})") from None
    return manifest, body[data_start:], n


def _decode_array(m: _Manifest, spec, field: str, data: memoryview,
                  used: list[tuple[int, int, str]]) -> tuple[str, np.ndarray]:
    spec = m.obj(spec, field, _ARRAY_KEYS)
    name = m.get_str(spec["name"], f"{field}.name")
    dtype = m.get_str(spec["dtype"], f"{field}.dtype")
    if dtype not in ARRAY_DTYPES:
        raise m.fail(f"{field}.dtype", f"{_q(dtype)} is not allowed (allowed: {', '.join(ARRAY_DTYPES)})")
    shape = tuple(m.get_ints(spec["shape"], f"{field}.shape", lo=0, hi=INT32_LIMIT))
    encoding = m.get_str(spec["encoding"], f"{field}.encoding")
    if encoding not in ENCODINGS:
        raise m.fail(f"{field}.encoding", f"unknown encoding {_q(encoding)} (known: {', '.join(ENCODINGS)})")
    size = math.prod(shape)
    if encoding == "int4_rows":
        if dtype != "int8" or not shape:
            raise m.fail(f"{field}.encoding", "int4_rows needs dtype int8 and at least one axis")
        rows, k = shape[0], math.prod(shape[1:])
        expected_nbytes = rows * ((k + 1) // 2)
    else:
        expected_nbytes = size * np.dtype(dtype).itemsize
    offset = m.get_int(spec["offset"], f"{field}.offset", lo=0, hi=len(data) + 1)
    if offset % ALIGN:
        raise m.fail(f"{field}.offset", f"{offset} is not a multiple of {ALIGN}")
    nbytes = m.get_int(spec["nbytes"], f"{field}.nbytes", lo=0, hi=len(data) + 1)
    if nbytes != expected_nbytes:
        raise m.fail(f"{field}.nbytes", f"{nbytes} bytes, but {encoding} {dtype} {list(shape)} "
                                        f"takes {expected_nbytes}")
    if offset + nbytes > len(data):
        raise m.fail(f"{field}.offset", f"bytes [{offset}, {offset + nbytes}) lie outside the "
                                        f"{len(data)}-byte data section")
    for lo, hi, other in used:
        if offset < hi and lo < offset + nbytes:
            raise m.fail(f"{field}.offset", f"bytes [{offset}, {offset + nbytes}) overlap {other}")
    used.append((offset, offset + nbytes, field))
    blob = bytes(data[offset:offset + nbytes])
    sha = m.get_str(spec["sha256"], f"{field}.sha256")
    if hashlib.sha256(blob).hexdigest() != sha:
        raise m.fail(f"{field}.sha256", f"array {_q(name)} does not match its sha256")
    if encoding == "int4_rows":
        packed = np.frombuffer(blob, np.uint8).reshape(rows, -1 if rows else 0)
        values = unpack_int4_rows(packed, k)
        if pack_int4_rows(values).tobytes() != blob:
            raise m.fail(f"{field}.encoding", f"array {_q(name)}: int4 row padding nibble is not zero")
        return name, values.reshape(shape)
    return name, np.frombuffer(blob, np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)


def _decode_model(m: _Manifest, manifest, data: memoryview) -> QModel:
    top = m.obj(manifest, "", _TOP_KEYS)
    if top["format"] != FORMAT_NAME:
        raise m.fail("format", f"expected '{FORMAT_NAME}', got {_shown(top['format'])}")
    if m.get_int(top["version"], "version") != FORMAT_VERSION:
        raise m.fail("version", f"manifest says {top['version']}, header says {FORMAT_VERSION}")
    m.get_str(top["q4sdk_version"], "q4sdk_version")
    tensors: dict[str, QTensor] = {}
    for i, spec in enumerate(m.get_list(top["tensors"], "tensors")):
        f = f"tensors[{i}]"
        spec = m.obj(spec, f, _TENSOR_KEYS)
        t = QTensor(name=m.get_str(spec["name"], f"{f}.name"),
                    shape=tuple(m.get_ints(spec["shape"], f"{f}.shape")),
                    bits=m.get_int(spec["bits"], f"{f}.bits"),
                    scale=m.get_number(spec["scale"], f"{f}.scale"),
                    zero_point=m.get_int(spec["zero_point"], f"{f}.zero_point"))
        if t.name in tensors:
            raise m.fail(f"{f}.name", f"tensor {_q(t.name)} listed twice")
        tensors[t.name] = t
    ops: list[QOp] = []
    used: list[tuple[int, int, str]] = []
    for i, spec in enumerate(m.get_list(top["ops"], "ops")):
        f = f"ops[{i}]"
        spec = m.obj(spec, f, _OP_KEYS)
        kind = m.get_str(spec["kind"], f"{f}.kind")
        if kind not in QOP_KINDS:
            raise m.fail(f"{f}.kind", f"unknown op kind {_q(kind)} (known: {', '.join(QOP_KINDS)})")
        attrs_in = spec["attrs"]
        if not isinstance(attrs_in, dict):
            raise m.fail(f"{f}.attrs", "expected an object")
        attrs = {k: (m.get_ints(v, f"{f}.attrs.{k}") if isinstance(v, list)
                     else m.get_int(v, f"{f}.attrs.{k}")) for k, v in attrs_in.items()}
        arrays: dict[str, np.ndarray] = {}
        for j, aspec in enumerate(m.get_list(spec["arrays"], f"{f}.arrays")):
            name, value = _decode_array(m, aspec, f"{f}.arrays[{j}]", data, used)
            if name in arrays:
                raise m.fail(f"{f}.arrays[{j}].name", f"array {_q(name)} listed twice")
            arrays[name] = value
        ops.append(QOp(name=m.get_str(spec["name"], f"{f}.name"), kind=kind,
                       inputs=m.get_strs(spec["inputs"], f"{f}.inputs"),
                       output=m.get_str(spec["output"], f"{f}.output"), attrs=attrs, arrays=arrays))
    meta = top["meta"]
    if not isinstance(meta, dict):
        raise m.fail("meta", "expected an object")
    return QModel(name=m.get_str(top["name"], "name"), input=m.get_str(top["input"], "input"),
                  output=m.get_str(top["output"], "output"), tensors=tensors, ops=ops, meta=meta)


def _load(path) -> tuple[QModel, dict, int]:
    file = os.fspath(path)
    manifest, data, size = _read_container(file)
    model = _decode_model(_Manifest(file), manifest, data)
    try:
        check_limits(model)
        validate_model(model)
    except Q4Error as e:
        raise Q4Error(f"{file}: {e}") from None
    return model, manifest, size


def load_q4(path) -> QModel:
    """Read a ``.q4`` file, checking every byte and field, and return the validated model."""
    return _load(path)[0]


# ----------------------------------------------------------------------------------------------
# Inspection
# ----------------------------------------------------------------------------------------------

def _shape_str(shape) -> str:
    return "x".join(str(int(d)) for d in shape)


def _quant_str(t: QTensor) -> str:
    return f"int{t.bits} scale={t.scale:.6g} zp={t.zero_point}"


def _meta_str(v) -> str:
    """A meta value on one short line: containers are only counted."""
    nested = isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v)
    if isinstance(v, dict) or (isinstance(v, list) and (len(v) > 8 or nested)):
        return f"<{len(v)} entries>"
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 200 else text[:197] + "..."



def describe_q4(path) -> str:
    """A human-readable summary of a ``.q4`` file: model, recipe, one line per op, sizes; control
    and bidi characters from the file are shown as escapes (``limits.printable``)."""
    model, manifest, size = _load(path)
    lines = [f"{os.fspath(path)}: model '{model.name}', .q4 format {manifest['version']}, "
             f"written by q4sdk {manifest['q4sdk_version']}, {size:,} bytes"]
    for label, t in (("input ", model.input_tensor), ("output", model.output_tensor)):
        lines.append(f"{label}  {t.name}  {_shape_str(t.shape)}  {_quant_str(t)}")
    recipe = model.meta.get("recipe")
    if isinstance(recipe, dict):
        lines.append("recipe  " + " ".join(f"{k}={recipe[k]}" for k in sorted(recipe)))
    other = sorted(k for k in model.meta if k != "recipe")
    if other:
        lines.append("meta    " + " ".join(f"{k}={_meta_str(model.meta[k])}" for k in other))
    header = ("#", "name", "kind", "inputs", "output", "bits", "weights", "stored bytes")
    rows = []
    n_weights = weight_bytes = other_bytes = 0
    for i, (op, spec) in enumerate(zip(model.ops, manifest["ops"])):
        out = model.tensors[op.output]
        w = op.arrays.get("weight")
        stored = sum(a["nbytes"] for a in spec["arrays"])
        for a in spec["arrays"]:
            if a["name"] in INT4_ARRAYS:
                n_weights += math.prod(a["shape"])
                weight_bytes += a["nbytes"]
            else:
                other_bytes += a["nbytes"]
        rows.append((str(i), op.name, op.kind, ",".join(op.inputs),
                     f"{op.output} {_shape_str(out.shape)}", str(out.bits),
                     "-" if w is None else f"{_shape_str(w.shape)} int4", f"{stored:,}"))
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines.append(f"ops ({len(model.ops)}):")
    for r in [header, *rows]:
        lines.append("  " + "  ".join(cell.ljust(wd) for cell, wd in zip(r, widths)).rstrip())
    lines.append(f"weights {n_weights:,} INT4 values in {weight_bytes:,} bytes; "
                 f"other arrays {other_bytes:,} bytes; {len(model.tensors)} tensors")
    return "\n".join(printable(line, backslash=False) for line in lines)
