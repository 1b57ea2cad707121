"""The .q4 file: round trip, determinism, atomic writes, and every rejection path of the reader."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from q4sdk.errors import Q4Error
from q4sdk.ir.ops import QOP_KINDS
from q4sdk.ir.q4file import describe_q4, first_difference, load_q4, models_equal, save_q4
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.ir.validate import validate_model

DOC = Path(__file__).resolve().parents[2] / "docs" / "q4-format.md"
HEADER = struct.Struct("<8sIQQ")


# ----------------------------------------------------------------------------------------------
# A small synthetic model using every op kind
# ----------------------------------------------------------------------------------------------


def _requant(rng, n):
    mult = rng.integers(1 << 30, (1 << 31) - 1, n).astype(np.int32)
    mult[0] = 0  # a zero multiplier is legal
    return {
        "bias": rng.integers(-5000, 5000, n).astype(np.int32),
        "multiplier": mult,
        "shift": rng.integers(20, 40, n).astype(np.int32),
    }


def make_model() -> QModel:
    """x(8,8,3) -> conv -> dw / 1x1 conv -> add (and concat -> gather, reduce_mean, conv_transpose, resize, mul, addsub, lut_channel, softmax: side branches) -> lut -> clamp -> pad -> maxpool -> avgpool -> gap
    -> reshape -> residual split (X1, X2) -> two-input fully_connected."""
    rng = np.random.default_rng(7)

    def t(name, shape, bits=8, scale=0.05, zp=0):
        return QTensor(name, tuple(shape), bits, scale, zp)

    tensors = [
        t("x", (8, 8, 3), scale=1 / 255 + 1e-17, zp=-128),
        t("c1", (8, 8, 4), bits=4, scale=0.1234567890123, zp=-8),
        t("d1", (4, 4, 4)),
        t("c2", (4, 4, 4), scale=0.07),
        t("a1", (4, 4, 4), scale=0.09),
        t("cc", (4, 4, 12), scale=0.05),
        t("mu", (4, 4, 4), scale=0.11, zp=3),
        t("as", (4, 4, 4), scale=0.06),
        t("lc", (4, 4, 4), scale=0.08),
        t("ct", (8, 8, 2), scale=0.1, zp=3),
        t("rs", (8, 12, 4)),
        t("gt", (4, 4, 4), scale=0.05),
        t("rm", (4, 1, 1), scale=0.05),
        t("sm", (4, 4, 4), scale=1 / 256, zp=-128),
        t("lu", (4, 4, 4), scale=0.09),
        t("cl", (4, 4, 4), scale=0.09),
        t("p", (6, 6, 4), scale=0.09),
        t("mp", (3, 3, 4), scale=0.09),
        t("ap", (2, 2, 4), bits=4, scale=0.2),
        t("g", (1, 1, 4), scale=0.03),
        t("f", (4,), scale=0.03),
        t("f1", (4,), bits=4, scale=0.48, zp=0),
        t("f2", (4,), bits=4, scale=0.03),
        t("y", (3,), scale=np.float32(0.25), zp=0),
    ]
    w = lambda *shape: rng.integers(-8, 8, shape).astype(np.int8)  # noqa: E731
    pool = lambda: {"multiplier": np.array([1 << 30], np.int32), "shift": np.array([31], np.int32)}  # noqa: E731
    ops = [
        QOp(
            "conv1",
            "conv2d",
            ["x"],
            "c1",
            {"stride": [1, 1], "pads": [1, 1, 1, 1], "act_min": -8, "act_max": 7},
            {"weight": w(4, 3, 3, 3), **_requant(rng, 4)},
        ),
        QOp(
            "dw1",
            "depthwise_conv2d",
            ["c1"],
            "d1",
            {"stride": (2, 2), "pads": (0, 0, 1, 1), "act_min": -128, "act_max": 127},
            {"weight": w(4, 3, 3), **_requant(rng, 4)},
        ),
        QOp(
            "conv2",
            "conv2d",
            ["c1"],
            "c2",
            {"stride": [2, 2], "pads": [0, 0, 0, 0], "act_min": 0, "act_max": 127},
            {"weight": w(4, 1, 1, 4), **_requant(rng, 4)},
        ),
        QOp(
            "add1",
            "add",
            ["d1", "c2"],
            "a1",
            {"shift": 20, "act_min": -128, "act_max": 127},
            {"multiplier": np.array([700000, (1 << 21) - 1], np.int32)},
        ),
        QOp(  # a side branch: the two differently scaled inputs of add1 side by side
            "cat1",
            "concat",
            ["d1", "c2", "d1"],
            "cc",
            {"act_min": -128, "act_max": 127},
            {
                "multiplier": np.array([1 << 30, 1518500250, 0], np.int32),
                "shift": np.array([30, 31, 1], np.int32),
            },
        ),
        QOp(  # side branches: element-wise product, signed add, per-channel tables
            "mul1",
            "mul",
            ["d1", "c2"],
            "mu",
            {"act_min": -128, "act_max": 127},
            {"multiplier": np.array([1518500250], np.int32), "shift": np.array([36], np.int32)},
        ),
        QOp(
            "addsub1",
            "addsub",
            ["d1", "c2"],
            "as",
            {"shift": 20, "act_min": -128, "act_max": 127},
            {"multiplier": np.array([700000, -(1 << 20)], np.int32)},
        ),
        QOp(
            "lutc1",
            "lut_channel",
            ["a1"],
            "lc",
            {},
            {"table": rng.integers(-128, 128, (4, 256)).astype(np.int8)},
        ),
        QOp(  # side branches: up-sampling of d1
            "up1",
            "conv_transpose",
            ["d1"],
            "ct",
            {
                "stride": [2, 2],
                "pads": [1, 1, 1, 1],
                "output_padding": [1, 1],
                "act_min": -128,
                "act_max": 127,
            },
            {"weight": w(2, 3, 3, 4), **_requant(rng, 2)},
        ),
        QOp("rs1", "resize", ["d1"], "rs", {"mode": 1, "scale": [2, 3]}),
        QOp("gth1", "gather", ["cc"], "gt", {"axis": 2}, {"index": np.array([11, 0, 5, 5], np.int32)}),
        QOp("rm1", "reduce_mean", ["a1"], "rm", {"axes": [1, 2], "act_min": -128, "act_max": 127}, pool()),
        QOp(
            "sm1",
            "softmax",
            ["a1"],
            "sm",
            {"axis": 0, "steps": 256},
            {"table": np.arange(256, 0, -1).astype(np.int32)},
        ),
        QOp("lut1", "lut", ["a1"], "lu", {}, {"table": rng.integers(-128, 128, 256).astype(np.int8)}),
        QOp("relu1", "clamp", ["lu"], "cl", {"act_min": 0, "act_max": 127}),
        QOp("pad1", "pad", ["cl"], "p", {"pads": [1, 1, 1, 1]}),
        QOp("mp1", "maxpool", ["p"], "mp", {"kernel": [2, 2], "stride": [2, 2], "pads": [0, 0, 0, 0]}),
        QOp(
            "ap1",
            "avgpool",
            ["mp"],
            "ap",
            {"kernel": [2, 2], "stride": [1, 1], "pads": [0, 0, 0, 0], "act_min": -8, "act_max": 7},
            pool(),
        ),
        QOp("gap1", "global_avgpool", ["ap"], "g", {"act_min": -128, "act_max": 127}, pool()),
        QOp("flat", "reshape", ["g"], "f"),
        QOp("f1", "residual_split", ["f"], "f1", {"part": 0, "coarse_zero_point": 0}),
        QOp("f2", "residual_split", ["f"], "f2", {"part": 1, "coarse_zero_point": 0}),
        QOp(
            "fc1",
            "fully_connected",
            ["f1", "f2"],
            "y",
            {"act_min": -128, "act_max": 127},
            {
                "weight": w(3, 4),
                **_requant(rng, 3),
                "multiplier": rng.integers(-(1 << 28), 1 << 28, (2, 3)).astype(np.int32),
            },
        ),
    ]
    meta = {
        "recipe": {"weight_bits": 4, "activation_bits": 8, "seed": 0, "weight_scale": "mmse"},
        "source_hash": "ab" * 32,
        "input_layout": "NCHW",
        "input_shape_float": (3, 8, 8),
        "output_softmax": True,
        "note": "µ-model ✓",
        "ratio": 0.1 + 0.2,
    }
    return QModel("tiny", "x", "y", {x.name: x for x in tensors}, ops, meta)


@pytest.fixture
def model() -> QModel:
    return make_model()


@pytest.fixture
def q4(tmp_path, model) -> Path:
    path = tmp_path / "tiny.q4"
    save_q4(model, path)
    return path


# ----------------------------------------------------------------------------------------------
# Helpers that edit a file at the byte level, as the format document describes it
# ----------------------------------------------------------------------------------------------


def split(path: Path) -> tuple[dict, bytearray]:
    raw = path.read_bytes()
    _, _, mlen, dlen = HEADER.unpack_from(raw)
    start = -(-(HEADER.size + mlen) // 64) * 64
    return json.loads(raw[HEADER.size : HEADER.size + mlen]), bytearray(raw[start : start + dlen])


def seal(path: Path, manifest, data: bytes, version: int = 1) -> None:
    """Write a well-formed container (correct lengths and checksum) around any manifest bytes."""
    text = manifest if isinstance(manifest, bytes) else json.dumps(manifest, sort_keys=True).encode()
    head = HEADER.pack(b"Q4SDK\0\0\0", version, len(text), len(data)) + text
    body = head + bytes(-len(head) % 64) + bytes(data)
    path.write_bytes(body + hashlib.sha256(body).digest())


def edit(path: Path, change) -> None:
    """Apply ``change(manifest, data)`` (in place) and reseal the file."""
    manifest, data = split(path)
    change(manifest, data)
    seal(path, manifest, data)


def array_spec(manifest, op_name, array_name) -> dict:
    op = next(o for o in manifest["ops"] if o["name"] == op_name)
    return next(a for a in op["arrays"] if a["name"] == array_name)


def assert_rejected(path: Path, *fragments: str) -> str:
    with pytest.raises(Q4Error) as info:
        load_q4(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return msg


# ----------------------------------------------------------------------------------------------
# Round trip, determinism, writing
# ----------------------------------------------------------------------------------------------


def test_model_uses_every_op_kind(model):
    assert sorted({op.kind for op in model.ops}) == sorted(QOP_KINDS)
    validate_model(model)


def test_round_trip_is_exact(q4, model):
    loaded = load_q4(q4)
    assert first_difference(loaded, model) is None
    assert models_equal(loaded, model)
    assert loaded.tensors["x"].scale == 1 / 255 + 1e-17
    assert loaded.tensors["y"].scale == float(np.float32(0.25))
    for op_a, op_b in zip(loaded.ops, model.ops):
        for name, arr in op_b.arrays.items():
            got = op_a.arrays[name]
            assert got.dtype == arr.dtype and got.shape == arr.shape
            assert got.tobytes() == arr.tobytes()
            assert got.flags.writeable and got.dtype.isnative
    assert loaded.meta["note"] == "µ-model ✓"
    assert loaded.meta["ratio"] == 0.1 + 0.2


def test_models_equal_detects_differences(model):
    other = make_model()
    assert models_equal(model, other)
    other.ops[0].arrays["weight"][0, 0, 0, 0] ^= 1
    assert "conv1" in first_difference(model, other)
    other = make_model()
    other.tensors["c1"].scale = np.nextafter(other.tensors["c1"].scale, 1.0)
    assert "scale" in first_difference(model, other)
    other = make_model()
    other.ops[1].arrays["bias"] = other.ops[1].arrays["bias"].astype(np.int64)
    assert not models_equal(model, other)


def test_same_model_gives_same_bytes(tmp_path, model):
    a, b, c = tmp_path / "a.q4", tmp_path / "b.q4", tmp_path / "c.q4"
    save_q4(model, a)
    save_q4(make_model(), b)
    save_q4(load_q4(a), c)
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()


def test_weights_are_stored_packed(q4, model):
    manifest, data = split(q4)
    conv1 = array_spec(manifest, "conv1", "weight")
    assert conv1["encoding"] == "int4_rows" and conv1["dtype"] == "int8"
    assert conv1["shape"] == [4, 3, 3, 3] and conv1["nbytes"] == 4 * 14  # 27 values -> 14 bytes/row
    assert array_spec(manifest, "fc1", "weight")["nbytes"] == 3 * 2
    bias = array_spec(manifest, "conv1", "bias")
    assert bias["encoding"] == "raw" and bias["nbytes"] == 16
    for op in manifest["ops"]:
        for a in op["arrays"]:
            assert a["offset"] % 64 == 0
    blob = data[bias["offset"] : bias["offset"] + 16]
    assert np.frombuffer(bytes(blob), "<i4").tolist() == model.ops[0].arrays["bias"].tolist()


def test_manifest_is_sorted_compact_json(q4, model):
    raw = q4.read_bytes()
    _, version, mlen, _ = HEADER.unpack_from(raw)
    text = raw[HEADER.size : HEADER.size + mlen]
    manifest = json.loads(text)
    assert version == 1 and manifest["version"] == 1 and manifest["format"] == "q4sdk-model"
    assert text == json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert manifest["meta"]["recipe"] == model.meta["recipe"]
    assert [t["name"] for t in manifest["tensors"]] == list(model.tensors)


def test_refuses_to_overwrite(q4, model):
    before = q4.read_bytes()
    other = make_model()
    other.name = "other"
    with pytest.raises(Q4Error, match=re.escape(str(q4))):
        save_q4(other, q4)
    assert q4.read_bytes() == before
    save_q4(other, q4, overwrite=True)
    assert load_q4(q4).name == "other"
    assert sorted(p.name for p in q4.parent.iterdir()) == ["tiny.q4"]  # no temp file left


def test_save_rejects_invalid_model_and_writes_nothing(tmp_path, model):
    model.ops[0].arrays["weight"][0, 0, 0, 0] = 8
    path = tmp_path / "bad.q4"
    with pytest.raises(Q4Error, match="conv1.*weight"):
        save_q4(model, path)
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_non_json_meta(tmp_path, model):
    model.meta["recipe"]["calib"] = np.zeros(3)
    with pytest.raises(Q4Error, match=r"meta\.recipe\.calib"):
        save_q4(model, tmp_path / "m.q4")
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_directory(tmp_path, model):
    with pytest.raises(Q4Error, match="does not exist"):
        save_q4(model, tmp_path / "nope" / "m.q4")


def test_describe(q4):
    text = describe_q4(q4)
    assert "model 'tiny'" in text and "format 1" in text
    assert "activation_bits=8" in text and "weight_bits=4" in text
    for name, kind in (
        ("conv1", "conv2d"),
        ("dw1", "depthwise_conv2d"),
        ("fc1", "fully_connected"),
        ("gap1", "global_avgpool"),
        ("flat", "reshape"),
    ):
        assert re.search(rf"\b{name}\s+{kind}\b", text), name
    assert "input_shape_float=[3, 8, 8]" in text and 'note="µ-model ✓"' in text
    assert "4x3x3x3 int4" in text
    n_weights = 4 * 27 + 4 * 9 + 4 * 4 + 2 * 36 + 3 * 4
    assert f"weights {n_weights} INT4 values" in text


def test_documented_reader_reads_the_file(q4, model):
    """The 30-line reader in docs/q4-format.md must read our files."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 32
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    manifest, arrays = namespace["read_q4"](str(q4))
    assert manifest["name"] == "tiny"
    assert len(arrays) == sum(len(op.arrays) for op in model.ops)
    for op in model.ops:
        for name, arr in op.arrays.items():
            got = arrays[op.name, name]
            assert got.dtype == arr.dtype and np.array_equal(got, arr)


# ----------------------------------------------------------------------------------------------
# Container rejections
# ----------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    assert_rejected(tmp_path / "absent.q4", "no such file")


def test_bad_magic(q4):
    raw = bytearray(q4.read_bytes())
    raw[0:5] = b"PK\3\4x"
    q4.write_bytes(bytes(raw))
    assert_rejected(q4, "bad magic")


def test_not_a_q4_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07\x12\x04onnx")
    assert_rejected(path, "not a .q4 file")


def test_unsupported_version(q4):
    manifest, data = split(q4)
    seal(q4, manifest, data, version=2)
    assert_rejected(q4, "version", "unsupported", "2")


@pytest.mark.parametrize("where", ["empty", "in_magic", "in_header", "in_manifest", "in_data", "in_checksum"])
def test_truncated(q4, where):
    raw = q4.read_bytes()
    _, _, mlen, _ = HEADER.unpack_from(raw)
    cut = {
        "empty": 0,
        "in_magic": 5,
        "in_header": 20,
        "in_manifest": 28 + mlen // 2,
        "in_data": len(raw) - 32 - 10,
        "in_checksum": len(raw) - 1,
    }[where]
    q4.write_bytes(raw[:cut])
    assert_rejected(q4, "truncated")


def test_trailing_bytes(q4):
    q4.write_bytes(q4.read_bytes() + b"\0")
    assert_rejected(q4, "1 unexpected bytes")


@pytest.mark.parametrize("where", ["manifest", "data", "checksum"])
def test_flipped_byte_fails_the_checksum(q4, where):
    raw = bytearray(q4.read_bytes())
    _, _, mlen, _ = HEADER.unpack_from(raw)
    pos = {"manifest": 28 + mlen // 3, "data": len(raw) - 40, "checksum": len(raw) - 5}[where]
    raw[pos] ^= 0x10
    q4.write_bytes(bytes(raw))
    assert_rejected(q4, "checksum mismatch", "corrupt")


def test_malformed_json(q4):
    _, data = split(q4)
    seal(q4, b'{"format": "q4sdk-model", ', data)
    assert_rejected(q4, "malformed JSON")


def test_invalid_utf8_manifest(q4):
    _, data = split(q4)
    seal(q4, b'{"name": "\xff"}', data)
    assert_rejected(q4, "malformed JSON")


def test_duplicate_json_key(q4):
    manifest, data = split(q4)
    text = json.dumps(manifest, sort_keys=True)
    seal(q4, text.replace('"name": "tiny"', '"name": "tiny", "name": "evil"').encode(), data)
    assert_rejected(q4, "duplicate key 'name'")


def test_nan_in_manifest(q4):
    manifest, data = split(q4)
    text = json.dumps(manifest, sort_keys=True)
    seal(q4, re.sub(r'"scale": [0-9.e-]+', '"scale": NaN', text, count=1).encode(), data)
    assert_rejected(q4, "malformed JSON", "NaN")


def test_nonzero_manifest_padding(q4):
    raw = bytearray(q4.read_bytes())
    _, _, mlen, _ = HEADER.unpack_from(raw)
    start = -(-(28 + mlen) // 64) * 64
    assert start > 28 + mlen, "fixture must have padding after the manifest"
    raw[start - 1] = 1
    body = bytes(raw[:-32])
    q4.write_bytes(body + hashlib.sha256(body).digest())
    assert_rejected(q4, "padding")


# ----------------------------------------------------------------------------------------------
# Manifest rejections (files resealed with a correct checksum)
# ----------------------------------------------------------------------------------------------


def _set(path, value):
    """Return a change that sets manifest[path...] = value (``...`` = delete)."""

    def change(manifest, data):
        node = manifest
        for key in path[:-1]:
            node = node[key]
        if value is ...:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return change


MANIFEST_FAULTS = [
    (("name",), ..., "field 'name': missing"),
    (("meta",), ..., "field 'meta': missing"),
    (("extra",), 1, "field 'extra': unknown field"),
    (("format",), "onnx", "field 'format'"),
    (("version",), 2, "field 'version'"),
    (("tensors", 1, "bits"), "4", "field 'tensors[1].bits': expected an int"),
    (("tensors", 1, "bits"), True, "field 'tensors[1].bits': expected an int"),
    (("tensors", 0, "scale"), "0.1", "field 'tensors[0].scale': expected a number"),
    (("tensors", 2, "zero_point"), 1.5, "field 'tensors[2].zero_point'"),
    (("tensors", 3, "shape"), "4x4", "field 'tensors[3].shape': expected a list"),
    (("tensors", 3, "extra"), 0, "field 'tensors[3].extra': unknown field"),
    (("tensors",), {}, "field 'tensors': expected a list"),
    (("ops", 0, "kind"), "gelu", "field 'ops[0].kind': unknown op kind 'gelu'"),
    (("ops", 0, "inputs"), "x", "field 'ops[0].inputs': expected a list"),
    (("ops", 2, "output"), ..., "field 'ops[2].output': missing"),
    (("ops", 0, "attrs"), [1], "field 'ops[0].attrs'"),
    (("ops", 0, "attrs", "stride"), [1, "1"], "field 'ops[0].attrs.stride[1]'"),
    (("ops", 0, "arrays", 0, "dtype"), "float64", "field 'ops[0].arrays[0].dtype': 'float64' is not allowed"),
    (("ops", 0, "arrays", 1, "dtype"), "object", "'object' is not allowed"),
    (("ops", 0, "arrays", 1, "encoding"), "zstd", "field 'ops[0].arrays[1].encoding': unknown encoding"),
    (("ops", 0, "arrays", 1, "encoding"), "int4_rows", "field 'ops[0].arrays[1].encoding'"),
    (("ops", 0, "arrays", 1, "offset"), 10**9, "field 'ops[0].arrays[1].offset'"),
    (("ops", 0, "arrays", 1, "offset"), 65, "not a multiple of 64"),
    (("ops", 0, "arrays", 1, "offset"), -64, "must be >= 0"),
    (("ops", 0, "arrays", 1, "offset"), 0, "overlap"),
    (("ops", 0, "arrays", 1, "nbytes"), 15, "field 'ops[0].arrays[1].nbytes'"),
    (("ops", 0, "arrays", 1, "shape"), [5], "field 'ops[0].arrays[1].nbytes'"),
    (("ops", 0, "arrays", 1, "sha256"), "00" * 32, "field 'ops[0].arrays[1].sha256'"),
    (("ops", 0, "arrays", 1, "sha256"), ..., "field 'ops[0].arrays[1].sha256': missing"),
]


@pytest.mark.parametrize(
    "path,value,fragment",
    MANIFEST_FAULTS,
    ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v, _ in MANIFEST_FAULTS],
)
def test_manifest_fault(q4, path, value, fragment):
    edit(q4, _set(path, value))
    assert_rejected(q4, fragment)


def test_array_data_changed_fails_its_sha(q4):
    def change(manifest, data):
        bias = array_spec(manifest, "dw1", "bias")
        data[bias["offset"]] ^= 1

    edit(q4, change)
    assert_rejected(q4, "field 'ops[1].arrays[1].sha256'", "array 'bias'")


def test_array_listed_twice(q4):
    def change(manifest, data):
        arrays = manifest["ops"][0]["arrays"]
        bias = arrays[1]
        blob = bytes(data[bias["offset"] : bias["offset"] + bias["nbytes"]])
        data.extend(bytes(-len(data) % 64))
        arrays.append(dict(bias, offset=len(data)))
        data.extend(blob)

    edit(q4, change)
    assert_rejected(q4, "listed twice")


def test_int4_padding_nibble_must_be_zero(q4):
    def change(manifest, data):
        spec = array_spec(manifest, "conv1", "weight")  # 27 values per row: last nibble is padding
        data[spec["offset"] + 13] |= 0x30
        spec["sha256"] = hashlib.sha256(data[spec["offset"] : spec["offset"] + spec["nbytes"]]).hexdigest()

    edit(q4, change)
    assert_rejected(q4, "padding nibble")


def _replace_blob(manifest, data, op_name, array_name, values: np.ndarray, encoding="raw"):
    """Store ``values`` (raw) as the new blob of an array, appended to the data section."""
    spec = array_spec(manifest, op_name, array_name)
    blob = values.astype(values.dtype.newbyteorder("<")).tobytes()
    data.extend(bytes(-len(data) % 64))
    spec.update(
        offset=len(data),
        nbytes=len(blob),
        encoding=encoding,
        dtype=values.dtype.name,
        shape=list(values.shape),
        sha256=hashlib.sha256(blob).hexdigest(),
    )
    data.extend(blob)


def test_raw_weights_load_when_in_range(q4, model):
    def change(manifest, data):
        _replace_blob(manifest, data, "fc1", "weight", model.ops[-1].arrays["weight"])

    edit(q4, change)
    assert models_equal(load_q4(q4), model)


def test_weight_out_of_int4_range(q4, model):
    w = model.ops[-1].arrays["weight"].copy()
    w[1, 2] = 9
    edit(q4, lambda m, d: _replace_blob(m, d, "fc1", "weight", w))
    assert_rejected(q4, "op 'fc1' (fully_connected)", "weight", "[-8, 7]")


def test_inconsistent_model_in_file(q4):
    edit(q4, _set(("tensors", 2, "shape"), [4, 4, 5]))  # d1 is (4, 4, 4)
    assert_rejected(q4, "op 'dw1' (depthwise_conv2d)", "output 'd1'", "(4, 4, 5)")


def test_ops_out_of_order_in_file(q4):
    def change(manifest, data):
        manifest["ops"][0], manifest["ops"][1] = manifest["ops"][1], manifest["ops"][0]

    edit(q4, change)
    assert_rejected(q4, "op 'dw1'", "topological")


# ----------------------------------------------------------------------------------------------
# validate_model
# ----------------------------------------------------------------------------------------------


def _op(m: QModel, name: str) -> QOp:
    return next(o for o in m.ops if o.name == name)


MODEL_FAULTS = {
    "conv weight I": (
        lambda m: _op(m, "conv1").arrays.update(weight=np.zeros((4, 3, 3, 2), np.int8)),
        "op 'conv1' (conv2d): array 'weight' (4, 3, 3, 2) must be [O, kh, kw, I / groups]",
    ),
    "conv groups": (
        lambda m: _op(m, "conv1").attrs.update(groups=2),
        "op 'conv1' (conv2d): array 'weight' (4, 3, 3, 3) must be [O, kh, kw, I / groups] with I = 3",
    ),
    "conv dilation 0": (lambda m: _op(m, "conv1").attrs.update(dilation=[0, 1]), "attr 'dilation'"),
    "conv dilation too wide": (
        lambda m: _op(m, "conv1").attrs.update(dilation=[9, 1]),
        "does not fit the padded input",
    ),
    "conv output shape": (
        lambda m: setattr(m.tensors["c2"], "shape", (3, 3, 4)),
        "op 'conv2' (conv2d): output 'c2' has shape (3, 3, 4), expected (4, 4, 4)",
    ),
    "conv stride 0": (lambda m: _op(m, "conv2").attrs.update(stride=[0, 2]), "attr 'stride'"),
    "conv pads length": (
        lambda m: _op(m, "conv2").attrs.update(pads=[0, 0]),
        "attr 'pads' must be a list of 4",
    ),
    "conv bias shape": (
        lambda m: _op(m, "conv1").arrays.update(bias=np.zeros(3, np.int32)),
        "array 'bias' must have shape (4,)",
    ),
    "conv bias dtype": (
        lambda m: _op(m, "conv1").arrays.update(bias=np.zeros(4, np.int64)),
        "array 'bias' must be int32, got int64",
    ),
    "conv window too large": (
        lambda m: _op(m, "conv2").arrays.update(weight=np.zeros((4, 11, 11, 4), np.int8)),
        "does not fit",
    ),
    "empty weight": (
        lambda m: _op(m, "conv2").arrays.update(weight=np.zeros((4, 0, 1, 4), np.int8)),
        "array 'weight' (4, 0, 1, 4) is empty",
    ),
    "dw weight C": (
        lambda m: _op(m, "dw1").arrays.update(weight=np.zeros((3, 3, 3), np.int8)),
        "op 'dw1' (depthwise_conv2d): array 'weight'",
    ),
    "fc weight I": (
        lambda m: _op(m, "fc1").arrays.update(weight=np.zeros((3, 5), np.int8)),
        "op 'fc1' (fully_connected): array 'weight' (3, 5) must be [O, I] with I = 4",
    ),
    "weight range": (
        lambda m: _op(m, "dw1").arrays["weight"].__setitem__((0, 0, 0), -9),
        "array 'weight' values must lie in [-8, 7]",
    ),
    "multiplier range": (
        lambda m: _op(m, "conv1").arrays["multiplier"].__setitem__(1, 5),
        "array 'multiplier' values must be 0 or in [2^30, 2^31)",
    ),
    "shift range": (
        lambda m: _op(m, "fc1").arrays["shift"].__setitem__(0, 63),
        "array 'shift' values must lie in [1, 62]",
    ),
    "shift zero": (lambda m: _op(m, "gap1").arrays["shift"].__setitem__(0, 0), "op 'gap1'"),
    "add multiplier": (
        lambda m: _op(m, "add1").arrays["multiplier"].__setitem__(0, 1 << 21),
        "op 'add1' (add): array 'multiplier' values must lie in [0, 2^21)",
    ),
    "add multiplier count": (
        lambda m: _op(m, "add1").arrays.update(multiplier=np.ones(3, np.int32)),
        "shape (2,)",
    ),
    "add shift": (lambda m: _op(m, "add1").attrs.update(shift=31), "attr 'shift' must lie in [1, 30]"),
    "add shapes": (lambda m: _op(m, "add1").inputs.__setitem__(1, "c1"), "differ in shape"),
    "add one input": (lambda m: _op(m, "add1").inputs.pop(), "needs 2 input(s)"),
    "pool output": (
        lambda m: setattr(m.tensors["mp"], "shape", (2, 2, 4)),
        "op 'mp1' (maxpool): output 'mp'",
    ),
    "avgpool output": (lambda m: setattr(m.tensors["ap"], "shape", (3, 3, 4)), "op 'ap1' (avgpool)"),
    "gap output": (lambda m: setattr(m.tensors["g"], "shape", (4,)), "expected (1, 1, 4)"),
    "pad output": (lambda m: setattr(m.tensors["p"], "shape", (5, 6, 4)), "op 'pad1' (pad)"),
    "reshape size": (lambda m: setattr(m.tensors["f"], "shape", (5,)), "op 'flat' (reshape)"),
    "maxpool quant": (
        lambda m: setattr(m.tensors["mp"], "scale", 0.1),
        "op 'mp1' (maxpool): output 'mp' field 'scale'",
    ),
    "reshape bits": (
        lambda m: setattr(m.tensors["f"], "bits", 4),
        "op 'flat' (reshape): output 'f' field 'bits'",
    ),
    "clamp zero point": (lambda m: setattr(m.tensors["cl"], "zero_point", 3), "field 'zero_point'"),
    "act order": (lambda m: _op(m, "conv2").attrs.update(act_min=10, act_max=5), "act_min=10, act_max=5"),
    "act range": (lambda m: _op(m, "conv1").attrs.update(act_max=8), "-8 <= act_min <= act_max <= 7"),
    "missing attr": (lambda m: _op(m, "mp1").attrs.pop("kernel"), "missing attr 'kernel'"),
    "lut table size": (
        lambda m: _op(m, "lut1").arrays.update(table=np.zeros(16, np.int8)),
        "op 'lut1' (lut): array 'table' must have shape (256,)",
    ),
    "extra attr": (lambda m: _op(m, "relu1").attrs.update(alpha=1), "unexpected attr 'alpha'"),
    "missing array": (lambda m: _op(m, "conv1").arrays.pop("shift"), "missing array 'shift'"),
    "extra array": (lambda m: _op(m, "flat").arrays.update(x=np.zeros(1, np.int32)), "unexpected array 'x'"),
    "unknown kind": (lambda m: setattr(_op(m, "relu1"), "kind", "gelu"), "unknown op kind 'gelu'"),
    "bits": (lambda m: setattr(m.tensors["c1"], "bits", 5), "tensor 'c1': field 'bits'"),
    "zero point": (lambda m: setattr(m.tensors["c1"], "zero_point", -9), "tensor 'c1': field 'zero_point'"),
    "scale zero": (lambda m: setattr(m.tensors["y"], "scale", 0.0), "tensor 'y': field 'scale'"),
    "scale nan": (lambda m: setattr(m.tensors["y"], "scale", float("nan")), "tensor 'y': field 'scale'"),
    "empty shape": (lambda m: setattr(m.tensors["y"], "shape", ()), "tensor 'y': field 'shape'"),
    "unknown input": (lambda m: _op(m, "conv2").inputs.__setitem__(0, "zz"), "input 'zz' is not a tensor"),
    "order": (
        lambda m: m.ops.insert(0, m.ops.pop(1)),
        "op 'dw1' (depthwise_conv2d): input 'c1' is not produced",
    ),
    "produced twice": (lambda m: setattr(_op(m, "conv2"), "output", "d1"), "output 'd1' is already produced"),
    "writes input": (lambda m: setattr(_op(m, "conv1"), "output", "x"), "as the model input"),
    "orphan tensor": (lambda m: m.tensors.update(z=QTensor("z", (1,), 8, 1.0, 0)), "tensor 'z' is neither"),
    "duplicate op name": (lambda m: setattr(_op(m, "conv2"), "name", "conv1"), "op name used twice"),
    "model output": (lambda m: setattr(m, "output", "nope"), "field 'output'"),
    "tensor key": (lambda m: setattr(m.tensors["y"], "name", "why"), "tensor 'y': field 'name'"),
}


@pytest.mark.parametrize("case", sorted(MODEL_FAULTS))
def test_validate_model_rejects(model, case):
    mutate, fragment = MODEL_FAULTS[case]
    mutate(model)
    with pytest.raises(Q4Error) as info:
        validate_model(model)
    msg = str(info.value)
    assert msg.startswith("model 'tiny': ")
    assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_validate_model_accepts_tuples_and_numpy_ints(model):
    conv = _op(model, "conv1")
    conv.attrs = {
        k: (tuple(np.int64(x) for x in v) if isinstance(v, list) else np.int32(v))
        for k, v in conv.attrs.items()
    }
    validate_model(model)


def test_unknown_op_kind_in_file(q4):
    edit(q4, _set(("ops", 9, "kind"), "lstm"))
    assert_rejected(q4, "ops[9].kind", "unknown op kind 'lstm'")
