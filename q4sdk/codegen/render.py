"""C code generator: a QModel -> freestanding C99 sources that call the q4 runtime kernels.

``generate`` writes ``<name>.h`` (the API), ``<name>.c`` (the op calls and the static arena),
``<name>_weights.c`` (const tables) and ``q4_runtime/`` (the kernel headers and only the kernel
sources the model uses). The generator holds no arithmetic of its own: every number comes from the
QModel; it only checks the ranges the kernels rely on, lays out the tables (INT4 packing) and
places the tensors in the arena (``q4sdk.codegen.arena``). Output is deterministic: identical models give
identical bytes.

Each op call in ``<name>_run`` sits between ``Q4_PROFILE_BEGIN(i)`` and ``Q4_PROFILE_END(i)``, empty
macros unless the build defines ``Q4_PROFILE`` (then ``q4_profile.h``, supplied by the firmware,
defines them; see ``q4sdk.targets.project``).

Kernel variants: by default every op calls its portable kernel. With ``kernels="optimised"`` and a
target board, ``select_kernel`` picks an architecture-specific variant from ``KERNEL_VARIANTS``
(``runtime_c/include/q4_kernels_opt.h``) when the board has the extension, the op's shape is within
the variant's limits and its source file exists; its scratch buffer is a static array sized here.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import jinja2
import numpy as np

from q4sdk.codegen.arena import packed_tensors, plan_arena
from q4sdk.errors import Q4Error
from q4sdk.resources import RUNTIME_DIR, TEMPLATE_DIR
from q4sdk.ir.fixedpoint import ADD_MULT_LIMIT, ADD_SHIFT_MAX, MULT_MAX, MULT_MIN, SHIFT_MAX, SHIFT_MIN
from q4sdk.ir.packing import pack_int4_rows
from q4sdk.ir.qmodel import QModel, QOp

if TYPE_CHECKING:
    from q4sdk.targets.boards import Board

RUNTIME_SUBDIR = "q4_runtime"
RUNTIME_HEADERS = ("include/q4_kernels.h", "include/q4_fixedpoint.h")

# kind -> kernel source (relative to runtime_c/src); reshape needs none.
KERNEL_SOURCES = {
    "conv2d": "convolution/q4_conv2d_s4.c",
    "depthwise_conv2d": "convolution/q4_depthwise_conv2d_s4.c",
    "fully_connected": "fully_connected/q4_fully_connected_s4.c",
    "add": "basic/q4_add_s8.c",
    "avgpool": "pooling/q4_avgpool_s8.c",
    "global_avgpool": "pooling/q4_global_avgpool_s8.c",
    "maxpool": "pooling/q4_maxpool_s8.c",
    "clamp": "activation/q4_clamp_s8.c",
    "pad": "basic/q4_pad_s8.c",
    "residual_split": "basic/q4_residual_split_s8.c",
}
WEIGHTED_KINDS = ("conv2d", "depthwise_conv2d", "fully_connected")
# Multi-term layers (dual weights "weight2" and/or a second, residual-quantized input) use these.
TERMS_SOURCES = {
    "conv2d": "convolution/q4_conv2d_s4_terms.c",
    "depthwise_conv2d": "convolution/q4_depthwise_conv2d_s4_terms.c",
    "fully_connected": "fully_connected/q4_fully_connected_s4_terms.c",
}
TERM_MULT_LIMIT = 1 << 29
# Packed activations (``pack_activations``): ops touching a packed tensor call these portable
# kernels (runtime_c/include/q4_packed.h), never an optimised variant.
PACKED_HEADER = "include/q4_packed.h"
PACKED_SOURCES = {
    "conv2d": "convolution/q4_conv2d_s4_p4.c",
    "depthwise_conv2d": "convolution/q4_depthwise_conv2d_s4_p4.c",
    "fully_connected": "fully_connected/q4_fully_connected_s4_p4.c",
    "add": "basic/q4_add_p4.c",
    "avgpool": "pooling/q4_avgpool_p4.c",
    "global_avgpool": "pooling/q4_global_avgpool_p4.c",
    "maxpool": "pooling/q4_maxpool_p4.c",
    "clamp": "activation/q4_clamp_p4.c",
    "pad": "basic/q4_pad_p4.c",
    "residual_split": "basic/q4_residual_split_p4.c",
}
PACKED_TERMS_SOURCES = {
    "conv2d": "convolution/q4_conv2d_s4_terms_p4.c",
    "depthwise_conv2d": "convolution/q4_depthwise_conv2d_s4_terms_p4.c",
    "fully_connected": "fully_connected/q4_fully_connected_s4_terms_p4.c",
}
ALLOWED_ARRAYS = {
    "conv2d": {"weight", "weight2", "bias", "multiplier", "shift"},
    "depthwise_conv2d": {"weight", "weight2", "bias", "multiplier", "shift"},
    "fully_connected": {"weight", "weight2", "bias", "multiplier", "shift"},
    "add": {"multiplier"},
    "avgpool": {"multiplier", "shift"},
    "global_avgpool": {"multiplier", "shift"},
}

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Bool _Complex _Imaginary bool true false asm
""".split())

INT32_MIN = -(1 << 31)
ACC_LIMIT = 1 << 31
MAX_PRODUCT = 255 * 8  # |x - zx| * |w| for int8 activations and int4 weights


@dataclass(frozen=True)
class KernelVariant:
    """An architecture-optimised kernel replacing the portable one of an op kind.

    ``requires`` names the Board feature it needs (``"dsp"`` or ``"mve"``); ``scratch_bytes`` gives
    its scratch buffer size from K (= kh * kw * I) and O, as its ``*_get_buffer_size`` does
    (element-wise kinds pass K = O = 0 and a variant without scratch returns 0).
    ``max_input_bits`` is the widest input the variant accepts (4 for kernels that pack products
    of 4-bit activations).
    """

    function: str
    source: str                     # relative to runtime_c/src
    requires: str
    scratch_bytes: Callable[[int, int], int]
    max_input_bits: int = 8


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


OPT_HEADER = "include/q4_kernels_opt.h"
OPT_PRIVATE_HEADERS = ("include/q4_dsp.h", "include/q4_conv_dsp.h", "include/q4_conv_terms.h")  # included by the variants' sources
OPT_MAX_K = 65536  # Q4_OPT_MAX_K
A4_DSP_MAX_K = 16383  # larger K: q4_conv2d_s4_a4_dsp runs (and sizes scratch like) the 8-bit path
# kind -> variants in order of preference; only single-term ops use them.
KERNEL_VARIANTS: dict[str, tuple[KernelVariant, ...]] = {
    "conv2d": (
        KernelVariant("q4_conv2d_s4_mve", "convolution/q4_conv2d_s4_mve.c", "mve",
                      lambda k, o: (16 * min(o + o % 2, 16) + (min(o + o % 2, 16) + 6)
                                    * _round_up(k, 16) + 16)),
        KernelVariant("q4_conv2d_s4_a4_dsp", "convolution/q4_conv2d_s4_dsp.c", "dsp",
                      lambda k, o: (64 + 41 * _round_up(k, 8) if k > A4_DSP_MAX_K
                                    else 64 + 25 * _round_up(k, 8)), max_input_bits=4),
        KernelVariant("q4_conv2d_s4_dsp", "convolution/q4_conv2d_s4_dsp.c", "dsp",
                      lambda k, o: 64 + 41 * _round_up(k, 8)),
    ),
    "add": (
        KernelVariant("q4_add_s8_mve", "basic/q4_add_s8_mve.c", "mve", lambda k, o: 256),
        KernelVariant("q4_add_s8_dsp", "basic/q4_add_s8_dsp.c", "dsp", lambda k, o: 256),
    ),
    # depthwise: K = kh * kw * C and O = C here, so kh * kw = K // O
    "depthwise_conv2d": (
        KernelVariant("q4_depthwise_conv2d_s4_mve", "convolution/q4_depthwise_conv2d_s4_mve.c",
                      "mve", lambda k, o: max(12 * _round_up(o, 8) + (8 + _round_up(o, 8)) * (k // o),
                                              7328 if k // o == 9 else 0)),
        KernelVariant("q4_depthwise_conv2d_s4_dsp", "convolution/q4_depthwise_conv2d_s4_dsp.c",
                      "dsp", lambda k, o: 4 * _round_up(o, 4) + max(
                          (8 + 2 * _round_up(o, 4)) * (k // o), 2008 if k // o == 9 else 0)),
    ),
    "fully_connected": (
        KernelVariant("q4_fully_connected_s4_mve", "fully_connected/q4_fully_connected_s4_mve.c",
                      "mve", lambda k, o: _round_up(k, 32)),
        KernelVariant("q4_fully_connected_s4_dsp", "fully_connected/q4_fully_connected_s4_dsp.c",
                      "dsp", lambda k, o: 2 * _round_up(k, 8)),
    ),
}
# Multi-term layers (dual weights / residual input): kind -> variants replacing the portable
# *_terms kernel, same selection rule; the scratch covers any T = n_inputs * n_weights.
TERMS_VARIANTS: dict[str, tuple[KernelVariant, ...]] = {
    "conv2d": (
        KernelVariant("q4_conv2d_s4_terms_mve", "convolution/q4_conv2d_s4_terms_mve.c", "mve",
                      lambda k, o: 896 + 41 * _round_up(k, 16)),
        KernelVariant("q4_conv2d_s4_terms_dsp", "convolution/q4_conv2d_s4_terms_dsp.c", "dsp",
                      lambda k, o: 896 + 81 * _round_up(k, 8)),
    ),
}
KERNEL_CHOICES = ("portable", "optimised")


@dataclass
class OpReport:
    name: str
    kind: str
    macs: int
    weight_bytes: int
    kernel: str = ""            # the C function the op calls ("" for reshape)


@dataclass
class GenerateReport:
    name: str
    files: list[Path]
    weight_bytes: int           # packed weights + bias + multiplier + shift tables
    arena_bytes: int
    peak_op: str | None         # op whose live tensors need the most arena bytes
    peak_live_bytes: int
    ops: list[OpReport] = field(default_factory=list)
    packed_activations: bool = False  # 4-bit tensors stored two per byte (pack_activations)
    arena_bytes_unpacked: int = 0     # the arena with one byte per element (= arena_bytes unpacked)
    scratch_bytes: int = 0      # static scratch of the optimised kernels (0 with portable ones)
    kernel_sources: list[str] = field(default_factory=list)  # runtime sources copied (file names)

    @property
    def macs(self) -> int:
        return sum(o.macs for o in self.ops)

    @property
    def arena_summary(self) -> str:
        """The arena size as the tools print it, with the unpacked figure when packed."""
        if not self.packed_activations:
            return f"{self.arena_bytes:,} bytes"
        return f"{self.arena_bytes:,} bytes (packed 4-bit; {self.arena_bytes_unpacked:,} bytes unpacked)"


# --------------------------------------------------------------------------- identifiers

def c_identifier(text: str) -> str:
    """A C identifier derived from ``text``: invalid characters become '_', no leading digit or
    underscore (reserved), never a keyword."""
    s = re.sub(r"[^0-9A-Za-z_]", "_", text)
    s = re.sub(r"_+", "_", s).strip("_")
    if not s or s[0].isdigit():
        s = "n_" + s if s else "n"
    if s in C_KEYWORDS:
        s += "_"
    return s


def unique_identifiers(names: list[str]) -> list[str]:
    """Sanitised identifiers for ``names``, made distinct (case-insensitively) with suffixes."""
    used: set[str] = set()
    out = []
    for name in names:
        base = c_identifier(name)
        ident, k = base, 2
        while ident.lower() in used:
            ident, k = f"{base}_{k}", k + 1
        used.add(ident.lower())
        out.append(ident)
    return out


def c_string(text: str) -> str:
    """A C string literal holding the UTF-8 bytes of ``text`` (octal escapes for anything unusual)."""
    parts = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if 32 <= b < 127 and ch not in '"\\?':
            parts.append(ch)
        else:
            parts.append(f"\\{b:03o}")
    return '"' + "".join(parts) + '"'


def c_comment(text: str) -> str:
    """Text safe inside a /* */ comment on one line."""
    return re.sub(r"[^ -~]", "?", text).replace("*/", "*_/").replace("/*", "/_*")


def c_float(value: float) -> str:
    """The float32 nearest ``value`` as an exact C99 hexadecimal float literal."""
    h = float(np.float32(value)).hex()  # e.g. '0x1.99999a0000000p-4'
    mant, exp = h.split("p")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    return f"{mant}p{exp}f"


def c_int32(v: int) -> str:
    return "(-2147483647 - 1)" if v == INT32_MIN else str(v)


# --------------------------------------------------------------------------- checks

def _fail(op: QOp, msg: str):
    raise Q4Error(f"op '{op.name}' ({op.kind}): {msg}")


def _array(op: QOp, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if key not in op.arrays:
        _fail(op, f"missing array '{key}'")
    a = np.asarray(op.arrays[key])
    if shape is not None and a.shape != shape:
        _fail(op, f"array '{key}' has shape {a.shape}, expected {shape}")
    if not np.issubdtype(a.dtype, np.integer):
        _fail(op, f"array '{key}' must hold integers, got {a.dtype}")
    return a.astype(np.int64)


def _attr(op: QOp, key: str, length: int | None = None):
    if key not in op.attrs:
        _fail(op, f"missing attribute '{key}'")
    v = op.attrs[key]
    if length is None:
        return int(v)
    v = [int(x) for x in v]
    if len(v) != length:
        _fail(op, f"attribute '{key}' must have {length} values, got {len(v)}")
    return v


def _check_requant(op: QOp, mult: np.ndarray, shift: np.ndarray) -> None:
    ok_m = (mult == 0) | ((mult >= MULT_MIN) & (mult <= MULT_MAX))
    if not ok_m.all():
        _fail(op, f"multiplier {int(mult[~ok_m][0])} outside {{0}} U [2^30, 2^31)")
    ok_s = (shift >= SHIFT_MIN) & (shift <= SHIFT_MAX)
    if not ok_s.all():
        _fail(op, f"shift {int(shift[~ok_s][0])} outside [{SHIFT_MIN}, {SHIFT_MAX}]")


def _check_act(op: QOp, out_t) -> tuple[int, int]:
    lo, hi = _attr(op, "act_min"), _attr(op, "act_max")
    if not (out_t.qmin <= lo <= hi <= out_t.qmax):
        _fail(op, f"act_min/act_max [{lo}, {hi}] outside the output range [{out_t.qmin}, {out_t.qmax}]")
    return lo, hi


def _hwc(model: QModel, op: QOp, tensor: str) -> list[int]:
    shape = model.tensors[tensor].shape
    if len(shape) != 3:
        _fail(op, f"tensor '{tensor}' must be a (H, W, C) feature map, got shape {tuple(shape)}")
    return [int(d) for d in shape]


def _window_out(op: QOp, in_hw, k, stride, pads) -> tuple[int, int]:
    if min(stride) < 1 or min(k) < 1 or min(pads) < 0:
        _fail(op, f"invalid window kernel={k} stride={stride} pads={pads}")
    ho = (in_hw[0] + pads[0] + pads[2] - k[0]) // stride[0] + 1
    wo = (in_hw[1] + pads[1] + pads[3] - k[1]) // stride[1] + 1
    return ho, wo


# --------------------------------------------------------------------------- per-op context

def _table(symbol: str, ctype: str, values: np.ndarray) -> dict:
    values = [int(v) for v in np.asarray(values).ravel()]
    if ctype == "uint8_t":
        items, per_line = [f"0x{v:02x}" for v in values], 16
    else:
        items, per_line = [c_int32(v) for v in values], 8
    lines = [", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]
    return {"symbol": symbol, "ctype": ctype, "length": len(values), "lines": lines,
            "bytes": len(values) * (1 if ctype == "uint8_t" else 4)}


def _op_context(model: QModel, op: QOp, symbol: str, offsets: dict[str, int]) -> tuple[dict, int]:
    """Template context of one op and its MAC count; checks every range the kernels rely on."""
    if op.kind not in KERNEL_SOURCES and op.kind != "reshape":
        _fail(op, "unsupported op kind")
    allowed_inputs = (2,) if op.kind == "add" else (1, 2) if op.kind in WEIGHTED_KINDS else (1,)
    if len(op.inputs) not in allowed_inputs:
        _fail(op, f"expects {' or '.join(map(str, allowed_inputs))} input(s), got {len(op.inputs)}")
    unknown = sorted(set(op.arrays) - ALLOWED_ARRAYS.get(op.kind, set()))
    if unknown:
        _fail(op, f"unexpected array(s) {unknown}")
    for name in [*op.inputs, op.output]:
        if name not in model.tensors:
            _fail(op, f"unknown tensor '{name}'")
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.output]
    ctx = {"kind": op.kind, "symbol": symbol, "comment": c_comment(op.name), "tables": [],
           "in_offsets": [offsets[t] for t in op.inputs], "out_offset": offsets[op.output],
           "in_size": in_t.size, "out_size": out_t.size,
           "input_zp": in_t.zero_point, "output_zp": out_t.zero_point,
           "input_bits": in_t.bits}
    macs = 0
    k = op.kind

    if k in ("conv2d", "depthwise_conv2d"):
        h, w, c = _hwc(model, op, op.inputs[0])
        ho, wo, o = _hwc(model, op, op.output)
        if k == "conv2d":
            weight = _array(op, "weight")
            if weight.ndim != 4 or weight.shape[3] != c or weight.shape[0] != o:
                _fail(op, f"weight shape {weight.shape} does not match [O={o}, kh, kw, I={c}]")
        else:
            weight = _array(op, "weight")
            if weight.ndim != 3 or weight.shape[0] != c or o != c:
                _fail(op, f"weight shape {weight.shape} does not match [C={c}, kh, kw] "
                          f"(output channels {o})")
        kh, kw = int(weight.shape[1]), int(weight.shape[2])
        stride, pads = _attr(op, "stride", 2), _attr(op, "pads", 4)
        if (ho, wo) != _window_out(op, (h, w), (kh, kw), stride, pads):
            _fail(op, f"output shape {(ho, wo, o)} does not follow from input {(h, w, c)}, "
                      f"kernel {(kh, kw)}, stride {stride}, pads {pads}")
        ksize = kh * kw * (c if k == "conv2d" else 1)
        ctx.update(stride=stride, pads=pads, in_dims=[h, w, c], filter_dims=[kh, kw, c],
                   out_dims=[ho, wo, o])
        macs = ho * wo * o * ksize
        rows = weight.reshape(o, ksize)
    elif k == "fully_connected":
        weight = _array(op, "weight")
        if weight.shape != (out_t.size, in_t.size):
            _fail(op, f"weight shape {weight.shape} does not match [O={out_t.size}, I={in_t.size}]")
        ksize, o = in_t.size, out_t.size
        macs = o * ksize
        rows = weight
        # as a 1x1 convolution over one pixel: K and O for select_kernel and the scratch size
        ctx.update(filter_dims=[1, 1, ksize], out_dims=[1, 1, o])
    elif k == "add":
        b_t = model.tensors[op.inputs[1]]
        if not (tuple(in_t.shape) == tuple(b_t.shape) == tuple(out_t.shape)):
            _fail(op, f"input/output shapes differ: {in_t.shape}, {b_t.shape} -> {out_t.shape}")
        mult = _array(op, "multiplier", (2,))
        shift = _attr(op, "shift")
        if not (np.abs(mult) < ADD_MULT_LIMIT).all() or not 1 <= shift <= ADD_SHIFT_MAX:
            _fail(op, f"multipliers {mult.tolist()} / shift {shift} outside |m| < 2^21, "
                      f"shift in [1, {ADD_SHIFT_MAX}]")
        lo, hi = _check_act(op, out_t)
        ctx.update(a_zp=in_t.zero_point, b_zp=b_t.zero_point, a_multiplier=int(mult[0]),
                   b_multiplier=int(mult[1]), shift=shift, act_min=lo, act_max=hi)
    elif k in ("avgpool", "maxpool", "global_avgpool"):
        h, w, c = _hwc(model, op, op.inputs[0])
        ho, wo, oc = _hwc(model, op, op.output)
        if k == "global_avgpool":
            kernel, stride, pads = [h, w], [1, 1], [0, 0, 0, 0]
        else:
            kernel, stride, pads = _attr(op, "kernel", 2), _attr(op, "stride", 2), _attr(op, "pads", 4)
        if (ho, wo, oc) != (*_window_out(op, (h, w), kernel, stride, pads), c):
            _fail(op, f"output shape {(ho, wo, oc)} does not follow from input {(h, w, c)}, "
                      f"kernel {kernel}, stride {stride}, pads {pads}")
        if k == "maxpool":
            if pads[0] >= kernel[0] or pads[2] >= kernel[0] or pads[1] >= kernel[1] or pads[3] >= kernel[1]:
                _fail(op, f"pads {pads} must be smaller than the kernel {kernel}")
            if out_t.zero_point != in_t.zero_point or out_t.bits != in_t.bits:
                _fail(op, "output quantization must equal the input's")
            mult, shift, lo, hi = 0, 1, out_t.qmin, out_t.qmax
        else:
            m_arr, s_arr = _array(op, "multiplier", (1,)), _array(op, "shift", (1,))
            _check_requant(op, m_arr, s_arr)
            mult, shift = int(m_arr[0]), int(s_arr[0])
            lo, hi = _check_act(op, out_t)
            if kernel[0] * kernel[1] * 255 >= ACC_LIMIT:
                _fail(op, "window too large for an int32 accumulator")
        ctx.update(kernel=kernel, stride=stride, pads=pads, in_dims=[h, w, c],
                   out_dims=[ho, wo, oc], multiplier=mult, shift=shift, act_min=lo, act_max=hi)
    elif k == "pad":
        h, w, c = _hwc(model, op, op.inputs[0])
        pads = _attr(op, "pads", 4)
        expect = (h + pads[0] + pads[2], w + pads[1] + pads[3], c)
        if min(pads) < 0 or tuple(out_t.shape) != expect:
            _fail(op, f"output shape {tuple(out_t.shape)} != padded input {expect}")
        ctx.update(pads=pads, in_dims=[h, w, c], out_dims=list(expect))
    elif k in ("clamp", "reshape"):
        if in_t.size != out_t.size:
            _fail(op, f"input size {in_t.size} != output size {out_t.size}")
    if k == "clamp":
        lo, hi = _check_act(op, out_t)
        ctx.update(act_min=lo, act_max=hi)
    if k == "residual_split":
        part, zc = _attr(op, "part"), _attr(op, "coarse_zero_point")
        if part not in (0, 1) or in_t.size != out_t.size or in_t.bits != 8 or out_t.bits != 4:
            _fail(op, "must split an 8-bit tensor into a 4-bit one of the same size (part 0 or 1)")
        if not -8 <= zc <= 7:
            _fail(op, f"coarse zero point {zc} outside [-8, 7]")
        ctx.update(part=part, coarse_zp=zc)

    if k in WEIGHTED_KINDS:
        if rows.size and (rows.min() < -8 or rows.max() > 7):
            _fail(op, "weights must lie in [-8, 7]")
        weights = [rows]
        if "weight2" in op.arrays:
            w2 = _array(op, "weight2")
            if w2.shape != weight.shape:
                _fail(op, f"weight2 shape {w2.shape} != weight shape {weight.shape}")
            weights.append(w2.reshape(rows.shape))
        for w in weights:
            if w.size and (w.min() < -8 or w.max() > 7):
                _fail(op, "weights must lie in [-8, 7]")
        for extra in op.inputs[1:]:
            if tuple(model.tensors[extra].shape) != tuple(in_t.shape):
                _fail(op, f"residual input '{extra}' has shape {model.tensors[extra].shape}, "
                          f"expected {tuple(in_t.shape)}")
        n_terms = len(op.inputs) * len(weights)
        bias = _array(op, "bias", (o,))
        shift = _array(op, "shift", (o,))
        if n_terms == 1:
            mult = _array(op, "multiplier", (o,))
            _check_requant(op, mult, shift)
        else:
            mult = _array(op, "multiplier", (n_terms, o))
            if not (np.abs(mult) < TERM_MULT_LIMIT).all():
                _fail(op, "multi-term multipliers must lie below 2^29 in magnitude")
            _check_requant(op, np.zeros(1, np.int64), shift)
        if (np.abs(bias) + ksize * MAX_PRODUCT >= ACC_LIMIT).any():
            _fail(op, "bias too large: the int32 accumulator could overflow")
        ctx["act_min"], ctx["act_max"] = _check_act(op, out_t)
        ctx["n_inputs"], ctx["n_weights"] = len(op.inputs), len(weights)
        ctx["input_zps"] = [model.tensors[t].zero_point for t in op.inputs]
        macs *= n_terms
        ctx["tables"] = [_table(f"{symbol}_weight", "uint8_t", pack_int4_rows(weights[0]))]
        if len(weights) == 2:
            ctx["tables"].append(_table(f"{symbol}_weight2", "uint8_t", pack_int4_rows(weights[1])))
        ctx["tables"] += [
            _table(f"{symbol}_bias", "int32_t", bias),
            _table(f"{symbol}_multiplier", "int32_t", mult),
            _table(f"{symbol}_shift", "int32_t", shift),
        ]
    return ctx, macs


def _is_multi_term(op: QOp) -> bool:
    return op.kind in WEIGHTED_KINDS and (len(op.inputs) > 1 or "weight2" in op.arrays)


def _kernel_source(op: QOp) -> str | None:
    """The portable runtime source file an op needs (None for reshape)."""
    return TERMS_SOURCES[op.kind] if _is_multi_term(op) else KERNEL_SOURCES.get(op.kind)


def select_kernel(op: QOp, ctx: dict, target: "Board | None", kernels: str) -> KernelVariant | None:
    """The optimised variant ``op`` calls on ``target``, or None for its portable kernel.

    A variant is used only with ``kernels="optimised"`` (from ``TERMS_VARIANTS`` for a multi-term
    op, else ``KERNEL_VARIANTS``), when the board has the variant's extension, K is within
    ``OPT_MAX_K``, the op's input has at most the variant's ``max_input_bits`` and the variant's
    source is present; the first such variant in table order wins (MVE, then the
    4-bit-activation DSP kernel, then DSP).
    """
    if kernels not in KERNEL_CHOICES:
        raise Q4Error(f"generate: kernels must be one of {', '.join(KERNEL_CHOICES)}, got '{kernels}'")
    if kernels == "portable" or target is None:
        return None
    if not (RUNTIME_DIR / OPT_HEADER).is_file():
        return None
    k = int(np.prod(ctx["filter_dims"])) if "filter_dims" in ctx else 0
    k_ok = 0 < k <= OPT_MAX_K if op.kind in WEIGHTED_KINDS else True
    table = TERMS_VARIANTS if _is_multi_term(op) else KERNEL_VARIANTS
    for variant in table.get(op.kind, ()):
        if (getattr(target, variant.requires) and k_ok
                and ctx["input_bits"] <= variant.max_input_bits
                and (RUNTIME_DIR / "src" / variant.source).is_file()):
            return variant
    return None


# --------------------------------------------------------------------------- generate

def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or name in C_KEYWORDS:
        raise Q4Error(f"generate: name '{name}' is not a usable C identifier "
                      f"(try '{c_identifier(name)}')")


def render(model: QModel, name: str, target: "Board | None" = None, kernels: str = "portable",
           pack_activations: bool = False) -> tuple[dict[str, str], GenerateReport]:
    """Render the generated files in memory: ({relative path: text}, report without files).

    ``target`` and ``kernels`` choose the kernel variant of each op (see ``select_kernel``).
    ``pack_activations`` stores every tensor of at most 4 bits packed two per byte
    (``arena.packed_tensors``; Q4Error if another tensor than the output is wider); ops touching a
    packed tensor then call the ``*_p4`` portable kernels. The C API keeps int8 buffers.
    """
    _check_name(name)
    if model.input not in model.tensors or model.output not in model.tensors:
        raise Q4Error(f"model '{model.name}': input/output tensor missing from the tensor table")
    packed = packed_tensors(model) if pack_activations else frozenset()
    plan = plan_arena(model, packed)
    arena_unpacked = plan_arena(model).size if packed else plan.size
    for tname in plan.offsets:
        t = model.tensors[tname]
        if not (2 <= t.bits <= 8 and t.qmin <= t.zero_point <= t.qmax):
            raise Q4Error(f"tensor '{tname}': {t.bits} bits with zero point {t.zero_point} "
                          "cannot be stored in int8")
    in_t, out_t = model.input_tensor, model.output_tensor
    res_name = model.meta.get("input_residual")
    res_t = model.tensors[res_name] if res_name else None
    if res_t is not None and (tuple(res_t.shape) != tuple(in_t.shape) or res_t.bits != in_t.bits):
        raise Q4Error(f"tensor '{res_name}': a residual input must have the input's shape and bits")
    for t in (in_t, out_t, *([res_t] if res_t is not None else [])):
        if not (math.isfinite(t.scale) and t.scale > 0):
            raise Q4Error(f"tensor '{t.name}': scale must be finite and > 0, got {t.scale}")
    layout = model.meta.get("input_layout", "NCHW")
    if layout not in ("NCHW", "NHWC"):
        raise Q4Error(f"model '{model.name}': meta input_layout must be NCHW or NHWC, got '{layout}'")

    symbols = unique_identifiers([op.name for op in model.ops])
    ops, op_reports, sources, scratch_bytes, any_variant = [], [], set(), 0, False
    for op, sym in zip(model.ops, symbols):
        ctx, macs = _op_context(model, op, f"{name}_{sym}", plan.offsets)
        op_packed = op.kind != "reshape" and bool(packed & {*op.inputs, op.output})
        variant = None if op_packed else select_kernel(op, ctx, target, kernels)
        if op_packed:
            source = _packed_source(op)
            function = Path(source).stem
            sources.add(source)
            ctx["in_bits"] = [4 if t in packed else 8 for t in op.inputs]
            ctx["out_bits"] = 4 if op.output in packed else 8
        elif variant is None:
            function = _portable_function(op)
            sources.add(_kernel_source(op))
        else:
            function, any_variant = variant.function, True
            sources |= {variant.source, _kernel_source(op)}  # the variant's fallback
            variant_scratch = variant.scratch_bytes(int(np.prod(ctx.get("filter_dims", (0,)))),
                                                    ctx["out_dims"][2] if "out_dims" in ctx else 0)
            scratch_bytes = max(scratch_bytes, variant_scratch)
        ctx["function"], ctx["scratch"] = function, variant is not None and variant_scratch > 0
        ctx["packed"] = op_packed
        ops.append(ctx)
        op_reports.append(OpReport(op.name, op.kind, macs, sum(t["bytes"] for t in ctx["tables"]),
                                   function))
    weight_bytes = sum(r.weight_bytes for r in op_reports)
    sources.discard(None)

    dumps, dump_offset = [], 0  # the residual input tensor, if any, is dumped last
    for tensor in [model.input] + [op.output for op in model.ops] + ([res_name] if res_name else []):
        size = model.tensors[tensor].size
        dumps.append({"literal": c_string(tensor), "dump_offset": dump_offset, "size": size,
                      "packed": tensor in packed})
        dump_offset += size

    float_shape = (in_t.shape[2], in_t.shape[0], in_t.shape[1]) if (
        layout == "NCHW" and len(in_t.shape) == 3) else tuple(in_t.shape)
    ctx = {
        "name": name, "NAME": name.upper(), "model_name_comment": c_comment(model.name),
        "ops": ops, "dumps": dumps, "dump_size": dump_offset,
        "arena_size": max(plan.size, 1), "weight_bytes": weight_bytes,
        "peak_op_comment": c_comment(plan.peak_op or "-"),
        "input_shape": [int(d) for d in in_t.shape], "input_size": in_t.size,
        "input_scale": c_float(in_t.scale), "input_scale_comment": f"{in_t.scale:.9g}",
        "inv_scale": c_float(1.0 / in_t.scale),
        "input_zp": in_t.zero_point, "input_bits": in_t.bits,
        "input_qmin": in_t.qmin, "input_qmax": in_t.qmax,
        "output_shape": [int(d) for d in out_t.shape], "output_size": out_t.size,
        "output_scale": c_float(out_t.scale), "output_scale_comment": f"{out_t.scale:.9g}",
        "output_zp": out_t.zero_point, "output_bits": out_t.bits,
        "input_layout": layout, "float_shape_comment": "x[" + "][".join(map(str, float_shape)) + "]",
        "transpose_input": layout == "NCHW" and len(in_t.shape) == 3,
        "input_offset": plan.offsets[model.input], "output_offset": plan.offsets[model.output],
        "input_comment": c_comment(model.input), "output_comment": c_comment(model.output),
        "scratch_words": _round_up(scratch_bytes, 4) // 4, "optimised": scratch_bytes > 0,
        "any_variant": any_variant,
        "packed_any": bool(packed), "arena_unpacked_size": arena_unpacked,
        "input_packed": model.input in packed, "output_packed": model.output in packed,
        "residual_packed": res_name in packed,
        "residual": None if res_t is None else {
            "offset": plan.offsets[res_name], "comment": c_comment(res_name),
            "dump_index": len(model.ops) + 1, "zp": res_t.zero_point, "qmin": res_t.qmin,
            "qmax": res_t.qmax, "scale": c_float(res_t.scale), "scale_comment": f"{res_t.scale:.9g}",
            "error_factor": c_float(1 << in_t.bits)},
    }
    env = _environment()
    files = {
        f"{name}.h": env.get_template("model.h.j2").render(ctx),
        f"{name}.c": env.get_template("model.c.j2").render(ctx),
        f"{name}_weights.c": env.get_template("weights.c.j2").render(ctx),
    }
    headers = (RUNTIME_HEADERS + ((OPT_HEADER,) + OPT_PRIVATE_HEADERS if any_variant else ())
               + ((PACKED_HEADER,) if packed else ()))
    for header in headers:
        files[f"{RUNTIME_SUBDIR}/{Path(header).name}"] = (RUNTIME_DIR / header).read_text()
    for src in sorted(sources):
        files[f"{RUNTIME_SUBDIR}/{Path(src).name}"] = (RUNTIME_DIR / "src" / src).read_text()
    report = GenerateReport(name=name, files=[], weight_bytes=weight_bytes, arena_bytes=plan.size,
                            peak_op=plan.peak_op, peak_live_bytes=plan.peak_live_bytes, ops=op_reports,
                            scratch_bytes=_round_up(scratch_bytes, 4),
                            kernel_sources=sorted(Path(src).name for src in sources),
                            packed_activations=bool(packed), arena_bytes_unpacked=arena_unpacked)
    return files, report


def _packed_source(op: QOp) -> str:
    """The packed-activation kernel source of an op; Q4Error naming the op if its kind has none."""
    table = PACKED_TERMS_SOURCES if _is_multi_term(op) else PACKED_SOURCES
    if op.kind not in table:
        _fail(op, "no kernel for packed 4-bit activations; generate without pack_activations")
    return table[op.kind]


def _portable_function(op: QOp) -> str:
    """The portable kernel function an op calls ("" for reshape)."""
    source = _kernel_source(op)
    return "" if source is None else Path(source).stem


def generate(model: QModel, out_dir, name: str, *, overwrite: bool = False,
             target: "Board | None" = None, kernels: str = "portable",
             pack_activations: bool = False) -> GenerateReport:
    """Write the C sources of ``model`` into ``out_dir`` (created if needed).

    ``target`` (a Board) with ``kernels="optimised"`` lets ops call the board's optimised kernel
    variants (``select_kernel``); the default is the portable kernels everywhere.
    ``pack_activations`` stores 4-bit activations two per byte (about half the arena; see
    ``render``).
    Raises Q4Error for a model the kernels cannot run (naming the op) and, unless ``overwrite``,
    when a generated file already exists. Files are rendered into a temporary directory first, so
    a failure never leaves half an output.
    """
    out_dir = Path(out_dir)
    files, report = render(model, name, target, kernels, pack_activations)
    write_files(files, out_dir, overwrite)
    report.files = [out_dir / rel for rel in sorted(files)]
    return report


def write_files(files: dict[str, str], out_dir: Path, overwrite: bool) -> None:
    """Write ``{relative path: text}`` into ``out_dir`` all or nothing (through a temporary
    directory); Q4Error if a top-level entry exists and not ``overwrite``."""
    top_level = sorted({rel.split("/")[0] for rel in files})
    if not overwrite:
        for entry in top_level:
            if (out_dir / entry).exists():
                raise Q4Error(f"generate: '{out_dir / entry}' already exists (use overwrite)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp", dir=out_dir.parent))
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
        if not out_dir.exists():
            os.replace(tmp, out_dir)
        else:
            for entry in top_level:
                dst = out_dir / entry
                if dst.is_dir():
                    shutil.rmtree(dst)
                os.replace(tmp / entry, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
