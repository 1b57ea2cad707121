"""The optimised add and fully_connected kernels (_dsp, _mve) on their boards, bit for bit
against the oracle.

Random cases (sizes that are not multiples of 4 or 16, zero points and clamps at the int8
extremes, multipliers from 0 to 2^21 - 1 including negative ones, every shift from 1 to 30, inputs
at -128/127, int4-valued inputs that take the MVE table path, and int4 inputs with one stray
value late in the tensor that force its fallback) are computed by ``q4sdk.ir.oracle.add``, written
into one harness firmware per board (``tests/mcu/ops_harness.c``) and run under QEMU: the
Cortex-M4 (mps2-an386) runs the portable and _dsp kernels, the Cortex-M55 (mps3-an547) the
portable, _dsp and _mve kernels. The harness also checks that nothing is written past the output
or past the scratch size each variant declares. Fully connected cases: input sizes that are odd,
not multiples of 8 or 32, 1 to 1100; 1 to 33 outputs; 4- and 8-bit inputs with zero points at
the extremes; per-row multipliers (some zero) and shifts above and below 32; clamped ranges.

Tests skip when the Arm toolchain or QEMU is missing, and fail instead when CI is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mcu.harness import CORES, STRICT_FLAGS, VariantResult, c_array, require_tools, run_harness
from q4sdk.codegen.kernels import KERNEL_VARIANTS
from q4sdk.ir import oracle
from q4sdk.ir.packing import pack_int4_rows
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.targets.boards import Board, load_board
from q4sdk.targets.run import run_on_board

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime_c"
HARNESS = Path(__file__).resolve().parents[1] / "mcu" / "ops_harness.c"
ADD_SOURCES = [RUNTIME / "src" / "basic" / f"q4_add_s8{suffix}.c" for suffix in ("", "_dsp", "_mve")]
FC_SOURCES = [
    RUNTIME / "src" / "fully_connected" / f"q4_fully_connected_s4{suffix}.c"
    for suffix in ("", "_dsp", "_mve")
]
DW_SOURCES = [
    RUNTIME / "src" / "convolution" / f"q4_depthwise_conv2d_s4{suffix}.c" for suffix in ("", "_dsp", "_mve")
]
OPT_SOURCES = [*ADD_SOURCES[1:], *FC_SOURCES[1:], *DW_SOURCES[1:]]
BOARD_VARIANTS = {"mps2-an386": {"portable", "dsp"}, "mps3-an547": {"portable", "dsp", "mve"}}
MULT_LIMIT = 1 << 21


@dataclass
class AddCase:
    """One add: int8 inputs a, b, the kernel parameters and the oracle's output."""

    name: str
    a: np.ndarray
    b: np.ndarray
    a_zp: int
    b_zp: int
    out_zp: int
    ma: int
    mb: int
    shift: int
    act_min: int
    act_max: int
    expected: np.ndarray


def add_case(
    name: str,
    a,
    b,
    a_zp: int,
    b_zp: int,
    out_zp: int,
    ma: int,
    mb: int,
    shift: int,
    act_min: int,
    act_max: int,
) -> AddCase:
    """A case whose expected output is ``q4sdk.ir.oracle.add``'s."""
    a, b = np.asarray(a, np.int8), np.asarray(b, np.int8)
    op = QOp(
        name,
        "add",
        ["a", "b"],
        "y",
        {"shift": shift, "act_min": act_min, "act_max": act_max},
        {"multiplier": np.array([ma, mb], np.int32)},
    )
    ta, tb = QTensor("a", a.shape, 8, 1.0, a_zp), QTensor("b", b.shape, 8, 1.0, b_zp)
    expected = oracle.add(a, b, op, ta, tb, QTensor("y", a.shape, 8, 1.0, out_zp))
    return AddCase(name, a, b, a_zp, b_zp, out_zp, ma, mb, shift, act_min, act_max, expected)


def random_add(
    rng: np.random.Generator, name: str, size: int, shift: int, int4: bool = False, stray: int | None = None
) -> AddCase:
    """Random inputs (int4-valued with ``int4``; ``stray`` puts one 8-bit value at that index),
    multipliers scaled so the outputs spread over the range, random zero points and clamp."""
    lo_in, hi_in = (-8, 7) if int4 else (-128, 127)
    a = rng.integers(lo_in, hi_in + 1, size)
    b = rng.integers(lo_in, hi_in + 1, size)
    if not int4:  # the int8 extremes, at random places
        a[rng.random(size) < 0.05], b[rng.random(size) < 0.05] = -128, 127
    if stray is not None:
        a[stray] = 100
    a_zp, b_zp = (int(v) for v in rng.integers(lo_in, hi_in + 1, 2))
    if rng.random() < 0.2:
        a_zp, b_zp = -128, 127
    # ratios around 1 (16 for int4 inputs feeding an 8-bit output), capped below 2^21
    top = min(MULT_LIMIT - 1, 1 << (shift + (4 if int4 else 1)))
    ma, mb = (int(v) for v in rng.integers(0, top + 1, 2))
    if rng.random() < 0.15:
        ma = 0
    if rng.random() < 0.15:
        mb = -mb
    lo, hi = -128, 127
    if rng.random() < 0.5:
        lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
    out_zp = int(rng.integers(-128, 128))
    return add_case(name, a, b, a_zp, b_zp, out_zp, ma, mb, shift, lo, hi)


def make_cases() -> list[AddCase]:
    rng = np.random.default_rng(20261124)
    cases = []
    sizes = [1, 3, 4, 15, 16, 17, 31, 33, 63, 100, 257, 1027]
    for shift in range(1, 31):
        cases.append(random_add(rng, f"s{shift}", sizes[shift % len(sizes)], shift))
    # the MVE table path: int4 inputs, large enough, with tails and chunk boundaries
    for i, size in enumerate([1024, 1031, 4096 + 13, 300 * 16]):
        cases.append(random_add(rng, f"int4_{i}", size, int(rng.integers(14, 23)), int4=True))
    # int4 inputs with one 8-bit value: the chunk holding it and the rest take the general path
    for i, (size, stray) in enumerate([(2048, 2047), (1500, 700), (1100, 0)]):
        cases.append(random_add(rng, f"stray_{i}", size, 20, int4=True, stray=stray))
    # extremes: largest multipliers and offsets, full and single-value clamps
    n = 1029
    ext = np.where(np.arange(n) % 2, 127, -128)
    cases.append(
        add_case("max_mult", ext, ext[::-1], -128, 127, 127, MULT_LIMIT - 1, -(MULT_LIMIT - 1), 30, -128, 127)
    )
    cases.append(
        add_case("max_mult_s1", ext, ext, 127, -128, -128, MULT_LIMIT - 1, MULT_LIMIT - 1, 1, -128, 127)
    )
    cases.append(
        add_case(
            "wide_ratio",
            rng.integers(-3, 4, 203),
            rng.integers(-3, 4, 203),
            0,
            1,
            -7,
            MULT_LIMIT - 1,
            1 << 19,
            14,
            -128,
            127,
        )
    )
    cases.append(
        add_case(
            "one_value",
            rng.integers(-128, 128, 77),
            rng.integers(-128, 128, 77),
            3,
            -5,
            0,
            1 << 20,
            1 << 20,
            20,
            5,
            5,
        )
    )
    # ResNet-8 (W4A4) add_0 shape and parameters: the timing reference
    cases.append(
        add_case(
            "resnet8_add0",
            rng.integers(-8, 8, 32 * 32 * 16),
            rng.integers(-8, 8, 32 * 32 * 16),
            -8,
            0,
            -8,
            857248,
            1995691,
            20,
            -8,
            7,
        )
    )
    cases.append(
        add_case(
            "resnet8_add0_a8",
            rng.integers(-128, 128, 32 * 32 * 16),
            rng.integers(-128, 128, 32 * 32 * 16),
            -128,
            -2,
            -128,
            630765,
            2088038,
            20,
            -128,
            127,
        )
    )
    return cases


CASES = make_cases()


@dataclass
class FcCase:
    """One fully_connected layer: int8 input [I], int4 weight [O, I], oracle output [O]."""

    name: str
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    input_zp: int
    output_zp: int
    act_min: int
    act_max: int
    expected: np.ndarray


def random_fc(
    rng: np.random.Generator, name: str, size: int, outputs: int, bits: int, slow_shifts: bool = False
) -> FcCase:
    """A random layer: ``bits``-bit input with a random (sometimes extreme) zero point, per-row
    multipliers (some zero), shifts scaled so the outputs spread over the range (all <= 32 with
    ``slow_shifts``), a random bias and clamp."""
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    in_zp = int(rng.choice([qmin, qmax, int(rng.integers(qmin, qmax + 1))]))
    x = rng.integers(qmin, qmax + 1, size).astype(np.int8)
    weight = rng.integers(-8, 8, (outputs, size)).astype(np.int8)
    sigma = max(1.0, float(np.std(x.astype(np.int64) - in_zp)) * 4.6 * np.sqrt(size))
    bias = rng.integers(-int(2 * sigma), int(2 * sigma) + 1, outputs)
    multiplier = rng.integers(1 << 30, 1 << 31, outputs)
    multiplier[rng.random(outputs) < 0.1] = 0
    centre = int(round(30.5 + np.log2(2.5 * sigma) - (bits - 1)))
    low = max(1, centre - 12) if slow_shifts else centre - 1
    shift = np.clip(rng.integers(low, 33 if slow_shifts else centre + 2, outputs), 1, 62)
    lo, hi = qmin, qmax
    if rng.random() < 0.5:
        quarter = (qmax - qmin + 1) // 4
        lo, hi = int(rng.integers(qmin, qmin + quarter)), int(rng.integers(qmax - quarter, qmax + 1))
    out_zp = int(rng.integers(qmin // 4, qmax // 4 + 1))
    arrays = {
        "weight": weight,
        "bias": bias.astype(np.int32),
        "multiplier": multiplier.astype(np.int32),
        "shift": shift.astype(np.int32),
    }
    op = QOp(name, "fully_connected", ["x"], "y", {"act_min": lo, "act_max": hi}, arrays)
    in_t, out_t = QTensor("x", (size,), bits, 1.0, in_zp), QTensor("y", (outputs,), bits, 1.0, out_zp)
    model = QModel(name, "x", "y", {"x": in_t, "y": out_t}, [op])
    expected = oracle.run_oracle(model, x[None])[0]
    return FcCase(
        name,
        x,
        weight,
        arrays["bias"],
        arrays["multiplier"],
        arrays["shift"],
        in_zp,
        out_zp,
        lo,
        hi,
        expected,
    )


def make_fc_cases() -> list[FcCase]:
    rng = np.random.default_rng(20261125)
    shapes = [
        (1, 1),
        (7, 3),
        (8, 10),
        (31, 17),
        (32, 4),
        (33, 5),
        (64, 10),
        (100, 9),
        (257, 7),
        (1024, 16),
        (1100, 33),
    ]
    cases = [
        random_fc(rng, f"fc{i}a{bits}", size, outputs, bits)
        for i, (size, outputs) in enumerate(shapes)
        for bits in (4, 8)
    ]
    cases.append(random_fc(rng, "fc_slow", 75, 12, 8, slow_shifts=True))
    # the _dsp 8-row steps: 33 words (a drain of 32 and an odd one), 65 words and 7 rows left
    # over, rows with no whole word
    for name, size, outputs, bits in (
        ("fc_rows24_a8", 263, 24, 8),
        ("fc_rows15_a4", 520, 15, 4),
        ("fc_narrow_a8", 6, 9, 8),
    ):
        cases.append(random_fc(rng, name, size, outputs, bits))
    return cases


FC_CASES = make_fc_cases()


@dataclass
class DwCase:
    """One depthwise_conv2d layer: int8 input [H, W, C], int4 weight [C, kh, kw], oracle output."""

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
    def macs(self) -> int:
        return int(self.expected.size * self.weight.shape[1] * self.weight.shape[2])


def random_dw(
    rng: np.random.Generator,
    name: str,
    bits: int,
    h: int,
    w: int,
    c: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    slow_shifts: bool = False,
    extra_shift: int = 0,
    act: tuple[int, int] | None = None,
) -> DwCase:
    """A random depthwise layer, parameters drawn as in ``random_fc`` (``extra_shift`` added to
    every shift: outputs near z_y, shifts far above 32; ``act`` fixes the output clamp)."""
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    in_zp = int(rng.choice([qmin, qmax, int(rng.integers(qmin, qmax + 1))]))
    x = rng.integers(qmin, qmax + 1, (h, w, c)).astype(np.int8)
    weight = rng.integers(-8, 8, (c, *kernel)).astype(np.int8)
    k = kernel[0] * kernel[1]
    sigma = max(1.0, float(np.std(x.astype(np.int64) - in_zp)) * 4.6 * np.sqrt(k))
    bias = rng.integers(-int(2 * sigma), int(2 * sigma) + 1, c)
    multiplier = rng.integers(1 << 30, 1 << 31, c)
    multiplier[rng.random(c) < 0.1] = 0
    centre = int(round(30.5 + np.log2(2.5 * sigma) - (bits - 1)))
    low = max(1, centre - 12) if slow_shifts else centre - 1
    shift = np.clip(rng.integers(low, 33 if slow_shifts else centre + 2, c) + extra_shift, 1, 62)
    lo, hi = qmin, qmax
    if rng.random() < 0.5:
        quarter = (qmax - qmin + 1) // 4
        lo, hi = int(rng.integers(qmin, qmin + quarter)), int(rng.integers(qmax - quarter, qmax + 1))
    out_zp = int(rng.integers(qmin // 4, qmax // 4 + 1))
    if act is not None:
        lo, hi = act
    ho = (h + pads[0] + pads[2] - kernel[0]) // stride[0] + 1
    wo = (w + pads[1] + pads[3] - kernel[1]) // stride[1] + 1
    arrays = {
        "weight": weight,
        "bias": bias.astype(np.int32),
        "multiplier": multiplier.astype(np.int32),
        "shift": shift.astype(np.int32),
    }
    op = QOp(
        name,
        "depthwise_conv2d",
        ["x"],
        "y",
        {"stride": list(stride), "pads": list(pads), "act_min": lo, "act_max": hi},
        arrays,
    )
    in_t = QTensor("x", (h, w, c), bits, 1.0, in_zp)
    out_t = QTensor("y", (ho, wo, c), bits, 1.0, out_zp)
    model = QModel(name, "x", "y", {"x": in_t, "y": out_t}, [op])
    expected = oracle.run_oracle(model, x[None])[0]
    return DwCase(
        name,
        x,
        weight,
        arrays["bias"],
        arrays["multiplier"],
        arrays["shift"],
        tuple(stride),
        tuple(pads),
        in_zp,
        out_zp,
        lo,
        hi,
        expected,
    )


def make_dw_cases() -> list[DwCase]:
    rng = np.random.default_rng(20261126)
    # (h, w, c, kernel, stride, pads): channel tails of 1-3 and 4-15, borders, single pixels
    shapes = [
        (5, 6, 3, (3, 3), (1, 1), (1, 1, 1, 1)),
        (8, 8, 16, (3, 3), (1, 1), (1, 1, 1, 1)),
        (9, 7, 21, (3, 3), (2, 2), (0, 1, 1, 0)),
        (6, 6, 32, (5, 5), (1, 1), (2, 2, 2, 2)),
        (4, 5, 1, (2, 3), (1, 2), (1, 0, 0, 2)),
        (1, 1, 40, (1, 1), (1, 1), (0, 0, 0, 0)),
        (7, 7, 7, (7, 7), (1, 1), (3, 3, 3, 3)),
        (10, 10, 64, (3, 3), (2, 2), (0, 0, 1, 1)),
    ]
    cases = [
        random_dw(rng, f"dw{i}a{bits}", bits, *shape) for i, shape in enumerate(shapes) for bits in (4, 8)
    ]
    cases.append(random_dw(rng, "dw_slow", 8, 6, 5, 18, (3, 3), (1, 1), (1, 1, 1, 1), slow_shifts=True))
    # the 3x3 row paths: rows wider than a tile (32 outputs), channel tails of 1-3 and 9-15,
    # unequal strides, windows wholly in the padding, shifts far above 32, 5x5 stride 2
    shapes = [
        (3, 70, 5, (3, 3), (1, 1), (1, 1, 1, 1)),
        (7, 67, 6, (3, 3), (2, 2), (1, 1, 1, 1)),
        (8, 9, 7, (3, 3), (2, 1), (1, 1, 1, 1)),
        (9, 8, 27, (3, 3), (1, 2), (0, 0, 2, 2)),
        (2, 2, 4, (3, 3), (1, 1), (2, 2, 2, 2)),
        (11, 12, 24, (5, 5), (2, 2), (2, 2, 2, 2)),
    ]
    cases += [
        random_dw(rng, f"dw3_{i}a{bits}", bits, *shape) for i, shape in enumerate(shapes) for bits in (4, 8)
    ]
    cases.append(random_dw(rng, "dw3_far_shift", 8, 6, 9, 13, (3, 3), (2, 2), (1, 1, 1, 1), extra_shift=22))
    # output clamps of width 2^b - 1 (USAT #8, #7, #4, #3) or not
    for name, bits, act in (
        ("full_a8", 8, (-128, 127)),
        ("relu_a8", 8, (0, 127)),
        ("full_a4", 4, (-8, 7)),
        ("relu_a4", 4, (0, 7)),
        ("odd_a8", 8, (-5, 100)),
    ):
        cases.append(
            random_dw(rng, f"dw3_clamp_{name}", bits, 6, 7, 9, (3, 3), (1, 1), (1, 1, 1, 1), act=act)
        )
    # the fused _dsp 3x3 rows (4 outputs per step): stride 2 with each clamp kind, output rows of
    # 1, 2 and 3 outputs past a multiple of 4, a tile of 32 plus a tail
    for name, bits, w, stride, act in (
        ("s2_full_a8", 8, 11, (2, 2), (-128, 127)),
        ("s2_full_a4", 4, 13, (2, 2), (-8, 7)),
        ("s2_odd_a8", 8, 9, (2, 2), (-100, 90)),
        ("s1_w5_a8", 8, 5, (1, 1), (-128, 127)),
        ("s1_w37_a4", 4, 37, (1, 1), (-8, 7)),
    ):
        cases.append(
            random_dw(rng, f"dw3_fused_{name}", bits, 5, w, 8, (3, 3), stride, (1, 1, 1, 1), act=act)
        )
    # shifts 32 .. 34 (shift 32: the fused rows accumulate twice the sum and shift by 1)
    cases.append(
        random_dw(
            rng,
            "dw3_fused_shift32_a8",
            8,
            6,
            9,
            8,
            (3, 3),
            (1, 1),
            (1, 1, 1, 1),
            extra_shift=-2,
            act=(-128, 127),
        )
    )
    cases.append(
        random_dw(
            rng,
            "dw3_fused_shift32_s2_a4",
            4,
            7,
            11,
            8,
            (3, 3),
            (2, 2),
            (1, 1, 1, 1),
            extra_shift=-3,
            act=(-8, 7),
        )
    )
    # a MobileNet-like layer: the timing reference
    cases.append(random_dw(rng, "dw_mobilenet", 8, 16, 16, 32, (3, 3), (1, 1), (1, 1, 1, 1)))
    # the _mve 3x3 plane paths: several row and column tiles at stride 1, stride 2 with rows of
    # 8 to 16 outputs in several row tiles, channel tails, asymmetric pads
    for name, shape in (
        ("dwp_s1_tiles", (12, 37, 9, (3, 3), (1, 1), (1, 1, 1, 1))),
        ("dwp_s2_tiles", (25, 17, 12, (3, 3), (2, 2), (1, 1, 1, 1))),
        ("dwp_s2_pads", (16, 16, 16, (3, 3), (2, 2), (0, 0, 1, 1))),
        ("dwp_s2_wide", (9, 33, 3, (3, 3), (2, 2), (1, 1, 1, 0))),
    ):
        cases.append(random_dw(rng, name, 8, *shape))
    # small maps: the _dsp tap path at stride 1 into rows of at most 4 outputs (2x2, 4x4, a
    # single pixel, inside pixels without padding), channel tails of 1-3, odd and even tap counts
    # (the weight set-up reads two taps per byte), 4x4 stride 2, and 5x5 / 2x3 windows
    for name, bits, shape in (
        ("dws_2x2_c32_a8", 8, (2, 2, 32, (3, 3), (1, 1), (1, 1, 1, 1))),
        ("dws_2x2_c13_a4", 4, (2, 2, 13, (3, 3), (1, 1), (1, 1, 1, 1))),
        ("dws_4x4_c24_a8", 8, (4, 4, 24, (3, 3), (1, 1), (1, 1, 1, 1))),
        ("dws_3x4_c7_a4", 4, (3, 4, 7, (3, 3), (1, 1), (1, 1, 1, 1))),
        ("dws_6x6_nopad_a8", 8, (6, 6, 20, (3, 3), (1, 1), (0, 0, 0, 0))),
        ("dws_1x1_c40_a8", 8, (1, 1, 40, (3, 3), (1, 1), (1, 1, 1, 1))),
        ("dws_8x8_s2_c18_a8", 8, (8, 8, 18, (3, 3), (2, 2), (1, 1, 1, 1))),
        ("dws_4x4_k5_c18_a8", 8, (4, 4, 18, (5, 5), (1, 1), (2, 2, 2, 2))),
        ("dws_2x3_k2x3_c9_a4", 4, (2, 3, 9, (2, 3), (1, 1), (0, 1, 1, 1))),
    ):
        cases.append(random_dw(rng, name, bits, *shape))
    return cases


DW_CASES = make_dw_cases()


def write_cases_header(
    cases: list[AddCase], fc_cases: list[FcCase], dw_cases: list[DwCase], path: Path
) -> None:
    """``ops_cases.h``: the add, fully_connected and depthwise case tables, their data and the
    buffer sizes."""
    parts = [
        "/* Generated by tests/test_kernels_ops_mcu.py. */\n#include <stdint.h>\n",
        '#include "q4_kernels.h"\n',
        "typedef struct {\n  const char *name;\n  q4_add_params params;\n  int32_t size;\n"
        "  const int8_t *a;\n  const int8_t *b;\n  const int8_t *expected;\n} q4_add_case;\n",
        "typedef struct {\n  const char *name;\n  q4_fc_params params;\n"
        "  q4_quant_params quant;\n  int32_t input_size, output_size;\n  const int8_t *input;\n"
        "  const uint8_t *filter;\n  const int32_t *bias;\n  const int8_t *expected;\n"
        "} q4_fc_case;\n",
        "typedef struct {\n  const char *name;\n  q4_conv_params params;\n"
        "  q4_quant_params quant;\n  q4_dims input_dims, filter_dims, output_dims;\n"
        "  const int8_t *input;\n  const uint8_t *filter;\n  const int32_t *bias;\n"
        "  const int8_t *expected;\n} q4_dw_case;\n",
    ]
    rows = []
    for i, c in enumerate(cases):
        parts += [
            c_array("int8_t", f"a{i}", c.a),
            c_array("int8_t", f"b{i}", c.b),
            c_array("int8_t", f"y{i}", c.expected),
        ]
        rows.append(
            f'  {{"{c.name}", {{{c.a_zp}, {c.b_zp}, {c.out_zp}, {c.ma}, {c.mb}, {c.shift}, '
            f"{c.act_min}, {c.act_max}}}, {c.a.size}, a{i}, b{i}, y{i}}}"
        )
    parts.append("static const q4_add_case q4_cases[] = {\n" + ",\n".join(rows) + "\n};\n")
    rows = []
    for i, c in enumerate(fc_cases):
        parts += [
            c_array("int8_t", f"fx{i}", c.x),
            c_array("uint8_t", f"fw{i}", pack_int4_rows(c.weight)),
            c_array("int32_t", f"fb{i}", c.bias),
            c_array("int32_t", f"fm{i}", c.multiplier),
            c_array("int32_t", f"fs{i}", c.shift),
            c_array("int8_t", f"fy{i}", c.expected),
        ]
        rows.append(
            f'  {{"{c.name}", {{{c.input_zp}, {c.output_zp}, {c.act_min}, {c.act_max}}}, '
            f"{{fm{i}, fs{i}}}, {c.x.size}, {c.expected.size}, fx{i}, fw{i}, fb{i}, fy{i}}}"
        )
    parts.append("static const q4_fc_case q4_fc_cases[] = {\n" + ",\n".join(rows) + "\n};\n")
    rows = []
    for i, c in enumerate(dw_cases):
        ch = c.weight.shape[0]
        parts += [
            c_array("int8_t", f"dx{i}", c.x),
            c_array("uint8_t", f"dw{i}", pack_int4_rows(c.weight.reshape(ch, -1))),
            c_array("int32_t", f"db{i}", c.bias),
            c_array("int32_t", f"dm{i}", c.multiplier),
            c_array("int32_t", f"ds{i}", c.shift),
            c_array("int8_t", f"dy{i}", c.expected),
        ]
        (h, w, _), (ho, wo, _) = c.x.shape, c.expected.shape
        rows.append(
            f'  {{"{c.name}", {{{c.input_zp}, {c.output_zp}, {c.stride[0]}, {c.stride[1]}, '
            f"{c.pads[0]}, {c.pads[1]}, {c.act_min}, {c.act_max}}}, {{dm{i}, ds{i}}}, "
            f"{{{h}, {w}, {ch}}}, {{{c.weight.shape[1]}, {c.weight.shape[2]}, {ch}}}, "
            f"{{{ho}, {wo}, {ch}}}, dx{i}, dw{i}, db{i}, dy{i}}}"
        )
    parts.append("static const q4_dw_case q4_dw_cases[] = {\n" + ",\n".join(rows) + "\n};\n")
    out_bytes = max(
        [c.a.size for c in cases] + [c.expected.size for c in fc_cases] + [c.expected.size for c in dw_cases]
    )
    scratch = max(
        [256]
        + [2 * (-(-c.x.size // 8) * 8) for c in fc_cases]
        + [dw_scratch_bytes(c.weight.shape[1] * c.weight.shape[2], c.weight.shape[0]) for c in dw_cases]
    )
    parts.append(f"#define Q4_OUTPUT_BYTES {out_bytes}\n#define Q4_SCRATCH_WORDS {scratch // 4}\n")
    path.write_text("".join(parts))


def dw_scratch_bytes(taps: int, channels: int) -> int:
    """The larger of the two depthwise variants' scratch sizes (q4_kernels_opt.h)."""
    formulas = [v.scratch_bytes for v in KERNEL_VARIANTS["depthwise_conv2d"]]
    return max(f(taps * channels, channels) for f in formulas)


def build_and_run(
    board: Board, cases: list[AddCase], fc_cases: list[FcCase], dw_cases: list[DwCase], out_dir: Path
) -> list[VariantResult]:
    write_cases_header(cases, fc_cases, dw_cases, out_dir / "ops_cases.h")
    return run_harness(
        board,
        [HARNESS, *ADD_SOURCES, *FC_SOURCES, *DW_SOURCES],
        [RUNTIME / "include", RUNTIME / "include" / "internal", out_dir],
        out_dir,
        "ops_harness",
    )


@pytest.fixture(scope="module")
def board_results(tmp_path_factory):
    cache = {}

    def get(board_name):
        if board_name not in cache:
            board = load_board(board_name)
            require_tools(board)
            cache[board_name] = build_and_run(
                board, CASES, FC_CASES, DW_CASES, tmp_path_factory.mktemp(board_name)
            )
        return cache[board_name]

    return get


def test_cases_cover_the_interesting_parameters():
    assert {c.shift for c in CASES} == set(range(1, 31))
    assert any(c.a.size % 4 for c in CASES) and any(c.a.size % 16 == 15 for c in CASES)
    assert {-128, 127} <= {c.a_zp for c in CASES} | {c.b_zp for c in CASES}
    assert any(c.ma == 0 for c in CASES) and any(c.mb < 0 for c in CASES)
    assert any(max(abs(c.ma), abs(c.mb)) == MULT_LIMIT - 1 for c in CASES)
    assert any(c.act_min == c.act_max for c in CASES)
    assert any(c.a.min() == -128 and c.b.max() == 127 for c in CASES)
    # the outputs are not all clamped: the requantization really is exercised
    assert np.mean([np.unique(c.expected).size > 4 for c in CASES if c.a.size >= 32]) > 0.7


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_add_variants_are_bit_exact_on_target(board_name, board_results):
    results = board_results(board_name)
    assert {r.variant for r in results} == BOARD_VARIANTS[board_name]
    n_cases = len(CASES) + len(FC_CASES) + len(DW_CASES)
    assert len(results) == n_cases * len(BOARD_VARIANTS[board_name])
    bad = [r for r in results if r.mismatches or not r.guard_ok]
    assert not bad, bad


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_add_variants_run_fewer_instructions(board_name, board_results):
    """On ResNet-8's first residual add (16384 elements) each variant is at least 3x faster."""
    for case in ("resnet8_add0", "resnet8_add0_a8"):
        n = {r.variant: r.instructions for r in board_results(board_name) if r.case == case}
        for variant in BOARD_VARIANTS[board_name] - {"portable"}:
            assert n[variant] * 3 < n["portable"], (case, n)


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_fc_and_depthwise_variants_run_fewer_instructions(board_name, board_results):
    """On a 1100 -> 33 fully connected layer and a 16x16x32 3x3 depthwise layer every variant is
    at least 3x faster than the portable kernel."""
    for case in ("fc10a8", "dw_mobilenet"):
        n = {r.variant: r.instructions for r in board_results(board_name) if r.case == case}
        for variant in BOARD_VARIANTS[board_name] - {"portable"}:
            assert n[variant] * 3 < n["portable"], (case, n)


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_generator_sizes_scratch_like_the_kernels(board_name, board_results):
    """q4sdk.codegen.render's copy of each *_get_buffer_size, called with the (K, O) it passes: 0, 0 for
    add; I, O for fully_connected; kh * kw * C, C for depthwise."""
    formulas = {
        v.function: v.scratch_bytes
        for kind in ("add", "fully_connected", "depthwise_conv2d")
        for v in KERNEL_VARIANTS[kind]
    }
    k_o = {c.name: ("q4_add_s8", 0, 0) for c in CASES}
    k_o.update({c.name: ("q4_fully_connected_s4", c.x.size, c.weight.shape[0]) for c in FC_CASES})
    k_o.update({c.name: ("q4_depthwise_conv2d_s4", c.weight.size, c.weight.shape[0]) for c in DW_CASES})
    checked = 0
    for r in board_results(board_name):
        if r.variant != "portable":
            stem, k, o = k_o[r.case]
            assert formulas[f"{stem}_{r.variant}"](k, o) == r.scratch_bytes, r
            checked += 1
    assert checked == (len(CASES) + len(FC_CASES) + len(DW_CASES)) * (len(BOARD_VARIANTS[board_name]) - 1)


def tiny_model() -> QModel:
    """depthwise 3x3 -> add (residual) -> flatten -> fully_connected, int4 activations: every
    op kind with a variant here, single-term, as the generator lays them out."""
    rng = np.random.default_rng(7)
    h, w, c, o = 8, 8, 16, 10
    x = QTensor("x", (h, w, c), 4, 0.1, -3)
    d = QTensor("d", (h, w, c), 4, 0.2, 0)
    s = QTensor("s", (h, w, c), 4, 0.15, -8)
    f = QTensor("f", (h * w * c,), 4, 0.15, -8)
    y = QTensor("y", (o,), 8, 0.5, 5)
    dw = QOp(
        "dw_0",
        "depthwise_conv2d",
        ["x"],
        "d",
        {"stride": [1, 1], "pads": [1, 1, 1, 1], "act_min": -8, "act_max": 7},
        {
            "weight": rng.integers(-8, 8, (c, 3, 3)).astype(np.int8),
            "bias": rng.integers(-50, 50, c).astype(np.int32),
            "multiplier": rng.integers(1 << 30, 1 << 31, c).astype(np.int32),
            "shift": np.full(c, 35, np.int32),
        },
    )
    add = QOp(
        "add_0",
        "add",
        ["x", "d"],
        "s",
        {"shift": 20, "act_min": -8, "act_max": 7},
        {"multiplier": np.array([699051, 1398101], np.int32)},
    )
    flat = QOp("flatten_0", "reshape", ["s"], "f", {}, {})
    fc = QOp(
        "fc_0",
        "fully_connected",
        ["f"],
        "y",
        {"act_min": -128, "act_max": 127},
        {
            "weight": rng.integers(-8, 8, (o, h * w * c)).astype(np.int8),
            "bias": rng.integers(-500, 500, o).astype(np.int32),
            "multiplier": rng.integers(1 << 30, 1 << 31, o).astype(np.int32),
            "shift": np.full(o, 38, np.int32),
        },
    )
    return QModel(
        "tiny",
        "x",
        "y",
        {t.name: t for t in (x, d, s, f, y)},
        [dw, add, flat, fc],
        meta={"input_layout": "NHWC"},
    )


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_generated_firmware_calls_the_variants(board_name, tmp_path):
    """generate + build + run with kernels="optimised": the variants are called (with their
    scratch) and every output matches the oracle."""
    board = load_board(board_name)
    require_tools(board)
    model = tiny_model()
    t = model.tensors[model.input]
    xq = np.random.default_rng(8).integers(t.qmin, t.qmax + 1, (2, *t.shape)).astype(np.int8)
    run = run_on_board(model, board, xq, tmp_path, kernels="optimised")
    assert run.ok, run.first_mismatch
    arch = "mve" if board.mve else "dsp"
    kernels = {layer.op: layer.kernel for layer in run.layers}
    assert kernels["dw_0"] == f"q4_depthwise_conv2d_s4_{arch}"
    assert kernels["add_0"] == f"q4_add_s8_{arch}"
    assert kernels["fc_0"] == f"q4_fully_connected_s4_{arch}"


def test_mve_depthwise_plane_path_is_bit_exact_unoptimised(tmp_path):
    """Built without optimisation the _mve 3x3 plane path filters with intrinsics instead of its
    inline assembly (GCC cannot allocate the 11 registers at -O0): that code is checked too."""
    board = load_board("mps3-an547")
    require_tools(board)
    dw_cases = [c for c in DW_CASES if c.name.startswith(("dwp_", "dw_slow", "dw3_0", "dw1"))]
    write_cases_header(CASES[:1], FC_CASES[:1], dw_cases, tmp_path / "ops_cases.h")
    results = run_harness(
        board,
        [HARNESS, *ADD_SOURCES, *FC_SOURCES, *DW_SOURCES],
        [RUNTIME / "include", RUNTIME / "include" / "internal", tmp_path],
        tmp_path,
        "ops_harness",
        extra_cflags=["-O0"],
    )
    assert {r.case for r in results if r.variant == "mve"} >= {c.name for c in dw_cases}
    bad = [r for r in results if r.mismatches or not r.guard_ok]
    assert not bad, bad


@pytest.mark.parametrize(
    "flags", [["-O0"], ["-O2", "-fno-omit-frame-pointer", "-ffixed-r9"]], ids=["O0", "fp_r9"]
)
def test_dsp_fully_connected_and_add_are_bit_exact_in_other_builds(tmp_path, flags):
    """Built without optimisation q4_fully_connected_s4_dsp's 4-row passes and q4_add_s8_dsp's
    4-bit loop run C loops instead of their inline assembly: that code is checked too. With a
    frame pointer and r9 reserved the assembly still builds (it saves r7 itself and never
    touches r9) and stays bit-exact."""
    board = load_board("mps2-an386")
    require_tools(board)
    write_cases_header(CASES, FC_CASES, DW_CASES[:1], tmp_path / "ops_cases.h")
    results = run_harness(
        board,
        [HARNESS, *ADD_SOURCES, *FC_SOURCES, *DW_SOURCES],
        [RUNTIME / "include", RUNTIME / "include" / "internal", tmp_path],
        tmp_path,
        "ops_harness",
        extra_cflags=flags,
    )
    assert {r.case for r in results if r.variant == "dsp"} >= {c.name for c in FC_CASES + CASES}
    bad = [r for r in results if r.mismatches or not r.guard_ok]
    assert not bad, bad


@pytest.mark.parametrize("core", sorted(CORES))
def test_sources_compile_warning_free(core):
    compiler = "arm-none-eabi-gcc"
    if shutil.which(compiler) is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {compiler} is not on PATH")
        pytest.skip(f"{compiler} is not on PATH")
    for source in OPT_SOURCES:
        result = subprocess.run(
            [compiler, *CORES[core], *STRICT_FLAGS, str(source)], capture_output=True, text=True
        )
        assert result.returncode == 0, f"{source.name} on {core}:\n{result.stderr}"


def test_sources_compile_on_the_host():
    """Without any Arm extension every variant falls back to the portable kernel."""
    for compiler in ("gcc", "clang"):
        if shutil.which(compiler) is None:
            continue
        for source in OPT_SOURCES:
            result = subprocess.run([compiler, *STRICT_FLAGS, str(source)], capture_output=True, text=True)
            assert result.returncode == 0, f"{source.name} with {compiler}:\n{result.stderr}"


def print_instruction_table(results: list[VariantResult], board: str) -> None:  # pragma: no cover
    """Instructions per element (add) and per MAC (fully_connected, depthwise_conv2d)."""
    work_of = (
        [(c.name, c.a.size) for c in CASES]
        + [(c.name, c.weight.size) for c in FC_CASES]
        + [(c.name, c.macs) for c in DW_CASES]
    )
    for name, work in work_of:
        row = {r.variant: r.instructions / work for r in results if r.case == name}
        print(board, name, work, {k: round(v, 2) for k, v in row.items()})


if __name__ == "__main__":  # pragma: no cover - prints the instructions/element table
    import tempfile

    for name in sorted(BOARD_VARIANTS):
        with tempfile.TemporaryDirectory() as tmp:
            print_instruction_table(
                build_and_run(load_board(name), CASES, FC_CASES, DW_CASES, Path(tmp)), name
            )
