"""q4sdk.ir.limits: the int32, scale, name and meta limits every loaded, saved or generated model
keeps (the unit view; tests/fuzz drives the same faults through files and the CLI)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from q4sdk.errors import Q4Error
from q4sdk.ir.limits import INT32_LIMIT, SCALE_MAX, SCALE_MIN, check_c_name, check_limits, printable
from q4sdk.ir.qmodel import QModel, QOp, QTensor


def _pad_model(width: int) -> QModel:
    t = {"x": QTensor("x", (1, 1, 1), 8, 1.0, 0), "p": QTensor("p", (1, width, 1), 8, 1.0, 0)}
    return QModel("m", "x", "p", t, [QOp("pad", "pad", ["x"], "p", {"pads": [0, 0, 0, width - 1]})], {})


def test_int32_bounds_are_exact():
    check_limits(_pad_model(1000))
    with pytest.raises(Q4Error, match="int32"):
        check_limits(_pad_model(INT32_LIMIT))  # 2^31 elements
    m = _pad_model(INT32_LIMIT - 40)  # one tensor fits, the arena (both + alignment) does not
    m.tensors["x"] = QTensor("x", (1, 1, 24), 8, 1.0, 0)
    with pytest.raises(Q4Error, match="arena"):
        check_limits(m)


@pytest.mark.parametrize(
    "scale,ok",
    [
        (SCALE_MIN, True),
        (SCALE_MAX, True),
        (SCALE_MIN / 2, False),
        (SCALE_MAX * 2, False),
        (1e-39, False),
        (1e300, False),
    ],
)
def test_scale_range(scale, ok):
    m = _pad_model(4)
    m.tensors["p"] = QTensor("p", (1, 4, 1), 8, scale, 0)
    if ok:
        check_limits(m)
        assert np.isfinite(np.float32(1 / scale)) and np.float32(scale) > 0
    else:
        with pytest.raises(Q4Error, match=r"tensor 'p': field 'scale'"):
            check_limits(m)


def test_bad_scales_of_other_kinds_are_left_to_validate_model():
    m = _pad_model(4)
    m.tensors["p"] = QTensor("p", (1, 4, 1), 8, float("nan"), 0)
    check_limits(m)  # validate_model reports "must be finite and > 0"


@pytest.mark.parametrize(
    "name,ok",
    [
        ("résumé/层", True),
        ("a" * 1024, True),
        ("a" * 1025, False),
        ("a\nb", False),
        ("a\x1b[2Jb", False),
        ("a\u202eb", False),
        ("a\x00b", False),
        ("a\ud800", False),
        ("a\u0085b", False),
    ],
)
def test_names(name, ok):
    m = _pad_model(4)
    m.ops[0].name = name
    if ok:
        check_limits(m)
    else:
        with pytest.raises(Q4Error) as info:
            check_limits(m)
        assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


@pytest.mark.parametrize(
    "name",
    ["stdint", "STDDEF", "stdio", "q4_kernels", "q4_runtime", "Q4_Packed", "q4_conv2d_s4", "main", "x" * 129],
)
def test_c_names_that_break_the_build_are_refused(name):
    with pytest.raises(Q4Error, match="--name"):
        check_c_name(name)


@pytest.mark.parametrize("name", ["net", "q4_resnet", "stdint_net", "x" * 128, "Main2"])
def test_ordinary_c_names_pass(name):
    check_c_name(name)


@pytest.mark.parametrize(
    "key,value",
    [
        ("input_residual", ["x"]),
        ("input_residual", "nope"),
        ("input_layout", "CHW"),
        ("input_shape_float", [1, 5]),
        ("input_shape_float", "4"),
        ("weight_bits", True),
        ("source_path", "a\x00b"),
        ("recipe", []),
        ("layer_stats", {"pad": []}),
        ("layer_stats", {"pad": {"weight_mse": "x"}}),
        ("quantize_seconds", -1.0),
        ("deep", [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
        ("f", float("inf")),
    ],
)
def test_meta_fields_the_tools_read(key, value):
    m = _pad_model(4)
    m.meta[key] = value
    with pytest.raises(Q4Error, match="meta"):
        check_limits(m)


def test_legitimate_meta_passes():
    m = _pad_model(4)
    m.meta.update(
        input_layout="NHWC",
        input_shape_float=[1, 1, 1],
        weight_bits=4,
        recipe={"a": [1, "b"]},
        layer_stats={"pad": {"weight_mse": 0.1, "scale_over_max": [1.0, 0.9], "dual": True}},
        source_path="/x/y.onnx",
        note={"free": [{"json": None}]},
    )
    check_limits(m)


def test_accumulator_bound_and_maxpool_pads():
    rng = np.random.default_rng(0)
    x, y = QTensor("x", (1, 1, 4), 8, 1.0, 0), QTensor("y", (3,), 8, 1.0, 0)
    fc = QOp(
        "fc",
        "fully_connected",
        ["x"],
        "y",
        {"act_min": -128, "act_max": 127},
        {
            "weight": rng.integers(-8, 8, (3, 4)).astype(np.int8),
            "bias": np.zeros(3, np.int32),
            "multiplier": np.full(3, 1 << 30, np.int32),
            "shift": np.full(3, 31, np.int32),
        },
    )
    m = QModel("m", "x", "y", {"x": x, "y": y}, [fc], {})
    check_limits(m)
    fc.arrays["bias"][1] = INT32_LIMIT - 2040 * 4
    with pytest.raises(Q4Error, match="bias too large"):
        check_limits(m)
    fc.arrays["bias"][1] = INT32_LIMIT - 2040 * 4 - 1
    check_limits(m)
    mp = copy.deepcopy(_pad_model(4))
    mp.ops[0] = QOp("mp", "maxpool", ["x"], "p", {"kernel": [2, 2], "stride": [1, 1], "pads": [0, 2, 0, 0]})
    with pytest.raises(Q4Error, match="smaller than the kernel"):
        check_limits(mp)


def test_printable():
    assert printable("a\x1b[31mb\u202ec\\") == "a\\x1b[31mb\\u202ec\\\\"
    assert printable("ok ✓ 层") == "ok ✓ 层"
