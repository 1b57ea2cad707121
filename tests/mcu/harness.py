"""Running a kernel test harness firmware under QEMU, shared by the on-target kernel tests.

A harness (tests/mcu/*_harness.c) runs every kernel variant on every case and prints one record
per (case, variant): ``<case>.<variant>`` then mismatches, timer ticks, first bad index, whether
the guard bytes past the output and scratch survived (1/0), and the scratch size the variant
asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from q4sdk.targets.boards import Board, load_board
from q4sdk.targets.firmware import build_firmware, run_firmware, toolchain_available

RUNTIME_INCLUDES = [Path(__file__).resolve().parents[2] / "runtime_c" / "include"]
RUNTIME_INCLUDES.append(RUNTIME_INCLUDES[0] / "internal")
# warning-free compile of one kernel source (append the source; -c to /dev/null)
STRICT_FLAGS = [
    "-std=c99",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Wconversion",
    "-Wshadow",
    "-Werror",
    *(f"-I{d}" for d in RUNTIME_INCLUDES),
    "-c",
    "-o",
    os.devnull,
]
# core -> arm-none-eabi-gcc flags; each core builds its own variant, not the portable fallback
CORES = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "cortex-m55": ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"],
    "cortex-m0plus": ["-mcpu=cortex-m0plus", "-mthumb"],
}


def c_array(ctype: str, name: str, values) -> str:
    """A ``static const`` C array of ``values`` for a harness's case header (one element when empty)."""
    flat = np.asarray(values).reshape(-1)
    body = ",".join(str(int(v)) for v in flat) if flat.size else "0"
    return f"static const {ctype} {name}[{max(flat.size, 1)}] = {{{body}}};\n"


def require_tools(board: Board, for_running: bool = True) -> None:
    """Skips the test when the board's toolchain (or QEMU) is missing; fails instead under CI."""
    ok, reason = toolchain_available(board, for_running=for_running)
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)


def runs_per_board(tmp_path_factory, build_and_run):
    """The body of a module fixture: ``get(board_name)`` builds and runs a harness firmware once per
    board (``build_and_run(board, out_dir)``, after ``require_tools``) and returns its results."""
    cache = {}

    def get(board_name):
        if board_name not in cache:
            board = load_board(board_name)
            require_tools(board)
            cache[board_name] = build_and_run(board, tmp_path_factory.mktemp(board_name))
        return cache[board_name]

    return get


@dataclass(frozen=True)
class VariantResult:
    """One kernel variant on one case, as the harness reported it."""

    case: str
    variant: str
    mismatches: int
    ticks: int
    first_bad: int
    guard_ok: bool
    scratch_bytes: int
    instructions: float  # ticks times the board timer's instructions per tick


def run_harness(
    board: Board,
    sources: list[Path],
    include_dirs: list[Path],
    out_dir: Path,
    name: str,
    timeout: float = 120,
    extra_cflags=(),
) -> list[VariantResult]:
    """Builds ``sources`` for ``board`` (with ``extra_cflags``), runs the firmware and returns
    its records."""
    elf = build_firmware(board, sources, include_dirs, out_dir, name=name, extra_cflags=extra_cflags)
    result = run_firmware(board, elf, timeout=timeout)
    if result.exit_code != 0:
        raise AssertionError(
            f"{name} on {board.name} exited {result.exit_code}: {result.stdout[-500:]} {result.stderr[-500:]}"
        )
    per_tick = board.timer.instructions_per_tick or 1.0
    results = []
    for key, value in result.records:
        case, _, variant = key.rpartition(".")
        mismatches, ticks, first_bad, guard, scratch = (int(v) for v in value.split())
        results.append(
            VariantResult(case, variant, mismatches, ticks, first_bad, guard == 1, scratch, ticks * per_tick)
        )
    return results
