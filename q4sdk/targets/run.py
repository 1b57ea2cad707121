"""Run a model on a board (under QEMU), check it against the oracle, and profile it per layer.

``run_on_board`` writes a firmware project (``q4sdk.targets.project``) with the quantized
inputs embedded, builds it with ``q4sdk.targets.firmware.build_firmware``, runs it, and reads back the
records: every output is compared with the integer oracle bit for bit; the board timer's ticks
(per inference and per op, ``Q4_PROFILE_BEGIN/END``) become instructions through the board's
``timer.instructions_per_tick`` (QEMU ``-icount``: one instruction per nanosecond). Sizes come
from the ELF section headers, the stack high-water mark from stack painting.

Per-op figures include the two timer reads of the profiling hooks (a few instructions per op);
the per-inference figure includes them too, so the layers add up to it, less the input and
output copies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from q4sdk.errors import Q4Error
from q4sdk.ir.qmodel import QModel
from q4sdk.targets.boards import Board
from q4sdk.targets.firmware import FirmwareError, RunResult, build_firmware, run_firmware, size_of
from q4sdk.targets.project import EXTRA_CFLAGS, FirmwareProject, write_firmware_project

QEMU_INSTRUCTIONS_PER_SECOND = 50e6  # a pessimistic QEMU speed, for the run's time limit
TIMEOUT_INSTRUCTIONS_PER_MAC = 60


@dataclass(frozen=True)
class LayerProfile:
    """One op on the target: its kernel, MACs and time per inference."""

    op: str
    kind: str
    kernel: str
    macs: int
    ticks: float  # timer ticks per inference (mean over the samples)
    instructions: float | None  # ticks * instructions_per_tick, where ticks are instructions

    @property
    def instructions_per_mac(self) -> float | None:
        if self.instructions is None or not self.macs:
            return None
        return self.instructions / self.macs


@dataclass(frozen=True)
class Mismatch:
    """The first output element where the target and the oracle differ."""

    sample: int
    index: int
    target: int
    oracle: int

    def __str__(self) -> str:
        return (
            f"sample {self.sample}, output index {self.index}: target {self.target} vs oracle {self.oracle}"
        )


@dataclass
class TargetRun:
    """The outcome of ``run_on_board``."""

    board: str
    model: str
    samples: int
    timer_unit: str
    mismatched_samples: int
    first_mismatch: Mismatch | None
    ticks: float  # per inference (mean)
    instructions: float | None  # per inference
    macs: int
    layers: list[LayerProfile]
    flash: dict[str, int]  # text, rodata, data, total, weights
    ram: dict[str, int]  # arena, arena_unpacked, scratch, static (data + bss), stack_used,
    # stack_reserved
    elf: Path

    @property
    def ok(self) -> bool:
        return self.mismatched_samples == 0

    @property
    def instructions_per_mac(self) -> float | None:
        return None if self.instructions is None or not self.macs else self.instructions / self.macs

    def to_dict(self) -> dict:
        """Everything as JSON-ready data (what ``q4sdk run --json`` writes)."""
        return {
            "board": self.board,
            "model": self.model,
            "samples": self.samples,
            "bit_exact": self.ok,
            "mismatched_samples": self.mismatched_samples,
            "first_mismatch": None if self.first_mismatch is None else asdict(self.first_mismatch),
            "timer_unit": self.timer_unit,
            "ticks_per_inference": self.ticks,
            "instructions_per_inference": self.instructions,
            "macs": self.macs,
            "instructions_per_mac": self.instructions_per_mac,
            "layers": [
                {**asdict(layer), "instructions_per_mac": layer.instructions_per_mac} for layer in self.layers
            ],
            "flash": self.flash,
            "ram": self.ram,
            "elf": str(self.elf),
        }


def run_timeout(macs: int, samples: int) -> float:
    """Seconds to allow a run: generous for the portable kernels under a slow QEMU."""
    return 60 + samples * macs * TIMEOUT_INSTRUCTIONS_PER_MAC / QEMU_INSTRUCTIONS_PER_SECOND


def run_on_board(
    model: QModel,
    board: Board,
    xq: np.ndarray,
    work_dir,
    *,
    kernels: str = "optimised",
    name: str = "net",
    pack_activations: bool = False,
) -> TargetRun:
    """Build ``model`` with the int8 inputs ``xq`` [N, *oracle.input_shape(model)] (X1 and X2 of
    each sample for a residual input) for ``board``, run it, check every output against the
    oracle and profile it.

    The project and the build go to ``work_dir`` (replaced if present). ``pack_activations``
    stores 4-bit activations two per byte (``codegen.render``). Raises Q4Error for a
    build-only board, a model that does not fit, or a firmware that fails to build or finish.
    """
    if not board.runnable:
        raise Q4Error(
            f"board {board.name} is build-only: 'run' needs a board q4sdk can run "
            "(under QEMU or the host); use 'generate --board' to build for it"
        )
    work_dir = Path(work_dir)
    project = write_firmware_project(
        model,
        work_dir / "project",
        board,
        name,
        xq,
        overwrite=True,
        kernels=kernels,
        source="quantized by q4sdk run",
        pack_activations=pack_activations,
    )
    elf = build_firmware(
        board, project.sources, project.include_dirs, work_dir / "build", extra_cflags=EXTRA_CFLAGS
    )
    result = run_firmware(board, elf, timeout=run_timeout(project.report.macs, project.samples))
    return read_run(project, result, elf)


def _outputs(project: FirmwareProject, result: RunResult) -> np.ndarray:
    texts = result.values("output")
    if len(texts) != project.samples:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise FirmwareError(
            f"firmware on board {project.board.name} printed {len(texts)} of "
            f"{project.samples} outputs (exit status {result.exit_code}): " + " | ".join(tail)
        )
    try:
        rows = [np.frombuffer(bytes.fromhex(t), np.int8) for t in texts]
    except ValueError:
        raise FirmwareError(f"firmware on board {project.board.name} printed a malformed output") from None
    return np.stack(rows).reshape(project.expected.shape)


def _first_mismatch(got: np.ndarray, expected: np.ndarray) -> tuple[int, Mismatch | None]:
    got2, exp2 = got.reshape(len(got), -1), expected.reshape(len(expected), -1)
    bad = np.argwhere(got2 != exp2)
    if not len(bad):
        return 0, None
    sample, index = (int(v) for v in bad[0])
    samples = len(np.unique(bad[:, 0]))
    return samples, Mismatch(sample, index, int(got2[sample, index]), int(exp2[sample, index]))


def read_run(project: FirmwareProject, result: RunResult, elf: Path) -> TargetRun:
    """Turn a finished firmware run of ``project`` into a TargetRun (outputs checked here, on the
    host, against the oracle's)."""
    board = project.board
    mismatched, first = _first_mismatch(_outputs(project, result), project.expected)
    if result.exit_code not in (0, 1):  # 1: the firmware's own check against the embedded outputs
        raise FirmwareError(f"firmware on board {board.name} exited with status {result.exit_code}")
    per_tick = board.timer.instructions_per_tick
    n = project.samples
    op_ticks = dict.fromkeys(range(len(project.report.ops)), 0)
    for text in result.values("op_ticks"):
        index, ticks = (int(v) for v in text.split())
        op_ticks[index] = ticks
    layers = [
        LayerProfile(
            op.name,
            op.kind,
            op.kernel,
            op.macs,
            op_ticks[i] / n,
            None if per_tick is None else op_ticks[i] / n * per_tick,
        )
        for i, op in enumerate(project.report.ops)
    ]
    ticks = float(np.mean([int(v) for v in result.values("inference_ticks")]))
    sizes = size_of(elf)
    report = project.report
    return TargetRun(
        board=board.name,
        model=project.name,
        samples=n,
        timer_unit=board.timer.unit,
        mismatched_samples=mismatched,
        first_mismatch=first,
        ticks=ticks,
        instructions=None if per_tick is None else ticks * per_tick,
        macs=report.macs,
        layers=layers,
        flash={
            "text": sizes["text"],
            "rodata": sizes["rodata"],
            "data": sizes["data"],
            "total": sizes["text"] + sizes["rodata"] + sizes["data"],
            "weights": report.weight_bytes,
            "test_data": project.fit.test_data_bytes,
        },
        ram={
            "arena": report.arena_bytes,
            "arena_unpacked": report.arena_bytes_unpacked,
            "scratch": report.scratch_bytes,
            "static": sizes["data"] + sizes["bss"],
            "stack_used": result.int_value("stack_used"),
            "stack_reserved": sizes["stack"],
        },
        elf=elf,
    )


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _packed_note(ram: dict[str, int]) -> str:
    """' (packed 4-bit; N unpacked)' when the arena holds packed activations."""
    unpacked = ram.get("arena_unpacked", ram["arena"])
    return "" if unpacked == ram["arena"] else f" (packed 4-bit; {unpacked:,} unpacked)"


def format_target_run(run: TargetRun) -> str:
    """The per-layer table and totals that ``q4sdk run`` prints."""
    unit = "instructions" if run.instructions is not None else f"ticks ({run.timer_unit})"
    rows = [f"{'op':<24} {'kind':<17} {'kernel':<28} {'MACs':>11} {unit:>14} {'instr/MAC':>9}"]
    for layer in run.layers:
        time = layer.instructions if layer.instructions is not None else layer.ticks
        rows.append(
            f"{layer.op[:24]:<24} {layer.kind:<17} {layer.kernel[:28]:<28} "
            f"{layer.macs:>11,} {_fmt(time):>14} {_fmt(layer.instructions_per_mac, 2):>9}"
        )
    total = run.instructions if run.instructions is not None else run.ticks
    check = "bit-exact" if run.ok else f"MISMATCH in {run.mismatched_samples} samples"
    flash, ram = run.flash, run.ram
    rows += [
        "",
        f"board                 {run.board} ({run.samples} samples, outputs vs oracle: {check})",
        f"per inference         {_fmt(total)} {unit}",
        f"MACs / inference      {run.macs:,}",
        f"instructions / MAC    {_fmt(run.instructions_per_mac, 2)}",
        f"flash                 {flash['total']:,} bytes (text {flash['text']:,} + rodata "
        f"{flash['rodata']:,} + data {flash['data']:,}); weights {flash['weights']:,}, "
        f"test data {flash['test_data']:,}",
        f"RAM                   arena {ram['arena']:,}{_packed_note(ram)} + scratch "
        f"{ram['scratch']:,} bytes; static "
        f"data {ram['static']:,} (arena included); stack used {ram['stack_used']:,} of "
        f"{ram['stack_reserved']:,}",
    ]
    if run.first_mismatch is not None:
        rows.append(f"first mismatch        {run.first_mismatch}")
    return "\n".join(rows)
