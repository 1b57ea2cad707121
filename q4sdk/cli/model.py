"""The commands that make and show a model: ``quantize``, ``generate`` (host C sources) and ``inspect``.

``generate --board`` (a firmware project) is handed to ``q4sdk.cli.target``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from q4sdk.cli import target
from q4sdk.cli.common import (
    add_data_args,
    cannot_write,
    check_output_dir,
    check_output_file,
    format_generate_report,
)
from q4sdk.errors import Q4Error
from q4sdk.ptq.recipe import ACTIVATION_RANGE_METHODS, WEIGHT_SCALE_METHODS


def recipe_from_args(args):
    """--recipe (a preset name or a JSON file) plus the individual flags the user gave."""
    from q4sdk.ptq.recipe import Recipe, preset

    bits = int(args.activations.removeprefix("int"))
    overrides = {
        k: v
        for k, v in {
            "unsigned_activations": True if args.unsigned_activations else None,
            "weight_scale": args.weight_scale,
            "activation_range": args.activation_range,
            "bias_correction": True if args.bias_correction else None,
            "calib_samples": args.calib_samples,
            "cle": True if args.cle else None,
            "residual_activations": (
                [n for n in args.residual_activations.split(",") if n]
                if args.residual_activations is not None
                else None
            ),
        }.items()
        if v is not None
    }
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
    from q4sdk.progress import Progress
    from q4sdk.ptq.pipeline import quantize_graph

    out = check_output_file(args.output, args.force)
    if args.weights != "int4":
        raise Q4Error(f"--weights: only int4 is supported, got '{args.weights}'")
    recipe = recipe_from_args(args)
    graph = load_float_model(args.model)
    data = load_samples(args.calib, graph.input_shape, nhwc=args.nhwc or graph.input_layout == "NHWC")
    warnings.formatwarning = lambda msg, *_a, **_k: f"warning: {msg}\n"  # calibration warnings, one line each
    progress = Progress("quantize", enabled=not args.quiet)
    model = quantize_graph(graph, data.x, recipe, progress)
    model.meta["source_file"] = Path(args.model).name  # no absolute path: same bytes on any machine
    save_q4(model, out, overwrite=args.force)
    print(
        f"wrote {out}: {len(model.ops)} ops, W{recipe.weight_bits}A{recipe.activation_bits}, "
        f"quantized in {progress.elapsed():.1f}s"
    )
    return 0


def cmd_generate(args) -> int:
    if args.board:
        return target.generate_for_board(args)
    from q4sdk.check.model_check import flash_warning
    from q4sdk.codegen.render import generate
    from q4sdk.ir.q4file import load_q4

    out = check_output_dir(args.output, (), args.force)
    model = load_q4(args.model)
    name = args.name or model.name
    try:
        report = generate(model, out, name, overwrite=args.force, pack_activations=args.pack_activations)
    except OSError as e:
        raise cannot_write(out, e) from None
    print(format_generate_report(report))
    warning = flash_warning(report.weight_bytes)
    if warning:
        print(warning, file=sys.stderr)
    return 0


def cmd_inspect(args) -> int:
    from q4sdk.ir.q4file import describe_q4

    print(describe_q4(args.model))
    return 0


def register(sub) -> None:
    """Add ``quantize``, ``generate`` and ``inspect`` to the ``q4sdk`` subparsers ``sub``."""
    p = sub.add_parser("quantize", help="float model (ONNX) + calibration data -> .q4 model")
    p.add_argument("model", help="ONNX file")
    add_data_args(p, "calib")
    p.add_argument("-o", "--output", required=True, help="the .q4 file to write")
    p.add_argument("--weights", default="int4", help="weight precision (int4)")
    p.add_argument("--activations", default="int8", choices=["int4", "int8"])
    p.add_argument(
        "--unsigned-activations",
        action="store_true",
        help="unsigned activations with an offset (zero point) instead of symmetric signed",
    )
    p.add_argument(
        "--recipe",
        default="default",
        metavar="NAME|FILE.json",
        help="a named recipe (fast, default, best, minmax, paper) or a JSON recipe file; "
        "the flags below override its fields",
    )
    p.add_argument(
        "--weight-scale",
        choices=WEIGHT_SCALE_METHODS,
        help="per-kernel weight scale search (default mmse: grid line search)",
    )
    p.add_argument(
        "--activation-range",
        choices=ACTIVATION_RANGE_METHODS,
        help="activation clipping (default mmse; aciq_*: analytical, Laplace / Gauss prior)",
    )
    p.add_argument("--cle", action="store_true", help="cross-layer equalization before quantizing")
    p.add_argument("--bias-correction", action="store_true", help="empirical per-channel bias correction")
    p.add_argument(
        "--residual-activations",
        metavar="T1,T2",
        help="quantize these tensors as two INT4 tensors X1 + X2 (4-bit activations; "
        "'@last_input': the input of the last conv/dense layer)",
    )
    p.add_argument("--calib-samples", type=int, help="use at most this many samples (default 512)")
    p.add_argument("--force", action="store_true", help="overwrite the output file")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("generate", help=".q4 model -> C sources (with --board: a firmware project)")
    p.add_argument("model", help=".q4 file")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--name", help="C identifier prefix (default: the model name)")
    p.add_argument("--force", action="store_true", help="overwrite generated files in the output directory")
    target.add_generate_board_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("inspect", help="print a .q4 file's manifest in readable form")
    p.add_argument("model", help=".q4 file")
    p.set_defaults(func=cmd_inspect)
