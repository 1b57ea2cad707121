"""The limits a model must keep so that every tool can handle it: sizes the C indexes with int32,
scales float32 can hold, names the C and a terminal can take, and ``meta`` fields of the types
the tools read.

:func:`check_limits` runs on every ``.q4`` load and save (before the structural checks of
``validate_model``, so it never assumes they passed: a value of an unexpected type is left to
them) and again in ``generate`` with the C name. Every fault is a one-line :class:`Q4Error`
naming the tensor, op, field or name. ``docs/q4-format.md`` lists the limits.
"""

from __future__ import annotations

import math
import re
import unicodedata

import numpy as np

from q4sdk.errors import Q4Error
from q4sdk.ir.ops import OPS, WEIGHTED_KINDS
from q4sdk.ir.qmodel import QModel, QOp, QTensor

#: every size, dim, offset and attr the generated C holds in an int32_t stays below this
INT32_LIMIT = 1 << 31
#: scales lie in [2^-100, 2^100]: float32 holds them, their inverse and 255 times them
SCALE_MIN, SCALE_MAX = 2.0**-100, 2.0**100
#: names of the model, its tensors and ops, in UTF-8 bytes (C string literals stay well below
#: the 4095 characters C99 guarantees)
MAX_NAME_BYTES = 1024
#: a C name (``generate --name`` or the model name) in characters
MAX_C_NAME = 128
#: nesting of ``meta`` (JSON objects and lists)
MAX_META_DEPTH = 32
MAX_PATH_CHARS = 4096
MAX_PRODUCT = 255 * 8  # |x - zx| * |w| for int8 activations and int4 weights

#: Unicode bidirectional controls: they reorder how a terminal or an editor shows text
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

#: header / file stems a generated ``<name>.h`` / ``<name>.c`` must not take: the C standard
#: headers (an ``-I`` of the output folder would shadow them) and the runtime's own files
#: (their header guards and include names)
C_STANDARD_HEADERS = frozenset(
    """
assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal stdalign
stdarg stdatomic stdbool stddef stdint stdio stdlib stdnoreturn string tgmath threads time uchar
wchar wctype unistd
""".split()
)
GENERATED_STEMS = frozenset(
    """
q4_runtime q4_profile q4_kernels q4_fixedpoint q4_kernels_opt q4_packed q4_dsp q4_conv_dsp
q4_conv_terms main test_data
""".split()
)

#: the per-layer statistics ``q4sdk report`` reads (numbers or null); other fields are free JSON
LAYER_STATS_READ = ("weight_mse", "weight_sqnr_db", "scale_over_max", "output_sqnr_db")
LAYER_STATS_LISTS = ("scale_over_max",)  # per kernel
_PADDED_KINDS = tuple(k for k, s in OPS.items() if "pads" in s.attrs)  # their padded input is indexed


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def printable(text: str, backslash: bool = True) -> str:
    """``text`` safe to print on one terminal line: control, bidi and unpaired surrogate
    characters become ``\\xNN`` / ``\\uNNNN`` escapes (and, with ``backslash``, a backslash
    becomes ``\\\\`` so that escapes stay unambiguous)."""
    out = []
    for ch in str(text):
        cp = ord(ch)
        if ch == "\\" and backslash:
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cs") or ch in BIDI_CONTROLS or ch in "\u2028\u2029":
            out.append(f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}")
        else:
            out.append(ch)
    return "".join(out)


def check_name(name, what: str) -> None:
    """A model / tensor / op name: a non-empty string of at most MAX_NAME_BYTES UTF-8 bytes, with
    no control or bidi character (it reaches C string literals, comments and terminals)."""
    if not isinstance(name, str):
        return  # validate_model names the type error
    try:
        n = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise Q4Error(f"{what} '{printable(name)}': not valid Unicode (unpaired surrogate)") from None
    if n > MAX_NAME_BYTES:
        raise Q4Error(f"{what} '{printable(name[:40])}...': {n} bytes long, the limit is {MAX_NAME_BYTES}")
    bad = [
        ch for ch in name if unicodedata.category(ch) == "Cc" or ch in BIDI_CONTROLS or ch in "\u2028\u2029"
    ]
    if bad:
        raise Q4Error(f"{what} '{printable(name)}': holds the control character {printable(bad[0])}")


def check_c_name(name: str) -> None:
    """The C prefix of the generated files and symbols: an identifier of at most MAX_C_NAME
    characters that shadows no C standard header and no file of the generated tree."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        return  # the generator's own identifier check names it with a suggestion
    if len(name) > MAX_C_NAME:
        raise Q4Error(
            f"generate: name '{name[:40]}...' is {len(name)} characters long, the limit is "
            f"{MAX_C_NAME} (pass a shorter --name)"
        )
    low = name.lower()
    if low in C_STANDARD_HEADERS:
        raise Q4Error(
            f"generate: name '{name}' would make {name}.h shadow the C standard header "
            f"<{low}.h> (pass another --name, e.g. '{name}_net')"
        )
    if low in GENERATED_STEMS or low.startswith("q4_") and _is_runtime_stem(low):
        raise Q4Error(
            f"generate: name '{name}' collides with the generated file or header guard "
            f"'{low}' (pass another --name, e.g. '{name}_net')"
        )


def _is_runtime_stem(low: str) -> bool:
    from q4sdk.resources import RUNTIME_DIR

    return any(p.stem.lower() == low for p in RUNTIME_DIR.rglob("*.[ch]"))


def _check_meta_tree(meta) -> None:
    """Depth, string validity and finite numbers of the whole ``meta`` tree, without recursion."""
    stack = [(meta, "meta", 1)]
    while stack:
        v, field, depth = stack.pop()
        if depth > MAX_META_DEPTH:
            raise Q4Error(f"field '{field}': nested deeper than {MAX_META_DEPTH} levels")
        if isinstance(v, float) and not math.isfinite(v):
            raise Q4Error(f"field '{field}': {v!r} is not a finite number")
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise Q4Error(f"field '{field}': not valid Unicode (unpaired surrogate)") from None
        elif isinstance(v, dict):
            for k, x in v.items():
                if isinstance(k, str):
                    stack.append((k, f"{field} key", depth))
                stack.append((x, f"{field}.{printable(str(k))[:60]}", depth + 1))
        elif isinstance(v, (list, tuple)):
            stack.extend((x, f"{field}[{i}]", depth + 1) for i, x in enumerate(v))


def _meta_field(meta: dict, key: str, ok, expected: str) -> None:
    if key in meta and meta[key] is not None and not ok(meta[key]):
        v = meta[key]
        shown = printable(repr(v))
        raise Q4Error(
            f"field 'meta.{key}': expected {expected}, got {shown[:80] + '...' if len(shown) > 80 else shown}"
        )


def _short_str(v, limit=MAX_PATH_CHARS) -> bool:
    return isinstance(v, str) and len(v) <= limit and "\0" not in v


def _scalar(v) -> bool:
    return v is None or isinstance(v, (str, bool)) or _is_number(v)


def check_meta(model: QModel) -> None:
    """Every ``meta`` field a q4sdk tool reads has the type that tool expects."""
    meta = model.meta
    if not isinstance(meta, dict):
        raise Q4Error("field 'meta' must be a dict")
    _check_meta_tree(meta)
    tensors = model.tensors if isinstance(model.tensors, dict) else {}
    _meta_field(
        meta,
        "input_residual",
        lambda v: isinstance(v, str) and v in tensors,
        "the name of a tensor of the model",
    )
    _meta_field(meta, "input_layout", lambda v: v in ("NCHW", "NHWC"), "'NCHW' or 'NHWC'")
    x = tensors.get(model.input) if isinstance(model.input, str) else None
    size = x.size if isinstance(x, QTensor) and _sizes_ok(x) else None
    _meta_field(
        meta,
        "input_shape_float",
        lambda v: (
            isinstance(v, (list, tuple))
            and 1 <= len(v) <= 8
            and all(_is_int(d) and 1 <= d < INT32_LIMIT for d in v)
            and (size is None or math.prod(v) == size)
        ),
        f"a list of positive ints with {size if size is not None else 'the input'}'s element count",
    )
    _meta_field(
        meta,
        "residual_activations",
        lambda v: isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v),
        "a list of names",
    )
    _meta_field(meta, "weight_bits", lambda v: _is_int(v) and 1 <= v <= 8, "an int in [1, 8]")
    _meta_field(meta, "source_path", _short_str, f"a path of at most {MAX_PATH_CHARS} characters")
    _meta_field(
        meta,
        "source_file",
        lambda v: _short_str(v) and "/" not in v and "\\" not in v,
        "a file name (no folder)",
    )
    _meta_field(meta, "recipe_version", _is_int, "an int")
    _meta_field(meta, "source_hash", lambda v: _short_str(v, 128), "a sha256 hex string")
    _meta_field(
        meta,
        "quantize_seconds",
        lambda v: _is_number(v) and math.isfinite(v) and v >= 0,
        "a number of seconds",
    )
    _meta_field(meta, "torch_threads", lambda v: _is_int(v) and v >= 0, "an int")
    _meta_field(meta, "recipe", lambda v: isinstance(v, dict), "an object")
    _meta_field(meta, "layer_stats", lambda v: isinstance(v, dict), "an object")
    for layer, stats in (meta.get("layer_stats") or {}).items():
        field = f"meta.layer_stats.{printable(str(layer))[:60]}"
        if not isinstance(stats, dict):
            raise Q4Error(f"field '{field}': expected an object, got {type(stats).__name__}")
        for k in LAYER_STATS_READ:
            v = stats.get(k)
            ok = (
                v is None
                or _is_number(v)
                or (k in LAYER_STATS_LISTS and isinstance(v, (list, tuple)) and all(_is_number(x) for x in v))
            )
            if not ok:
                raise Q4Error(
                    f"field '{field}.{k}': expected a number"
                    f"{' or a list of numbers' if k in LAYER_STATS_LISTS else ''}, got "
                    f"{type(v).__name__}"
                )


def _sizes_ok(t: QTensor) -> bool:
    shape = t.shape
    return (
        isinstance(shape, (tuple, list))
        and all(_is_int(d) and d >= 1 for d in shape)
        and math.prod(int(d) for d in shape) < INT32_LIMIT
    )


def _check_tensor(t) -> None:
    if not isinstance(t, QTensor):
        return
    what = f"tensor '{printable(t.name)}'"
    shape = t.shape
    if isinstance(shape, (tuple, list)) and all(_is_int(d) for d in shape):
        n = math.prod(int(d) for d in shape)
        if n >= INT32_LIMIT or any(d >= INT32_LIMIT for d in shape):
            raise Q4Error(
                f"{what}: shape {list(shape)} has {n:,} elements; the C indexes tensors "
                f"with int32 (limit 2^31 - 1)"
            )
    s = t.scale
    if _is_number(s) and math.isfinite(s) and s > 0 and not SCALE_MIN <= s <= SCALE_MAX:
        raise Q4Error(f"{what}: field 'scale' {s!r} lies outside [2^-100, 2^100]")


def _ints(v) -> list[int] | None:
    if _is_int(v):
        return [int(v)]
    if isinstance(v, (list, tuple)) and all(_is_int(x) for x in v):
        return [int(x) for x in v]
    return None


def _check_op(op, model: QModel) -> None:
    if not isinstance(op, QOp):
        return
    what = f"op '{printable(op.name)}' ({printable(op.kind)})"
    attrs = op.attrs if isinstance(op.attrs, dict) else {}
    for k, v in attrs.items():
        vals = _ints(v)
        if vals is not None and any(abs(x) >= INT32_LIMIT for x in vals):
            raise Q4Error(f"{what}: attr '{printable(str(k))}' {v!r} does not fit int32")
    arrays = op.arrays if isinstance(op.arrays, dict) else {}
    for k, a in arrays.items():
        if isinstance(a, np.ndarray) and a.size >= INT32_LIMIT:
            raise Q4Error(f"{what}: array '{printable(str(k))}' has {a.size:,} elements (limit 2^31 - 1)")
    tensors = model.tensors if isinstance(model.tensors, dict) else {}
    ins = (
        [tensors.get(i) if isinstance(i, str) else None for i in op.inputs]
        if isinstance(op.inputs, (list, tuple))
        else []
    )
    x = ins[0] if ins and isinstance(ins[0], QTensor) else None
    pads = _ints(attrs.get("pads"))
    if (
        op.kind in _PADDED_KINDS
        and x is not None
        and pads is not None
        and len(pads) == 4
        and isinstance(x.shape, (tuple, list))
        and len(x.shape) == 3
        and _ints(list(x.shape))
    ):
        h, w = int(x.shape[0]), int(x.shape[1])
        if h + pads[0] + pads[2] >= INT32_LIMIT or w + pads[1] + pads[3] >= INT32_LIMIT:
            raise Q4Error(
                f"{what}: padded input {h + pads[0] + pads[2]}x{w + pads[1] + pads[3]} does not fit int32"
            )
    kernel = _ints(attrs.get("kernel"))
    if (
        op.kind == "maxpool"
        and kernel is not None
        and pads is not None
        and len(kernel) == 2
        and len(pads) == 4
    ):
        if pads[0] >= kernel[0] or pads[2] >= kernel[0] or pads[1] >= kernel[1] or pads[3] >= kernel[1]:
            raise Q4Error(
                f"{what}: pads {pads} must be smaller than the kernel {kernel} (a window of "
                f"padding only has no maximum)"
            )
    if (
        op.kind == "avgpool"
        and kernel is not None
        and len(kernel) == 2
        and kernel[0] * kernel[1] * 255 >= INT32_LIMIT
    ):
        raise Q4Error(f"{what}: window {kernel} too large for an int32 accumulator")
    w, b = arrays.get("weight"), arrays.get("bias")
    if op.kind in WEIGHTED_KINDS and isinstance(w, np.ndarray) and w.ndim >= 2:
        k = int(np.prod(w.shape[1:], dtype=np.int64))
        if op.kind == "depthwise_conv2d":
            k = int(np.prod(w.shape[1:3], dtype=np.int64)) if w.ndim == 3 else k
        bound = (
            int(np.abs(b.astype(np.int64)).max(initial=0))
            if (isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.integer))
            else 0
        )
        if bound + MAX_PRODUCT * k >= INT32_LIMIT:
            raise Q4Error(
                f"{what}: bias too large: max|bias| {bound} + 2040 * K ({k}) reaches 2^31, "
                f"the int32 accumulator could overflow"
            )


def check_limits(model: QModel, c_name: str | None = None) -> None:
    """Raise Q4Error unless ``model`` keeps the limits of this module; with ``c_name`` also check
    the C prefix ``generate`` will use. Prefixes the message with the model name."""
    name = getattr(model, "name", "?")
    prefix = f"model '{printable(name)}'" if isinstance(name, str) else "model"
    try:
        if not isinstance(model, QModel):
            return
        check_name(model.name, "model name")
        check_meta(model)
        if not isinstance(model.tensors, dict):
            return
        total = 0
        for key, t in model.tensors.items():
            check_name(key, "tensor")
            _check_tensor(t)
            if isinstance(t, QTensor) and _sizes_ok(t):
                total += t.size + 16  # with the arena's alignment
        if total >= INT32_LIMIT:
            raise Q4Error(
                f"the tensors hold {total:,} bytes together; the C arena and dump offsets "
                f"are int32 (limit 2^31 - 1)"
            )
        if isinstance(model.ops, (list, tuple)):
            for op in model.ops:
                if isinstance(op, QOp):
                    check_name(op.name, "op")
                    for t in [*(op.inputs if isinstance(op.inputs, (list, tuple)) else []), op.output]:
                        check_name(t, f"op '{printable(str(op.name))}': tensor")
                    _check_op(op, model)
        if c_name is not None:
            check_c_name(c_name)
    except Q4Error as e:
        raise Q4Error(f"{prefix}: {e}") from None
