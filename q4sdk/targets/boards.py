"""Target boards: one folder under ``boards/`` per board, described by its ``board.json``.

Adding a board is adding a folder; nothing here names a board. ``boards/README.md`` documents
every field. ``load_board`` validates the file and names the file and field at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from q4sdk import resources
from q4sdk.errors import Q4Error

BOARDS_DIR = resources.BOARDS_DIR
COMMON_DIR = BOARDS_DIR / "_common"
BOARD_FILE = "board.json"

CONSOLE_KINDS = ("stdio", "cmsdk_uart", "nrf51_uart", "semihosting")
TIMER_KINDS = ("host_clock", "cmsdk_timer", "nrf51_timer", "systick", "dwt_cyccnt", "mcycle", "minstret")
# Peripherals the harness drives at an address: their kinds need "base" set.
CONSOLE_KINDS_WITH_BASE = ("cmsdk_uart", "nrf51_uart")
TIMER_KINDS_WITH_BASE = ("cmsdk_timer", "nrf51_timer")
TIMER_UNITS = ("instructions", "cycles", "ns")


@dataclass(frozen=True)
class MemoryRegion:
    """A contiguous memory of the part: flash (code, constants) or RAM (data, stack)."""

    origin: int
    size: int


@dataclass(frozen=True)
class Console:
    """Where ``board_putc`` writes: ``stdio`` (host), a UART at ``base`` (``cmsdk_uart``,
    ``nrf51_uart``), or ``semihosting``."""

    kind: str
    base: int | None


@dataclass(frozen=True)
class Timer:
    """The counter behind ``board_timer_read``.

    ``unit`` says what one tick counts; under QEMU's ``-icount shift=0`` a tick is a fixed number of
    guest instructions, ``instructions_per_tick`` (None where ticks are not instructions).
    """

    kind: str
    base: int | None
    unit: str
    instructions_per_tick: float | None


@dataclass(frozen=True)
class QemuTarget:
    """How QEMU emulates the board: ``binary -M machine -cpu cpu args...``.

    ``args`` are further options the machine needs (``-bios none``, ``-global`` properties).
    """

    binary: str
    machine: str
    cpu: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Board:
    """A validated ``boards/<name>/board.json``. Paths are absolute."""

    name: str
    description: str
    directory: Path
    cpu: str
    arch: str
    fpu: str | None
    dsp: bool
    mve: bool
    compiler: str
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    linker_script: Path | None
    sources: tuple[Path, ...]
    flash: MemoryRegion | None
    ram: MemoryRegion | None
    stack_size: int | None
    console: Console
    timer: Timer
    qemu: QemuTarget | None
    runnable: bool

    @property
    def runs_natively(self) -> bool:
        """True for the host board: the firmware is an ordinary executable."""
        return self.runnable and self.qemu is None

    @property
    def armv6m(self) -> bool:
        """True for an ARMv6-M core (Cortex-M0/M0+): Thumb-1 with MULS, no DSP or SIMD; the
        feature the ``_armv6m`` kernel variants require."""
        return self.arch == "armv6-m"

    @property
    def rv32(self) -> bool:
        """True for a 32-bit RISC-V core (rv32imc): no SIMD either, so the ``_armv6m`` kernels,
        plain C there, are its fast kernels too."""
        return self.arch.startswith("rv32")

    @property
    def include_dirs(self) -> tuple[Path, ...]:
        """Directories holding the harness headers (``q4_board.h``) and the board's own files."""
        return (COMMON_DIR, self.directory)


def list_boards(boards_dir: Path = BOARDS_DIR) -> list[str]:
    """Names of the boards: the folders under ``boards_dir`` holding a ``board.json``, sorted."""
    return sorted(p.parent.name for p in boards_dir.glob(f"*/{BOARD_FILE}"))


def load_board(name: str, boards_dir: Path = BOARDS_DIR) -> Board:
    """Load and validate ``boards_dir/<name>/board.json``.

    Raises Q4Error for an unknown board (listing the available ones) or a malformed file (naming
    the file and the field).
    """
    path = boards_dir / name / BOARD_FILE
    if not path.is_file():
        available = ", ".join(list_boards(boards_dir)) or "none"
        raise Q4Error(f"unknown board '{name}' (available: {available})")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise Q4Error(f"{path}: not valid JSON ({err})") from None
    return _BoardReader(path, raw).board(name)


class _BoardReader:
    """Reads typed fields out of one board.json, raising Q4Error naming file and field."""

    _FIELDS = {
        "name",
        "description",
        "cpu",
        "arch",
        "fpu",
        "dsp",
        "mve",
        "compiler",
        "cflags",
        "ldflags",
        "linker_script",
        "sources",
        "flash",
        "ram",
        "stack_size",
        "console",
        "timer",
        "qemu",
        "runnable",
    }

    def __init__(self, path: Path, raw: Any):
        self.path = path
        if not isinstance(raw, dict):
            self.fail("(top level)", "must be a JSON object")
        unknown = sorted(set(raw) - self._FIELDS)
        if unknown:
            self.fail(unknown[0], "unknown field")
        self.raw = raw

    def fail(self, field: str, problem: str) -> NoReturn:
        raise Q4Error(f"{self.path}: field '{field}' {problem}")

    def get(self, obj: dict, field: str, types: tuple[type, ...], where: str = "", nullable=False):
        label = f"{where}.{field}" if where else field
        if field not in obj:
            self.fail(label, "is missing")
        value = obj[field]
        if value is None and nullable:
            return None
        if isinstance(value, bool) and bool not in types:
            self.fail(label, f"must be {self._type_names(types)}, got {value!r}")
        if not isinstance(value, types):
            self.fail(label, f"must be {self._type_names(types, nullable)}, got {value!r}")
        return value

    @staticmethod
    def _type_names(types, nullable=False) -> str:
        names = {
            bool: "true/false",
            str: "a string",
            int: "an integer",
            float: "a number",
            list: "a list",
            dict: "an object",
        }
        words = [names[t] for t in types]
        if nullable:
            words.append("null")
        return " or ".join(words)

    def address(self, obj: dict, field: str, where: str, nullable=False) -> int | None:
        text = self.get(obj, field, (str,), where, nullable)
        if text is None:
            return None
        try:
            return int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            self.fail(f"{where}.{field}", f'must be an address like "0x20000000", got {text!r}')

    def positive(self, obj: dict, field: str, where: str = "", nullable=False) -> int | None:
        value = self.get(obj, field, (int,), where, nullable)
        if value is not None and value <= 0:
            self.fail(f"{where}.{field}" if where else field, f"must be positive, got {value}")
        return value

    def choice(self, obj: dict, field: str, choices: tuple[str, ...], where: str) -> str:
        value = self.get(obj, field, (str,), where)
        if value not in choices:
            self.fail(f"{where}.{field}", f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def strings(self, field: str) -> tuple[str, ...]:
        values = self.get(self.raw, field, (list,))
        if not all(isinstance(v, str) for v in values):
            self.fail(field, "must be a list of strings")
        return tuple(values)

    def file(self, relative: str, field: str) -> Path:
        path = (self.path.parent / relative).resolve()
        if not path.is_file():
            self.fail(field, f"names a file that does not exist: {relative}")
        return path

    def region(self, field: str) -> MemoryRegion | None:
        obj = self.get(self.raw, field, (dict,), nullable=True)
        if obj is None:
            return None
        return MemoryRegion(self.address(obj, "origin", field), self.positive(obj, "size", field))

    def console(self) -> Console:
        obj = self.get(self.raw, "console", (dict,))
        kind = self.choice(obj, "kind", CONSOLE_KINDS, "console")
        base = self.address(obj, "base", "console", nullable=True)
        if kind in CONSOLE_KINDS_WITH_BASE and base is None:
            self.fail("console.base", f"is required for a {kind} console")
        return Console(kind, base)

    def timer(self) -> Timer:
        obj = self.get(self.raw, "timer", (dict,))
        kind = self.choice(obj, "kind", TIMER_KINDS, "timer")
        base = self.address(obj, "base", "timer", nullable=True)
        if kind in TIMER_KINDS_WITH_BASE and base is None:
            self.fail("timer.base", f"is required for a {kind} timer")
        unit = self.choice(obj, "unit", TIMER_UNITS, "timer")
        per_tick = self.get(obj, "instructions_per_tick", (int, float), "timer", nullable=True)
        if (unit == "instructions") != (per_tick is not None):
            self.fail(
                "timer.instructions_per_tick", 'must be a number exactly when timer.unit is "instructions"'
            )
        if per_tick is not None and per_tick <= 0:
            self.fail("timer.instructions_per_tick", f"must be positive, got {per_tick}")
        return Timer(kind, base, unit, None if per_tick is None else float(per_tick))

    def qemu(self) -> QemuTarget | None:
        obj = self.get(self.raw, "qemu", (dict,), nullable=True)
        if obj is None:
            return None
        unknown = sorted(set(obj) - {"binary", "machine", "cpu", "args"})
        if unknown:
            self.fail(f"qemu.{unknown[0]}", "unknown field")
        args = self.get(obj, "args", (list,), "qemu")
        if not all(isinstance(a, str) for a in args):
            self.fail("qemu.args", "must be a list of strings")
        return QemuTarget(
            *(self.get(obj, f, (str,), "qemu") for f in ("binary", "machine", "cpu")), args=tuple(args)
        )

    def board(self, folder_name: str) -> Board:
        raw = self.raw
        name = self.get(raw, "name", (str,))
        if name != folder_name:
            self.fail("name", f"must match its folder name '{folder_name}', got {name!r}")
        script = self.get(raw, "linker_script", (str,), nullable=True)
        flash, ram = self.region("flash"), self.region("ram")
        stack_size = self.positive(raw, "stack_size", nullable=True)
        if script is not None and (flash is None or ram is None or stack_size is None):
            self.fail("linker_script", "needs flash, ram and stack_size to be set")
        if stack_size is not None and ram is not None and stack_size >= ram.size:
            self.fail("stack_size", f"must be smaller than ram.size ({ram.size})")
        qemu = self.qemu()
        runnable = self.get(raw, "runnable", (bool,))
        if qemu is not None and not runnable:
            self.fail("runnable", "must be true when qemu is set")
        if runnable and qemu is None and script is not None:
            self.fail("runnable", "a bare-metal board (linker_script set) runs only under qemu")
        return Board(
            name=name,
            description=self.get(raw, "description", (str,)),
            directory=self.path.parent.resolve(),
            cpu=self.get(raw, "cpu", (str,)),
            arch=self.get(raw, "arch", (str,)),
            fpu=self.get(raw, "fpu", (str,), nullable=True),
            dsp=self.get(raw, "dsp", (bool,)),
            mve=self.get(raw, "mve", (bool,)),
            compiler=self.get(raw, "compiler", (str,)),
            cflags=self.strings("cflags"),
            ldflags=self.strings("ldflags"),
            linker_script=None if script is None else self.file(script, "linker_script"),
            sources=tuple(self.file(s, "sources") for s in self.strings("sources")),
            flash=flash,
            ram=ram,
            stack_size=stack_size,
            console=self.console(),
            timer=self.timer(),
            qemu=qemu,
            runnable=runnable,
        )
