"""The commands for real targets: ``boards``, ``run``, and ``generate --board`` (a firmware project).

``--kernels optimised`` (the default) gives each layer the optimised kernel of the board's core
(Arm DSP extension, Helium) where one exists and the portable kernel elsewhere, so a board without
extensions gets portable kernels either way; ``--kernels portable`` uses the portable kernels
everywhere.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from q4sdk.cli.common import (
    add_data_args,
    cannot_write,
    check_output_dir,
    check_output_file,
    format_generate_report,
    quantized_samples,
    write_json,
)
from q4sdk.errors import Q4Error

KERNEL_CHOICES = ("optimised", "portable")


def cmd_boards(args) -> int:
    from q4sdk.codegen.kernels import KERNEL_VARIANTS
    from q4sdk.targets.boards import list_boards, load_board

    rows = [
        f"{'board':<14} {'cpu':<14} {'flash':>10} {'RAM':>10}  {'runs':<15} {'kernels':<8} "
        f"{'timer tick':<12} description"
    ]
    for name in list_boards():
        b = load_board(name)
        flash = "-" if b.flash is None else f"{b.flash.size // 1024:,} KB"
        ram = "-" if b.ram is None else f"{b.ram.size // 1024:,} KB"
        runs = ("QEMU " + b.qemu.machine if b.qemu else "natively") if b.runnable else "build-only"
        kernels = (
            "+".join(
                sorted(
                    {
                        v.function.rsplit("_", 1)[-1]
                        for variants in KERNEL_VARIANTS.values()
                        for v in variants
                        if getattr(b, v.requires)
                    },
                    reverse=True,
                )
            )
            or "portable"
        )
        per_tick = b.timer.instructions_per_tick
        tick = (
            f"{per_tick:g} instr"
            if per_tick is not None
            else {"cycles": "1 cycle", "ns": "1 ns"}.get(b.timer.unit, b.timer.unit)
        )
        rows.append(
            f"{name:<14} {b.cpu:<14} {flash:>10} {ram:>10}  {runs:<15} {kernels:<8} "
            f"{tick:<12} {b.description}"
        )
    print("\n".join(rows))
    return 0


def cmd_run(args) -> int:
    from q4sdk.codegen.c_syntax import c_identifier
    from q4sdk.ir.q4file import load_q4
    from q4sdk.targets.boards import load_board
    from q4sdk.targets.run import format_target_run, run_on_board

    board = load_board(args.board)
    if not board.runnable:
        raise Q4Error(
            f"board {board.name} is build-only: 'run' needs a board q4sdk can run "
            "(see 'q4sdk boards'); 'q4sdk generate --board' builds a project for it"
        )
    if args.json:
        check_output_file(args.json, args.force)
    if args.work_dir:
        check_output_dir(args.work_dir, ("project", "build"), args.force)
    model = load_q4(args.model)
    _, xq = quantized_samples(model, args.data, args.nhwc, args.count, args.start)
    name = c_identifier(model.name)
    options = dict(kernels=args.kernels, name=name, pack_activations=args.pack_activations)
    if args.work_dir:
        try:
            run = run_on_board(model, board, xq, args.work_dir, **options)
        except OSError as e:
            raise cannot_write(args.work_dir, e) from None
    else:
        with tempfile.TemporaryDirectory(prefix="q4sdk-run-") as work:
            run = run_on_board(model, board, xq, work, **options)
    print(format_target_run(run))
    if args.json:
        write_json(args.json, run.to_dict(), args.force)
    return 0 if run.ok else 1


def generate_for_board(args) -> int:
    """``q4sdk generate MODEL -o DIR --board NAME``: write the firmware project and its figures."""
    from q4sdk.codegen.c_syntax import c_identifier
    from q4sdk.ir.q4file import load_q4
    from q4sdk.targets.boards import load_board
    from q4sdk.targets.project import write_firmware_project

    out = check_output_dir(args.output, (), args.force)
    board = load_board(args.board)
    model = load_q4(args.model)
    xq = None
    source = "a zero input"
    if args.data:
        _, xq = quantized_samples(model, args.data, args.nhwc, args.count)
        source = f"{len(xq)} samples of {Path(args.data).name}"
    name = args.name or c_identifier(model.name)
    try:
        project = write_firmware_project(
            model,
            out,
            board,
            name,
            xq,
            overwrite=args.force,
            kernels=args.kernels,
            source=source,
            pack_activations=args.pack_activations,
        )
    except OSError as e:
        raise cannot_write(out, e) from None
    fit = project.fit
    print(format_generate_report(project.report))
    flash = "-" if board.flash is None else f"{board.flash.size:,}"
    ram = "-" if board.ram is None else f"{board.ram.size:,}"
    print(
        f"board                 {board.name}: flash ~{fit.flash_bytes:,} of {flash} bytes, "
        f"RAM ~{fit.ram_bytes:,} of {ram} bytes (estimate; stack {fit.stack_bytes:,})"
    )
    print(f"kernels               {_kernel_summary(project.report)}")
    print(f"build                 make -C {out}   (or: cmake -S {out} -B build)")
    return 0


def _kernel_summary(report) -> str:
    """'3 optimised (q4_conv2d_s4_dsp), 2 portable' for the ops of a GenerateReport."""
    opt = sorted({o.kernel for o in report.ops if o.kernel.endswith(("_dsp", "_mve"))})
    n_opt = sum(o.kernel in opt for o in report.ops)
    n_port = sum(bool(o.kernel) for o in report.ops) - n_opt
    return f"{n_opt} layers optimised ({', '.join(opt) or 'none'}), {n_port} portable"


def add_kernels_arg(p: argparse.ArgumentParser) -> None:
    """``--kernels`` and ``--pack-activations`` (generate --board, run)."""
    p.add_argument(
        "--kernels",
        default="optimised",
        choices=KERNEL_CHOICES,
        help="optimised (default): each layer calls the optimised kernel of the board's core "
        "(Arm DSP extension, Helium) where it has one and the portable kernel elsewhere; "
        "portable: the portable C kernels everywhere",
    )
    p.add_argument(
        "--pack-activations",
        action="store_true",
        help="store 4-bit activations two per byte in the arena (about half the RAM; "
        "every tensor but the output must be <= 4 bits; with optimised kernels packed layers run "
        "them on bands of rows unpacked into scratch, else the portable *_p4 kernels)",
    )


def add_generate_board_args(p: argparse.ArgumentParser) -> None:
    """Options of ``generate`` for a firmware project (used when ``--board`` is given)."""
    p.add_argument(
        "--board",
        help="write a complete firmware project for this board (see "
        "'q4sdk boards'), checked to fit its flash and RAM",
    )
    add_data_args(
        p,
        "data",
        required=False,
        help="with --board: test inputs to embed (.npy/.npz 'x'; default: one zero input)",
    )
    p.add_argument("--count", type=int, default=4, help="with --data: samples to embed (default: 4)")
    add_kernels_arg(p)


def register(sub) -> None:
    """Add ``boards`` and ``run`` to the ``q4sdk`` subparsers ``sub``."""
    p = sub.add_parser("boards", help="list the target boards (cpu, flash, RAM, runnable)")
    p.set_defaults(func=cmd_boards)

    p = sub.add_parser(
        "run",
        help="build for a board, run under QEMU, check every output against "
        "the oracle bit for bit, profile each layer",
    )
    p.add_argument("model", help=".q4 file")
    p.add_argument("--board", required=True, help="a runnable board (see 'q4sdk boards')")
    add_data_args(p, "data", help=".npy or .npz (array 'x') in the model's input layout")
    p.add_argument("--count", type=int, default=20, help="number of samples (default: 20)")
    p.add_argument("--start", type=int, default=0, help="index of the first sample")
    add_kernels_arg(p)
    p.add_argument(
        "--work-dir", help="keep the firmware project and build here (default: a temporary directory)"
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the --json file and the --work-dir contents if they exist",
    )
    p.set_defaults(func=cmd_run)
