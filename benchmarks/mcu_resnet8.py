"""ResNet-8 (CIFAR-10) end to end on Cortex-M4/M7/M55 under QEMU: W4A8 and W4A4, bit-exact, profiled.

Quantizes ``../shared/models/resnet8_cifar10.onnx`` (calibration ``../shared/data/cifar10_calib.npz``)
with a named recipe (``best`` by default: what users deploy), runs two test images through the
generated firmware on each board with ``q4sdk.targets.run.run_on_board`` (every output checked
against the oracle; QEMU -icount makes the board timer count instructions), for W4A4 both with
unpacked (one byte per activation) and packed (two 4-bit activations per byte) arenas, and writes
instructions per inference (total and per layer), MACs, instructions per MAC, flash and RAM to
JSON. Prints Markdown tables (also written next to the JSON, ``.md``) and plots the W4A4
instructions per layer and board (``.png``). Exits non-zero if any output differs from the oracle.

    python3 benchmarks/mcu_resnet8.py [--recipe best] [--kernels optimised|portable]
                                      [--boards mps2-an386,...] [--out benchmarks/results/mcu_resnet8.json]
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

from q4sdk.frontend.onnx_import import load_onnx  # noqa: E402
from q4sdk.ir.oracle import quantize_input  # noqa: E402
from q4sdk.ptq.pipeline import quantize_graph  # noqa: E402
from q4sdk.ptq.recipe import PRESETS, preset  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402
from q4sdk.targets.run import run_on_board  # noqa: E402

SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "resnet8_cifar10.onnx"
CALIB = SHARED / "data" / "cifar10_calib.npz"
TEST = SHARED / "data" / "cifar10_test.npz"
BOARDS = ("mps2-an386", "mps2-an500", "mps3-an547")
ACTIVATION_BITS = (8, 4)
IMAGES = 2
CONV_KINDS = ("conv2d", "depthwise_conv2d")

# CMSIS-NN on the same network, for context: measured by the author of the q4sdk issue the same way
# (QEMU -icount, arm-none-eabi-gcc -O2), on ResNet-8's nine convolutions only, INT8 activations.
CMSIS_NN_REFERENCE = (
    # (core, weights, instructions for the nine convolutions, instructions per MAC)
    ("Cortex-M4", "int8", 28.7e6, 2.30),
    ("Cortex-M4", "int4", 49.6e6, 3.97),
    ("Cortex-M55", "int8", 6.0e6, 0.48),
    ("Cortex-M55", "int4", 9.0e6, 0.72),
)
CORE_NAMES = {"cortex-m4": "Cortex-M4", "cortex-m7": "Cortex-M7", "cortex-m55": "Cortex-M55"}


def nchw(x_uint8_nhwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x_uint8_nhwc.astype(np.float32).transpose(0, 3, 1, 2))


def terms_of(model) -> dict[str, int]:
    """Input x weight terms of each weighted op (2 for a dual layer: two INT4 weight tensors, or a
    residual input); 1 for every other op."""
    return {
        op.name: len(op.inputs) * (2 if "weight2" in op.arrays else 1) if "weight" in op.arrays else 1
        for op in model.ops
    }


def conv_totals(layers: list[dict]) -> tuple[float, int]:
    """Instructions and network MACs of the convolution layers alone (what the CMSIS-NN figures
    cover)."""
    convs = [layer for layer in layers if layer["kind"] in CONV_KINDS]
    return sum(layer["instructions"] for layer in convs), sum(layer["network_macs"] for layer in convs)


def row_of(run, terms: dict[str, int], core: str, bits: int, packed: bool, kernels: str) -> dict:
    """One JSON row from a TargetRun. ``macs`` counts every term of a dual layer (the work the
    kernels do); ``network_macs`` counts the network's MACs once (what other libraries report)."""
    layers = [
        {
            "op": layer.op,
            "kind": layer.kind,
            "kernel": layer.kernel,
            "terms": terms[layer.op],
            "macs": layer.macs,
            "network_macs": layer.macs // terms[layer.op],
            "instructions": layer.instructions,
            "instructions_per_mac": layer.instructions_per_mac,
        }
        for layer in run.layers
    ]
    network_macs = sum(layer["network_macs"] for layer in layers)
    conv_instructions, conv_macs = conv_totals(layers)
    flash, ram = run.flash, run.ram
    return {
        "board": run.board,
        "core": core,
        "weight_bits": 4,
        "activation_bits": bits,
        "packed": packed,
        "kernels": kernels,
        "samples": run.samples,
        "bit_exact": run.ok,
        "first_mismatch": None if run.first_mismatch is None else str(run.first_mismatch),
        "instructions_per_inference": run.instructions,
        "macs": run.macs,
        "instructions_per_mac": run.instructions_per_mac,
        "network_macs": network_macs,
        "instructions_per_network_mac": run.instructions / network_macs,
        "conv_instructions": conv_instructions,
        "conv_network_macs": conv_macs,
        "conv_instructions_per_network_mac": conv_instructions / conv_macs,
        "layers": layers,
        "flash": {k: flash[k] for k in ("text", "rodata", "data", "total", "weights", "test_data")},
        "ram": {k: ram[k] for k in ("arena", "arena_unpacked", "scratch", "static", "stack_used")},
    }


def label(row: dict) -> str:
    return f"W4A{row['activation_bits']}" + (" packed" if row["packed"] else "")


def summary_table(rows: list[dict]) -> list[str]:
    out = [
        "| model | board (core) | instructions / inference | MACs executed (network) | instr/MAC "
        "executed (network) | "
        "flash: text + rodata (weights) | arena (unpacked) | scratch | static | stack used | "
        "bit-exact |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        f, m = r["flash"], r["ram"]
        out.append(
            f"| {label(r)} | {r['board']} ({CORE_NAMES.get(r['core'], r['core'])}) | "
            f"{r['instructions_per_inference']:,.0f} | {r['macs']:,} ({r['network_macs']:,}) | "
            f"{r['instructions_per_mac']:.3f} ({r['instructions_per_network_mac']:.3f}) | {f['text']:,} + {f['rodata']:,} ({f['weights']:,}) | "
            f"{m['arena']:,} ({m['arena_unpacked']:,}) | {m['scratch']:,} | {m['static']:,} | "
            f"{m['stack_used']:,} | {'yes' if r['bit_exact'] else 'NO'} |"
        )
    return out


def reference_table(rows: list[dict]) -> list[str]:
    """The nine convolutions: CMSIS-NN (issue author's figures) next to q4sdk's (this run)."""
    out = [
        "| core | library | weights / activations | instructions, 9 convolutions | "
        "instr/MAC (network MACs) |",
        "|---|---|---|---:|---:|",
    ]
    for core, weights, instructions, per_mac in CMSIS_NN_REFERENCE:
        out.append(
            f"| {core} | CMSIS-NN (issue author's measurement) | {weights} / int8 | "
            f"{instructions / 1e6:.1f} M | {per_mac:.2f} |"
        )
    for r in rows:
        band = (
            "band kernels around the optimised ones"
            if r["kernels"] == "optimised"
            else "portable _p4 kernels"
        )
        packing = f", packed arena: {band}" if r["packed"] else ""
        out.append(
            f"| {CORE_NAMES.get(r['core'], r['core'])} | q4sdk ({r['kernels']}{packing}, this run) | "
            f"int4 / int{r['activation_bits']} | {r['conv_instructions'] / 1e6:.2f} M | "
            f"{r['conv_instructions_per_network_mac']:.2f} |"
        )
    return out


def layer_table(unpacked: dict, packed: dict | None) -> list[str]:
    """Per layer, W4A4 on one board: unpacked arena next to packed."""
    head = "| op | kind | terms | MACs executed | kernel | instructions | instr/MAC |"
    rule = "|---|---|---:|---:|---|---:|---:|"
    if packed is not None:
        head += " packed kernel | packed instructions | packed instr/MAC |"
        rule += "---|---:|---:|"
    out = [head, rule]

    def cells(layer: dict) -> str:
        per_mac = layer["instructions_per_mac"]
        return (
            f" {layer['kernel'] or '-'} | {layer['instructions']:,.0f} | "
            f"{'-' if per_mac is None else f'{per_mac:.2f}'} |"
        )

    for i, layer in enumerate(unpacked["layers"]):
        line = f"| {layer['op']} | {layer['kind']} | {layer['terms']} | {layer['macs']:,} |" + cells(layer)
        if packed is not None:
            line += cells(packed["layers"][i])
        out.append(line)
    total = (
        f"| **total** | | | {unpacked['macs']:,} | | **{unpacked['instructions_per_inference']:,.0f}** | "
        f"**{unpacked['instructions_per_mac']:.2f}** |"
    )
    if packed is not None:
        total += (
            f" | **{packed['instructions_per_inference']:,.0f}** | **{packed['instructions_per_mac']:.2f}** |"
        )
    out.append(total)
    return out


def plot_layers(rows: list[dict], path: Path) -> None:
    """Grouped bars: W4A4 instructions per layer, one bar per board (unpacked solid, packed hatched)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [r for r in rows if r["activation_bits"] == 4]
    ops = [layer["op"] for layer in series[0]["layers"] if layer["kind"] != "reshape"]
    boards = list(dict.fromkeys(r["board"] for r in series))
    colours = dict(zip(boards, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(12, 5))
    for k, r in enumerate(series):
        by_op = {layer["op"]: layer["instructions"] for layer in r["layers"]}
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(ops))]
        ax.bar(
            xs,
            [by_op[op] / 1e3 for op in ops],
            width,
            color=colours[r["board"]],
            alpha=0.45 if r["packed"] else 1.0,
            hatch="//" if r["packed"] else None,
            label=f"{r['board']} ({CORE_NAMES.get(r['core'], r['core'])})"
            + (", packed A4" if r["packed"] else ""),
        )
    ax.set_xticks(range(len(ops)), ops, rotation=45, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("thousand instructions per inference (log)")
    ax.set_title(
        f"ResNet-8 W4A4 ({series[0]['recipe']} recipe, {series[0]['kernels']} kernels, also with a "
        "packed arena): instructions per layer, QEMU -icount, bit-exact",
        fontsize=10,
    )
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mcu_resnet8.json"))
    ap.add_argument("--recipe", default="best", choices=list(PRESETS))
    ap.add_argument("--kernels", default="optimised", choices=["portable", "optimised"])
    ap.add_argument("--boards", default=",".join(BOARDS), help="comma-separated board names")
    args = ap.parse_args()
    for path in (MODEL, CALIB, TEST):
        if not path.is_file():
            raise SystemExit(f"missing {path} (the shared models and data live beside the repo)")
    boards = [load_board(name) for name in args.boards.split(",")]

    graph = load_onnx(MODEL)
    with np.load(CALIB) as z:
        calib = nchw(z["x"])
    with np.load(TEST) as z:
        images, labels = nchw(z["x"][:IMAGES]), z["y"][:IMAGES]

    rows, recipes = [], {}
    for bits in ACTIVATION_BITS:
        t0 = time.time()
        recipe = preset(args.recipe, bits)
        recipes[f"W4A{bits}"] = recipe.to_dict()
        model = quantize_graph(graph, calib, recipe)
        print(f"W4A{bits} ({args.recipe}): quantized in {time.time() - t0:.0f} s", file=sys.stderr)
        xq, terms = quantize_input(model, images), terms_of(model)
        for board in boards:
            for packed in (False, True) if bits == 4 else (False,):
                t0 = time.time()
                with tempfile.TemporaryDirectory() as work:
                    run = run_on_board(
                        model, board, xq, work, kernels=args.kernels, name="resnet8", pack_activations=packed
                    )
                row = row_of(run, terms, board.cpu, bits, packed, args.kernels)
                row["recipe"] = args.recipe
                rows.append(row)
                check = "bit-exact" if run.ok else f"MISMATCH: {run.first_mismatch}"
                print(
                    f"  {board.name} {label(row)}: {row['instructions_per_inference']:,.0f} instructions, "
                    f"{check} ({time.time() - t0:.0f} s)",
                    file=sys.stderr,
                )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["### ResNet-8 end to end, per inference", ""] + summary_table(rows)
    lines += [
        "",
        "### The nine convolutions against CMSIS-NN",
        "",
        "CMSIS-NN figures: measured by the issue author the same way (QEMU -icount, gcc -O2), "
        "on ResNet-8's nine convolutions; q4sdk figures: the conv layers of this run, per "
        "network MAC (a dual layer's two weight tensors count once, as in CMSIS-NN's figure).",
        "",
    ]
    lines += reference_table(rows)
    for board in boards:
        unpacked = next(
            r for r in rows if r["board"] == board.name and r["activation_bits"] == 4 and not r["packed"]
        )
        packed = next((r for r in rows if r["board"] == board.name and r["packed"]), None)
        lines += [
            "",
            f"### W4A4 per layer on {board.name} "
            f"({CORE_NAMES.get(board.cpu, board.cpu)}): unpacked vs packed arena",
            "",
        ]
        lines += layer_table(unpacked, packed)
    text = "\n".join(lines) + "\n"
    out.write_text(
        json.dumps(
            {
                "model": MODEL.name,
                "images": IMAGES,
                "labels": [int(v) for v in labels],
                "recipe": {"name": args.recipe, "fields": recipes},
                "kernels": args.kernels,
                "measurement": "QEMU -icount shift=0; board timer ticks times instructions per tick",
                "cmsis_nn_reference": [
                    {
                        "core": c,
                        "weights": w,
                        "activations": "int8",
                        "instructions": i,
                        "instructions_per_mac": p,
                        "scope": "ResNet-8's nine convolutions; measured by the issue author "
                        "(QEMU -icount, gcc -O2)",
                    }
                    for c, w, i, p in CMSIS_NN_REFERENCE
                ],
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    out.with_suffix(".md").write_text(text)
    plot_layers(rows, out.with_suffix(".png"))
    print(text)
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    bad = [f"{r['board']} {label(r)}" for r in rows if not r["bit_exact"]]
    if bad:
        print(f"output differs from the oracle: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
