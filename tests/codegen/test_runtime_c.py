"""The C kernels, compiled through the generator and cffi, equal the numpy oracle bit for bit.

``random_model`` (tests/random_models.py) builds small random QModels covering every op kind.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from q4sdk.ir.oracle import run_oracle
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.resources import RUNTIME_DIR
from random_models import (
    SPATIAL_OPS,
    WARN_FLAGS,
    assert_c_equals_oracle,
    build_c,
    random_input,
    random_model,
    sanitized_outputs,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 7))
def test_random_models_match_oracle(tmp_path, seed, n_ops):
    rng = np.random.default_rng(seed)
    model = random_model(rng, n_ops=n_ops, name=f"m{seed}")
    cm = build_c(model, Path(tempfile.mkdtemp(dir=tmp_path)), "m")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 24))


@pytest.mark.parametrize("kind", SPATIAL_OPS)
def test_every_op_kind_many_shapes(tmp_path, kind):
    """One model per kind with many layers of that kind (and the fc head): broad shape coverage."""
    rng = np.random.default_rng(100 + SPATIAL_OPS.index(kind))
    model = random_model(rng, n_ops=10, kinds=(kind,), name=f"k_{kind}")
    assert any(op.kind == kind for op in model.ops)
    cm = build_c(model, tmp_path, f"k_{kind}")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 32))


def test_multi_term_layers(tmp_path):
    """Dual weights and residual-quantized inputs: T accumulators, one rounding, as the oracle."""
    rng = np.random.default_rng(123)
    model = random_model(rng, n_ops=10, kinds=("conv2d", "depthwise_conv2d"), name="terms")
    shapes = {(op.kind, len(op.inputs), "weight2" in op.arrays) for op in model.ops}
    assert {
        ("conv2d", 1, True),
        ("conv2d", 2, True),
        ("conv2d", 2, False),
        ("depthwise_conv2d", 2, False),
    } <= shapes
    cm = build_c(model, tmp_path, "terms")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 24))


def test_extreme_values_saturate_identically(tmp_path):
    """All -8 weights, inputs at the int8 extremes, small shifts: saturation on both sides."""
    rng = np.random.default_rng(7)
    model = random_model(rng, n_ops=8, extreme=True, name="extreme")
    t = model.input_tensor
    xq = np.stack(
        [np.full(t.shape, t.qmin, np.int8), np.full(t.shape, t.qmax, np.int8), *random_input(model, rng, 6)]
    )
    cm = build_c(model, tmp_path, "extreme")
    out = cm.run(xq)
    assert {int(out.min()), int(out.max())} & {model.output_tensor.qmin, model.output_tensor.qmax}
    assert_c_equals_oracle(cm, model, xq)


def _single_fc_model(weight, bias, mult, shift, in_zp=0, out_zp=0) -> QModel:
    o, i = weight.shape
    tensors = {"x": QTensor("x", (i,), 8, 1.0, in_zp), "y": QTensor("y", (o,), 8, 1.0, out_zp)}
    op = QOp(
        "fc",
        "fully_connected",
        ["x"],
        "y",
        {"act_min": -128, "act_max": 127},
        {
            "weight": weight.astype(np.int8),
            "bias": np.asarray(bias, np.int32),
            "multiplier": np.asarray(mult, np.int32),
            "shift": np.asarray(shift, np.int32),
        },
    )
    return QModel("fc", "x", "y", tensors, [op], {"input_layout": "NHWC"})


def test_requantize_ties_and_negative_rounding(tmp_path):
    """acc * m / 2^s exactly half-way (positive and negative): rounds towards +inf like the oracle."""
    # weight 1 on one input: acc = x + bias; m = 2^30, s = 31 -> y = floor(acc / 2 + 1/2)
    weight = np.array([[1], [-1], [1]])
    model = _single_fc_model(weight, [0, 0, 1], [1 << 30] * 3, [31, 31, 32])
    xq = np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    cm = build_c(model, tmp_path, "ties")
    out = cm.run(xq).astype(np.int64)
    x = np.arange(-128, 128)
    np.testing.assert_array_equal(out[:, 0], np.floor(x / 2 + 0.5))
    np.testing.assert_array_equal(out[:, 1], np.floor(-x / 2 + 0.5))
    np.testing.assert_array_equal(out, run_oracle(model, xq))


def test_odd_row_packing_and_large_k(tmp_path):
    """Odd K (half-byte row padding) with the largest accumulators the range check allows."""
    rng = np.random.default_rng(3)
    weight = rng.choice([-8, 7], size=(5, 301))
    model = _single_fc_model(
        weight,
        rng.integers(-(10**6), 10**6, 5),
        rng.integers(1 << 30, 1 << 31, 5),
        [40, 41, 42, 43, 44],
        in_zp=127,
        out_zp=-3,
    )
    xq = np.concatenate(
        [
            np.full((1, 301), -128, np.int8),
            np.full((1, 301), 127, np.int8),
            rng.integers(-128, 128, (6, 301)).astype(np.int8),
        ]
    )
    cm = build_c(model, tmp_path, "oddk")
    np.testing.assert_array_equal(cm.run(xq), run_oracle(model, xq))


@pytest.mark.parametrize("compiler", ["gcc", "clang", "arm-none-eabi-gcc"])
def test_runtime_compiles_warning_free(tmp_path, compiler):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    extra = ["-mcpu=cortex-m4", "-mthumb", "-ffreestanding"] if compiler.startswith("arm") else []
    for src in sorted((RUNTIME_DIR / "src").rglob("*.c")):
        res = subprocess.run(
            [
                compiler,
                *WARN_FLAGS,
                "-Wconversion",
                "-Wshadow",
                "-O2",
                *extra,
                "-I",
                str(RUNTIME_DIR / "include"),
                "-I",
                str(RUNTIME_DIR / "include" / "internal"),
                "-c",
                str(src),
                "-o",
                str(tmp_path / f"{src.stem}.o"),
            ],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, f"{src.name}: {res.stderr}"


@pytest.mark.parametrize("seed,kinds", [(11, SPATIAL_OPS), (123, ("conv2d", "depthwise_conv2d"))])
def test_sanitizers_on_random_model(tmp_path, seed, kinds):
    """ASan + UBSan build of a generated model (the second one has multi-term layers) run from a
    tiny C main on random inputs."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    rng = np.random.default_rng(seed)
    model = random_model(rng, n_ops=10 if seed == 123 else 7, kinds=kinds, name="san")
    xq = random_input(model, rng, 16)
    out = sanitized_outputs(model, xq, tmp_path)
    np.testing.assert_array_equal(out, run_oracle(model, xq).reshape(len(xq), -1))
