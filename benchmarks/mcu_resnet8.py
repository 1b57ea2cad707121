"""ResNet-8 (CIFAR-10) end to end on Cortex-M under QEMU: W4A8 and W4A4, bit-exact, profiled.

Quantizes ``../shared/models/resnet8_cifar10.onnx`` (calibration ``../shared/data/cifar10_calib.npz``)
with each recipe, runs two test images through the generated firmware on each board with
``q4sdk.target_run.run_on_board`` (every output checked against the oracle; QEMU -icount makes the
board timer count instructions), and writes instructions per inference (total and per layer),
MACs, instructions per MAC, flash, arena and stack to JSON, then prints a Markdown table.

    python3 benchmarks/mcu_resnet8.py [--out benchmarks/results/mcu_resnet8.json] [--kernels optimised|portable]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from q4sdk.boards import load_board  # noqa: E402
from q4sdk.frontend.onnx_import import load_onnx  # noqa: E402
from q4sdk.oracle import quantize_input  # noqa: E402
from q4sdk.quantize.pipeline import quantize_graph  # noqa: E402
from q4sdk.quantize.recipe import Recipe  # noqa: E402
from q4sdk.target_run import run_on_board  # noqa: E402

SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "resnet8_cifar10.onnx"
CALIB = SHARED / "data" / "cifar10_calib.npz"
TEST = SHARED / "data" / "cifar10_test.npz"
BOARDS = ("mps2-an386", "mps3-an547")
ACTIVATION_BITS = (8, 4)
IMAGES = 2


def nchw(x_uint8_nhwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x_uint8_nhwc.astype(np.float32).transpose(0, 3, 1, 2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mcu_resnet8.json"))
    ap.add_argument("--kernels", default="optimised", choices=["portable", "optimised"])
    args = ap.parse_args()
    for path in (MODEL, CALIB, TEST):
        if not path.is_file():
            raise SystemExit(f"missing {path} (the shared models and data live beside the repo)")

    graph = load_onnx(MODEL)
    with np.load(CALIB) as z:
        calib = nchw(z["x"])
    with np.load(TEST) as z:
        images, labels = nchw(z["x"][:IMAGES]), z["y"][:IMAGES]

    results = []
    for bits in ACTIVATION_BITS:
        t0 = time.time()
        recipe = Recipe(activation_bits=bits, unsigned_activations=True, bias_correction=True)
        model = quantize_graph(graph, calib, recipe)
        print(f"W4A{bits}: quantized in {time.time() - t0:.0f} s", file=sys.stderr)
        xq = quantize_input(model, images)
        for board_name in BOARDS:
            t0 = time.time()
            with tempfile.TemporaryDirectory() as work:
                run = run_on_board(model, load_board(board_name), xq, work, kernels=args.kernels,
                                   name="resnet8")
            print(f"  {board_name}: ran in {time.time() - t0:.0f} s", file=sys.stderr)
            if not run.ok:
                raise SystemExit(f"W4A{bits} on {board_name}: output differs from the oracle: "
                                 f"{run.first_mismatch}")
            row = run.to_dict()
            del row["elf"]
            row.update(weights="int4", activation_bits=bits, kernels=args.kernels,
                       labels=[int(v) for v in labels])
            results.append(row)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": MODEL.name, "images": IMAGES, "results": results},
                              indent=2) + "\n")
    print("| model | board | instructions / inference | MACs | instr/MAC | flash (weights) | "
          "arena | stack used |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| W4A{r['activation_bits']} | {r['board']} | {r['instructions_per_inference']:,.0f} | "
              f"{r['macs']:,} | {r['instructions_per_mac']:.2f} | {r['flash']['total']:,} "
              f"({r['flash']['weights']:,}) | {r['ram']['arena']:,} | {r['ram']['stack_used']:,} |")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
