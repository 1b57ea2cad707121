"""The commands that check a model: ``check`` (an ONNX model before quantizing: ops, sizes, board
fit), ``verify`` (C vs the oracle, bit for bit) and ``report`` (per-layer diagnostics)."""

from __future__ import annotations

from pathlib import Path

from q4sdk.cli.common import (
    add_data_args,
    add_force_arg,
    check_output_dir,
    check_output_file,
    model_samples,
    quantized_samples,
    write_json,
)
from q4sdk.errors import Q4Error


def cmd_check(args) -> int:
    from q4sdk.check.model_check import check_model, format_check

    if args.json:
        check_output_file(args.json, args.force)
    result = check_model(args.model, [args.board] if args.board else [])
    print(format_check(result))
    if args.json:
        write_json(args.json, result.to_dict(), args.force)
    fits = all(f["fits"] for b in result.boards.values() for f in b.values()) if result.boards else True
    return 0 if result.supported and fits else 1


def cmd_verify(args) -> int:
    import numpy as np

    from q4sdk.check.accuracy import check_labels, source_float_graph, top1
    from q4sdk.check.verify import verify
    from q4sdk.ir.float_exec import run_float
    from q4sdk.ir.q4file import load_q4
    from q4sdk.progress import Progress
    from q4sdk.targets.host_build import CModel

    if args.json:
        check_output_file(args.json, args.force)
    model = load_q4(args.model)
    data, xq = quantized_samples(model, args.data, args.nhwc, args.count, args.start)
    gen_dir = Path(args.gen_dir)
    if not gen_dir.is_dir():
        raise Q4Error(f"{gen_dir}: not a directory written by 'q4sdk generate'")
    prog = Progress("verify")
    prog.update(0, 3, "building the C with cffi")
    cmodel = CModel(gen_dir)
    prog.update(1, 3, f"running {len(xq)} samples through C and the oracle")
    result = verify(model, cmodel, xq)
    c_out = cmodel.run(xq)
    acc = facc = None
    note = None
    if data.y is not None:
        check_labels(data.y, int(np.prod(model.output_tensor.shape)), data.path)
        acc = top1(c_out, data.y)
        prog.update(2, 3, "float model accuracy")
        graph, note = source_float_graph(model, args.float_model, args.model)
        if graph is not None:
            facc = top1(run_float(graph, data.x), data.y)
    prog.done("done")
    print(f"samples               {result.samples}")
    print(
        f"C vs oracle           {'bit-exact' if result.ok else 'MISMATCH'} ({result.mismatches} samples differ)"
    )
    if result.first_mismatch is not None:
        m = result.first_mismatch
        print(
            f"first mismatch        sample {m.sample}, tensor '{m.tensor}' (op '{m.op}'), index {m.index}: "
            f"C {m.c_value} vs oracle {m.oracle_value}"
        )
    if acc is not None:
        print(f"integer top-1 (C)     {100 * acc:.2f} %")
        print(f"float top-1           {'n/a: ' + note if facc is None else f'{100 * facc:.2f} %'}")
    if args.json:
        write_json(
            args.json,
            {
                "samples": result.samples,
                "mismatches": result.mismatches,
                "output_mismatches": result.output_mismatches,
                "accuracy": acc,
                "float_accuracy": facc,
                "first_mismatch": None if result.first_mismatch is None else vars(result.first_mismatch),
            },
            args.force,
        )
    return 0 if result.ok else 1


REPORT_FILES = ("report.md", "report.html", "report.json")


def cmd_report(args) -> int:
    from q4sdk.check.accuracy import source_float_graph
    from q4sdk.check.report import collect_report, numerics_notes, write_report
    from q4sdk.ir.q4file import load_q4
    from q4sdk.progress import Progress

    out = check_output_dir(args.output, REPORT_FILES, args.force)
    model = load_q4(args.model)
    data = model_samples(model, args.data, args.nhwc, args.count, args.start)
    graph, why = source_float_graph(model, args.float_model, args.model)
    rep = collect_report(model, data.x, data.y, graph, Progress("report"))
    write_report(rep, model, graph, out)
    if graph is None:
        print(f"note: {why}")
    a = rep.accuracy
    print(
        f"wrote {out / 'report.html'} (and report.md, report.json, plots): "
        f"{len(rep.layers)} layers, {rep.samples} samples"
    )
    for note in numerics_notes(model):
        print(note)
    if a["integer"] is not None:
        print(
            f"top-1: float {_percent(a['float'])}, fake-quant {_percent(a['fake_quant'])}, "
            f"integer {_percent(a['integer'])}"
        )
    return 0


def _percent(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def register(sub) -> None:
    """Add ``check``, ``verify`` and ``report`` to the ``q4sdk`` subparsers ``sub``."""
    p = sub.add_parser(
        "check",
        help="before quantizing: the model's ops and whether q4sdk supports them, parameters, MACs, "
        "flash and arena estimates, board fit (exit status 1 when unsupported or not fitting)",
    )
    p.add_argument("model", help="ONNX file")
    p.add_argument("--board", help="also check the fit on this board (see 'q4sdk boards')")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    add_force_arg(p, "the --json file")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("verify", help="C (built with cffi) vs the Python integer oracle, bit for bit")
    p.add_argument("model", help=".q4 file")
    p.add_argument("gen_dir", help="directory written by 'q4sdk generate'")
    add_data_args(p, "data")
    p.add_argument("--count", type=int, default=None, help="number of samples (default: all)")
    p.add_argument("--start", type=int, default=0, help="index of the first sample")
    p.add_argument(
        "--float-model",
        help="float ONNX model for float accuracy (default: the source "
        "recorded in the .q4 file, if it is still there and unchanged)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    add_force_arg(p, "the --json file")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "report",
        help="per-layer diagnostics: weight/activation SQNR, clipping, float vs "
        "fake-quant vs integer accuracy (Markdown, HTML, JSON, plots)",
    )
    p.add_argument("model", help=".q4 file")
    add_data_args(p, "data")
    p.add_argument("--count", type=int, default=None, help="number of samples (default: all)")
    p.add_argument("--start", type=int, default=0, help="index of the first sample")
    p.add_argument(
        "--float-model",
        help="float ONNX model (default: the source recorded in the .q4 file, "
        "if it is still there and unchanged)",
    )
    p.add_argument("-o", "--output", required=True, help="output directory")
    add_force_arg(p, "the report files in the output directory")
    p.set_defaults(func=cmd_report)
