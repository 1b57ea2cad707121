"""Generated C under AddressSanitizer and UndefinedBehaviorSanitizer (gcc) on extreme inputs
(census classes 1c, 1d, 5): random extreme-but-valid models are generated, built with
``-fsanitize=address,undefined -fno-sanitize-recover=all`` and run on all-qmin, all-qmax,
all-zero-point and random inputs; every output must equal the oracle's. D10: out-of-range input
codes of a 4-bit input make ``<name>_run`` return ``<NAME>_ERROR_INPUT_RANGE`` and write nothing,
identically in the packed and unpacked builds; the oracle raises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.ir.oracle import input_shape, run_oracle
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from random_models import WARN_FLAGS, random_model

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
SAN_FLAGS = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
FILL = 0x55

DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "san.h"
/* For each input sample: one status byte (the return value of san_run), then the output, which
 * is pre-filled with 0x55 so that an untouched output is visible. */
int main(int argc, char **argv)
{
    int8_t x[SAN_INPUT_SIZE], y[SAN_OUTPUT_SIZE];
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    (void)argc;
    while (fread(x, 1, sizeof x, in) == sizeof x) {
        int8_t rc;
        memset(y, 0x55, sizeof y);
        rc = (int8_t)san_run(x, y);
        fwrite(&rc, 1, 1, out);
        fwrite(y, 1, sizeof y, out);
    }
    fclose(in);
    fclose(out);
    return 0;
}
"""


def sanitized_run(model: QModel, xq: np.ndarray, tmp: Path, **generate_args) -> tuple[np.ndarray, np.ndarray]:
    """(status per sample, output [N, size]) of an ASan + UBSan build; fails on any report."""
    gen = tmp / "san"
    generate(model, gen, "san", **generate_args)
    (gen / "driver.c").write_text(DRIVER)
    (tmp / "in.bin").write_bytes(np.ascontiguousarray(xq, np.int8).tobytes())
    exe = tmp / "san_exe"
    sources = [
        gen / "san.c",
        gen / "san_weights.c",
        gen / "driver.c",
        *sorted((gen / "q4_runtime").glob("*.c")),
    ]
    res = subprocess.run(
        ["gcc", *WARN_FLAGS, *SAN_FLAGS, "-I", str(gen), *map(str, sources), "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    res = subprocess.run(
        [str(exe), str(tmp / "in.bin"), str(tmp / "out.bin")], capture_output=True, text=True
    )
    assert res.returncode == 0 and "runtime error" not in res.stderr, res.stderr
    rec = np.frombuffer((tmp / "out.bin").read_bytes(), np.int8).reshape(len(xq), -1)
    return rec[:, 0], rec[:, 1:]


def extreme_inputs(model: QModel, rng, n_random=3) -> np.ndarray:
    """All qmin, all qmax, all zero point, then random codes, for every input tensor."""
    res = model.meta.get("input_residual")
    tensors = [model.input_tensor] + ([model.tensors[res]] if res else [])
    shape = input_shape(model)
    rows = []
    for pick in ("qmin", "qmax", "zero_point"):
        parts = [np.full(t.shape, getattr(t, pick), np.int8) for t in tensors]
        rows.append(np.stack(parts) if res else parts[0])
    for _ in range(n_random):
        parts = [rng.integers(t.qmin, t.qmax + 1, t.shape).astype(np.int8) for t in tensors]
        rows.append(np.stack(parts) if res else parts[0])
    return np.stack(rows).reshape(-1, *shape)


@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15, 16])
def test_random_extreme_models_are_sanitizer_clean_and_bit_exact(tmp_path, seed):
    rng = np.random.default_rng(seed)
    model = random_model(rng, n_ops=7, extreme=True, name=f"x{seed}")
    xq = extreme_inputs(model, rng)
    status, out = sanitized_run(model, xq, tmp_path)
    assert (status == 0).all()
    np.testing.assert_array_equal(out, run_oracle(model, xq).reshape(len(xq), -1))


def test_every_kind_model_is_sanitizer_clean_on_extreme_inputs(tmp_path):
    """The every-op-kind model (residual split, two-input dense head) on extreme inputs."""
    from hostile import every_kind_model

    model = every_kind_model()
    xq = extreme_inputs(model, np.random.default_rng(2))
    status, out = sanitized_run(model, xq, tmp_path)
    assert (status == 0).all()
    np.testing.assert_array_equal(out, run_oracle(model, xq).reshape(len(xq), -1))


def _w4a4_model() -> QModel:
    """x (3, 3, 2) INT4 (zp -2) -> 3x3 conv -> y (3, 3, 2) INT4: packable."""
    rng = np.random.default_rng(0)
    t = {"x": QTensor("x", (3, 3, 2), 4, 0.1, -2), "y": QTensor("y", (3, 3, 2), 4, 0.2, 1)}
    conv = QOp(
        "conv",
        "conv2d",
        ["x"],
        "y",
        {"stride": [1, 1], "pads": [1, 1, 1, 1], "act_min": -8, "act_max": 7},
        {
            "weight": rng.integers(-8, 8, (2, 3, 3, 2)).astype(np.int8),
            "bias": rng.integers(-50, 50, 2).astype(np.int32),
            "multiplier": np.array([1 << 30, 1518500250], np.int32),
            "shift": np.array([36, 37], np.int32),
        },
    )
    return QModel("w4a4", "x", "y", t, [conv], {"input_layout": "NHWC"})


@pytest.mark.parametrize("packed", [False, True], ids=["unpacked", "packed"])
def test_out_of_range_input_codes_are_refused(tmp_path, packed):
    """D10: codes outside [-8, 7] of a 4-bit input: status 1, output untouched; in-range inputs
    (including the extremes) run bit-exact; the oracle raises for the bad ones."""
    model = _w4a4_model()
    rng = np.random.default_rng(1)
    good = extreme_inputs(model, rng)
    bad = []
    for v in (-128, 127, -9, 8):
        x = good[3].copy()
        x.flat[int(rng.integers(x.size))] = v
        bad.append(x)
    bad.append(rng.integers(-128, 128, good[0].shape).astype(np.int8))
    xq = np.concatenate([good, np.stack(bad)])
    status, out = sanitized_run(model, xq, tmp_path, pack_activations=packed)
    n = len(good)
    assert (status[:n] == 0).all() and (status[n:] == 1).all()
    np.testing.assert_array_equal(out[:n], run_oracle(model, good).reshape(n, -1))
    assert (out[n:] == FILL).all()
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        run_oracle(model, np.stack(bad))
    header = (tmp_path / "san" / "san.h").read_text()
    assert "#define SAN_ERROR_INPUT_RANGE 1" in header


def test_8_bit_inputs_have_no_check(tmp_path):
    model = _w4a4_model()
    model.tensors["x"] = QTensor("x", (3, 3, 2), 8, 0.1, -2)
    generate(model, tmp_path / "g", "n8")
    assert "ERROR_INPUT_RANGE" not in (tmp_path / "g" / "n8.c").read_text()


def test_pack_activations_refuses_wide_tensors_cleanly(tmp_path):
    model = _w4a4_model()
    model.tensors["x"] = QTensor("x", (3, 3, 2), 8, 0.1, -2)
    model.tensors["y"] = QTensor("y", (3, 3, 2), 8, 0.2, 1)
    model.ops[0].attrs.update(act_min=-128, act_max=127)
    with pytest.raises(Q4Error):
        generate(model, tmp_path / "g", "n", pack_activations=True)
