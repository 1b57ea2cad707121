"""Fuzzing the .q4 reader and everything behind it (census classes 1a, 1b, 1e, 1f): truncated and
mutated bytes, hostile manifests re-sealed with a valid checksum, and hostile names. Every run of
inspect / generate / verify / report ends in exit 0, 1 or a one-line ``error:`` (exit 2), never
an internal error; the defects D4, D6, D7 and D9 of the reliability review are named cases."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from hostile import every_kind_model, outcome, reseal, run_cli, seal, split, tiny_data

from q4sdk.errors import Q4Error
from q4sdk.ir import q4file
from q4sdk.ir.q4file import load_q4, save_q4
from q4sdk.ir.qmodel import QModel, QOp, QTensor

COMMANDS = ("inspect", "generate", "verify", "report")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzzq4")
    save_q4(every_kind_model(), d / "m.q4")
    tiny_data(d / "data.npz")
    return d


def _argv(cmd: str, q4, d) -> list[str]:
    return {
        "inspect": ["inspect", str(q4)],
        "generate": ["generate", str(q4), "-o", str(d / "gen"), "--force"],
        "verify": ["verify", str(q4), str(d / "no_such_dir"), "--data", str(d / "data.npz")],
        "report": ["report", str(q4), "--data", str(d / "data.npz"), "-o", str(d / "rep")],
    }[cmd]


def _run_all(q4, d, commands=COMMANDS) -> dict[str, tuple[str, str, str]]:
    res = {}
    for cmd in commands:
        rc, out, err = run_cli(_argv(cmd, q4, d))
        res[cmd] = (outcome(rc, err), out, err)
        assert res[cmd][0] in ("clean", "accepted"), f"{cmd}: rc {rc}: {err[-600:]}"
        assert "\x1b" not in out + err and "\u202e" not in out + err, f"{cmd}: escape sequence printed"
    return res


# ------------------------------------------------------------------------- 1a: corrupt bytes


def test_truncated_and_mutated_bytes_are_rejected(base):
    """Class 1a: 40 truncations and 120 seeded mutations; load_q4 raises Q4Error for each."""
    raw = (base / "m.q4").read_bytes()
    rng = np.random.default_rng(1)
    cases = [raw[: int(n)] for n in np.linspace(0, len(raw) - 1, 40)]
    for _ in range(120):
        b = bytearray(raw)
        how = rng.integers(5)
        pos = int(rng.integers(len(b)))
        if how == 0:
            b[pos] ^= 1 << int(rng.integers(8))
        elif how == 1:
            b[pos : pos + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        elif how == 2:
            b[pos:pos] = b"\x00"
        elif how == 3:
            del b[pos]
        else:  # header fields: version, lengths
            off = int(rng.choice([8, 12, 20]))
            b[off : off + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        cases.append(bytes(b))
    p = base / "bad.q4"
    for i, c in enumerate(cases):
        p.write_bytes(c)
        with pytest.raises(Q4Error) as info:
            load_q4(p)
        assert "\n" not in str(info.value), i


# ------------------------------------------------------------------------- 1b: hostile manifests


def _tensor(m, name):
    return next(t for t in m["tensors"] if t["name"] == name)


def _op(m, name):
    return next(o for o in m["ops"] if o["name"] == name)


def _set_meta(key, value):
    return lambda m: m["meta"].__setitem__(key, value)


def _deep(n):
    return _raw('"meta":{', '"meta":{"d":' + "[" * n + "]" * n + ",")


def _raw(old: str, new: str):
    """Replace the first ``old`` in the compact manifest JSON text (it must occur)."""

    def edit(m):
        text = json.dumps(m, separators=(",", ":"))
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def _rename_tensor(old, new):
    def edit(m):
        text = json.dumps(m)
        return text.replace(json.dumps(old)[:-1] + '"', json.dumps(new))

    return edit


# every D4 / D6 / D7 / D9 reproducer of the review, and more of the same classes:
# (id, edit, commands that must reject it with a clean error)
REJECTED = [
    ("D4 input_residual list", _set_meta("input_residual", ["x"]), COMMANDS),
    ("D4 input_residual dict", _set_meta("input_residual", {"a": 1}), COMMANDS),
    ("D4 input_residual unknown", _set_meta("input_residual", "nope"), COMMANDS),
    ("D4 deep JSON", _deep(100000), COMMANDS),
    ("D4 deep meta", _deep(200), COMMANDS),
    ("D4 input scale 1e-39", lambda m: _tensor(m, "x").__setitem__("scale", 1e-39), COMMANDS),
    ("D4 input scale 1e300", lambda m: _tensor(m, "x").__setitem__("scale", 1e300), COMMANDS),
    ("D4 input scale 5e-324", lambda m: _tensor(m, "x").__setitem__("scale", 5e-324), COMMANDS),
    ("D4 output scale 1e300", lambda m: _tensor(m, "y").__setitem__("scale", 1e300), COMMANDS),
    ("D4 inner scale 1e-39", lambda m: _tensor(m, "c2").__setitem__("scale", 1e-39), COMMANDS),
    ("D4 scale 10^400", _raw('"scale":0.07', '"scale":1' + "0" * 400), COMMANDS),
    ("D4 meta 1e400", _raw('"ratio":', '"ratio":1e400,"r2":'), COMMANDS),
    ("D4 recipe not a dict", _set_meta("recipe", 5), COMMANDS),
    ("D4 layer_stats not a dict", _set_meta("layer_stats", [1]), COMMANDS),
    ("D4 layer_stats entry", _set_meta("layer_stats", {"conv1": 5}), COMMANDS),
    ("D4 layer_stats value", _set_meta("layer_stats", {"conv1": {"weight_mse": "x"}}), COMMANDS),
    ("D4 weight_bits str", _set_meta("weight_bits", "4"), COMMANDS),
    ("D4 input_shape_float 5", _set_meta("input_shape_float", 5), COMMANDS),
    ("D4 input_shape_float wrong size", _set_meta("input_shape_float", [3, 8, 9]), COMMANDS),
    ("D4 source_path 5", _set_meta("source_path", 5), COMMANDS),
    ("D4 source_path NUL", _set_meta("source_path", "a\u0000b"), COMMANDS),
    ("D4 input_layout", _set_meta("input_layout", ["NHWC"]), COMMANDS),
    ("D4 300-char model name", lambda m: m.__setitem__("name", "n" * 300), ("generate",)),
    ("D9 2000-char model name", lambda m: m.__setitem__("name", "n" * 2000), COMMANDS),
    ("D4 shape 2^40", lambda m: _tensor(m, "x").__setitem__("shape", [8, 8, 2**40]), COMMANDS),
    (
        "D4 array shape 2^70",
        lambda m: _op(m, "conv1")["arrays"][0].__setitem__("shape", [0, 2**70]),
        COMMANDS,
    ),
    (
        "D6 maxpool pads >= kernel",
        lambda m: (
            _op(m, "mp1")["attrs"].update(pads=[2, 2, 2, 2], stride=[4, 4]),
            _tensor(m, "mp").__setitem__("shape", [2, 2, 4]),
            _op(m, "ap1")["attrs"].update(kernel=[1, 1]),
        ),
        COMMANDS,
    ),
    ("D6 stride 2^31", lambda m: _op(m, "conv1")["attrs"].__setitem__("stride", [2**31, 1]), COMMANDS),
    ("D9 newline in model name", lambda m: m.__setitem__("name", "a\nerror: fake"), COMMANDS),
    ("D9 ANSI in tensor name", _rename_tensor("c2", "c2\x1b[31mred"), COMMANDS),
    ("D9 RTL override in op name", lambda m: _op(m, "conv1").__setitem__("name", "conv\u202e1"), COMMANDS),
    ("D9 NUL in tensor name", _rename_tensor("c2", "c\u00002"), COMMANDS),
    ("D9 10,000-char tensor name", _rename_tensor("c2", "c" * 10000), COMMANDS),
    ("D9 lone surrogate in name", _raw('"name":"conv1"', '"name":"conv\\ud8001"'), COMMANDS),
    ("D9 lone surrogate in meta", _raw('"note":', '"n2":"\\udc00","note":'), COMMANDS),
    ("D9 newline in op input", lambda m: _op(m, "conv2")["inputs"].__setitem__(0, "c\n1"), COMMANDS),
    ("D7 name q4_kernels", lambda m: m.__setitem__("name", "q4_kernels"), ("generate",)),
    ("D7 name stdint", lambda m: m.__setitem__("name", "stdint"), ("generate",)),
    ("D7 name stddef", lambda m: m.__setitem__("name", "stddef"), ("generate",)),
    ("D7 name STDIO", lambda m: m.__setitem__("name", "STDIO"), ("generate",)),
]


@pytest.mark.parametrize("case", REJECTED, ids=[c[0] for c in REJECTED])
def test_hostile_manifest_is_a_clean_error(base, case):
    _, edit, must_reject = case
    q4 = base / "h.q4"
    q4.write_bytes(reseal((base / "m.q4").read_bytes(), edit))
    res = _run_all(q4, base)
    for cmd in must_reject:
        assert res[cmd][0] == "clean", f"{cmd} accepted the file: {res[cmd][1][-300:]}"
        assert len(res[cmd][2].strip().splitlines()) == 1


def test_bias_at_the_int32_bound_is_rejected(base, tmp_path):
    """D6: |bias| + 2040 K >= 2^31 is refused at load (not only at generate)."""
    m = every_kind_model()
    m.ops[2].arrays["bias"][0] = 2**31 - 1
    raw = q4file._encode(m)  # bypasses save_q4's checks, as a hostile writer would
    (tmp_path / "b.q4").write_bytes(raw)
    tiny_data(tmp_path / "data.npz")
    res = _run_all(tmp_path / "b.q4", tmp_path)
    assert all(r[0] == "clean" for r in res.values())
    assert "accumulator" in res["inspect"][2]


def test_oversize_model_is_rejected(tmp_path):
    """D6 (class 1f): a self-consistent pad op whose output is 2^31 + 1 wide: the loader and
    generate refuse it instead of writing C whose int32 dims overflow."""
    t = {"x": QTensor("x", (1, 1, 1), 8, 1.0, 0), "p": QTensor("p", (1, 2**31 + 1, 1), 8, 1.0, 0)}
    big = QModel(
        "big",
        "x",
        "p",
        t,
        [QOp("pad", "pad", ["x"], "p", {"pads": [0, 0, 0, 2**31]})],
        {"input_layout": "NHWC"},
    )
    with pytest.raises(Q4Error, match="int32"):
        save_q4(big, tmp_path / "big.q4")
    (tmp_path / "big.q4").write_bytes(q4file._encode(big))
    rc, _, err = run_cli(["generate", str(tmp_path / "big.q4"), "-o", str(tmp_path / "g")])
    assert outcome(rc, err) == "clean" and "int32" in err
    assert not (tmp_path / "g").exists()


def test_inspect_escapes_control_characters_in_meta(base):
    """D9: meta strings may hold anything; inspect shows escapes, not terminal controls."""
    q4 = base / "esc.q4"
    q4.write_bytes(
        reseal((base / "m.q4").read_bytes(), _set_meta("note", "\x1b]0;pwned\x07 \u202eevil \x00 end"))
    )
    rc, out, err = run_cli(["inspect", str(q4)])
    assert rc == 0, err
    assert "\x1b" not in out and "\u202e" not in out and "\x00" not in out and "\x07" not in out
    assert "]0;pwned" in out and "\\u202e" in out


def test_legitimate_odd_names_still_generate_and_compile(base, tmp_path):
    """Names that are merely unusual (non-ASCII, quotes, comment markers, 255 bytes) load,
    generate and compile; only the C prefix must be an identifier."""
    q4 = tmp_path / "odd.q4"
    q4.write_bytes(
        reseal(
            (base / "m.q4").read_bytes(),
            lambda m: (
                json.dumps(m)
                .replace('"c2"', json.dumps('модель "*/ ??/ \\\\'))
                .replace('"conv1"', json.dumps("c" * 1024))
            ),
        )
    )
    rc, _, err = run_cli(["generate", str(q4), "-o", str(tmp_path / "g"), "--name", "odd"])
    assert rc == 0, err
    srcs = [str(tmp_path / "g" / f) for f in ("odd.c", "odd_weights.c")]
    res = subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-trigraphs",
            "-fsyntax-only",
            "-I",
            str(tmp_path / "g"),
            *srcs,
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------------- random manifest edits

_HOSTILE_VALUES = [
    None,
    True,
    -1,
    0,
    1,
    2**31,
    -(2**31) - 1,
    2**63,
    2**80,
    1e308,
    -1e-320,
    0.5,
    "",
    "x" * 300,
    "\n",
    "\x1b[2J",
    [],
    {},
    [[]],
    [1, 2, 3],
    {"a": []},
    [2**31, 1],
]


def _paths(v, path=()):
    yield path
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _paths(x, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _paths(x, path + (i,))


def test_random_manifest_edits(base):
    """250 seeded random edits of one manifest value (any depth) to a hostile value, re-sealed:
    loading raises Q4Error or gives a model that generate and the oracle handle (Q4Error or a
    result), never another exception."""
    from q4sdk.codegen.render import render
    from q4sdk.ir.oracle import input_shape, run_oracle

    raw = (base / "m.q4").read_bytes()
    _, _, manifest, _ = split(raw)
    paths = [p for p in _paths(manifest) if p]
    rng = np.random.default_rng(2)
    q4 = base / "r.q4"
    outcomes = {"rejected": 0, "accepted": 0}
    for _ in range(250):
        path = paths[int(rng.integers(len(paths)))]
        value = _HOSTILE_VALUES[int(rng.integers(len(_HOSTILE_VALUES)))]

        def edit(m, path=path, value=value):
            cur = m
            for k in path[:-1]:
                cur = cur[k]
            cur[path[-1]] = value

        q4.write_bytes(reseal(raw, edit))
        try:
            model = load_q4(q4)
        except Q4Error as e:
            assert "\n" not in str(e)
            outcomes["rejected"] += 1
            continue
        outcomes["accepted"] += 1
        try:
            render(model, "net")
        except Q4Error:
            pass
        run_oracle(model, np.zeros((1, *input_shape(model)), np.int8))
    assert outcomes["rejected"] > 100 and outcomes["accepted"] >= 1, outcomes


def test_sealed_non_q4_json_is_rejected(tmp_path):
    for text in ("[]", "null", "1", '"x"', "{}", '{"format": "q4sdk-model"}'):
        p = tmp_path / "j.q4"
        p.write_bytes(seal(text, b""))
        with pytest.raises(Q4Error):
            load_q4(p)
