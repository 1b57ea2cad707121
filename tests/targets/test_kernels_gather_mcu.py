"""The optimised gather kernels (q4_gather_s8_dsp, q4_gather_s8_mve) on their boards, bit for bit
against the oracle.

Index maps of every form the format allows (``q4sdk.ir.oracle.gather`` computes the expected
bytes): ShuffleNet's channel shuffle for 2, 3 and 4 groups and the halves a Split takes of it,
Slice with and without steps along H, W and C, plain channel splits, identity copies, reversed,
repeated and random tables, single indices, inner sizes 1 to 64, an outer slice wider than 256
bytes (16-bit gather offsets) and one wider than 65536 bytes (run copies), tails of every length,
and input / output pointers at every alignment mod 4. They are written into one harness firmware
per board (``tests/mcu/gather_harness.c``) and run under QEMU on ``mps2-an386`` (Cortex-M4:
portable and _dsp) and ``mps3-an547`` (Cortex-M55: portable, _dsp and _mve); nothing may be written
outside the output. Also built at -O0, and warning-free on each core and the host.

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
from q4sdk.codegen.kernels import KERNEL_VARIANTS, select_kernel  # noqa: E402
from q4sdk.ir.oracle import gather  # noqa: E402
from q4sdk.ir.qmodel import QOp  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime_c"
HARNESS = ROOT / "tests" / "mcu" / "gather_harness.c"
SOURCES = [RUNTIME / "src" / "basic" / f"q4_gather_s8{suffix}.c" for suffix in ("", "_dsp", "_mve")]
BOARDS = {"mps2-an386": {"portable", "dsp"}, "mps3-an547": {"portable", "dsp", "mve"}}


@dataclass
class GatherCase:
    name: str
    x: np.ndarray  # (H, W, C) int8
    axis: int  # stored axis: 0 = H, 1 = W, 2 = C
    index: np.ndarray  # int32
    in_shift: int = 0  # the input starts this many bytes into its array
    out_shift: int = 0  # the output starts this many bytes into the harness's buffer

    @property
    def op(self) -> QOp:
        return QOp(self.name, "gather", ["x"], "y", {"axis": self.axis}, {"index": self.index})

    @property
    def expected(self) -> np.ndarray:
        return gather(self.x[None], self.op)[0]

    @property
    def outer_axis_inner(self) -> tuple[int, int, int]:
        shape = self.x.shape
        return (
            int(np.prod(shape[: self.axis])),
            shape[self.axis],
            int(np.prod(shape[self.axis + 1 :])),
        )


def shuffle_index(c: int, groups: int) -> np.ndarray:
    """ShuffleNet's channel shuffle: index[j] = (j mod g) * (C / g) + j div g."""
    j = np.arange(c)
    return ((j % groups) * (c // groups) + j // groups).astype(np.int32)


def make_cases() -> list[GatherCase]:
    rng = np.random.default_rng(20261204)

    def x(h, w, c):
        return rng.integers(-128, 128, (h, w, c)).astype(np.int8)

    def case(name, shape, axis, index, in_shift=None, out_shift=None):
        return GatherCase(
            name,
            x(*shape),
            axis,
            np.asarray(index, np.int32),
            int(rng.integers(0, 4)) if in_shift is None else in_shift,
            int(rng.integers(0, 4)) if out_shift is None else out_shift,
        )

    sh48, sh24 = shuffle_index(48, 2), shuffle_index(24, 2)
    cases = [
        # ShuffleNetV2 x0.5 stage 2 (24 + 24 channels on 28x28 is 14x14 here): the shuffle and its halves
        case("shuffle_48", (14, 14, 48), 2, sh48, 0, 0),
        case("shuffle_48_first", (14, 14, 48), 2, sh48[:24], 0, 0),
        case("shuffle_48_second", (14, 14, 48), 2, sh48[24:], 1, 3),
        case("shuffle_96_second", (7, 7, 96), 2, shuffle_index(96, 2)[48:]),
        case("shuffle_24_first", (5, 5, 24), 2, sh24[:12]),
        case("shuffle_22", (3, 4, 22), 2, shuffle_index(22, 2)),  # half 11: tails of the 8/4 steps
        case("shuffle_36_g3", (4, 4, 36), 2, shuffle_index(36, 3)),
        case("shuffle_64_g4", (3, 3, 64), 2, shuffle_index(64, 4)),
        case("shuffle_600", (2, 2, 600), 2, shuffle_index(600, 2)),  # 16-bit offsets on Helium
        # splits and slices: runs of contiguous bytes
        case("split_c_first", (8, 8, 48), 2, np.arange(24), 0, 0),
        case("split_c_second", (8, 8, 48), 2, np.arange(24, 48), 2, 1),
        case("split_c_odd", (5, 3, 37), 2, np.arange(11, 37)),
        case("slice_c_step2", (6, 6, 32), 2, np.arange(0, 32, 2)),
        case("slice_h", (12, 10, 8), 0, np.arange(3, 9), 0, 0),
        case("slice_h_step3", (12, 10, 8), 0, np.arange(1, 12, 3)),
        case("slice_w", (6, 20, 12), 1, np.arange(5, 17)),
        case("slice_w_step2", (6, 20, 3), 1, np.arange(0, 20, 2)),
        case("slice_w_inner2", (9, 30, 2), 1, np.arange(1, 29, 2)),
        case("identity_c", (10, 10, 16), 2, np.arange(16), 0, 0),
        case("identity_c_shifted", (7, 9, 13), 2, np.arange(13), 3, 1),
        case("identity_h", (9, 8, 8), 0, np.arange(9)),
        # out-of-order, repeated, single
        case("reverse_c", (6, 6, 40), 2, np.arange(40)[::-1]),
        case("reverse_w", (4, 25, 9), 1, np.arange(25)[::-1]),
        case("repeat_c", (5, 5, 10), 2, [3, 3, 3, 0, 9, 9, 1, 2, 3, 4, 4, 4, 4, 7]),
        case("repeat_h", (6, 7, 20), 0, [5, 5, 0, 0, 2]),
        case("one_index", (8, 8, 48), 2, [17]),
        case("one_index_w", (3, 16, 24), 1, [15]),
        case("one_pixel", (1, 1, 48), 2, sh48),
        case("copy_all_twice", (4, 4, 12), 2, np.concatenate([np.arange(12), np.arange(12)])),
        case(
            "runs_of_8",
            (5, 5, 64),
            2,
            np.concatenate([np.arange(40, 48), np.arange(0, 8), np.arange(16, 32)]),
        ),
        case("runs_of_3", (5, 5, 30), 2, np.concatenate([np.arange(i, i + 3) for i in (27, 3, 12, 0, 21)])),
        case("interleave_lookalike", (4, 4, 20), 2, [0, 10, 1, 11, 2, 12, 3, 13, 4, 15]),
        # large maps, so the per-call cost fades: runs of 24 bytes (a split), of 8, a whole-row slice
        case("split_c_large", (32, 32, 48), 2, np.arange(24, 48), 0, 0),
        case("runs_of_8_large", (32, 32, 32), 2, np.r_[8:16, 0:8, 24:32, 16:24], 0, 0),
        case("slice_h_large", (16, 32, 64), 0, np.arange(4, 12), 0, 0),
        case("shuffle_48_large", (32, 32, 48), 2, sh48[24:], 0, 0),
        case("wide_outer_slice", (1, 1, 70000), 2, np.arange(69990, 5, -7)[:900]),  # > 65536: run copies
    ]
    for i in range(8):  # random tables along a random axis, random shapes
        shape = tuple(int(v) for v in rng.integers(1, 14, 3))
        axis = int(rng.integers(0, 3))
        n = int(rng.integers(1, 2 * shape[axis] + 2))
        cases.append(case(f"random{i}", shape, axis, rng.integers(0, shape[axis], n)))
    for t in range(1, 16):  # every tail length of a block of 16 (4, 8) output bytes
        cases.append(case(f"tail{t}", (2, 3, 20), 2, rng.integers(0, 20, 16 + t)))
    for i in range(4):  # random permutations of the channels
        c = int(rng.integers(5, 130))
        cases.append(case(f"perm{i}", (3, 5, c), 2, rng.permutation(c)))
    return cases


CASES = make_cases()


def write_cases_header(cases: list[GatherCase], path: Path) -> None:
    parts = [
        "/* Generated by tests/targets/test_kernels_gather_mcu.py. */\n#include <stdint.h>\n",
        '#include "q4_gather.h"\n',
        "typedef struct {\n  const char *name;\n  q4_gather_params params;\n  const int8_t *input;\n"
        "  int32_t in_shift;\n  int32_t out_shift;\n  const int8_t *expected;\n} q4_gather_case;\n",
    ]
    rows = []
    for i, c in enumerate(cases):
        padded = np.concatenate([np.full(c.in_shift, 99, np.int8), c.x.reshape(-1)])
        parts += [
            c_array("int8_t", f"x{i}", padded),
            c_array("int8_t", f"y{i}", c.expected),
            c_array("int32_t", f"index{i}", c.index),
        ]
        outer, axis_size, inner = c.outer_axis_inner
        rows.append(
            f'  {{"{c.name}", {{{outer}, {axis_size}, {inner}, {c.index.size}, index{i}}}, x{i}, '
            f"{c.in_shift}, {c.out_shift}, y{i}}}"
        )
    parts.append(f"#define Q4_OUTPUT_BYTES {max(c.expected.size for c in cases)}\n")
    parts.append("static const q4_gather_case q4_gather_cases[] = {\n" + ",\n".join(rows) + "\n};\n")
    path.write_text("".join(parts))


def build_and_run(board, out_dir: Path, extra_cflags=()):
    write_cases_header(CASES, out_dir / "gather_cases.h")
    return run_harness(
        board,
        [HARNESS, *SOURCES],
        [RUNTIME / "include", RUNTIME / "include" / "internal", out_dir],
        out_dir,
        "gather_harness",
        extra_cflags=extra_cflags,
    )


@pytest.fixture(scope="module")
def board_results(tmp_path_factory):
    return runs_per_board(tmp_path_factory, build_and_run)


def test_cases_cover_the_interesting_parameters():
    shapes = [c.outer_axis_inner for c in CASES]
    assert {c.axis for c in CASES} == {0, 1, 2}
    assert {c.in_shift for c in CASES} == {0, 1, 2, 3} and {c.out_shift for c in CASES} == {0, 1, 2, 3}
    assert any(a * i > 65536 for _, a, i in shapes) and any(256 < a * i <= 65536 for _, a, i in shapes)
    assert any(len(set(c.index.tolist())) < c.index.size for c in CASES)  # repeats
    assert any(np.any(np.diff(c.index) < 0) for c in CASES)  # out of order
    assert {(c.index.size * i) % 16 for c, (_, _, i) in zip(CASES, shapes)} >= set(range(1, 16, 2))


@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_gather_variants_are_bit_exact_on_target(board_name, board_results):
    results = board_results(board_name)
    assert {r.variant for r in results} == BOARDS[board_name]
    assert len(results) == len(BOARDS[board_name]) * len(CASES)
    bad = [r for r in results if r.mismatches or not r.guard_ok]
    assert not bad, bad


@pytest.mark.parametrize(
    "board_name, variant, case, factor",
    [
        ("mps2-an386", "dsp", "shuffle_48_second", 3),  # ShuffleNet's two-way interleave
        ("mps2-an386", "dsp", "split_c_second", 6),  # runs of 24 bytes
        ("mps3-an547", "mve", "shuffle_48_second", 10),  # byte gathers
        ("mps3-an547", "mve", "split_c_second", 10),
    ],
)
def test_gather_variants_are_faster(board_name, variant, case, factor, board_results):
    n = {r.variant: r.instructions for r in board_results(board_name) if r.case == case}
    assert n[variant] * factor < n["portable"], n


def test_gather_variants_are_bit_exact_unoptimised(tmp_path):
    for name in ("mps2-an386", "mps3-an547"):
        board = load_board(name)
        require_tools(board)
        (tmp_path / name).mkdir()
        results = build_and_run(board, tmp_path / name, extra_cflags=["-O0"])
        bad = [r for r in results if r.mismatches or not r.guard_ok]
        assert not bad, (name, bad)


def test_generator_registers_the_variants():
    variants = KERNEL_VARIANTS["gather"]
    assert [(v.function, v.requires) for v in variants] == [
        ("q4_gather_s8_mve", "mve"),
        ("q4_gather_s8_dsp", "dsp"),
    ]
    assert all(v.scratch_bytes(0, 0) == 0 for v in variants)
    op = CASES[0].op
    args = {"input_bits": 8}
    assert select_kernel(op, args, load_board("mps2-an386"), "optimised").function == "q4_gather_s8_dsp"
    assert select_kernel(op, args, load_board("mps3-an547"), "optimised").function == "q4_gather_s8_mve"
    assert select_kernel(op, args, load_board("mps2-an386"), "portable") is None


def _shuffle_model():
    """Gathers in a chain, each layer's output the next one's input: the channel shuffle of a
    (6, 6, 24) map, the second half a Split takes of a shuffle, a slice along H with a step, W
    reversed with repeats."""
    from random_models import _Builder

    b = _Builder(np.random.default_rng(7), (6, 6, 24), bits=8)
    for shape, axis, index in (
        ((6, 6, 24), 2, shuffle_index(24, 2)),
        ((6, 6, 12), 2, shuffle_index(24, 2)[12:]),
        ((3, 6, 12), 0, np.arange(0, 6, 2)),
        ((3, 8, 12), 1, np.array([5, 4, 3, 3, 2, 1, 0, 0])),
    ):
        index = np.asarray(index, np.int32)
        b.cur = b.emit("gather", [b.cur], b.like(b.cur, shape), {"axis": axis}, {"index": index})
    return b.model("gathers")


@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_generated_model_calls_the_variant_and_is_bit_exact(board_name, tmp_path):
    """The generator picks the board's gather variant for every gather layer (default kernels)
    and the firmware's outputs equal the oracle's."""
    from q4sdk.targets.run import run_on_board
    from random_models import random_input

    board = load_board(board_name)
    require_tools(board)
    model = _shuffle_model()
    run = run_on_board(model, board, random_input(model, np.random.default_rng(8), 2), tmp_path / "run")
    assert run.ok
    expected = "q4_gather_s8_mve" if "mve" in BOARDS[board_name] else "q4_gather_s8_dsp"
    assert [layer.kernel for layer in run.layers] == [expected] * 4


@pytest.mark.parametrize("core", sorted(c for c in CORES if c != "cortex-m0plus"))
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
        assert result.returncode == 0, result.stderr


def test_sources_compile_on_the_host():
    for compiler in ("gcc", "clang"):
        if shutil.which(compiler) is None:
            continue
        for source in SOURCES[1:]:
            result = subprocess.run([compiler, *STRICT_FLAGS, str(source)], capture_output=True, text=True)
            assert result.returncode == 0, f"{compiler} {source.name}:\n{result.stderr}"


if __name__ == "__main__":  # pragma: no cover - prints instructions per output byte
    import tempfile

    for name in BOARDS:
        with tempfile.TemporaryDirectory() as tmp:
            res = build_and_run(load_board(name), Path(tmp))
        for c in CASES:
            n = {r.variant: round(r.instructions / c.expected.size, 2) for r in res if r.case == c.name}
            print(name, c.name, c.outer_axis_inner, c.index.size, n)
