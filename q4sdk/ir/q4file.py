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
every field and then the model itself (:func:`q4sdk.ir.validate.validate_model`); any fault is a one-line
:class:`Q4Error` that names the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from pathlib import Path

import numpy as np

from q4sdk.errors import Q4Error
from q4sdk.files import write_atomic
from q4sdk.ir.limits import INT32_LIMIT, check_limits, printable
from q4sdk.ir.ops import QOP_KINDS
from q4sdk.ir.packing import pack_int4_rows, unpack_int4_rows
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.ir.validate import INT4_ARRAYS, INT4_MAX, INT4_MIN, _is_int, validate_model

MAGIC = b"Q4SDK\0\0\0"
FORMAT_VERSION = 1
FORMAT_NAME = "q4sdk-model"
ALIGN = 64
_HEADER = struct.Struct("<8sIQQ")  # magic, version, manifest length, data length
_SHA_LEN = 32

#: dtypes an array may have in a .q4 file (always stored little-endian)
ARRAY_DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float32")
ENCODINGS = ("raw", "int4_rows")
# op arrays holding INT4 weights (validate.INT4_ARRAYS) are stored packed when int8 with every
# value in [-8, 7]


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
    if name in INT4_ARRAYS and a.dtype == np.int8 and a.size and a.min() >= INT4_MIN and a.max() <= INT4_MAX:
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
            arrays.append(
                {
                    "name": name,
                    "dtype": a.dtype.name,
                    "shape": [int(d) for d in a.shape],
                    "encoding": encoding,
                    "offset": offset,
                    "nbytes": len(blob),
                    "sha256": hashlib.sha256(blob).hexdigest(),
                }
            )
        ops.append(
            {
                "name": op.name,
                "kind": op.kind,
                "inputs": list(op.inputs),
                "output": op.output,
                "attrs": _plain(op.attrs),
                "arrays": arrays,
            }
        )
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "q4sdk_version": _sdk_version(),
        "name": model.name,
        "input": model.input,
        "output": model.output,
        "tensors": [
            {
                "name": t.name,
                "shape": [int(d) for d in t.shape],
                "bits": int(t.bits),
                "scale": float(t.scale),
                "zero_point": int(t.zero_point),
            }
            for t in model.tensors.values()
        ],
        "ops": ops,
        "meta": _plain(model.meta),
    }
    text = json.dumps(
        manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
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
    write_atomic(p, contents)


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
    if raw[: len(MAGIC)] != MAGIC[: min(n, len(MAGIC))]:
        raise Q4Error(f"{file}: not a .q4 file (bad magic {raw[: len(MAGIC)]!r}, expected {MAGIC!r})")
    if n < _HEADER.size:
        raise Q4Error(f"{file}: truncated: {n} bytes, shorter than the {_HEADER.size}-byte header")
    _, version, mlen, dlen = _HEADER.unpack_from(raw)
    if version != FORMAT_VERSION:
        raise Q4Error(
            f"{file}: field 'version': unsupported .q4 format version {version} "
            f"(this q4sdk reads version {FORMAT_VERSION})"
        )
    data_start = _align(_HEADER.size + mlen)
    expected = data_start + dlen + _SHA_LEN
    if n < expected:
        raise Q4Error(f"{file}: truncated: {n} bytes, the header announces {expected}")
    if n > expected:
        raise Q4Error(
            f"{file}: {n - expected} unexpected bytes after the checksum (file is {n} "
            f"bytes, the header announces {expected})"
        )
    body = memoryview(raw)[: data_start + dlen]
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
        manifest = json.loads(
            raw[_HEADER.size : manifest_end].decode("utf-8"),
            object_pairs_hook=no_duplicates,
            parse_constant=reject_constant,
        )
    except RecursionError:
        raise Q4Error(f"{file}: field 'manifest': JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise Q4Error(f"{file}: field 'manifest': malformed JSON ({printable(str(e))[:200]})") from None
    return manifest, body[data_start:], n


def _decode_array(
    m: _Manifest, spec, field: str, data: memoryview, used: list[tuple[int, int, str]]
) -> tuple[str, np.ndarray]:
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
        raise m.fail(
            f"{field}.nbytes", f"{nbytes} bytes, but {encoding} {dtype} {list(shape)} takes {expected_nbytes}"
        )
    if offset + nbytes > len(data):
        raise m.fail(
            f"{field}.offset",
            f"bytes [{offset}, {offset + nbytes}) lie outside the {len(data)}-byte data section",
        )
    for lo, hi, other in used:
        if offset < hi and lo < offset + nbytes:
            raise m.fail(f"{field}.offset", f"bytes [{offset}, {offset + nbytes}) overlap {other}")
    used.append((offset, offset + nbytes, field))
    blob = bytes(data[offset : offset + nbytes])
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
        t = QTensor(
            name=m.get_str(spec["name"], f"{f}.name"),
            shape=tuple(m.get_ints(spec["shape"], f"{f}.shape")),
            bits=m.get_int(spec["bits"], f"{f}.bits"),
            scale=m.get_number(spec["scale"], f"{f}.scale"),
            zero_point=m.get_int(spec["zero_point"], f"{f}.zero_point"),
        )
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
        attrs = {
            k: (m.get_ints(v, f"{f}.attrs.{k}") if isinstance(v, list) else m.get_int(v, f"{f}.attrs.{k}"))
            for k, v in attrs_in.items()
        }
        arrays: dict[str, np.ndarray] = {}
        for j, aspec in enumerate(m.get_list(spec["arrays"], f"{f}.arrays")):
            name, value = _decode_array(m, aspec, f"{f}.arrays[{j}]", data, used)
            if name in arrays:
                raise m.fail(f"{f}.arrays[{j}].name", f"array {_q(name)} listed twice")
            arrays[name] = value
        ops.append(
            QOp(
                name=m.get_str(spec["name"], f"{f}.name"),
                kind=kind,
                inputs=m.get_strs(spec["inputs"], f"{f}.inputs"),
                output=m.get_str(spec["output"], f"{f}.output"),
                attrs=attrs,
                arrays=arrays,
            )
        )
    meta = top["meta"]
    if not isinstance(meta, dict):
        raise m.fail("meta", "expected an object")
    return QModel(
        name=m.get_str(top["name"], "name"),
        input=m.get_str(top["input"], "input"),
        output=m.get_str(top["output"], "output"),
        tensors=tensors,
        ops=ops,
        meta=meta,
    )


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
    lines = [
        f"{os.fspath(path)}: model '{model.name}', .q4 format {manifest['version']}, "
        f"written by q4sdk {manifest['q4sdk_version']}, {size:,} bytes"
    ]
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
        rows.append(
            (
                str(i),
                op.name,
                op.kind,
                ",".join(op.inputs),
                f"{op.output} {_shape_str(out.shape)}",
                str(out.bits),
                "-" if w is None else f"{_shape_str(w.shape)} int4",
                f"{stored:,}",
            )
        )
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines.append(f"ops ({len(model.ops)}):")
    for r in [header, *rows]:
        lines.append("  " + "  ".join(cell.ljust(wd) for cell, wd in zip(r, widths)).rstrip())
    lines.append(
        f"weights {n_weights:,} INT4 values in {weight_bytes:,} bytes; "
        f"other arrays {other_bytes:,} bytes; {len(model.tensors)} tensors"
    )
    return "\n".join(printable(line, backslash=False) for line in lines)
