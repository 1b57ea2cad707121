"""Kernels per layer type and whole networks on Cortex-M4 and Cortex-M55, under QEMU, bit-exact.

Quantizes ``../shared/models/resnet8_cifar10.onnx`` and ``../shared/models/dscnn_cifar10.onnx``
(calibration ``../shared/data/cifar10_calib.npz``, NHWC uint8 images fed as NCHW floats) with a fast
recipe (``default`` unless ``--recipe``; instruction counts hardly depend on it), generates C with
the board's kernels (``--kernels optimised`` by default), runs ``--images`` CIFAR-10 test images on
``mps2-an386`` (Cortex-M4, DSP) and ``mps3-an547`` (Cortex-M55, Helium) with
``q4sdk.targets.run.run_on_board`` (every output checked against the oracle; QEMU -icount makes the
board timer count instructions), W4A8 and W4A4, the W4A4 ones also with a packed arena. Writes
instructions per inference and per network MAC, per layer and per layer type (depthwise 3x3,
pointwise 1x1, other conv, fully connected: instructions per MAC; add: per element), next to the
CMSIS-NN figures of the issue, as JSON, Markdown (``.md``) and a per-layer plot (``.png``).
Instructions, never cycles. Exits non-zero if any output differs from the oracle.

    python3 benchmarks/mcu_kernels.py [--recipe default] [--kernels optimised|portable]
        [--models resnet8,dscnn] [--boards mps2-an386,mps3-an547] [--no-packed]
        [--out benchmarks/results/mcu_kernels.json]
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
MODELS = {
    "resnet8": SHARED / "models" / "resnet8_cifar10.onnx",
    "dscnn": SHARED / "models" / "dscnn_cifar10.onnx",
}
CALIB = SHARED / "data" / "cifar10_calib.npz"
TEST = SHARED / "data" / "cifar10_test.npz"
BOARDS = ("mps2-an386", "mps3-an547")
CORE_NAMES = {"cortex-m4": "Cortex-M4", "cortex-m55": "Cortex-M55"}
# CMSIS-NN, from the issue (QEMU -icount, gcc -O2, INT8 activations): instructions per MAC.
CMSIS_NN = {
    ("resnet8", "Cortex-M4"): {"int8": 2.30, "int4-weight": 3.97, "scope": "nine convolutions"},
    ("resnet8", "Cortex-M55"): {"int8": 0.48, "int4-weight": 0.72, "scope": "nine convolutions"},
    ("dscnn", "Cortex-M4"): {
        "int8": 2.88,
        "int4-weight": 5.15,
        "depthwise int8": 8.0,
        "pointwise int8": 2.2,
        "scope": "16 layers",
    },
    ("dscnn", "Cortex-M55"): {
        "int8": 0.686,
        "int4-weight": 0.99,
        "depthwise int8": 2.73,
        "pointwise int8": 0.42,
        "scope": "16 layers",
    },
}


def nchw(x_uint8_nhwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x_uint8_nhwc.astype(np.float32).transpose(0, 3, 1, 2))


def layer_type(op, model) -> str:
    """The benchmark's layer classes: depthwise KxK, pointwise 1x1, conv KxK, fc, add, other."""
    if op.kind in ("conv2d", "depthwise_conv2d"):
        kh, kw = (
            op.arrays["weight"].shape[-2:]
            if op.kind == "depthwise_conv2d"
            else op.arrays["weight"].shape[1:3]
        )
        if op.kind == "depthwise_conv2d":
            return f"depthwise {kh}x{kw}"
        return "pointwise 1x1" if (kh, kw) == (1, 1) else f"conv {kh}x{kw}"
    if op.kind == "fully_connected":
        return "fully connected"
    return op.kind


def terms_of(op) -> int:
    return len(op.inputs) * (2 if "weight2" in op.arrays else 1) if "weight" in op.arrays else 1


def measure(model_name: str, model, board, xq, kernels: str, packed: bool, bits: int) -> dict:
    ops = {op.name: op for op in model.ops}
    with tempfile.TemporaryDirectory() as work:
        run = run_on_board(model, board, xq, work, kernels=kernels, name=model_name, pack_activations=packed)
    layers = []
    for layer in run.layers:
        op = ops[layer.op]
        elements = int(np.prod(model.tensors[op.output].shape))
        layers.append(
            {
                "op": layer.op,
                "kind": layer.kind,
                "type": layer_type(op, model),
                "kernel": layer.kernel,
                "terms": terms_of(op),
                "macs": layer.macs,
                "network_macs": layer.macs // terms_of(op),
                "elements": elements,
                "instructions": layer.instructions,
            }
        )
    network_macs = sum(layer["network_macs"] for layer in layers)
    types: dict[str, dict] = {}
    for layer in layers:
        t = types.setdefault(
            layer["type"], {"instructions": 0.0, "network_macs": 0, "elements": 0, "kernels": set()}
        )
        t["instructions"] += layer["instructions"]
        t["network_macs"] += layer["network_macs"]
        t["elements"] += layer["elements"]
        t["kernels"].add(layer["kernel"])
    for t in types.values():
        t["per_mac"] = t["instructions"] / t["network_macs"] if t["network_macs"] else None
        t["per_element"] = t["instructions"] / t["elements"] if t["elements"] else None
        t["kernels"] = sorted(t["kernels"])
    return {
        "model": model_name,
        "board": board.name,
        "core": CORE_NAMES.get(board.cpu, board.cpu),
        "weight_bits": 4,
        "activation_bits": bits,
        "packed": packed,
        "kernels": kernels,
        "bit_exact": run.ok,
        "first_mismatch": None if run.first_mismatch is None else str(run.first_mismatch),
        "instructions_per_inference": run.instructions,
        "network_macs": network_macs,
        "instructions_per_network_mac": run.instructions / network_macs,
        "arena": run.ram["arena"],
        "scratch": run.ram["scratch"],
        "layer_types": types,
        "layers": layers,
    }


def label(row: dict) -> str:
    return f"{row['model']} W4A{row['activation_bits']}" + (" packed" if row["packed"] else "")


def tables(rows: list[dict]) -> list[str]:
    out = [
        "### Whole networks (instructions per inference and per network MAC)",
        "",
        "| model | core | instructions | instr/MAC | packed vs unpacked | arena | scratch | "
        "CMSIS-NN int8 / int4-weight (instr/MAC) | bit-exact |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        base = next(
            (
                u
                for u in rows
                if u["model"] == r["model"]
                and u["board"] == r["board"]
                and u["activation_bits"] == r["activation_bits"]
                and not u["packed"]
            ),
            None,
        )
        ratio = (
            f"{r['instructions_per_inference'] / base['instructions_per_inference']:.2f}x"
            if r["packed"] and base
            else "-"
        )
        ref = CMSIS_NN.get((r["model"], r["core"]), {})
        out.append(
            f"| {label(r)} | {r['core']} | {r['instructions_per_inference']:,.0f} | "
            f"{r['instructions_per_network_mac']:.3f} | {ratio} | {r['arena']:,} | "
            f"{r['scratch']:,} | {ref.get('int8', '-')} / {ref.get('int4-weight', '-')} "
            f"({ref.get('scope', '')}) | {'yes' if r['bit_exact'] else 'NO'} |"
        )
    out += [
        "",
        "### Per layer type (instr/MAC; add and other element-wise ops: instr/element)",
        "",
        "| model | core | layer type | kernels | instructions | instr/MAC | instr/element |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        for name, t in sorted(r["layer_types"].items()):
            if name == "reshape":
                continue
            per_mac = "-" if t["per_mac"] is None else f"{t['per_mac']:.2f}"
            per_el = f"{t['per_element']:.2f}" if t["network_macs"] == 0 else "-"
            out.append(
                f"| {label(r)} | {r['core']} | {name} | {', '.join(k for k in t['kernels'] if k)} | "
                f"{t['instructions']:,.0f} | {per_mac} | {per_el} |"
            )
    for r in rows:
        out += [
            "",
            f"### {label(r)} on {r['board']} ({r['core']}), per layer",
            "",
            "| op | type | kernel | terms | network MACs | instructions | instr/MAC |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for layer in r["layers"]:
            if layer["kind"] == "reshape":
                continue
            per_mac = f"{layer['instructions'] / layer['network_macs']:.2f}" if layer["network_macs"] else "-"
            out.append(
                f"| {layer['op']} | {layer['type']} | {layer['kernel']} | {layer['terms']} | "
                f"{layer['network_macs']:,} | {layer['instructions']:,.0f} | {per_mac} |"
            )
    return out


def plot(rows: list[dict], path: Path) -> None:
    """Per model: instructions per network MAC of each layer, one bar per (core, variant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(len(models), 1, figsize=(13, 4.5 * len(models)), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        series = [r for r in rows if r["model"] == model]
        ops = [layer["op"] for layer in series[0]["layers"] if layer["network_macs"]]
        width = 0.8 / len(series)
        for k, r in enumerate(series):
            by_op = {
                layer["op"]: layer["instructions"] / layer["network_macs"]
                for layer in r["layers"]
                if layer["network_macs"]
            }
            xs = [i - 0.4 + width * (k + 0.5) for i in range(len(ops))]
            ax.bar(
                xs,
                [by_op[op] for op in ops],
                width,
                label=f"{r['core']} W4A{r['activation_bits']}" + (" packed" if r["packed"] else ""),
            )
        ax.set_xticks(range(len(ops)), ops, rotation=45, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("instructions per MAC (log)")
        ax.set_title(
            f"{model}: instructions per network MAC per layer "
            f"({series[0]['kernels']} kernels, QEMU -icount, bit-exact)",
            fontsize=10,
        )
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mcu_kernels.json"))
    ap.add_argument("--recipe", default="default", choices=list(PRESETS))
    ap.add_argument("--kernels", default="optimised", choices=["portable", "optimised"])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--boards", default=",".join(BOARDS))
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--no-packed", action="store_true", help="skip the packed-arena runs")
    args = ap.parse_args()
    for path in (CALIB, TEST, *(MODELS[m] for m in args.models.split(","))):
        if not path.is_file():
            raise SystemExit(f"missing {path} (the shared models and data live beside the repo)")
    boards = [load_board(name) for name in args.boards.split(",")]
    with np.load(CALIB) as z:
        calib = nchw(z["x"])
    with np.load(TEST) as z:
        images = nchw(z["x"][: args.images])
    rows = []
    for model_name in args.models.split(","):
        graph = load_onnx(MODELS[model_name])
        for bits in (8, 4):
            t0 = time.time()
            model = quantize_graph(graph, calib, preset(args.recipe, bits))
            print(
                f"{model_name} W4A{bits} ({args.recipe}): quantized in {time.time() - t0:.0f} s",
                file=sys.stderr,
            )
            xq = quantize_input(model, images)
            for board in boards:
                for packed in (False, True) if bits == 4 and not args.no_packed else (False,):
                    t0 = time.time()
                    row = measure(model_name, model, board, xq, args.kernels, packed, bits)
                    row["recipe"] = args.recipe
                    rows.append(row)
                    print(
                        f"  {board.name} {label(row)}: {row['instructions_per_inference']:,.0f} "
                        f"({row['instructions_per_network_mac']:.3f}/MAC), "
                        f"{'bit-exact' if row['bit_exact'] else 'MISMATCH'} "
                        f"({time.time() - t0:.0f} s)",
                        file=sys.stderr,
                    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(tables(rows)) + "\n"
    out.write_text(
        json.dumps(
            {
                "recipe": args.recipe,
                "kernels": args.kernels,
                "images": args.images,
                "measurement": "QEMU -icount shift=0; board timer ticks times instructions per tick",
                "cmsis_nn_reference": [{"model": m, "core": c, **v} for (m, c), v in CMSIS_NN.items()],
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    out.with_suffix(".md").write_text(text)
    plot(rows, out.with_suffix(".png"))
    print(text)
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    bad = [f"{r['board']} {label(r)}" for r in rows if not r["bit_exact"]]
    if bad:
        print(f"output differs from the oracle: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
