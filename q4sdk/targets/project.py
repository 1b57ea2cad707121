"""A complete firmware project for one board: the generated model, its test data and a main.

``write_firmware_project`` lays out, all or nothing::

    main.c  q4_profile.h  test_data.c  test_data.h  Makefile  CMakeLists.txt
    model/  the generated model (``q4sdk.codegen.render``) and its runtime kernels
    board/  the board harness copied from ``boards/`` (sources, headers, linker scripts, memory.ld)

``main.c`` runs the model on the embedded test inputs (or one all-zero input: every element at
the input zero point) and prints ``@q4`` records: each output, its inference ticks, per-op ticks
(``Q4_PROFILE_BEGIN/END`` defined by ``q4_profile.h``), the stack high-water mark and whether every
output equals the oracle's (embedded too). The same files build with ``make``, with CMake, or
through ``q4sdk.targets.firmware.build_firmware`` (what ``q4sdk run`` does).

Before writing anything the project is checked against the board's memories (``estimate_fit``):
flash = weights and tables + a code estimate + test data; RAM = arena + kernel scratch + static
data + the board's stack. Q4Error with the figures when it does not fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2
import numpy as np

from q4sdk import resources
from q4sdk.codegen.arena import input_tensors
from q4sdk.codegen.c_syntax import c_comment
from q4sdk.codegen.render import GenerateReport, render, template_environment, write_files
from q4sdk.errors import Q4Error
from q4sdk.ir.oracle import input_shape, run_oracle
from q4sdk.ir.qmodel import QModel
from q4sdk.targets import firmware
from q4sdk.targets.boards import Board

TEMPLATE_DIR = resources.TEMPLATE_DIR / "firmware"
MODEL_DIR, BOARD_DIR = "model", "board"
EXTRA_CFLAGS = ("-ffp-contract=off", "-DQ4_PROFILE")
PROJECT_SOURCES = ("main.c", "test_data.c")

# Code size estimate (bytes), before compiling: start-up, console, timer and main, plus each
# kernel source and each op's call with its parameter structs. Measured on Cortex-M4 at -O2 with
# margin; the real figure is in the link map after a build.
CODE_BASE_BYTES = 6 * 1024
CODE_PER_KERNEL_BYTES = 2 * 1024
CODE_PER_OP_BYTES = 192
# kernel sources far above CODE_PER_KERNEL_BYTES (.text of the object at -O2, Cortex-M4, with
# margin; a whole-object figure, so an upper bound of what the link keeps)
CODE_LARGE_KERNEL_BYTES = {"q4_conv2d_s4_terms_dsp.c": 26 * 1024, "q4_conv2d_s4_dsp.c": 16 * 1024}
STATIC_BASE_BYTES = 512  # harness and main statics besides arena, scratch and buffers


@dataclass(frozen=True)
class FitEstimate:
    """Estimated memory use of a firmware project, in bytes."""

    weight_bytes: int
    code_bytes: int
    test_data_bytes: int
    arena_bytes: int
    scratch_bytes: int
    static_bytes: int
    stack_bytes: int

    @property
    def flash_bytes(self) -> int:
        return self.weight_bytes + self.code_bytes + self.test_data_bytes

    @property
    def ram_bytes(self) -> int:
        return self.arena_bytes + self.scratch_bytes + self.static_bytes + self.stack_bytes

    def to_dict(self) -> dict:
        return {**asdict(self), "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes}


@dataclass
class FirmwareProject:
    """A written firmware project; ``sources`` and ``include_dirs`` are what a build compiles."""

    directory: Path
    name: str
    board: Board
    report: GenerateReport
    fit: FitEstimate
    samples: int
    expected: np.ndarray  # int8 [samples, *output shape]: the oracle's outputs

    @property
    def sources(self) -> list[Path]:
        model = self.directory / MODEL_DIR
        return [
            *(self.directory / s for s in PROJECT_SOURCES),
            model / f"{self.name}.c",
            model / f"{self.name}_weights.c",
            *sorted((model / "q4_runtime").glob("*.c")),
        ]

    @property
    def include_dirs(self) -> list[Path]:
        return [self.directory, self.directory / MODEL_DIR]


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"


def estimate_fit(
    report: GenerateReport, test_data_bytes: int, output_bytes: int, board: Board
) -> FitEstimate:
    """Flash and RAM the project will need on ``board`` (stack: the board's reserved stack)."""
    return FitEstimate(
        weight_bytes=report.weight_bytes,
        code_bytes=CODE_BASE_BYTES
        + sum(CODE_LARGE_KERNEL_BYTES.get(src, CODE_PER_KERNEL_BYTES) for src in report.kernel_sources)
        + len(report.ops) * CODE_PER_OP_BYTES,
        test_data_bytes=test_data_bytes,
        arena_bytes=report.arena_bytes,
        scratch_bytes=report.scratch_bytes,
        static_bytes=STATIC_BASE_BYTES + output_bytes + 4 * len(report.ops),
        stack_bytes=board.stack_size or 0,
    )


def check_fit(fit: FitEstimate, board: Board, model_name: str) -> None:
    """Q4Error naming the figures when the estimate exceeds the board's flash or RAM."""
    if board.flash is None or board.ram is None:
        return  # the host: no fixed memories
    problems = []
    if fit.flash_bytes > board.flash.size:
        problems.append(
            f"needs {_kb(fit.flash_bytes)} flash (weights {_kb(fit.weight_bytes)} + code "
            f"~{_kb(fit.code_bytes)} + test data {_kb(fit.test_data_bytes)}), board has "
            f"{_kb(board.flash.size)}"
        )
    if fit.ram_bytes > board.ram.size:
        problems.append(
            f"needs {_kb(fit.ram_bytes)} RAM (arena {_kb(fit.arena_bytes)} + scratch "
            f"{_kb(fit.scratch_bytes)} + static ~{_kb(fit.static_bytes)} + stack "
            f"{_kb(fit.stack_bytes)}), board has {_kb(board.ram.size)}"
        )
    if problems:
        raise Q4Error(f"model '{model_name}' does not fit board {board.name}: " + "; ".join(problems))


def zero_input(model: QModel) -> np.ndarray:
    """One int8 input sample with every element at its tensor's zero point (a real-valued 0; for a
    residual input both X1 and X2 at their zero points)."""
    zero_points = [model.tensors[t].zero_point for t in input_tensors(model)]
    sample = np.stack([np.full(model.input_tensor.shape, z, np.int8) for z in zero_points])
    return sample.reshape(1, *input_shape(model))


def _byte_rows(sample: np.ndarray) -> list[str]:
    values = [str(int(v)) for v in np.asarray(sample).ravel()]
    return [", ".join(values[i : i + 20]) + "," for i in range(0, len(values), 20)]


def _environment() -> jinja2.Environment:
    return template_environment(TEMPLATE_DIR)


def _harness_files(board: Board) -> dict[str, str]:
    """The board's harness files, flat under board/ (their names are distinct)."""
    paths = list(board.sources) + sorted(firmware.COMMON_DIR.glob("*.h"))
    if board.linker_script is not None:
        paths += sorted(firmware.COMMON_DIR.glob("*.ld"))
    files = {}
    for path in paths:
        rel = f"{BOARD_DIR}/{path.name}"
        if rel in files:
            raise Q4Error(f"board {board.name}: two harness files named '{path.name}'")
        files[rel] = path.read_text()
    if board.linker_script is not None:
        files[f"{BOARD_DIR}/memory.ld"] = firmware.memory_script(board)
    return files


def _build_files(board: Board, name: str, model_files: list[str], model_comment: str) -> dict[str, str]:
    """Makefile and CMakeLists.txt for the project's sources."""
    runtime = sorted(f for f in model_files if f.endswith(".c") and f.startswith("q4_runtime/"))
    sources = [
        *(f"{BOARD_DIR}/{p.name}" for p in board.sources),
        *PROJECT_SOURCES,
        f"{MODEL_DIR}/{name}.c",
        f"{MODEL_DIR}/{name}_weights.c",
        *(f"{MODEL_DIR}/{f}" for f in runtime),
    ]
    include_dirs = [BOARD_DIR, ".", MODEL_DIR]
    defines = [*firmware.board_defines(board), *(f for f in EXTRA_CFLAGS if f.startswith("-D"))]
    cflags = [*board.cflags, *firmware.COMMON_CFLAGS, *(f for f in EXTRA_CFLAGS if not f.startswith("-D"))]
    link = []
    if board.linker_script is not None:
        link = [f"-L{BOARD_DIR}", f"-T{BOARD_DIR}/{board.linker_script.name}"]
    link += [*firmware.COMMON_LDFLAGS, "-Wl,-Map=firmware.map", *board.ldflags]
    qemu = None
    if board.qemu is not None:
        qemu = firmware.qemu_command(board)
    cmake_link = [
        *board.cflags,
        *(
            f.replace(f"{BOARD_DIR}/", f"${{CMAKE_CURRENT_SOURCE_DIR}}/{BOARD_DIR}/").replace(
                f"-L{BOARD_DIR}", f"-L${{CMAKE_CURRENT_SOURCE_DIR}}/{BOARD_DIR}"
            )
            for f in link
        ),
    ]
    env = _environment()
    common = {
        "board": board.name,
        "name": name,
        "model_comment": model_comment,
        "compiler": board.compiler,
        "sources": sources,
        "cflags": cflags,
    }
    makefile = env.get_template("Makefile.j2").render(
        **common,
        qemu=qemu,
        ldflags=[*board.cflags, *link],
        cppflags=[f"'{d}'" if '"' in d else d for d in defines] + [f"-I{d}" for d in include_dirs],
    )
    cmake = env.get_template("CMakeLists.txt.j2").render(
        **common,
        cross=board.linker_script is not None,
        include_dirs=include_dirs,
        defines=['"' + d[2:].replace('"', '\\"') + '"' for d in defines],
        cmake_ldflags=cmake_link,
    )
    return {"Makefile": makefile, "CMakeLists.txt": cmake}


def render_firmware_project(
    model: QModel,
    board: Board,
    name: str,
    inputs: np.ndarray | None = None,
    kernels: str = "optimised",
    source: str = "a zero input",
    pack_activations: bool = False,
):
    """Render the project in memory: ({relative path: text}, GenerateReport, FitEstimate, expected).

    ``inputs``: int8 [N, *oracle.input_shape(model)] quantized samples (``oracle.quantize_input``;
    X1 and X2 of each sample for a residual input), or None for one zero input. Raises Q4Error
    when the model does not fit the board.
    """
    xq = zero_input(model) if inputs is None else np.asarray(inputs)
    if xq.dtype != np.int8 or xq.shape[1:] != input_shape(model) or len(xq) == 0:
        raise Q4Error(
            f"firmware inputs must be int8 [N >= 1, {input_shape(model)}], got {xq.dtype} {xq.shape}"
        )
    expected = run_oracle(model, xq)
    model_files, report = render(
        model, name, target=board, kernels=kernels, pack_activations=pack_activations
    )
    fit = estimate_fit(report, xq.size + expected.size, model.output_tensor.size, board)
    check_fit(fit, board, model.name)

    model_comment = c_comment(model.name)
    env = _environment()
    ctx = {
        "name": name,
        "NAME": name.upper(),
        "board": board.name,
        "model_comment": model_comment,
        "samples": len(xq),
        "input_size": int(np.prod(input_shape(model))),
        "residual_input": bool(model.meta.get("input_residual")),
        "output_size": model.output_tensor.size,
        "source_comment": c_comment(source),
        "inputs": [_byte_rows(x) for x in xq],
        "expected": [_byte_rows(y) for y in expected],
    }
    files = {f"{MODEL_DIR}/{rel}": text for rel, text in model_files.items()}
    for template in ("main.c", "q4_profile.h", "test_data.c", "test_data.h"):
        files[template] = env.get_template(f"{template}.j2").render(ctx)
    files.update(_harness_files(board))
    files.update(_build_files(board, name, list(model_files), model_comment))
    return files, report, fit, expected


def write_firmware_project(
    model: QModel,
    out_dir,
    board: Board,
    name: str,
    inputs: np.ndarray | None = None,
    *,
    overwrite: bool = False,
    kernels: str = "optimised",
    source: str = "a zero input",
    pack_activations: bool = False,
) -> FirmwareProject:
    """Write the firmware project of ``model`` for ``board`` into ``out_dir`` (see the module doc).

    Nothing is written when the model does not fit the board or cannot be generated (Q4Error).
    ``source`` describes where the inputs came from (a comment in test_data.h);
    ``pack_activations`` stores 4-bit activations two per byte (``codegen.render``).
    """
    out_dir = Path(out_dir)
    files, report, fit, expected = render_firmware_project(
        model, board, name, inputs, kernels, source, pack_activations
    )
    write_files(files, out_dir, overwrite)
    report.files = [out_dir / rel for rel in sorted(files)]
    return FirmwareProject(out_dir, name, board, report, fit, len(expected), expected)
