"""The ARMv6-M kernels (_armv6m: Cortex-M0/M0+, no DSP) bit for bit against the oracle.

The conv2d cases of test_kernels_mcu.py and the fully connected and depthwise cases of
test_kernels_ops_mcu.py run through the shared harnesses (tests/mcu) on the Cortex-M0 board microbit-264k under QEMU,
where the inner loop is inline assembly, and on rv32imc with Q4_HARNESS_ARMV6M, where the same
kernels build as plain C. The harnesses also check that nothing is written past the output or the
declared scratch, whose size must equal the generator's formula (q4sdk.codegen.render). A whole
random model generated with kernels="optimised" for the M0 board or rv32imc calls them and stays
bit-exact.

Tests skip when a compiler or QEMU is missing, and fail instead when CI is set.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_kernels_mcu import CASES as CONV_CASES  # noqa: E402
from test_kernels_ops_mcu import ADD_SOURCES, DW_CASES, DW_SOURCES, FC_CASES, FC_SOURCES, write_cases_header  # noqa: E402
from test_kernels_ops_mcu import CASES as ADD_CASES
from test_kernels_ops_mcu import HARNESS as OPS_HARNESS

from mcu.conv_cases import RUNTIME  # noqa: E402
from mcu.conv_cases import build_and_run as build_and_run_conv
from mcu.harness import require_tools, run_harness  # noqa: E402
from q4sdk.codegen.kernels import KERNEL_VARIANTS  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402
from q4sdk.targets.run import run_on_board  # noqa: E402
from random_models import random_input, random_model  # noqa: E402

M0_BOARD = "microbit-264k"
C_BOARD = "rv32imc"  # runs the same kernels compiled as plain C
FC_ARMV6M = RUNTIME / "src" / "fully_connected" / "q4_fully_connected_s4_armv6m.c"
DW_ARMV6M = RUNTIME / "src" / "convolution" / "q4_depthwise_conv2d_s4_armv6m.c"
ARMV6M_FLAG = "-DQ4_HARNESS_ARMV6M"


def dw_scratch_bytes(case) -> int:
    """q4_depthwise_conv2d_s4_armv6m_get_buffer_size, from the generator's formula."""
    channels, taps = case.weight.shape[0], case.weight.shape[1] * case.weight.shape[2]
    formula = next(
        v.scratch_bytes
        for v in KERNEL_VARIANTS["depthwise_conv2d"]
        if v.function == "q4_depthwise_conv2d_s4_armv6m"
    )
    return formula(taps * channels, channels)


def _flags(board_name: str) -> list[str]:
    return [] if load_board(board_name).armv6m else [ARMV6M_FLAG]


@pytest.fixture(scope="module")
def conv_results(tmp_path_factory):
    cache = {}

    def get(board_name):
        if board_name not in cache:
            board = load_board(board_name)
            require_tools(board)
            cache[board_name] = build_and_run_conv(
                board, CONV_CASES, tmp_path_factory.mktemp(board_name), extra_cflags=_flags(board_name)
            )
        return cache[board_name]

    return get


@pytest.fixture(scope="module")
def ops_results(tmp_path_factory):
    cache = {}

    def get(board_name):
        if board_name not in cache:
            board = load_board(board_name)
            require_tools(board)
            out = tmp_path_factory.mktemp(board_name)
            header = out / "ops_cases.h"
            write_cases_header(ADD_CASES, FC_CASES, DW_CASES, header)
            # the depthwise _armv6m keeps its weights as int32: more scratch than the others
            words = max(dw_scratch_bytes(c) for c in DW_CASES) // 4
            text = header.read_text()
            budget = int(re.search(r"#define Q4_SCRATCH_WORDS (\d+)", text).group(1))
            header.write_text(
                text.replace(
                    f"#define Q4_SCRATCH_WORDS {budget}", f"#define Q4_SCRATCH_WORDS {max(budget, words)}"
                )
            )
            sources = [OPS_HARNESS, *ADD_SOURCES, *FC_SOURCES, FC_ARMV6M, *DW_SOURCES, DW_ARMV6M]
            cache[board_name] = run_harness(
                board,
                sources,
                [RUNTIME / "include", RUNTIME / "include" / "internal", out],
                out,
                "ops_harness",
                extra_cflags=_flags(board_name),
            )
        return cache[board_name]

    return get


@pytest.mark.parametrize("board_name", [M0_BOARD, C_BOARD])
def test_armv6m_conv_is_bit_exact(board_name, conv_results):
    results = conv_results(board_name)
    assert {r.variant for r in results} == {"portable", "armv6m", "a4_armv6m"}
    assert len(results) == 2 * len(CONV_CASES) + sum(c.bits == 4 for c in CONV_CASES)
    bad = [r for r in results if r.mismatches or not r.guard_ok]
    assert not bad, bad


@pytest.mark.parametrize("board_name", [M0_BOARD, C_BOARD])
def test_armv6m_fully_connected_is_bit_exact(board_name, ops_results):
    fc = {c.name for c in FC_CASES}
    results = [r for r in ops_results(board_name) if r.case in fc]
    assert {r.variant for r in results} == {"portable", "armv6m"}
    assert len(results) == 2 * len(FC_CASES)
    bad = [r for r in results if r.mismatches or not r.guard_ok]
    assert not bad, bad


@pytest.mark.parametrize("board_name", [M0_BOARD, C_BOARD])
def test_armv6m_depthwise_is_bit_exact(board_name, ops_results):
    dw = {c.name for c in DW_CASES}
    results = [r for r in ops_results(board_name) if r.case in dw]
    assert {r.variant for r in results} == {"portable", "armv6m"}
    assert len(results) == 2 * len(DW_CASES)
    bad = [r for r in results if r.mismatches or not r.guard_ok]
    assert not bad, bad


def test_armv6m_kernels_run_fewer_instructions_on_the_m0(conv_results, ops_results):
    """On the Cortex-M0 the 8x8x16 -> 16 3x3 layer runs in under a quarter of the portable
    kernel's instructions and under 4 per MAC (4-bit inputs: fewer still); the 1024 -> 16 fully
    connected layer in under half; depthwise layers in well under half."""
    conv = {r.variant: r.instructions for r in conv_results(M0_BOARD) if r.case == "s1a8"}
    case = next(c for c in CONV_CASES if c.name == "s1a8")
    assert conv["armv6m"] * 4 < conv["portable"], conv
    assert conv["armv6m"] / case.macs < 4.0, conv
    conv4 = {r.variant: r.instructions for r in conv_results(M0_BOARD) if r.case == "s1a4"}
    assert conv4["a4_armv6m"] < 0.95 * conv4["armv6m"], conv4  # fewer drains
    fc = {r.variant: r.instructions for r in ops_results(M0_BOARD) if r.case == "fc9a8"}
    assert fc["armv6m"] * 2 < fc["portable"], fc
    for case in DW_CASES:  # depthwise, 16+ channels and pixels: 2x fewer (shifts <= 32 included),
        if case.weight.shape[0] >= 16 and case.expected.shape[0] * case.expected.shape[1] >= 16:
            dw = {r.variant: r.instructions for r in ops_results(M0_BOARD) if r.case == case.name}
            gain = 3.5 if case.name == "dw_mobilenet" else 2.0  # 3.5x on MobileNet's layer
            assert dw["armv6m"] * gain < dw["portable"], (case.name, dw)


def test_generator_sizes_scratch_like_the_kernels(conv_results, ops_results):
    conv = {v.function: v.scratch_bytes for v in KERNEL_VARIANTS["conv2d"]}
    fc = {v.function: v.scratch_bytes for v in KERNEL_VARIANTS["fully_connected"]}
    dw = {v.function: v.scratch_bytes for v in KERNEL_VARIANTS["depthwise_conv2d"]}
    dw_cases = {c.name: c for c in DW_CASES}
    conv_cases = {c.name: c for c in CONV_CASES}
    fc_cases = {c.name: c for c in FC_CASES}
    checked = 0
    for r in conv_results(M0_BOARD):
        if r.variant in ("armv6m", "a4_armv6m"):
            c = conv_cases[r.case]
            assert conv[f"q4_conv2d_s4_{r.variant}"](c.k, c.weight.shape[0]) == r.scratch_bytes, r
            checked += 1
    for r in ops_results(M0_BOARD):
        if r.variant == "armv6m" and r.case in fc_cases:
            c = fc_cases[r.case]
            assert fc["q4_fully_connected_s4_armv6m"](c.x.size, c.expected.size) == r.scratch_bytes
            checked += 1
        if r.variant == "armv6m" and r.case in dw_cases:
            c = dw_cases[r.case]
            channels, taps = c.weight.shape[0], c.weight.shape[1] * c.weight.shape[2]
            assert dw["q4_depthwise_conv2d_s4_armv6m"](taps * channels, channels) == r.scratch_bytes
            checked += 1
    assert checked == (len(CONV_CASES) + sum(c.bits == 4 for c in CONV_CASES) + len(FC_CASES) + len(DW_CASES))


@pytest.mark.parametrize("board_name", [M0_BOARD, C_BOARD])
def test_optimised_model_calls_the_armv6m_kernels(board_name, tmp_path):
    """The M0 board and rv32imc (no SIMD either: the kernels are plain C there) take them."""
    board = load_board(board_name)
    require_tools(board)
    model = random_model(np.random.default_rng(7), n_ops=8, name="m0 model")
    inputs = random_input(model, np.random.default_rng(1), 2)
    run = run_on_board(model, board, inputs, tmp_path, kernels="optimised")
    assert run.ok
    conv = {layer.kernel for layer in run.layers if layer.kind == "conv2d"}
    fc = {layer.kernel for layer in run.layers if layer.kind == "fully_connected"}
    assert conv & {"q4_conv2d_s4_armv6m", "q4_conv2d_s4_a4_armv6m"}
    assert conv <= {"q4_conv2d_s4_armv6m", "q4_conv2d_s4_a4_armv6m", "q4_conv2d_s4_terms"}
    assert fc <= {"q4_fully_connected_s4_armv6m", "q4_fully_connected_s4_terms"}
