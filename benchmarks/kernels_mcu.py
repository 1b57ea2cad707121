"""Instructions per MAC of the conv2d kernels on ResNet-8's layer shapes, under QEMU.

For each board (mps2-an386: Cortex-M4 + DSP; mps3-an547: Cortex-M55 + Helium) and each activation
width (4 and 8 bits), one firmware runs every layer shape through the portable kernel and each
optimised variant built for the core, checks the output bit for bit against the oracle, and times
it with the board timer (QEMU -icount: one instruction per nanosecond, so ticks convert exactly to
instructions). Writes JSON (default ``benchmarks/kernels_mcu.json``) and prints a table.

    python3 benchmarks/kernels_mcu.py [--out FILE] [--boards mps2-an386 mps3-an547]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from mcu.conv_cases import build_and_run, random_case  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402

# ResNet-8 (CIFAR-10) conv layers: name, H, W, I, O, kernel, stride, pads (top, left, bottom, right)
RESNET8_LAYERS = [
    ("conv1_3x3_3to16", 32, 32, 3, 16, 3, 1, (1, 1, 1, 1)),
    ("b1_3x3_16to16", 32, 32, 16, 16, 3, 1, (1, 1, 1, 1)),
    ("b2_3x3_16to32_s2", 32, 32, 16, 32, 3, 2, (0, 0, 1, 1)),
    ("b2_3x3_32to32", 16, 16, 32, 32, 3, 1, (1, 1, 1, 1)),
    ("b2_1x1_16to32_s2", 32, 32, 16, 32, 1, 2, (0, 0, 0, 0)),
    ("b3_3x3_32to64_s2", 16, 16, 32, 64, 3, 2, (0, 0, 1, 1)),
    ("b3_3x3_64to64", 8, 8, 64, 64, 3, 1, (1, 1, 1, 1)),
    ("b3_1x1_32to64_s2", 16, 16, 32, 64, 1, 2, (0, 0, 0, 0)),
]
# How many times each shape occurs in ResNet-8 (b1's 3x3 conv appears twice), for the totals.
LAYER_COUNT = {"b1_3x3_16to16": 2}
BOARDS = ("mps2-an386", "mps3-an547")


def layer_cases(bits: int, seed: int = 0):
    rng = np.random.default_rng(seed + bits)
    return [
        random_case(rng, name, bits, h, w, i, o, (k, k), (s, s), pads)
        for name, h, w, i, o, k, s, pads in RESNET8_LAYERS
    ]


def measure(board_name: str, bits: int, work: Path) -> list[dict]:
    """One row per layer and kernel variant: instructions, MACs, instructions per MAC."""
    board = load_board(board_name)
    cases = layer_cases(bits)
    results = build_and_run(board, cases, work / f"{board_name}_a{bits}", timeout=600)
    macs = {c.name: c.macs for c in cases}
    rows = []
    for r in results:
        if r.mismatches or not r.guard_ok:
            raise SystemExit(
                f"{board_name} {r.case} {r.variant}: output differs from the oracle "
                f"({r.mismatches} bytes, first at {r.first_bad}) or guard overwritten"
            )
        instructions = r.ticks * board.timer.instructions_per_tick
        rows.append(
            {
                "board": board_name,
                "activation_bits": bits,
                "layer": r.case,
                "variant": r.variant,
                "macs": macs[r.case],
                "instructions": int(instructions),
                "instructions_per_mac": round(instructions / macs[r.case], 3),
            }
        )
    return rows


def network_totals(rows: list[dict]) -> list[dict]:
    """Instructions per MAC over all of ResNet-8's conv layers, per board, bits and variant."""
    totals: dict[tuple, list[int]] = {}
    for r in rows:
        n = LAYER_COUNT.get(r["layer"], 1)
        key = (r["board"], r["activation_bits"], r["variant"])
        acc = totals.setdefault(key, [0, 0])
        acc[0] += n * r["instructions"]
        acc[1] += n * r["macs"]
    return [
        {
            "board": b,
            "activation_bits": bits,
            "variant": v,
            "macs": m,
            "instructions": i,
            "instructions_per_mac": round(i / m, 3),
        }
        for (b, bits, v), (i, m) in sorted(totals.items())
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "kernels_mcu.json")
    parser.add_argument("--boards", nargs="+", default=list(BOARDS))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for board_name in args.boards:
            for bits in (4, 8):
                rows += measure(board_name, bits, Path(tmp))
    report = {
        "unit": "guest instructions per multiply-accumulate (QEMU -icount)",
        "layers": rows,
        "resnet8_conv_total": network_totals(rows),
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{'board':12} {'bits':>4} {'layer':22} {'variant':9} {'instr/MAC':>9}")
    for r in rows + report["resnet8_conv_total"]:
        print(
            f"{r['board']:12} {r['activation_bits']:>4} {r.get('layer', 'TOTAL'):22} "
            f"{r['variant']:9} {r['instructions_per_mac']:>9.3f}"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
