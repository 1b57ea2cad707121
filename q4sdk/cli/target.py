"""The command line for real targets: ``boards``, ``run``, and ``generate --board``.

``cli.py`` calls ``add_target_commands(sub)`` to add ``boards`` and ``run``, adds the board
options to ``generate`` with ``add_generate_board_args(parser)`` and hands a ``generate`` with
``--board`` to ``generate_for_board(args)``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from q4sdk.errors import Q4Error


def _write_json(path: str, data: dict) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(p)


def quantized_samples(model, path: str, nhwc: bool, count: int | None, start: int = 0) -> np.ndarray:
    """int8 [N, *input shape] inputs of ``model`` from a data file (as ``verify`` reads them)."""
    from q4sdk.check.datasets import load_samples
    from q4sdk.ir.oracle import quantize_input

    layout = model.meta.get("input_layout", "NCHW")
    shape = tuple(model.meta.get("input_shape_float") or ())
    data = load_samples(path, shape or None, nhwc=nhwc or layout == "NHWC", limit=count, start=start)
    x = data.x.transpose(0, 2, 3, 1) if layout == "NHWC" and data.x.ndim == 4 else data.x
    return quantize_input(model, x)


def cmd_boards(args) -> int:
    from q4sdk.targets.boards import list_boards, load_board

    rows = [f"{'board':<12} {'cpu':<14} {'flash':>10} {'RAM':>10}  {'runs':<18} description"]
    for name in list_boards():
        b = load_board(name)
        flash = "-" if b.flash is None else f"{b.flash.size // 1024:,} KB"
        ram = "-" if b.ram is None else f"{b.ram.size // 1024:,} KB"
        runs = ("QEMU " + b.qemu.machine if b.qemu else "natively") if b.runnable else "build-only"
        rows.append(f"{name:<12} {b.cpu:<14} {flash:>10} {ram:>10}  {runs:<18} {b.description}")
    print("\n".join(rows))
    return 0


def cmd_run(args) -> int:
    from q4sdk.targets.boards import load_board
    from q4sdk.codegen.c_syntax import c_identifier
    from q4sdk.ir.q4file import load_q4
    from q4sdk.targets.run import format_target_run, run_on_board

    board = load_board(args.board)
    if not board.runnable:
        raise Q4Error(f"board {board.name} is build-only: 'run' needs a board q4sdk can run "
                      "(see 'q4sdk boards'); 'q4sdk generate --board' builds a project for it")
    model = load_q4(args.model)
    xq = quantized_samples(model, args.data, args.nhwc, args.count, args.start)
    name = c_identifier(model.name)
    if args.work_dir:
        run = run_on_board(model, board, xq, args.work_dir, kernels=args.kernels, name=name,
                           pack_activations=args.pack_activations)
    else:
        with tempfile.TemporaryDirectory(prefix="q4sdk-run-") as work:
            run = run_on_board(model, board, xq, work, kernels=args.kernels, name=name,
                               pack_activations=args.pack_activations)
    print(format_target_run(run))
    if args.json:
        _write_json(args.json, run.to_dict())
    return 0 if run.ok else 1


def add_target_commands(sub) -> None:
    """Add the ``boards`` and ``run`` subcommands to the ``q4sdk`` subparsers ``sub``."""
    p = sub.add_parser("boards", help="list the target boards (cpu, flash, RAM, runnable)")
    p.set_defaults(func=cmd_boards)

    p = sub.add_parser("run", help="build for a board, run under QEMU, check every output against "
                                   "the oracle bit for bit, profile each layer")
    p.add_argument("model", help=".q4 file")
    p.add_argument("--board", required=True, help="a runnable board (see 'q4sdk boards')")
    p.add_argument("--data", required=True, metavar="FILE",
                   help=".npy or .npz (array 'x') in the model's input layout")
    p.add_argument("--nhwc", action="store_true", help="the data is channels-last (N,H,W,C)")
    p.add_argument("--count", type=int, default=20, help="number of samples (default: 20)")
    p.add_argument("--start", type=int, default=0, help="index of the first sample")
    _add_kernels_arg(p)
    p.add_argument("--work-dir", help="keep the firmware project and build here (default: a "
                                      "temporary directory)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.set_defaults(func=cmd_run)


def _add_kernels_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kernels", default="portable", choices=["portable", "optimised"],
                   help="portable C kernels, or the board's optimised variants where available")
    add_pack_activations_arg(p)


def add_pack_activations_arg(p: argparse.ArgumentParser) -> None:
    """``--pack-activations`` (generate, generate --board, run)."""
    p.add_argument("--pack-activations", action="store_true",
                   help="store 4-bit activations two per byte in the arena (about half the RAM; "
                        "every tensor but the output must be <= 4 bits; packed ops use the "
                        "portable *_p4 kernels)")


def add_generate_board_args(p: argparse.ArgumentParser) -> None:
    """Options of ``generate`` for a firmware project (used when ``--board`` is given)."""
    p.add_argument("--board", help="write a complete firmware project for this board (see "
                                   "'q4sdk boards'), checked to fit its flash and RAM")
    p.add_argument("--data", metavar="FILE", help="with --board: test inputs to embed (.npy/.npz "
                   "'x'; default: one zero input)")
    p.add_argument("--nhwc", action="store_true", help="the --data is channels-last (N,H,W,C)")
    p.add_argument("--count", type=int, default=4, help="with --data: samples to embed (default: 4)")
    _add_kernels_arg(p)


def generate_for_board(args) -> int:
    """``q4sdk generate MODEL -o DIR --board NAME``: write the firmware project and its figures."""
    from q4sdk.targets.boards import load_board
    from q4sdk.cli import format_generate_report
    from q4sdk.codegen.c_syntax import c_identifier
    from q4sdk.targets.project import write_firmware_project
    from q4sdk.ir.q4file import load_q4

    board = load_board(args.board)
    model = load_q4(args.model)
    xq = None
    source = "a zero input"
    if args.data:
        xq = quantized_samples(model, args.data, args.nhwc, args.count)
        source = f"{len(xq)} samples of {Path(args.data).name}"
    name = args.name or c_identifier(model.name)
    project = write_firmware_project(model, args.output, board, name, xq, overwrite=args.force,
                                     kernels=args.kernels, source=source,
                                     pack_activations=args.pack_activations)
    fit = project.fit
    print(format_generate_report(project.report))
    flash = "-" if board.flash is None else f"{board.flash.size:,}"
    ram = "-" if board.ram is None else f"{board.ram.size:,}"
    print(f"board                 {board.name}: flash ~{fit.flash_bytes:,} of {flash} bytes, "
          f"RAM ~{fit.ram_bytes:,} of {ram} bytes (estimate; stack {fit.stack_bytes:,})")
    print(f"build                 make -C {args.output}   (or: cmake -S {args.output} -B build)")
    return 0
