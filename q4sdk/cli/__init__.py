"""The ``q4sdk`` command line.

Every command fails with a one-line ``error: ...`` naming the file / node / field at fault and a
non-zero exit status; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from q4sdk.errors import Q4Error
from q4sdk.ptq.recipe import ACTIVATION_RANGE_METHODS, WEIGHT_SCALE_METHODS


def _add_data_args(p: argparse.ArgumentParser, what: str, required: bool = True) -> None:
    p.add_argument(f"--{what}", required=required, metavar="FILE",
                   help=".npy or .npz (array 'x', labels 'y' optional) in the model's input layout")
    p.add_argument("--nhwc", action="store_true", help="the data is channels-last (N,H,W,C)")


def _write_json(path: str, data: dict) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(p)


def _recipe_from_args(args):
    """--recipe (a preset name or a JSON file) plus the individual flags the user gave."""
    from q4sdk.ptq.recipe import Recipe, preset

    bits = int(args.activations.removeprefix("int"))
    overrides = {k: v for k, v in {
        "unsigned_activations": True if args.unsigned_activations else None,
        "weight_scale": args.weight_scale, "activation_range": args.activation_range,
        "bias_correction": True if args.bias_correction else None, "calib_samples": args.calib_samples,
        "cle": True if args.cle else None,
        "residual_activations": ([n for n in args.residual_activations.split(",") if n]
                                 if args.residual_activations is not None else None),
    }.items() if v is not None}
    if args.recipe.endswith(".json"):
        p = Path(args.recipe)
        try:
            fields = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise Q4Error(f"{p}: cannot read the recipe ({e})") from None
        if not isinstance(fields, dict):
            raise Q4Error(f"{p}: a recipe file holds one JSON object")
        return Recipe.from_dict({**fields, "activation_bits": bits, **overrides})
    return preset(args.recipe, bits, **overrides)


def cmd_quantize(args) -> int:
    from q4sdk.api import load_float_model
    from q4sdk.check.datasets import load_samples
    from q4sdk.ir.q4file import save_q4
    from q4sdk.ptq.pipeline import quantize_graph
    from q4sdk.progress import Progress

    out = Path(args.output)
    if out.exists() and not args.force:
        raise Q4Error(f"{out}: already exists (use --force to overwrite)")
    if args.weights != "int4":
        raise Q4Error(f"--weights: only int4 is supported, got '{args.weights}'")
    recipe = _recipe_from_args(args)
    graph = load_float_model(args.model)
    data = load_samples(args.calib, graph.input_shape, nhwc=args.nhwc or graph.input_layout == "NHWC")
    import warnings
    warnings.formatwarning = lambda msg, *_a, **_k: f"warning: {msg}\n"  # calibration warnings, one line each
    progress = Progress("quantize", enabled=not args.quiet)
    model = quantize_graph(graph, data.x, recipe, progress)
    model.meta["source_file"] = Path(args.model).name  # no absolute path: same bytes on any machine
    save_q4(model, out, overwrite=args.force)
    print(f"wrote {out}: {len(model.ops)} ops, W{recipe.weight_bits}A{recipe.activation_bits}, "
          f"quantized in {progress.elapsed():.1f}s")
    return 0


def format_generate_report(report) -> str:
    """The per-op table and the totals that `generate` prints."""
    rows = [f"{'op':<24} {'kind':<18} {'MACs':>12} {'weight bytes':>13}"]
    for o in report.ops:
        rows.append(f"{o.name[:24]:<24} {o.kind:<18} {o.macs:>12,} {o.weight_bytes:>13,}")
    rows.append("")
    rows.append(f"MACs per inference    {report.macs:,}")
    rows.append(f"weights in flash      {report.weight_bytes:,} bytes (packed INT4 + bias/multiplier/shift tables)")
    rows.append(f"arena (one buffer)    {report.arena_summary} (peak at '{report.peak_op}')")
    rows.append(f"files                 {', '.join(str(f) for f in report.files)}")
    return "\n".join(rows)


def cmd_generate(args) -> int:
    from q4sdk.codegen.render import generate
    from q4sdk.ir.q4file import load_q4

    if getattr(args, "board", None):
        from q4sdk.cli.target import generate_for_board

        return generate_for_board(args)
    model = load_q4(args.model)
    name = args.name or model.name
    report = generate(model, args.output, name, overwrite=args.force,
                      pack_activations=args.pack_activations)
    print(format_generate_report(report))
    return 0


def cmd_verify(args) -> int:
    import numpy as np

    from q4sdk.ir import oracle
    from q4sdk.targets.host_build import CModel
    from q4sdk.check.datasets import load_samples
    from q4sdk.check.accuracy import check_labels, source_float_graph, top1
    from q4sdk.ir.float_exec import run_float
    from q4sdk.progress import Progress
    from q4sdk.ir.q4file import load_q4
    from q4sdk.check.verify import verify

    model = load_q4(args.model)
    layout = model.meta.get("input_layout", "NCHW")
    shape = tuple(model.meta.get("input_shape_float") or ())
    # x: the model's logical (NCHW) layout, as the float graph takes it
    data = load_samples(args.data, shape or None, nhwc=args.nhwc or layout == "NHWC",
                        limit=args.count, start=args.start)
    x = data.x
    gen_dir = Path(args.gen_dir)
    if not gen_dir.is_dir():
        raise Q4Error(f"{gen_dir}: not a directory written by 'q4sdk generate'")
    prog = Progress("verify")
    prog.update(0, 3, "building the C with cffi")
    cmodel = CModel(gen_dir)
    xq = oracle.quantize_input(model, x.transpose(0, 2, 3, 1) if layout == "NHWC" and x.ndim == 4 else x)
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
            facc = top1(run_float(graph, x), data.y)
    prog.done("done")
    print(f"samples               {result.samples}")
    print(f"C vs oracle           {'bit-exact' if result.ok else 'MISMATCH'} ({result.mismatches} samples differ)")
    if result.first_mismatch is not None:
        m = result.first_mismatch
        print(f"first mismatch        sample {m.sample}, tensor '{m.tensor}' (op '{m.op}'), index {m.index}: "
              f"C {m.c_value} vs oracle {m.oracle_value}")
    if acc is not None:
        print(f"integer top-1 (C)     {100 * acc:.2f} %")
        print(f"float top-1           {'n/a: ' + note if facc is None else f'{100 * facc:.2f} %'}")
    if args.json:
        _write_json(args.json, {
            "samples": result.samples, "mismatches": result.mismatches,
            "output_mismatches": result.output_mismatches, "accuracy": acc, "float_accuracy": facc,
            "first_mismatch": None if result.first_mismatch is None else vars(result.first_mismatch),
        })
    return 0 if result.ok else 1


def cmd_inspect(args) -> int:
    from q4sdk.ir.q4file import describe_q4

    print(describe_q4(args.model))
    return 0


def cmd_demo(args) -> int:
    from q4sdk.cli.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="q4sdk", description="INT4 post-training quantization to bit-exact C")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("quantize", help="float model (ONNX) + calibration data -> .q4 model")
    p.add_argument("model", help="ONNX file")
    _add_data_args(p, "calib")
    p.add_argument("-o", "--output", required=True, help="the .q4 file to write")
    p.add_argument("--weights", default="int4", help="weight precision (int4)")
    p.add_argument("--activations", default="int8", choices=["int4", "int8"])
    p.add_argument("--unsigned-activations", action="store_true",
                   help="unsigned activations with an offset (zero point) instead of symmetric signed")
    p.add_argument("--recipe", default="default", metavar="NAME|FILE.json",
                   help="a named recipe (default, minmax, paper, best) or a JSON recipe file; "
                        "the flags below override its fields")
    p.add_argument("--weight-scale", choices=WEIGHT_SCALE_METHODS,
                   help="per-kernel weight scale search (default mmse: grid line search)")
    p.add_argument("--activation-range", choices=ACTIVATION_RANGE_METHODS,
                   help="activation clipping (default mmse; aciq_*: analytical, Laplace / Gauss prior)")
    p.add_argument("--cle", action="store_true", help="cross-layer equalization before quantizing")
    p.add_argument("--bias-correction", action="store_true", help="empirical per-channel bias correction")
    p.add_argument("--residual-activations", metavar="T1,T2",
                   help="quantize these tensors as two INT4 tensors X1 + X2 (4-bit activations; "
                        "'@last_input': the input of the last conv/dense layer)")
    p.add_argument("--calib-samples", type=int, help="use at most this many samples (default 512)")
    p.add_argument("--force", action="store_true", help="overwrite the output file")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("generate", help=".q4 model -> C sources")
    p.add_argument("model", help=".q4 file")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--name", help="C identifier prefix (default: the model name)")
    p.add_argument("--force", action="store_true", help="overwrite generated files in the output directory")
    from q4sdk.cli.target import add_generate_board_args, add_target_commands

    add_generate_board_args(p)
    p.set_defaults(func=cmd_generate)
    add_target_commands(sub)

    p = sub.add_parser("verify", help="C (built with cffi) vs the Python integer oracle, bit for bit")
    p.add_argument("model", help=".q4 file")
    p.add_argument("gen_dir", help="directory written by 'q4sdk generate'")
    _add_data_args(p, "data")
    p.add_argument("--count", type=int, default=None, help="number of samples (default: all)")
    p.add_argument("--start", type=int, default=0, help="index of the first sample")
    p.add_argument("--float-model", help="float ONNX model for float accuracy (default: the source "
                   "recorded in the .q4 file, if it is still there and unchanged)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("inspect", help="print a .q4 file's manifest in readable form")
    p.add_argument("model", help=".q4 file")
    p.set_defaults(func=cmd_inspect)

    from q4sdk.check.report import add_report_command

    add_report_command(sub)

    p = sub.add_parser("demo", help="train a small CNN on scikit-learn's digits, quantize to INT4, generate C, "
                                    "prove it bit-exact, print the numbers")
    p.add_argument("-o", "--output", help="directory for the demo's files (default: a new temporary directory)")
    p.add_argument("--activations", default="int8", choices=["int4", "int8"])
    p.set_defaults(func=cmd_demo)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Q4Error as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence for a CLI
        if args.debug:
            raise
        print(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
