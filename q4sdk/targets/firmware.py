"""Build firmware for a board, run it (QEMU or natively), and read back what it printed.

A firmware is the board harness (``boards/<name>``, see ``boards/_common/q4_board.h``) plus any C
sources the caller passes: a test program, or a generated model with its input data. It prints
result records, one per line, as ``@q4 <key> <value>``; ``RunResult`` holds them parsed.

QEMU runs with ``-icount shift=0,align=off,sleep=off``: each guest instruction advances virtual
time by exactly 1 ns, so the board timer counts instructions (``Timer.instructions_per_tick``)
and timings are deterministic, independent of the host's speed.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from q4sdk.errors import Q4Error
from q4sdk.targets.boards import COMMON_DIR, Board

RECORD_PREFIX = "@q4"
QEMU_ICOUNT = "shift=0,align=off,sleep=off"
COMMON_CFLAGS = ("-std=c99", "-O2", "-g", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections")
COMMON_LDFLAGS = ("-Wl,--gc-sections",)


class FirmwareError(Q4Error):
    """A firmware could not be built or did not finish running."""


@dataclass(frozen=True)
class RunResult:
    """How a firmware run ended: its exit status, its console text and the records in it."""

    exit_code: int
    stdout: str
    stderr: str
    records: tuple[tuple[str, str], ...]

    def values(self, key: str) -> list[str]:
        """All values printed under ``key``, in order."""
        return [value for k, value in self.records if k == key]

    def value(self, key: str) -> str:
        """The one value printed under ``key``; FirmwareError if it is missing or repeated."""
        found = self.values(key)
        if len(found) != 1:
            raise FirmwareError(f"firmware printed record '{key}' {len(found)} times, expected once")
        return found[0]

    def int_value(self, key: str) -> int:
        """The one value under ``key`` as an integer."""
        return int(self.value(key))


def parse_records(text: str) -> tuple[tuple[str, str], ...]:
    """The ``(key, value)`` pairs of the ``@q4 <key> <value>`` lines in ``text``, in order.

    The value is the rest of the line (it may hold spaces, or be empty); other lines are ignored.
    """
    records = []
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=2)
        if len(parts) >= 2 and parts[0] == RECORD_PREFIX:
            records.append((parts[1], parts[2] if len(parts) == 3 else ""))
    return tuple(records)


def toolchain_available(board: Board, for_running: bool = False) -> tuple[bool, str]:
    """Whether this machine can build for ``board`` (and, with ``for_running``, run it).

    Returns ``(True, "")`` or ``(False, reason)``, the reason naming the missing tool.
    """
    if shutil.which(board.compiler) is None:
        return False, f"compiler '{board.compiler}' for board {board.name} is not on PATH"
    if for_running:
        if not board.runnable:
            return False, f"board {board.name} is build-only (no emulator)"
        if board.qemu is not None and shutil.which(board.qemu.binary) is None:
            return False, f"emulator '{board.qemu.binary}' for board {board.name} is not on PATH"
    return True, ""


def build_firmware(
    board: Board,
    sources: Sequence[Path],
    include_dirs: Iterable[Path],
    out_dir: Path,
    extra_cflags: Iterable[str] = (),
    name: str = "firmware",
) -> Path:
    """Compile and link the board harness with ``sources`` into ``out_dir/<name>.elf``.

    ``sources`` must define ``int main(void)``; they include ``q4_board.h``. ``extra_cflags`` come
    last, so an ``-O``/``-D`` there overrides the defaults. The compiler's full output is kept in
    ``out_dir/<name>.log``; the ELF is written only when the build succeeds. Raises FirmwareError
    when the toolchain is missing or the build fails (the message carries the first error).
    """
    ok, reason = toolchain_available(board)
    if not ok:
        raise FirmwareError(reason)
    sources = [Path(s).resolve() for s in sources]
    for source in sources:
        if not source.is_file():
            raise FirmwareError(f"firmware source not found: {source}")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    elf = out_dir / f"{name}.elf"
    partial = out_dir / f"{name}.elf.partial"
    log = out_dir / f"{name}.log"

    command = [board.compiler, *board.cflags, *COMMON_CFLAGS, *board_defines(board)]
    for directory in (*board.include_dirs, *include_dirs):
        command.append(f"-I{Path(directory).resolve()}")
    command += [*extra_cflags, *map(str, board.sources), *map(str, sources)]
    if board.linker_script is not None:
        (out_dir / "memory.ld").write_text(memory_script(board))
        command += [f"-L{out_dir}", f"-L{COMMON_DIR}", f"-T{board.linker_script}"]
    command += [*COMMON_LDFLAGS, f"-Wl,-Map={out_dir / (name + '.map')}", *board.ldflags, "-o", str(partial)]

    completed = subprocess.run(command, capture_output=True, text=True)
    log.write_text(" ".join(command) + "\n\n" + completed.stdout + completed.stderr)
    if completed.returncode != 0:
        partial.unlink(missing_ok=True)
        raise FirmwareError(
            f"firmware build for board {board.name} failed: "
            f"{_first_error(completed.stderr)} (full log: {log})"
        )
    os.replace(partial, elf)
    return elf


def run_firmware(board: Board, elf: Path, timeout: float = 60) -> RunResult:
    """Run a built firmware to its exit: under QEMU, or natively for the host board."""
    if board.qemu is not None:
        return run_qemu(board, elf, timeout)
    if board.runs_natively:
        return _run([str(elf)], board, timeout)
    raise FirmwareError(f"board {board.name} is build-only: its firmware cannot be run here")


def run_qemu(board: Board, elf: Path, timeout: float = 60) -> RunResult:
    """Run ``elf`` under QEMU with instruction counting; the QEMU exit status is the firmware's.

    The console is the board's UART on stdout (or semihosting); ``board_exit`` ends QEMU through
    semihosting. FirmwareError if the board has no QEMU target or the run exceeds ``timeout``.
    """
    if board.qemu is None:
        raise FirmwareError(f"board {board.name} has no QEMU target")
    return _run([*qemu_command(board), "-kernel", str(Path(elf).resolve())], board, timeout)


def qemu_command(board: Board) -> list[str]:
    """The QEMU command line for ``board`` up to ``-kernel``: machine, CPU, the board's extra
    options, the console on stdout (the first UART, or semihosting output, which QEMU would
    otherwise send to stderr), semihosting on (for ``board_exit``), exact instruction counting."""
    if board.console.kind == "semihosting":
        console = [
            "-serial",
            "none",
            "-chardev",
            "stdio,id=q4console",
            "-semihosting-config",
            "enable=on,target=native,chardev=q4console",
        ]
    else:
        console = ["-serial", "stdio", "-semihosting-config", "enable=on,target=native"]
    return [
        board.qemu.binary,
        "-M",
        board.qemu.machine,
        "-cpu",
        board.qemu.cpu,
        *board.qemu.args,
        "-nographic",
        "-monitor",
        "none",
        *console,
        "-icount",
        QEMU_ICOUNT,
    ]


def _run(command: list[str], board: Board, timeout: float) -> RunResult:
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        raise FirmwareError(f"firmware on board {board.name} did not exit within {timeout} s") from None
    return RunResult(
        completed.returncode, completed.stdout, completed.stderr, parse_records(completed.stdout)
    )


def size_of(elf: Path) -> dict[str, int]:
    """Bytes of ``text``, ``rodata``, ``data``, ``bss`` and ``stack`` in an ELF file.

    Read from the section headers of the loaded sections: executable ones are text, writable
    ones data (``bss`` when they occupy no file space), the rest rodata; the harness's ``.stack``
    section is counted apart. Flash use is text + rodata + data, RAM use data + bss + stack.
    """
    sizes = dict.fromkeys(("text", "rodata", "data", "bss", "stack"), 0)
    for section_name, flags, section_type, size in _elf_sections(Path(elf)):
        if not flags & _SHF_ALLOC:
            continue
        if section_name == ".stack":
            sizes["stack"] += size
        elif flags & _SHF_EXECINSTR:
            sizes["text"] += size
        elif flags & _SHF_WRITE:
            sizes["bss" if section_type == _SHT_NOBITS else "data"] += size
        else:
            sizes["rodata"] += size
    return sizes


_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 0x1, 0x2, 0x4
_SHT_NOBITS = 8


def _elf_sections(path: Path) -> list[tuple[str, int, int, int]]:
    """(name, flags, type, size) of each section header of a little-endian ELF32/ELF64 file."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[5] != 1:
        raise FirmwareError(f"{path}: not a little-endian ELF file")
    if data[4] == 1:  # ELF32
        (shoff,) = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
        header = "<IIIIIIIIII"
    else:  # ELF64
        (shoff,) = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        header = "<IIQQQQIIQQ"
    headers = [struct.unpack_from(header, data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = headers[shstrndx][4]
    sections = []
    for name_index, section_type, flags, _addr, _offset, size, *_ in headers:
        start = names_offset + name_index
        name = data[start : data.index(b"\0", start)].decode()
        sections.append((name, flags, section_type, size))
    return sections


def board_defines(board: Board) -> list[str]:
    """The board name and peripheral addresses from board.json, as C macros for the harness."""
    defines = [f'-DQ4_BOARD_NAME="{board.name}"']
    if board.console.base is not None:
        defines.append(f"-DQ4_UART_BASE=0x{board.console.base:08X}u")
    if board.timer.base is not None:
        defines.append(f"-DQ4_TIMER_BASE=0x{board.timer.base:08X}u")
    return defines


def memory_script(board: Board) -> str:
    """The MEMORY part of the linker script, from board.json (included by baremetal.ld)."""
    return (
        f"/* Generated by q4sdk.firmware from boards/{board.name}/board.json. */\n"
        "MEMORY\n{\n"
        f"    FLASH (rx) : ORIGIN = 0x{board.flash.origin:08X}, LENGTH = {board.flash.size}\n"
        f"    RAM (rwx) : ORIGIN = 0x{board.ram.origin:08X}, LENGTH = {board.ram.size}\n"
        "}\n"
        f"__q4_stack_size = {board.stack_size};\n"
    )


_ERROR_MARKERS = (": error:", ": Error:", ": fatal error:", "undefined reference", "overflowed by")


def _first_error(compiler_output: str) -> str:
    """The first line of compiler, assembler or linker output that reports an error."""
    lines = [line.strip() for line in compiler_output.splitlines() if line.strip()]
    for line in lines:
        if any(marker in line for marker in _ERROR_MARKERS):
            return line
    return lines[-1] if lines else "no compiler output"
