"""The optimised transposed-convolution kernels (q4_conv_transpose_s4_dsp, _mve) and the resize
variant (q4_resize_s8_dsp) on their boards, bit for bit against the oracle.

Random conv_transpose layers (TinyUNet's 2x2 stride-2 up-sampling, strides 1, 2 and 3, kernels
2, 3 and 4, kernels smaller than the stride so that some output phases have no taps, output
padding, pads that crop, odd and small channel counts, more than one block of 16 output
channels, input channels that are and are not multiples of 8 and 16, 4-bit activations,
extreme activations and weights, shifts from 1 to 62 and at the 32 boundary, full, ReLU-like and
narrow clamps) are computed by ``q4sdk.ir.oracle`` (one-op models), written into one harness
firmware per board (``tests/mcu/upconv_harness.c``) and run under QEMU on ``mps2-an386``
(Cortex-M4: portable and _dsp) and ``mps3-an547`` (Cortex-M55: portable, _dsp and _mve); nothing
may be written past the output or the scratch, whose size must be the generator's formula.
Resize cases: nearest with factors 1 to 4 per axis and 1, 3, 16 and 17 channels; bilinear (which
the variant hands to the portable kernel) with factors 1 to 8, 3 to 16 channels, extreme values. Also built at -O0 and warning-free on each core and
the host.

Tests skip when the Arm toolchain or QEMU is missing, and fail instead when CI is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcu.harness import CORES, STRICT_FLAGS, c_array, require_tools, run_harness, runs_per_board  # noqa: E402
from q4sdk.codegen.kernels import KERNEL_VARIANTS  # noqa: E402
from q4sdk.ir import oracle  # noqa: E402
from q4sdk.ir.packing import pack_int4_rows  # noqa: E402
from q4sdk.ir.qmodel import QModel, QOp, QTensor  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime_c"
HARNESS = ROOT / "tests" / "mcu" / "upconv_harness.c"
CONV = RUNTIME / "src" / "convolution"
SOURCES = [CONV / f"q4_conv_transpose_s4{suffix}.c" for suffix in ("", "_dsp", "_mve")]
RESIZE_SOURCES = [RUNTIME / "src" / "basic" / f"q4_resize_s8{suffix}.c" for suffix in ("", "_dsp")]
BOARDS = ("mps2-an386", "mps3-an547")


@dataclass
class UpconvCase:
    """One conv_transpose layer: int8 input [H, W, I], int4 weight [O, kh, kw, I], oracle output."""

    name: str
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    input_zp: int
    output_zp: int
    act_min: int
    act_max: int
    expected: np.ndarray

    @property
    def k(self) -> int:
        return int(np.prod(self.weight.shape[1:]))

    @property
    def macs(self) -> int:
        """Products of the layer (each input pixel scatters into kh * kw * O outputs)."""
        return int(self.x.shape[0] * self.x.shape[1] * self.k * self.weight.shape[0])


def random_case(
    rng,
    name,
    h,
    w,
    in_c,
    out_c,
    kernel,
    stride,
    pads=(0, 0, 0, 0),
    out_pad=(0, 0),
    bits=8,
    shifts=None,
    act=None,
    extreme=False,
) -> UpconvCase:
    """A random layer; shifts spread the outputs over the range, or over [lo, hi] with
    ``shifts = (lo, hi)``; a
    random clamp unless ``act``; ``extreme``: activations and weights at their end values, the
    input zero point at the other end."""
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    x = rng.integers(qmin, qmax + 1, (h, w, in_c)).astype(np.int8)
    weight = rng.integers(-8, 8, (out_c, *kernel, in_c)).astype(np.int8)
    in_zp = int(rng.integers(qmin, qmax + 1))
    if extreme:
        x = rng.choice(np.array([qmin, qmax], np.int8), (h, w, in_c), p=[0.8, 0.2])
        weight = rng.choice(np.array([-8, 7], np.int8), weight.shape, p=[0.8, 0.2])
        in_zp = qmax
    taps = -(-kernel[0] // stride[0]) * -(-kernel[1] // stride[1]) * in_c  # products per output
    sigma = max(1.0, float(np.std(x.astype(np.int64) - in_zp)) * 4.6 * np.sqrt(taps))
    bias = rng.integers(-int(2 * sigma), int(2 * sigma) + 1, out_c)
    multiplier = rng.integers(1 << 30, 1 << 31, out_c)
    multiplier[rng.random(out_c) < 0.1] = 0
    centre = int(round(30.5 + np.log2(2.5 * sigma) - (bits - 1)))
    shift = rng.integers(centre - 1, centre + 2, out_c)
    if shifts is not None:  # spread evenly over [lo, hi], both ends included
        shift = np.round(np.linspace(shifts[0], shifts[1], out_c)).astype(np.int64)
    shift = np.clip(shift, 1, 62)
    out_zp = int(rng.integers(qmin // 4, qmax // 4 + 1))
    lo, hi = act if act is not None else (qmin, qmax)
    ho = (h - 1) * stride[0] - pads[0] - pads[2] + kernel[0] + out_pad[0]
    wo = (w - 1) * stride[1] - pads[1] - pads[3] + kernel[1] + out_pad[1]
    arrays = {
        "weight": weight,
        "bias": np.asarray(bias, np.int32),
        "multiplier": np.asarray(multiplier, np.int32),
        "shift": np.asarray(shift, np.int32),
    }
    attrs = {
        "stride": list(stride),
        "pads": list(pads),
        "output_padding": list(out_pad),
        "act_min": lo,
        "act_max": hi,
    }
    in_t = QTensor("x", (h, w, in_c), bits, 1.0, in_zp)
    out_t = QTensor("y", (ho, wo, out_c), bits, 1.0, out_zp)
    op = QOp(name, "conv_transpose", ["x"], "y", attrs, arrays)
    model = QModel(name, "x", "y", {"x": in_t, "y": out_t}, [op])
    expected = oracle.run_oracle(model, x[None])[0]
    return UpconvCase(
        name, x, weight, arrays["bias"], arrays["multiplier"], arrays["shift"], tuple(stride),
        tuple(pads), in_zp, out_zp, lo, hi, expected,
    )  # fmt: skip


def make_cases() -> list[UpconvCase]:
    rng = np.random.default_rng(20261204)
    r = lambda *a, **kw: random_case(rng, *a, **kw)  # noqa: E731
    return [
        r("unet_up2", 8, 8, 32, 16, (2, 2), (2, 2)),  # TinyUNet's up-sampling
        r("k3_s2_p1_op1", 5, 6, 16, 12, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
        r("k4_s2_p1", 6, 5, 8, 9, (4, 4), (2, 2), (1, 1, 1, 1)),
        r("k3_s1_p1", 5, 5, 12, 7, (3, 3), (1, 1), (1, 1, 1, 1)),
        r("k2_s1", 4, 5, 6, 5, (2, 2), (1, 1)),
        r("k2_s3_op2", 4, 3, 5, 3, (2, 2), (3, 3), out_pad=(2, 1)),  # phases without taps
        r("k3_s3", 3, 4, 16, 18, (3, 3), (3, 3)),
        r("k4_s3_pads", 4, 4, 10, 6, (4, 4), (3, 3), (2, 1, 1, 2), (1, 2)),
        r("k3x2_s2x1", 4, 5, 8, 4, (3, 2), (2, 1), (0, 1, 1, 0), (1, 0)),
        r("rgb_k3_s2", 6, 6, 3, 5, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
        r("one_channel", 5, 4, 1, 3, (3, 3), (2, 2)),
        r("one_output", 4, 5, 16, 1, (2, 2), (2, 2), out_pad=(1, 1)),
        r("crop_k4_s2", 6, 6, 8, 4, (4, 4), (2, 2), (3, 3, 3, 3)),
        r("in40_out33", 3, 3, 40, 33, (2, 2), (2, 2)),
        r("in24_k3_s2", 4, 3, 24, 17, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
        r("a4_k2_s2", 6, 6, 16, 8, (2, 2), (2, 2), bits=4),
        r("a4_k3_s2_relu", 5, 5, 7, 6, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), bits=4, act=(0, 7)),
        r("shift_min", 3, 3, 8, 4, (2, 2), (2, 2), shifts=(1, 2)),
        r("shift_low", 4, 4, 16, 6, (2, 2), (2, 2), shifts=(20, 31)),
        r("shift_32", 4, 4, 16, 12, (3, 3), (2, 2), (1, 1, 1, 1), shifts=(31, 33)),
        r("shift_high", 4, 4, 8, 6, (2, 2), (2, 2), shifts=(50, 62)),
        r("extreme", 5, 5, 16, 6, (4, 4), (2, 2), (1, 1, 1, 1), extreme=True),
        r("extreme_odd", 4, 4, 9, 5, (3, 3), (2, 2), extreme=True, act=(-128, 127)),
        r("relu_clamp", 4, 4, 16, 8, (2, 2), (2, 2), act=(0, 127)),
        r("narrow_clamp", 4, 4, 16, 8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), act=(-20, 30)),
        r("relu6_like", 4, 5, 12, 10, (4, 4), (2, 2), (1, 1, 1, 1), act=(-128, -60)),
    ]


CASES = make_cases()


@dataclass
class ResizeCase:
    """One resize layer: int8 input [H, W, C], mode (0 nearest, 1 bilinear), factors, oracle output."""

    name: str
    x: np.ndarray
    mode: int
    scale: tuple[int, int]
    zp: int
    expected: np.ndarray


def resize_case(rng, name, h, w, c, mode, scale, extreme=False) -> ResizeCase:
    """A random layer; ``extreme``: values at -128 and 127 with the zero point at -128."""
    x = rng.integers(-128, 128, (h, w, c)).astype(np.int8)
    zp = int(rng.integers(-128, 128))
    if extreme:
        x, zp = rng.choice(np.array([-128, 127], np.int8), (h, w, c)), -128
    in_t = QTensor("x", (h, w, c), 8, 1.0, zp)
    out_t = QTensor("y", (h * scale[0], w * scale[1], c), 8, 1.0, zp)
    op = QOp(name, "resize", ["x"], "y", {"mode": mode, "scale": list(scale)}, {})
    model = QModel(name, "x", "y", {"x": in_t, "y": out_t}, [op])
    return ResizeCase(name, x, mode, tuple(scale), zp, oracle.run_oracle(model, x[None])[0])


def make_resize_cases() -> list[ResizeCase]:
    rng = np.random.default_rng(20261205)
    return [
        resize_case(rng, "resize_unet", 8, 8, 16, 0, (2, 2)),  # TinyUNet's nearest up-sampling
        resize_case(rng, "resize_rgb_3x2", 5, 4, 3, 0, (3, 2)),
        resize_case(rng, "resize_c17_1x4", 3, 5, 17, 0, (1, 4)),
        resize_case(rng, "resize_c1_4x1", 4, 3, 1, 0, (4, 1)),
        resize_case(rng, "resize_c16_1x1", 3, 3, 16, 0, (1, 1)),
        resize_case(rng, "resize_bilinear_unet", 8, 8, 16, 1, (2, 2)),
        resize_case(rng, "resize_bilinear_c6_2x3", 4, 5, 6, 1, (2, 3)),  # D = 24: the division
        resize_case(rng, "resize_bilinear_c3_4x4", 3, 4, 3, 1, (4, 4)),
        resize_case(rng, "resize_bilinear_c9_1x1", 3, 3, 9, 1, (1, 1)),
        resize_case(rng, "resize_bilinear_c8_8x1", 2, 3, 8, 1, (8, 1)),
        resize_case(rng, "resize_bilinear_c5_3x3", 3, 3, 5, 1, (3, 3), extreme=True),
    ]


RESIZE_CASES = make_resize_cases()


def dsp_scratch_bytes(k: int) -> int:
    k8 = -(-k // 8) * 8
    return 64 + 41 * k8


def mve_scratch_bytes(k: int) -> int:
    k16 = -(-k // 16) * 16
    return 16 + 22 * k16


def write_cases_header(cases: list[UpconvCase], path: Path) -> None:
    parts = [
        "/* Generated by tests/targets/test_kernels_upconv_mcu.py. */\n#include <stdint.h>\n",
        '#include "q4_kernels.h"\n#include "q4_resize.h"\n',
        "typedef struct {\n  const char *name;\n  q4_conv_params params;\n  q4_quant_params quant;\n"
        "  q4_dims input_dims;\n  const int8_t *input;\n  q4_dims filter_dims;\n"
        "  const uint8_t *filter;\n  const int32_t *bias;\n  q4_dims output_dims;\n"
        "  const int8_t *expected;\n} q4_upconv_case;\n",
    ]
    rows = []
    for i, c in enumerate(cases):
        o, kh, kw, ci = c.weight.shape
        parts += [
            c_array("int8_t", f"x{i}", c.x),
            c_array("uint8_t", f"w{i}", pack_int4_rows(c.weight.reshape(o, -1))),
            c_array("int32_t", f"b{i}", c.bias),
            c_array("int32_t", f"m{i}", c.multiplier),
            c_array("int32_t", f"s{i}", c.shift),
            c_array("int8_t", f"y{i}", c.expected),
        ]
        h, w, _ = c.x.shape
        ho, wo, _ = c.expected.shape
        rows.append(
            f'  {{"{c.name}", {{{c.input_zp}, {c.output_zp}, {c.stride[0]}, {c.stride[1]}, {c.pads[0]}, '
            f"{c.pads[1]}, {c.act_min}, {c.act_max}, 1, 1}}, {{m{i}, s{i}}}, {{{h}, {w}, {ci}}}, x{i}, "
            f"{{{kh}, {kw}, {ci}}}, w{i}, b{i}, {{{ho}, {wo}, {o}}}, y{i}}}"
        )
    parts.append(
        "typedef struct {\n  const char *name;\n  q4_resize_params params;\n  q4_dims input_dims;\n"
        "  const int8_t *input;\n  q4_dims output_dims;\n  const int8_t *expected;\n} q4_resize_case;\n"
    )
    resize_rows = []
    for i, r in enumerate(RESIZE_CASES):
        parts += [c_array("int8_t", f"rx{i}", r.x), c_array("int8_t", f"ry{i}", r.expected)]
        (h, w, ch), (ho, wo, _) = r.x.shape, r.expected.shape
        resize_rows.append(
            f'  {{"{r.name}", {{{r.mode}, {r.scale[0]}, {r.scale[1]}, {r.zp}}}, {{{h}, {w}, {ch}}}, rx{i}, '
            f"{{{ho}, {wo}, {ch}}}, ry{i}}}"
        )
    parts.append("static const q4_resize_case q4_resize_cases[] = {\n" + ",\n".join(resize_rows) + "\n};\n")
    out_bytes = max(max(c.expected.size for c in cases), max(r.expected.size for r in RESIZE_CASES))
    scratch = max(max(dsp_scratch_bytes(c.k), mve_scratch_bytes(c.k)) for c in cases)
    parts.append(f"#define Q4_OUTPUT_BYTES {out_bytes}\n#define Q4_SCRATCH_WORDS {(scratch + 3) // 4}\n")
    parts.append("static const q4_upconv_case q4_upconv_cases[] = {\n" + ",\n".join(rows) + "\n};\n")
    path.write_text("".join(parts))


def build_and_run(board, out_dir: Path, extra_cflags=()):
    write_cases_header(CASES, out_dir / "upconv_cases.h")
    return run_harness(
        board,
        [HARNESS, *SOURCES, *RESIZE_SOURCES],
        [RUNTIME / "include", RUNTIME / "include" / "internal", out_dir],
        out_dir,
        "upconv_harness",
        extra_cflags=extra_cflags,
    )


@pytest.fixture(scope="module")
def board_results(tmp_path_factory):
    return runs_per_board(tmp_path_factory, build_and_run)


def test_cases_cover_the_interesting_parameters():
    assert {c.stride[0] for c in CASES} == {1, 2, 3}
    assert {c.weight.shape[1] for c in CASES} >= {2, 3, 4}
    assert any(c.weight.shape[1] < c.stride[0] for c in CASES)  # phases without taps
    assert any(
        c.expected.shape[0] > (c.x.shape[0] - 1) * c.stride[0] + c.weight.shape[1] - sum(c.pads[::2])
        for c in CASES
    )
    assert {c.x.shape[2] % 2 for c in CASES} == {0, 1} and any(c.x.shape[2] % 16 == 8 for c in CASES)
    assert {c.weight.shape[0] % 2 for c in CASES} == {0, 1} and any(c.weight.shape[0] > 16 for c in CASES)
    assert any(c.weight.shape[0] == 1 for c in CASES)
    shifts = np.concatenate([c.shift for c in CASES])
    assert shifts.min() <= 2 and shifts.max() >= 60 and {31, 32, 33} <= set(shifts.tolist())
    assert any(c.act_min == 0 for c in CASES) and any(c.act_max < 0 for c in CASES)
    assert any(c.x.min() == -128 and c.input_zp == 127 for c in CASES)
    assert any((c.expected == c.act_min).any() and (c.expected == c.act_max).any() for c in CASES)


@pytest.mark.parametrize("board_name", BOARDS)
def test_conv_transpose_variants_are_bit_exact_on_target(board_name, board_results):
    results = board_results(board_name)
    expected = {"mps2-an386": {"portable", "dsp"}, "mps3-an547": {"portable", "dsp", "mve"}}[board_name]
    upconv = [r for r in results if not r.case.startswith("resize_")]
    assert {r.variant for r in upconv} == expected
    assert len(upconv) == len(expected) * len(CASES)
    bad = [r for r in upconv if r.mismatches or not r.guard_ok]
    assert not bad, bad


@pytest.mark.parametrize("board_name", BOARDS)
def test_resize_variant_is_bit_exact_on_target(board_name, board_results):
    results = [r for r in board_results(board_name) if r.case.startswith("resize_")]
    assert len(results) == 2 * len(RESIZE_CASES) and {r.variant for r in results} == {"portable", "dsp"}
    bad = [r for r in results if r.mismatches or not r.guard_ok]
    assert not bad, bad


@pytest.mark.parametrize("board_name", BOARDS)
def test_resize_nearest_is_faster(board_name, board_results):
    """TinyUNet's nearest up-sampling (8x8x16 by 2x2): at least 4x fewer instructions."""
    n = {r.variant: r.instructions for r in board_results(board_name) if r.case == "resize_unet"}
    assert n["dsp"] * 4 < n["portable"], n


@pytest.mark.parametrize("board_name", BOARDS)
def test_scratch_matches_the_generator(board_name, board_results):
    """*_get_buffer_size equals the op table's formula (what the generator allocates)."""
    formula = {v.requires: v.scratch_bytes for v in KERNEL_VARIANTS["conv_transpose"]}
    by_case = {c.name: c for c in CASES}
    for r in board_results(board_name):
        if r.variant != "portable" and not r.case.startswith("resize_"):
            c = by_case[r.case]
            assert r.scratch_bytes == formula[r.variant](c.k, c.weight.shape[0]), r


@pytest.mark.parametrize("board_name", BOARDS)
def test_optimised_is_faster_on_the_unet_layer(board_name, board_results):
    """TinyUNet's up-sampling: the board's best variant needs at most 1/6 of the portable
    instructions (measured: see docs/kernels.md)."""
    n = {r.variant: r.instructions for r in board_results(board_name) if r.case == "unet_up2"}
    best = n["mve"] if "mve" in n else n["dsp"]
    assert best * 6 < n["portable"], n


def test_bit_exact_unoptimised(tmp_path):
    for name in BOARDS:
        board = load_board(name)
        require_tools(board)
        (tmp_path / name).mkdir()
        results = build_and_run(board, tmp_path / name, extra_cflags=["-O0"])
        bad = [r for r in results if r.mismatches or not r.guard_ok]
        assert not bad, (name, bad)


def test_generator_registers_the_variants():
    variants = KERNEL_VARIANTS["conv_transpose"]
    assert [(v.function, v.requires) for v in variants] == [
        ("q4_conv_transpose_s4_mve", "mve"),
        ("q4_conv_transpose_s4_dsp", "dsp"),
    ]
    for k in (1, 8, 27, 128, 1000):
        assert variants[0].scratch_bytes(k, 5) == mve_scratch_bytes(k)
        assert variants[1].scratch_bytes(k, 5) == dsp_scratch_bytes(k)
    (resize,) = KERNEL_VARIANTS["resize"]
    assert (resize.function, resize.requires, resize.scratch_bytes(0, 0)) == ("q4_resize_s8_dsp", "dsp", 0)


@pytest.mark.parametrize("core", ["cortex-m4", "cortex-m55"])
def test_sources_compile_warning_free(core):
    compiler = "arm-none-eabi-gcc"
    if shutil.which(compiler) is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {compiler} is not on PATH")
        pytest.skip(f"{compiler} is not on PATH")
    for source in SOURCES[1:]:
        result = subprocess.run(
            [compiler, *CORES[core], *STRICT_FLAGS, str(source)], capture_output=True, text=True
        )
        assert result.returncode == 0, f"{source.name}:\n{result.stderr}"


def test_sources_compile_on_the_host():
    for compiler in ("gcc", "clang"):
        if shutil.which(compiler) is None:
            continue
        for source in (*SOURCES[1:], RESIZE_SOURCES[1]):
            result = subprocess.run([compiler, *STRICT_FLAGS, str(source)], capture_output=True, text=True)
            assert result.returncode == 0, f"{compiler} {source.name}:\n{result.stderr}"


if __name__ == "__main__":  # pragma: no cover - prints instructions per MAC
    import tempfile

    for name in BOARDS:
        with tempfile.TemporaryDirectory() as tmp:
            res = build_and_run(load_board(name), Path(tmp))
        for c in CASES:
            n = {r.variant: round(r.instructions / c.macs, 3) for r in res if r.case == c.name}
            print(name, c.name, c.x.shape, c.weight.shape, c.stride, n)
        for c in RESIZE_CASES:
            n = {r.variant: round(r.instructions / c.expected.size, 3) for r in res if r.case == c.name}
            print(name, c.name, c.x.shape, c.scale, "per output byte", n)
