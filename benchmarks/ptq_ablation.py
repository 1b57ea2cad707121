"""Post-training quantization ablation on ResNet-8 / CIFAR-10, after Choukroun et al. 2019's tables.

Every row quantizes all layers and the network input, calibrating on ../shared/data/cifar10_calib.npz
only, and reports top-1 on the dev split (indices 0..4999 of ../shared/data/cifar10_test.npz; --holdout:
5000..9999) computed by the integer oracle, the drop vs FP32, CR(W, A) as q4sdk.check.report defines it
(32-bit float bits over quantized bits) and the quantization wall time.

"A32" rows have no integer model: the weights are quantized (activations at 8 bits only while the
weights are chosen) and the float graph is run with those dequantized weights and float activations.

    python benchmarks/ptq_ablation.py [--rows REGEX [--update]] [--holdout]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

from q4sdk.check.report import compression_ratio, fake_quant_nodes  # noqa: E402
from q4sdk.frontend.onnx_import import load_onnx  # noqa: E402
from q4sdk.ir import oracle  # noqa: E402
from q4sdk.ir.float_exec import run_float  # noqa: E402
from q4sdk.ptq.cle import equalize  # noqa: E402
from q4sdk.ptq.pipeline import quantize_graph  # noqa: E402
from q4sdk.ptq.recipe import Recipe, preset  # noqa: E402

U4 = {"activation_bits": 4, "unsigned_activations": True}  # the base of the method rows
# the paper's tau = 0.02 exceeds every layer's relative weight MSE here (0.007..0.015): no dual layer
DUAL_TAU = 0.01
GPFQ_SPARSITY = 10.0  # soft threshold in the units of <X_t, u> (input^2 * weight)

# (row name, group, recipe or (preset name, activation bits), float activations?)
ROWS: list[tuple[str, str, object, bool]] = [
    ("W4A32 min-max", "weights only", {"weight_scale": "minmax"}, True),
    ("W4A32 MMSE", "weights only", {}, True),
    ("W4A32 MMSE + dual (tau 0.01)", "weights only", {"dual_tau": DUAL_TAU}, True),
    ("W4A32 MMSE + dual + refinement", "weights only", {"dual_tau": DUAL_TAU, "refine_iters": 100}, True),
    (
        "W4A4 signed min-max",
        "activations",
        {"activation_bits": 4, "weight_scale": "minmax", "activation_range": "minmax"},
        False,
    ),
    ("W4A4 signed", "activations", {"activation_bits": 4}, False),
    ("W4A4 unsigned", "activations", U4, False),
    ("W4A8 signed", "activations", {"activation_bits": 8}, False),
    ("W4A8 unsigned", "activations", {"activation_bits": 8, "unsigned_activations": True}, False),
    ("W4A4u + ACIQ Laplace", "methods", {**U4, "activation_range": "aciq_laplace"}, False),
    ("W4A4u + ACIQ Gauss", "methods", {**U4, "activation_range": "aciq_gauss"}, False),
    ("W4A4u + bias correction", "methods", {**U4, "bias_correction": True}, False),
    ("W4A4u + CLE", "methods", {**U4, "cle": True}, False),
    ("W4A4u + CLE + bias correction", "methods", {**U4, "cle": True, "bias_correction": True}, False),
    ("W4A4u + golden-section scales", "methods", {**U4, "weight_scale": "golden"}, False),
    ("W4A4u + alternating scales", "methods", {**U4, "weight_scale": "alternating"}, False),
    ("W4A4u + GPFQ", "methods", {**U4, "weight_rounding": "gpfq"}, False),
    (
        "W4A4u + GPFQ sparse",
        "methods",
        {**U4, "weight_rounding": "gpfq", "gpfq_sparsity": GPFQ_SPARSITY},
        False,
    ),
    (
        "W4A4u + AdaRound (300 it.)",
        "methods",
        {**U4, "weight_rounding": "adaround", "adaround_iters": 300},
        False,
    ),
    ("W4A4u + dual (tau 0.01)", "methods", {**U4, "dual_tau": DUAL_TAU}, False),
    ("W4A4u + residual input", "methods", {**U4, "residual_input": True}, False),
    (
        "W4A4u + residual activation (@last_input)",
        "methods",
        {**U4, "residual_activations": ["@last_input"]},
        False,
    ),
    ("W4A4u + refinement (100 it.)", "methods", {**U4, "refine_iters": 100}, False),
    (
        "W4A4u + refinement (2 runs of 100 it., averaged)",
        "methods",
        {**U4, "refine_iters": 100, "refine_runs": 2},
        False,
    ),
    ("preset fast, W4A4", "presets", ("fast", 4), False),
    ("preset fast, W4A8", "presets", ("fast", 8), False),
    ("preset default, W4A4", "presets", ("default", 4), False),
    ("preset default, W4A8", "presets", ("default", 8), False),
    ("preset paper, W4A4", "presets", ("paper", 4), False),
    ("preset paper, W4A8", "presets", ("paper", 8), False),
    ("preset best, W4A4", "presets", ("best", 4), False),
    ("preset best, W4A8", "presets", ("best", 8), False),
]


def load_data(holdout: bool):
    calib = np.load(SHARED / "data" / "cifar10_calib.npz")["x"].astype(np.float32).transpose(0, 3, 1, 2)
    test = np.load(SHARED / "data" / "cifar10_test.npz")
    sl = slice(5000, 10000) if holdout else slice(0, 5000)
    return calib, test["x"][sl].astype(np.float32).transpose(0, 3, 1, 2), test["y"][sl].astype(np.int64)


def _recipe(spec) -> Recipe:
    if isinstance(spec, tuple):
        return preset(*spec)
    return Recipe.from_dict({"activation_bits": 8, **spec})


def run_row(graph, calib, x, y, spec, float_acts: bool) -> dict:
    recipe = _recipe(spec)
    t0, c0 = time.time(), time.process_time()
    model = quantize_graph(graph, calib, recipe)
    seconds, cpu = time.time() - t0, time.process_time() - c0
    if float_acts:  # the weight-quantized float graph (on the equalized graph when CLE rescaled it)
        g = equalize(graph) if recipe.cle else graph
        logits = run_float(dataclasses.replace(g, nodes=fake_quant_nodes(model, g)), x)
        cr = {"weights": compression_ratio(model)["weights"], "activations": 1.0}
    else:
        logits = oracle.run_oracle(model, oracle.quantize_input(model, x))
        cr = compression_ratio(model)
    weights = [op.arrays[k] for op in model.ops for k in ("weight", "weight2") if k in op.arrays]
    return {
        "top1": float((np.asarray(logits).argmax(1) == y).mean()),
        "cr_w": cr["weights"],
        "cr_a": cr["activations"],
        "quantize_seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "zero_weights": float(sum((w == 0).sum() for w in weights) / sum(w.size for w in weights)),
        "dual_layers": [op.name for op in model.ops if "weight2" in op.arrays],
        "recipe": recipe.to_dict(),
    }


def table(r: dict) -> str:
    fp = r["fp32_top1"]
    lines = [
        f"ResNet-8, CIFAR-10 {r['split']} ({r['n_eval']} images), calibrated on cifar10_calib.npz; "
        f"machine: {r['machine']}; {len(r['rows'])} rows in {r['total_seconds']:.0f} s"
        + ("" if r["complete"] else " (INCOMPLETE run)"),
        "",
        "| row | top-1 | drop vs FP32 | CR(W, A) | quantization (s) | CPU (s) | zero weights |",
        "|---|---|---|---|---|---|---|",
        f"| FP32 | {100 * fp:.2f} % | | (1, 1) | | | |",
    ]
    group = None
    for row in r["rows"]:
        if row["group"] != group:
            group = row["group"]
            lines.append(f"| *{group}* | | | | | | |")
        lines.append(
            f"| {row['name']} | {100 * row['top1']:.2f} % | {100 * (fp - row['top1']):+.2f} | "
            f"({row['cr_w']:.2f}, {row['cr_a']:.2f}) | {row['quantize_seconds']} | "
            f"{row.get('cpu_seconds', '')} | {100 * row['zero_weights']:.1f} % |"
        )
    lines += [
        "",
        "Notes:",
        "- Integer rows: top-1 of the integer oracle (bit-exact with the generated C); all layers and "
        "the input quantized, per-kernel INT4 weights, per-tensor activations; logits at 8 bits.",
        "- A32 rows (weights only): no integer model exists with float activations, so the float graph "
        "is run (q4sdk.ir.float_exec.run_float) with each conv/dense weight and bias replaced by the "
        "quantized model's, dequantized; those weights were chosen with 8-bit signed activations in the "
        "calibration pass (which matters for refinement only). CR(W, A) shows A as 1 (float).",
        "- CR(W, A) after Choukroun et al.: 32 / bits per element, for weights (a dual layer counts "
        "twice) and activations (the input and every op output; the residual input counts twice, a "
        "residual activation once at 8 bits).",
        "- W4A4u: 4-bit unsigned-with-offset activations, MMSE weight scales (500-point grid) and MMSE "
        "activation clipping (100-point grid) unless the row says otherwise; the method rows add one "
        f"step to it. GPFQ sparse: soft threshold {GPFQ_SPARSITY}. Dual: tau = {DUAL_TAU} (relative "
        "weight MSE), since the paper's 0.02 selects no layer of this model; the JSON lists the dual "
        "layers of every row. Every row calibrates on the first 512 samples (the recipe default "
        "calib_samples) except preset best, which uses all of them (calib_samples 1024).",
        "- Each row keeps the date it was measured (JSON); rows measured before RECIPE_VERSION 2 "
        "(2026-12-03) ran refinement on two threads, and the old `default` preset is the "
        '"W4A8 signed" / "W4A4 signed" rows. The fast / default / best rows whose JSON recipe has '
        "sensitivity_budget are RECIPE_VERSION 3 (dual layers and residual activations chosen by "
        "sensitivity, refinement on mini-batches of 32); a default row whose recipe has refine_lr 5e-3 "
        "is RECIPE_VERSION 4; a best row whose recipe has refine_batch 80 is RECIPE_VERSION 5.",
        "- presets: q4sdk.ptq.recipe.PRESETS at the time of the run (recorded per row in the JSON, "
        "with the date each row was measured).",
        "- Quantization time: wall clock of quantize_graph on the machine above, shared with other jobs "
        "(rows measured on a loaded machine show wall > CPU); CPU: that process's CPU time in "
        "quantize_graph (one torch thread since RECIPE_VERSION 2; blank for rows measured before).",
    ]
    return "\n".join(lines)


def _write(out: Path, result: dict, md: str) -> None:
    """Replace ``out``.json and ``out``.md atomically (each written to a temporary file first)."""
    for path, text in (
        (out.with_suffix(".json"), json.dumps(result, indent=2) + "\n"),
        (out.with_suffix(".md"), md + "\n"),
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rows", default="", metavar="REGEX", help="only the rows whose name matches (re.search)"
    )
    ap.add_argument(
        "--update",
        action="store_true",
        help="with --rows: re-measure those rows inside the existing results, keeping the "
        "others (each row records when it was measured)",
    )
    ap.add_argument("--holdout", action="store_true", help="evaluate on 5000..9999 (never tune on it)")
    ap.add_argument(
        "--out",
        default=str(ROOT / "benchmarks" / "results" / "ptq_ablation"),
        help="output path without extension (.json and .md are written)",
    )
    args = ap.parse_args()
    if not (SHARED / "models" / "resnet8_cifar10.onnx").is_file():
        print(
            f"error: {SHARED} not found (the benchmark needs ../shared beside the checkout)", file=sys.stderr
        )
        return 2
    rows = [r for r in ROWS if re.search(args.rows, r[0])]
    if not rows:
        print(f"error: --rows '{args.rows}' matches no row", file=sys.stderr)
        return 2
    graph = load_onnx(SHARED / "models" / "resnet8_cifar10.onnx")
    calib, x, y = load_data(args.holdout)
    t_start = time.time()
    result = {
        "model": "resnet8_cifar10.onnx",
        "split": "holdout 5000..9999" if args.holdout else "dev 0..4999",
        "n_eval": int(len(y)),
        "n_calib": int(len(calib)),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        "fp32_top1": float((run_float(graph, x).argmax(1) == y).mean()),
        "rows": [],
    }
    print(f"FP32: {100 * result['fp32_top1']:.2f} %", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = {}
    if args.update:
        prev = json.loads(out.with_suffix(".json").read_text())
        if prev["split"] != result["split"]:
            print(f"error: --update: {out}.json holds the {prev['split']} split", file=sys.stderr)
            return 2
        old = {r["name"]: r for r in prev["rows"]}
    for i, (name, group, spec, float_acts) in enumerate(rows):
        row = {
            "name": name,
            "group": group,
            "measured": time.strftime("%Y-%m-%d"),
            **run_row(graph, calib, x, y, spec, float_acts),
        }
        result["rows"].append(row)
        result["complete"] = i + 1 == len(rows)
        result["total_seconds"] = round(time.time() - t_start, 1)
        if args.update:  # every row in ROWS order, the re-measured ones replaced
            old[name] = row
            result["rows"] = [old[r[0]] for r in ROWS if r[0] in old]
            result["complete"] = all(r[0] in old for r in ROWS)
            result["total_seconds"] = round(prev["total_seconds"] + time.time() - t_start, 1)
        md = table(result)
        _write(out, result, md)  # after every row, so an interrupted run keeps what it measured
        print(
            f"[{i + 1}/{len(rows)}] {name}: {100 * row['top1']:.2f} % ({row['quantize_seconds']} s quantize, "
            f"{result['total_seconds']:.0f} s total)",
            file=sys.stderr,
        )
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
