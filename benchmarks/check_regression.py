"""Regression gate: ResNet-8's flash, arena and QEMU instruction counts must not grow.

Quantizes ``../shared/models/resnet8_cifar10.onnx`` W4A8 and W4A4 with a fast fixed recipe
(``RECIPES``: the figures below depend on the network's shapes and the kernels, hardly on the
recipe's methods), generates the firmware for Cortex-M4 (``mps2-an386``) and Cortex-M55
(``mps3-an547``) with the default kernels (the board's optimised ones), runs one test image under
QEMU (bit-exact against the oracle, or the gate fails) and compares per model and board:

* ``weights_bytes``: packed INT4 weights + bias/multiplier/shift tables (the generator's count),
* ``text_rodata_bytes``: ``.text`` + ``.rodata`` of the firmware ELF (section headers, as ``size``),
* ``arena_bytes`` and ``scratch_bytes``: the static activation arena and the kernels' scratch,
* ``instructions``: per inference, QEMU ``-icount`` (exact instruction counts, never cycles),

with the baseline ``benchmarks/results/regression_baseline.json``. A figure that grows by more
than ``max(1 %, 64)`` fails the gate (exit 1, a table of offenders); one that shrinks by as much is
reported, to be recorded with ``--update``. Without ``../shared`` or the cross toolchain / QEMU the
gate is skipped with the reason (exit 0), and fails instead when ``CI`` is set.

    python benchmarks/check_regression.py            # compare (about a minute on 2 cores)
    python benchmarks/check_regression.py --update   # measure and write the baseline
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from q4sdk.frontend.onnx_import import load_onnx  # noqa: E402
from q4sdk.ir.oracle import quantize_input  # noqa: E402
from q4sdk.ptq.pipeline import quantize_graph  # noqa: E402
from q4sdk.ptq.recipe import Recipe  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402
from q4sdk.targets.firmware import toolchain_available  # noqa: E402
from q4sdk.targets.run import run_on_board  # noqa: E402

SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "resnet8_cifar10.onnx"
CALIB = SHARED / "data" / "cifar10_calib.npz"
TEST = SHARED / "data" / "cifar10_test.npz"
BASELINE = ROOT / "benchmarks" / "results" / "regression_baseline.json"
BOARDS = ("mps2-an386", "mps3-an547")
FAST = dict(weight_grid=50, activation_grid=30, calib_samples=32, seed=0)
RECIPES = {
    "W4A8": dict(activation_bits=8, **FAST),
    "W4A4": dict(activation_bits=4, unsigned_activations=True, **FAST),
}
FIGURES = ("weights_bytes", "text_rodata_bytes", "arena_bytes", "scratch_bytes", "instructions")
TOLERANCE_RELATIVE = 0.01
TOLERANCE_ABSOLUTE = 64


def _nchw(x_nhwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x_nhwc.astype(np.float32).transpose(0, 3, 1, 2))


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0].strip() if out else "unknown"


def missing_requirements() -> str | None:
    """Why the gate cannot run here (None if it can)."""
    for path in (MODEL, CALIB, TEST):
        if not path.is_file():
            return f"{path} not found (the shared models and data live beside the checkout)"
    for name in BOARDS:
        ok, reason = toolchain_available(load_board(name), for_running=True)
        if not ok:
            return reason
    return None


def measure() -> dict:
    """{"<model> <board>": {figure: value}} plus the tools that made them."""
    graph = load_onnx(MODEL)
    with np.load(CALIB) as z:
        calib = _nchw(z["x"][: FAST["calib_samples"]])
    with np.load(TEST) as z:
        image = _nchw(z["x"][:1])
    results = {}
    for label, fields in RECIPES.items():
        t0 = time.time()
        model = quantize_graph(graph, calib, Recipe(**fields))
        print(f"{label}: quantized in {time.time() - t0:.0f} s", file=sys.stderr)
        xq = quantize_input(model, image)
        for name in BOARDS:
            t0 = time.time()
            with tempfile.TemporaryDirectory(prefix="q4sdk-regression-") as work:
                run = run_on_board(model, load_board(name), xq, work, name="resnet8")
            if not run.ok:
                raise SystemExit(f"{label} on {name}: output differs from the oracle ({run.first_mismatch})")
            results[f"{label} {name}"] = {
                "weights_bytes": run.flash["weights"],
                "text_rodata_bytes": run.flash["text"] + run.flash["rodata"],
                "arena_bytes": run.ram["arena"],
                "scratch_bytes": run.ram["scratch"],
                "instructions": int(round(run.instructions)),
            }
            print(
                f"  {name}: {run.instructions:,.0f} instructions, bit-exact ({time.time() - t0:.0f} s)",
                file=sys.stderr,
            )
    board = load_board(BOARDS[0])
    tools = {
        "compiler": _first_line([board.compiler, "--version"]),
        "qemu": _first_line([board.qemu.binary, "--version"]) if board.qemu else "none",
    }
    return {
        "model": MODEL.name,
        "recipes": RECIPES,
        "kernels": "optimised (default)",
        "tolerance": f"max({TOLERANCE_RELATIVE:.0%}, {TOLERANCE_ABSOLUTE})",
        "tools": tools,
        "results": results,
    }


def allowed_growth(old: float) -> float:
    return max(TOLERANCE_RELATIVE * abs(old), TOLERANCE_ABSOLUTE)


def compare(baseline: dict, current: dict) -> tuple[list[str], list[str]]:
    """(rows of the figures that grew past the tolerance, rows of those that shrank past it)."""
    worse, better = [], []
    for key, figures in current["results"].items():
        old_figures = baseline["results"].get(key)
        if old_figures is None:
            worse.append(f"| {key} | (not in the baseline) | | | |")
            continue
        for figure in FIGURES:
            old, new = old_figures.get(figure), figures[figure]
            if old is None:
                worse.append(f"| {key} | {figure} | (not in the baseline) | {new:,} | |")
                continue
            row = f"| {key} | {figure} | {old:,} | {new:,} | {(new - old) / max(old, 1):+.2%} |"
            if new - old > allowed_growth(old):
                worse.append(row)
            elif old - new > allowed_growth(old):
                better.append(row)
    return worse, better


def table(rows: list[str]) -> str:
    return "\n".join(["| model, board | figure | baseline | now | change |", "|---|---|---|---|---|", *rows])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update", action="store_true", help="measure and write the baseline")
    ap.add_argument("--baseline", default=str(BASELINE), help=f"baseline JSON (default: {BASELINE})")
    args = ap.parse_args()
    t_start = time.time()
    why = missing_requirements()
    if why:
        if os.environ.get("CI"):
            print(f"regression gate: FAILED, CI is set but {why}", file=sys.stderr)
            return 1
        print(f"regression gate: skipped, {why}")
        return 0
    baseline_path = Path(args.baseline)
    if not args.update and not baseline_path.is_file():
        print(
            f"regression gate: FAILED, no baseline at {baseline_path} (write it with --update)",
            file=sys.stderr,
        )
        return 1
    current = measure()
    if args.update:
        baseline_path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        print(f"wrote {baseline_path} ({time.time() - t_start:.0f} s)")
        for key, figures in current["results"].items():
            print(f"  {key}: " + ", ".join(f"{f} {figures[f]:,}" for f in FIGURES))
        return 0
    baseline = json.loads(baseline_path.read_text())
    worse, better = compare(baseline, current)
    elapsed = f"{time.time() - t_start:.0f} s"
    if baseline.get("tools") != current["tools"]:
        print(
            f"note: the baseline was measured with {baseline.get('tools')}, this run with {current['tools']}"
        )
    if better:
        print(f"smaller than the baseline (record with --update):\n{table(better)}")
    if worse:
        print(f"regression gate: FAILED, grew past {current['tolerance']} ({elapsed}):\n{table(worse)}")
        return 1
    n = len(current["results"]) * len(FIGURES)
    print(
        f"regression gate: passed, {n} figures within {current['tolerance']} of {baseline_path.name} ({elapsed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
