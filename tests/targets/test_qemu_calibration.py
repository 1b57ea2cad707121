"""On-target checks of the board harness: builds for every board, runs under QEMU.

The timer calibration runs a loop of exactly known instruction count and expects the board timer
to read it to within one tick, or within the few instructions the timer reads cost where a tick
is a single instruction (QEMU -icount makes one instruction one nanosecond). Tests skip when a
compiler or QEMU is missing, and fail instead when the environment variable CI is set.
"""

from pathlib import Path

import pytest

from mcu.harness import require_tools
from q4sdk.errors import Q4Error
from q4sdk.targets.boards import BOARDS_DIR, list_boards, load_board
from q4sdk.targets.firmware import build_firmware, run_firmware, size_of

SELFTEST = BOARDS_DIR / "_selftest"
ALL_BOARDS = list_boards()
QEMU_BOARDS = [name for name in ALL_BOARDS if load_board(name).qemu is not None]
BUILD_ONLY_BOARDS = [name for name in ALL_BOARDS if not load_board(name).runnable]
CALIBRATION_ITERATIONS = 1_000_000  # 2 instructions each
SYSTICK_WRAP = 1 << 24
TIMER_READ_INSTRUCTIONS = 8  # at most, for the calls and reads around a timed region


def fault_number(board) -> int:
    """What the fault self-test reports: HardFault (exception 3) on Cortex-M, where the
    UsageFault handler is not enabled (ARMv6-M has none); mcause 2 (illegal instruction) on
    RISC-V."""
    return 2 if board.arch.startswith("rv") else 3


def build_and_run(board_name, program, out_dir: Path, extra_cflags=()):
    board = load_board(board_name)
    require_tools(board, for_running=True)
    elf = build_firmware(
        board, [SELFTEST / f"{program}.c"], [], out_dir, extra_cflags=extra_cflags, name=program
    )
    return board, run_firmware(board, elf, timeout=60)


def test_every_board_is_classified():
    assert "host" in ALL_BOARDS
    assert {"mps2-an386", "mps2-an500", "mps3-an547", "rv32imc", "microbit", "microbit-264k"} <= set(
        QEMU_BOARDS
    )
    assert {"stm32f746", "nrf52840", "rp2040"} <= set(BUILD_ONLY_BOARDS)


@pytest.mark.parametrize("board_name", ["host", *QEMU_BOARDS])
def test_hello_prints_records_and_exits_zero(board_name, tmp_path):
    board, result = build_and_run(board_name, "hello", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "hello from q4sdk" in result.stdout
    assert result.value("board") == board.name
    assert result.int_value("min_i32") == -(2**31)
    assert result.int_value("max_u32") == 2**32 - 1
    assert result.int_value("u64_div") == 123456789012345 // 98765


@pytest.mark.parametrize("board_name", ["host", *QEMU_BOARDS])
def test_exit_status_reaches_the_host(board_name, tmp_path):
    _, result = build_and_run(board_name, "hello", tmp_path, ["-DQ4_HELLO_EXIT=42"])
    assert result.exit_code == 42


@pytest.mark.parametrize("board_name", QEMU_BOARDS)
def test_fault_ends_the_run_with_fault_status(board_name, tmp_path):
    board, result = build_and_run(board_name, "fault", tmp_path)
    assert result.exit_code == 120
    assert result.int_value("fault") == fault_number(board)


@pytest.mark.parametrize("board_name", QEMU_BOARDS)
def test_timer_counts_known_instructions(board_name, tmp_path):
    board, result = build_and_run(
        board_name, "calibration", tmp_path, [f"-DQ4_CALIBRATION_ITERATIONS={CALIBRATION_ITERATIONS}u"]
    )
    assert result.exit_code == 0, result.stderr
    per_tick = board.timer.instructions_per_tick
    expected_ticks = 2 * CALIBRATION_ITERATIONS / per_tick
    # The timer reads themselves cost a few instructions: one tick, or a few one-instruction ticks.
    slack = max(1, TIMER_READ_INSTRUCTIONS / per_tick)
    assert result.int_value("empty") <= slack
    assert abs(result.int_value("loop") - expected_ticks) <= slack, (result.records, expected_ticks)


def test_systick_timer_survives_wraparound(tmp_path):
    """mps3-an547 counts SysTick (24-bit) wraps; time a loop longer than one wrap period."""
    board = load_board("mps3-an547")
    iterations = int(SYSTICK_WRAP * board.timer.instructions_per_tick * 0.55)
    _, result = build_and_run(
        "mps3-an547", "calibration", tmp_path, [f"-DQ4_CALIBRATION_ITERATIONS={iterations}u"]
    )
    expected_ticks = 2 * iterations / board.timer.instructions_per_tick
    assert expected_ticks > SYSTICK_WRAP
    assert abs(result.int_value("loop") - expected_ticks) <= 1


@pytest.mark.parametrize("board_name", QEMU_BOARDS)
def test_stack_painting_sees_a_large_local_array(board_name, tmp_path):
    array_bytes = min(8192, load_board(board_name).stack_size // 2)
    board, result = build_and_run(board_name, "stack_depth", tmp_path, [f"-DQ4_STACK_ARRAY={array_bytes}"])
    assert result.exit_code == 0, result.stderr
    before, after = result.int_value("before"), result.int_value("after")
    assert 0 < before < 512
    assert array_bytes <= after <= array_bytes + 512
    assert after < board.stack_size


@pytest.mark.parametrize("board_name", ["rv32imc", "microbit"])
def test_stack_overflow_ends_the_run(board_name, tmp_path):
    """The stack sits at the bottom of RAM: running off it faults instead of corrupting memory.
    rv32imc's flash is RAM under QEMU, which a locked PMP region makes read-only (store access
    fault, mcause 7); on the micro:bit the exception entry itself faults and QEMU stops the
    locked-up core (no fault record, a non-zero status)."""
    board = load_board(board_name)
    _, result = build_and_run(
        board_name, "stack_depth", tmp_path, [f"-DQ4_STACK_ARRAY={board.stack_size + 1024}"]
    )
    assert result.exit_code != 0 and not result.values("after")
    if board_name == "rv32imc":
        assert (result.exit_code, result.int_value("fault")) == (120, 7)


@pytest.mark.parametrize("board_name", BUILD_ONLY_BOARDS)
def test_build_only_board_compiles_the_harness(board_name, tmp_path):
    board = load_board(board_name)
    require_tools(board, for_running=False)
    for program in ("hello", "calibration", "stack_depth"):
        elf = build_firmware(board, [SELFTEST / f"{program}.c"], [], tmp_path, name=program)
        sizes = size_of(elf)
        assert sizes["text"] > 0
        assert sizes["stack"] == board.stack_size
        assert sizes["text"] + sizes["rodata"] + sizes["data"] <= board.flash.size


def test_model_too_big_for_flash_fails_at_link_time(tmp_path):
    board = load_board("mps3-an547")
    require_tools(board, for_running=False)
    source = tmp_path / "big.c"
    source.write_text(
        '#include "q4_board.h"\n'
        f"const unsigned char weights[{board.flash.size}] = {{1}};\n"
        "volatile int index_;\n"
        "int main(void) { return weights[index_]; }\n"
    )
    with pytest.raises(Q4Error, match=r"mps3-an547 failed: .*region `FLASH' overflowed"):
        build_firmware(board, [source], [], tmp_path)
    assert not list(tmp_path.glob("*.elf"))
