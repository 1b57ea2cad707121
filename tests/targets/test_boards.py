"""Board descriptions (boards/*/board.json), the record parser, ELF sizes and build errors."""

import json
import shutil
import subprocess

import pytest

from q4sdk.errors import Q4Error
from q4sdk.targets.boards import BOARDS_DIR, list_boards, load_board
from q4sdk.targets.firmware import (
    FirmwareError,
    RunResult,
    build_firmware,
    parse_records,
    run_firmware,
    size_of,
    toolchain_available,
)

EXPECTED_MEMORY = {  # board: (flash origin, flash size, ram origin, ram size)
    "mps2-an386": (0x00000000, 4 << 20, 0x20000000, 4 << 20),
    "mps2-an500": (0x00000000, 4 << 20, 0x20000000, 4 << 20),
    "mps3-an547": (0x00000000, 512 << 10, 0x20000000, 512 << 10),
    "stm32f746": (0x08000000, 1 << 20, 0x20000000, 320 << 10),
    "nrf52840": (0x00000000, 1 << 20, 0x20000000, 256 << 10),
    "rp2040": (0x10000100, (2 << 20) - 256, 0x20000000, 264 << 10),
    "rv32imc": (0x80000000, 512 << 10, 0x80080000, 128 << 10),
    "microbit": (0x00000000, 256 << 10, 0x20000000, 16 << 10),
    "microbit-264k": (0x00000000, 2 << 20, 0x20000000, 264 << 10),
}


def test_all_board_folders_load():
    names = list_boards()
    assert set(EXPECTED_MEMORY) | {"host"} <= set(names)
    for name in names:
        board = load_board(name)
        assert board.name == name
        assert all(source.is_file() for source in board.sources)


@pytest.mark.parametrize("name", sorted(EXPECTED_MEMORY))
def test_memory_maps(name):
    board = load_board(name)
    assert (board.flash.origin, board.flash.size, board.ram.origin, board.ram.size) == EXPECTED_MEMORY[name]
    assert 0 < board.stack_size < board.ram.size


def test_board_capabilities():
    an547, rp2040, an386 = load_board("mps3-an547"), load_board("rp2040"), load_board("mps2-an386")
    assert an547.mve and an547.dsp and an547.qemu.machine == "mps3-an547"
    assert not rp2040.dsp and rp2040.fpu is None and not rp2040.runnable
    assert an386.timer.instructions_per_tick == 40.0
    assert an386.console.base == 0x40004000 and an386.timer.base == 0x40000000
    assert load_board("host").runs_natively and not an386.runs_natively
    assert rp2040.armv6m and not an386.armv6m and not an547.armv6m
    microbit, rv32 = load_board("microbit"), load_board("rv32imc")
    assert microbit.armv6m and not microbit.dsp and microbit.qemu.machine == "microbit"
    assert microbit.timer.instructions_per_tick == 62.5 and microbit.console.kind == "nrf51_uart"
    assert rv32.runnable and not rv32.armv6m and rv32.qemu.args == ("-bios", "none")
    assert rv32.rv32 and not microbit.rv32
    assert rv32.timer.kind == "minstret" and rv32.timer.instructions_per_tick == 1.0


def test_enlarged_microbit_sets_the_memories_qemu_backs():
    """microbit-264k is the micro:bit machine with nrf51-soc properties set to its board.json sizes."""
    board = load_board("microbit-264k")
    assert board.qemu.machine == "microbit"
    assert board.qemu.args == (
        "-global",
        f"nrf51-soc.flash-size={board.flash.size}",
        "-global",
        f"nrf51-soc.sram-size={board.ram.size}",
    )


def test_unknown_board_lists_available_ones():
    with pytest.raises(Q4Error, match=r"unknown board 'mps9'.*mps2-an386"):
        load_board("mps9")


@pytest.fixture
def board_copy(tmp_path):
    """A private boards/ folder holding a copy of mps2-an386 (and the shared files)."""
    shutil.copytree(BOARDS_DIR / "_common", tmp_path / "_common")
    shutil.copytree(BOARDS_DIR / "mps2-an386", tmp_path / "mps2-an386")
    path = tmp_path / "mps2-an386" / "board.json"

    def edit(change):
        raw = json.loads(path.read_text())
        change(raw)
        path.write_text(json.dumps(raw))
        return tmp_path

    return edit


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda b: b.pop("cpu"), "cpu"),
        (lambda b: b.update(dsp="yes"), "dsp"),
        (lambda b: b.update(name="other"), "name"),
        (lambda b: b.update(colour="red"), "colour"),
        (lambda b: b["flash"].update(origin="flash"), "flash.origin"),
        (lambda b: b["ram"].update(size=-1), "ram.size"),
        (lambda b: b["timer"].update(unit="seconds"), "timer.unit"),
        (lambda b: b["timer"].update(instructions_per_tick=None), "timer.instructions_per_tick"),
        (lambda b: b["console"].update(base=None), "console.base"),
        (lambda b: b.update(sources=["missing.c"]), "sources"),
        (lambda b: b.update(qemu=None), "runnable"),
        (lambda b: b.update(stack_size=8 << 20), "stack_size"),
        (lambda b: b["qemu"].update(args="-bios none"), "qemu.args"),
        (lambda b: b["qemu"].pop("args"), "qemu.args"),
        (lambda b: b["qemu"].update(kernel="x.elf"), "qemu.kernel"),
    ],
)
def test_malformed_board_names_file_and_field(board_copy, change, field):
    boards_dir = board_copy(change)
    with pytest.raises(Q4Error, match=rf"board\.json: field '{field}'"):
        load_board("mps2-an386", boards_dir)


def test_invalid_json_names_the_file(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "board.json").write_text("{ not json")
    with pytest.raises(Q4Error, match=r"broken/board\.json: not valid JSON"):
        load_board("broken", tmp_path)


def test_parse_records_keeps_order_and_ignores_other_lines():
    text = "boot banner\n@q4 layer.0 12\r\n@q4 label cat and dog\n@q4 empty\n@q4\nx @q4 no 1\n"
    records = parse_records(text)
    assert records == (("layer.0", "12"), ("label", "cat and dog"), ("empty", ""))
    result = RunResult(0, text, "", records)
    assert result.int_value("layer.0") == 12
    with pytest.raises(FirmwareError, match="'missing' 0 times"):
        result.value("missing")


def test_repeated_record_needs_values():
    result = RunResult(0, "", "", parse_records("@q4 t 1\n@q4 t 2\n"))
    assert result.values("t") == ["1", "2"]
    with pytest.raises(FirmwareError, match="2 times"):
        result.value("t")


def host_board():
    board = load_board("host")
    ok, reason = toolchain_available(board)
    if not ok:
        pytest.skip(reason)
    return board


def test_size_of_matches_binutils(tmp_path):
    board = host_board()
    source = tmp_path / "sizes.c"
    source.write_text(
        '#include "q4_board.h"\n'
        "const unsigned char table[3000] = {1};\n"
        "unsigned char buffer[5000];\n"
        "int counter = 3;\n"
        "int main(void) { buffer[counter] = table[counter]; return buffer[3]; }\n"
    )
    elf = build_firmware(board, [source], [], tmp_path / "out")
    sizes = size_of(elf)
    assert sizes["rodata"] >= 3000 and sizes["bss"] >= 5000 and sizes["data"] >= 4
    size_tool = shutil.which("size")
    if size_tool:
        listing = subprocess.run([size_tool, "-A", str(elf)], capture_output=True, text=True).stdout
        section_sizes = {
            line.split()[0]: int(line.split()[1])
            for line in listing.splitlines()[2:]
            if len(line.split()) == 3
        }
        assert sizes["bss"] == section_sizes[".bss"]
        assert sizes["text"] >= section_sizes[".text"]


def test_build_error_names_board_and_leaves_no_elf(tmp_path):
    board = host_board()
    source = tmp_path / "broken.c"
    source.write_text("int main(void) { return missing_symbol; }\n")
    with pytest.raises(FirmwareError, match=r"build for board host failed: .*missing_symbol"):
        build_firmware(board, [source], [], tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.elf*"))
    assert (tmp_path / "out" / "firmware.log").read_text().count("missing_symbol") >= 1


def test_missing_source_is_reported(tmp_path):
    board = host_board()
    with pytest.raises(FirmwareError, match="source not found"):
        build_firmware(board, [tmp_path / "nope.c"], [], tmp_path / "out")


def test_extra_sources_and_include_dirs_reach_the_build(tmp_path):
    """A generated model arrives as extra C files plus an include folder."""
    board = host_board()
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "model.h").write_text("int model_answer(void);\n")
    (tmp_path / "model.c").write_text(
        '#include "model.h"\nint model_answer(void) { return MODEL_BIAS + 40; }\n'
    )
    (tmp_path / "main.c").write_text(
        '#include "q4_board.h"\n#include "model.h"\n'
        'int main(void) { board_report_i32("answer", model_answer()); return 0; }\n'
    )
    elf = build_firmware(
        board,
        [tmp_path / "main.c", tmp_path / "model.c"],
        [tmp_path / "inc"],
        tmp_path / "out",
        extra_cflags=["-DMODEL_BIAS=2"],
    )
    assert run_firmware(board, elf).int_value("answer") == 42
