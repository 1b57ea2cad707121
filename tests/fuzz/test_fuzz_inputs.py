"""Bad input files (census classes 2, 3a, 3b): hostile ONNX graphs and files into ``quantize``,
bad calibration arrays into ``quantize`` and bad test data into ``verify`` / ``report``. Each run
ends in a one-line ``error:`` naming the culprit (exit 2) or a correct result, never an internal
error; D12's data-loading edge cases are named cases."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hostile import every_kind_model, outcome, run_cli, tiny_data
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from q4sdk.check.datasets import load_samples
from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.ir.q4file import save_q4

RNG = np.random.default_rng(0)


def _f(name, a):
    return nh.from_array(np.asarray(a, np.float32), name)


def _model(nodes, inits, inputs=None, outputs=None, opset=17):
    inputs = inputs or [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 8, 8])]
    outputs = outputs or [h.make_tensor_value_info("y", T.FLOAT, None)]
    m = h.make_model(
        h.make_graph(nodes, "g", inputs, outputs, inits), opset_imports=[h.make_opsetid("", opset)]
    )
    m.ir_version = 8
    return m


def _conv_head(mid_nodes, mid_out, extra_inits=(), w=None, b=None, c=4):
    """x -> conv (3->c) -> mid_nodes (reading 'c1', writing mid_out) -> GAP -> Flatten -> y."""
    w = RNG.normal(0, 0.3, (c, 3, 3, 3)) if w is None else w
    b = np.zeros(c) if b is None else b
    nodes = [
        h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        *mid_nodes,
        h.make_node("GlobalAveragePool", [mid_out], ["g"], name="gap"),
        h.make_node("Flatten", ["g"], ["y"], name="flat"),
    ]
    return _model(nodes, [_f("w1", w), _f("b1", b), *extra_inits])


def _unsupported(op, **attrs):
    return _conv_head([h.make_node(op, ["c1"], ["u"], name="bad_node", **attrs)], "u")


ONNX_CASES = {
    "control": lambda: _conv_head([h.make_node("Relu", ["c1"], ["r"], name="relu")], "r"),
    "Erf": lambda: _unsupported("Erf"),
    "Softplus": lambda: _unsupported("Softplus"),
    "Softsign": lambda: _unsupported("Softsign"),
    "Softmax on the batch axis": lambda: _unsupported("Softmax", axis=0),
    "Concat on the batch axis": lambda: _conv_head(
        [h.make_node("Concat", ["c1", "c1"], ["u"], axis=0, name="bad_node")], "u"
    ),
    "Div by an activation": lambda: _conv_head(
        [h.make_node("Div", ["c1", "c1"], ["u"], name="bad_node")], "u"
    ),
    "dilated maxpool": lambda: _unsupported("MaxPool", kernel_shape=[3, 3], dilations=[2, 2]),
    "rank-3 input": lambda: _model(
        [h.make_node("Relu", ["x"], ["y"])], [], [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 8])]
    ),
    "int8 input": lambda: _model(
        [h.make_node("Relu", ["x"], ["y"])], [], [h.make_tensor_value_info("x", T.INT8, ["N", 3, 8, 8])]
    ),
    "symbolic H/W": lambda: _model(
        [h.make_node("Relu", ["x"], ["y"])], [], [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, "H", "W"])]
    ),
    "two inputs": lambda: _model(
        [h.make_node("Add", ["x", "x2"], ["y"])],
        [],
        [
            h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 8, 8]),
            h.make_tensor_value_info("x2", T.FLOAT, ["N", 3, 8, 8]),
        ],
    ),
    "output = input": lambda: _model(
        [], [], outputs=[h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 8, 8])]
    ),
    "no nodes": lambda: _model([], []),
    "NaN weight": lambda: _conv_head(
        [h.make_node("Relu", ["c1"], ["r"])], "r", w=np.where(RNG.random((4, 3, 3, 3)) < 0.1, np.nan, 0.1)
    ),
    "huge weight 1e30": lambda: _conv_head(
        [h.make_node("Relu", ["c1"], ["r"])], "r", w=np.full((4, 3, 3, 3), 1e30)
    ),
}
# D3, degenerate numbers in the float model: refused at import naming the initializer, or quantized
ONNX_D3 = {
    "Inf weight": lambda: _conv_head(
        [h.make_node("Relu", ["c1"], ["r"])], "r", w=np.full((4, 3, 3, 3), np.inf)
    ),
    "NaN bias": lambda: _conv_head([h.make_node("Relu", ["c1"], ["r"])], "r", b=[np.nan, 0, 0, 0]),
    "dead ReLU": lambda: _conv_head(
        [
            h.make_node("Relu", ["c1"], ["r"]),
            h.make_node("Conv", ["r", "w2", "b2"], ["u"], pads=[1, 1, 1, 1]),
        ],
        "u",
        [_f("w2", RNG.normal(0, 0.3, (4, 4, 3, 3))), _f("b2", [0.1, -0.2, 0.3, 0.05])],
        b=[-100] * 4,
    ),
    "Clip min > max": lambda: _conv_head(
        [h.make_node("Clip", ["c1", "lo", "hi"], ["u"])], "u", [_f("lo", 6.0), _f("hi", 0.0)]
    ),
}


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    np.savez(d / "calib.npz", x=RNG.uniform(0, 1, (8, 3, 8, 8)).astype(np.float32))
    return d


def _quantize(d, onnx_path, calib_name="calib.npz", extra=()):
    return run_cli(
        [
            "quantize",
            str(onnx_path),
            "--calib",
            str(d / calib_name),
            "-o",
            str(d / "o.q4"),
            "--force",
            "-q",
            *extra,
        ]
    )


def _check_onnx_case(d, name, build):
    path = d / "m.onnx"
    onnx.save(build(), path)
    (d / "o.q4").unlink(missing_ok=True)
    rc, _, err = _quantize(d, path)
    kind = outcome(rc, err)
    assert kind in ("clean", "accepted"), f"{name}: {err[-400:]}"
    if kind == "clean":
        assert not (d / "o.q4").exists()
    return kind


@pytest.mark.parametrize("name", list(ONNX_CASES))
def test_hostile_onnx_graph(calib, name):
    kind = _check_onnx_case(calib, name, ONNX_CASES[name])
    if name == "control":
        assert kind == "accepted"
    elif name not in ("huge weight 1e30", "NaN weight"):
        assert kind == "clean"


@pytest.mark.parametrize("name", list(ONNX_D3))
def test_degenerate_onnx_graph(calib, name):
    kind = _check_onnx_case(calib, name, ONNX_D3[name])
    # NaN/Inf in the model is refused at import; a merely degenerate model quantizes
    assert kind == ("clean" if name in ("Inf weight", "NaN bias") else "accepted"), name


@pytest.mark.parametrize("content", [b"", b"not onnx at all", bytes(range(256)) * 4, b"PK\x03\x04junk"])
def test_non_onnx_files(calib, content):
    path = calib / "bad.onnx"
    path.write_bytes(content)
    rc, _, err = _quantize(calib, path)
    assert outcome(rc, err) == "clean" and "bad.onnx" in err


def test_truncated_onnx_and_odd_paths(calib):
    good = calib / "good.onnx"
    onnx.save(ONNX_CASES["control"](), good)
    raw = good.read_bytes()
    for cut in (len(raw) // 3, len(raw) // 2, len(raw) - 5):
        (calib / "cut.onnx").write_bytes(raw[:cut])
        rc, _, err = _quantize(calib, calib / "cut.onnx")
        assert outcome(rc, err) == "clean", err
    for path in (calib / "missing.onnx", calib):
        rc, _, err = _quantize(calib, path)
        assert outcome(rc, err) == "clean", err


# ------------------------------------------------------------------------- 3a: calibration data

CALIB_CASES = {  # name -> (array or callable writing the file, expected: clean / accepted)
    "NaN": (lambda x: np.where(x > 0.9, np.nan, x), "clean"),
    "Inf": (lambda x: np.where(x > 0.9, np.inf, x), "clean"),
    "empty": (lambda x: x[:0], "clean"),
    "one sample": (lambda x: x[:1], "accepted"),
    "wrong H/W": (lambda x: x[:, :, :4], "clean"),
    "rank 3": (lambda x: x[:, 0], "clean"),
    "NHWC without --nhwc": (lambda x: x.transpose(0, 2, 3, 1), "clean"),
    "float64": (lambda x: x.astype(np.float64), "accepted"),
    "float16": (lambda x: x.astype(np.float16), "accepted"),
    "uint8": (lambda x: (x * 255).astype(np.uint8), "accepted"),
    "int64 scaled by 2^40": (lambda x: (x * 255).astype(np.int64) << 40, "clean"),
    "bool": (lambda x: x > 0.5, "clean"),
    "complex": (lambda x: x.astype(np.complex64), "clean"),
    "str": (lambda x: np.array(["a", "b"]), "clean"),
    "0-d": (lambda x: np.float32(3), "clean"),
    "float64 beyond float32": (lambda x: np.where(x > 0.9, 1e300, x.astype(np.float64)), "clean"),
}


@pytest.mark.parametrize("name", list(CALIB_CASES))
def test_bad_calibration_data(calib, name):
    make, expected = CALIB_CASES[name]
    onnx.save(ONNX_CASES["control"](), calib / "c.onnx")
    x = RNG.uniform(0, 1, (8, 3, 8, 8)).astype(np.float32)
    np.savez(calib / "bad_calib.npz", x=make(x))
    rc, _, err = _quantize(calib, calib / "c.onnx", "bad_calib.npz")
    assert outcome(rc, err) == expected, err
    if expected == "clean":
        assert "bad_calib.npz" in err or "calibration data" in err


def test_calibration_file_faults(calib):
    onnx.save(ONNX_CASES["control"](), calib / "c.onnx")
    np.save(calib / "x.npy", RNG.uniform(0, 1, (8, 3, 8, 8)).astype(np.float32))
    assert outcome(*_quantize(calib, calib / "c.onnx", "x.npy")[::2]) == "accepted"
    np.savez(calib / "noxy.npz", z=np.zeros(3))
    np.save(calib / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (calib / "t.txt").write_text("1 2 3")
    (calib / "trunc.npz").write_bytes((calib / "calib.npz").read_bytes()[:100])
    (calib / "adir.npz").mkdir(exist_ok=True)
    for name in ("noxy.npz", "obj.npy", "t.txt", "trunc.npz", "adir.npz", "missing.npz"):
        rc, _, err = _quantize(calib, calib / "c.onnx", name)
        assert outcome(rc, err) == "clean" and name in err, (name, err)


# ------------------------------------------------------------------------- 3b: test data (D12)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    save_q4(every_kind_model(), d / "m.q4")
    generate(every_kind_model(), d / "gen", "net")
    tiny_data(d / "good.npz", n=8)
    return d


LABEL_CASES = {
    "strings": np.array(list("abcdefgh")),
    "floats 3.7": np.array([0, 1, 2, 3.7, 0, 1, 2, 0]),
    "2-D": np.zeros((8, 1), np.int64),
    "too few": np.zeros(5, np.int64),
    "negative": np.array([0, 1, -1, 0, 1, 2, 0, 1]),
    "out of range": np.array([0, 1, 7, 0, 1, 2, 0, 1]),
    "bool": np.ones(8, bool),
    "NaN": np.array([0, 1, np.nan, 0, 1, 2, 0, 1]),
}


@pytest.mark.parametrize("name", list(LABEL_CASES))
@pytest.mark.parametrize("cmd", ["verify", "report"])
def test_bad_labels(model_dir, name, cmd):
    """D12: string, fractional, 2-D, short, negative, out-of-range, bool and NaN labels are
    one-line errors naming the file (never silently truncated or an internal error)."""
    d = model_dir
    x = np.load(d / "good.npz")["x"]
    np.savez(d / "bad.npz", x=x, y=LABEL_CASES[name])
    argv = (
        ["verify", str(d / "m.q4"), str(d / "gen"), "--data", str(d / "bad.npz")]
        if cmd == "verify"
        else ["report", str(d / "m.q4"), "--data", str(d / "bad.npz"), "-o", str(d / f"rep_{name}")]
    )
    rc, _, err = run_cli(argv)
    assert outcome(rc, err) == "clean", err
    assert "bad.npz" in err or "labels" in err


def test_integral_float_labels_are_accepted(model_dir):
    x = np.load(model_dir / "good.npz")["x"]
    np.savez(model_dir / "f.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2, 0, 1], np.float64))
    assert list(load_samples(model_dir / "f.npz").y) == [0, 1, 2, 0, 1, 2, 0, 1]


@pytest.mark.parametrize(
    "count,start,message",
    [
        (-1, 0, "count must be >= 1"),
        (0, 0, "count must be >= 1"),
        (None, -3, "must be >= 0"),
        (None, 8, "past the end"),
        (None, 100, "past the end"),
    ],
)
def test_count_and_start_are_checked(model_dir, count, start, message):
    """D12: --count -1 used to drop the last sample, --start -3 to count from the end."""
    with pytest.raises(Q4Error, match=message):
        load_samples(model_dir / "good.npz", limit=count, start=start)
    argv = [
        "verify",
        str(model_dir / "m.q4"),
        str(model_dir / "gen"),
        "--data",
        str(model_dir / "good.npz"),
        "--start",
        str(start),
        *(["--count", str(count)] if count is not None else []),
    ]
    rc, _, err = run_cli(argv)
    assert outcome(rc, err) == "clean" and "good.npz" in err


def test_count_and_start_select_exactly(model_dir):
    s = load_samples(model_dir / "good.npz", limit=3, start=5)
    full = load_samples(model_dir / "good.npz")
    np.testing.assert_array_equal(s.x, full.x[5:8])
    assert len(load_samples(model_dir / "good.npz", limit=100, start=6).x) == 2


@pytest.mark.parametrize(
    "x,message",
    [
        (np.float32(1.0), "0-d"),
        (np.ones((2, 3, 8, 8), bool), "boolean"),
        (np.ones((2, 3, 8, 8), np.complex64), "complex"),
        (np.array(["a"]), "string"),
        (np.full((2, 3, 8, 8), 1 << 40, np.int64), "2\\^24"),
        (np.full((2, 3, 8, 8), 1e300), "float32 range"),
    ],
)
def test_bad_x_arrays(model_dir, x, message):
    np.savez(model_dir / "bx.npz", x=x)
    with pytest.raises(Q4Error, match=message) as info:
        load_samples(model_dir / "bx.npz")
    assert "bx.npz" in str(info.value) and "'x'" in str(info.value)
