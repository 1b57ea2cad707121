"""The models users bring, on Cortex-M4 and Cortex-M55 with the default kernels, under QEMU, bit-exact.

The zoo's architectures (``tests/zoo/models.py``: MobileNetV2/V3, SqueezeNet, ShuffleNetV2,
EfficientNet-style, MnasNet, a 1-D keyword spotter, DS-CNN, a U-Net, a dense autoencoder) with
seeded random weights, exported to ONNX as a user exports them, quantized W4A8 with the ``default``
recipe on 32 random calibration inputs, generated with the board's default kernels and run with
``q4sdk.targets.run.run_on_board`` on ``mps2-an386`` (Cortex-M4, DSP) and ``mps3-an547``
(Cortex-M55, Helium), every output checked against the oracle. Instruction counts hardly depend on
the weights, so random weights measure what a trained model of the same shape would run.

Writes, per model and core: instructions per inference and per network MAC, and the share of the
instructions spent in layers that still run a portable kernel (no ``_dsp`` / ``_mve`` variant for
their shape), with the per-layer-type table -- the list of what is left to optimise -- as JSON,
Markdown (``.md``) and a plot (``.png``). Instructions, never cycles. Exits non-zero if any output
differs from the oracle.

    python3 benchmarks/mcu_zoo.py [--models mobilenet_v2_035,...] [--boards mps2-an386,mps3-an547]
        [--out benchmarks/results/mcu_zoo.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from mcu_kernels import layer_type  # noqa: E402

from q4sdk.api import load_float_model  # noqa: E402
from q4sdk.errors import Q4Error  # noqa: E402
from q4sdk.ir.oracle import quantize_input  # noqa: E402
from q4sdk.ptq.pipeline import quantize_graph  # noqa: E402
from q4sdk.ptq.recipe import preset  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402
from q4sdk.targets.run import run_on_board  # noqa: E402
from tests.zoo.models import ZOO, random_inputs, zoo_onnx  # noqa: E402

MODELS = tuple(name for name in ZOO if not name.startswith("op_"))
BOARDS = ("mps2-an386", "mps3-an547")
CORE_NAMES = {"cortex-m4": "Cortex-M4", "cortex-m55": "Cortex-M55"}
OPTIMISED_SUFFIXES = ("_dsp", "_mve", "_armv6m")
CALIB = 32


def is_optimised(kernel: str) -> bool:
    """A kernel is optimised when it is one of the core-specific variants (``_dsp``, ``_mve``, ...)."""
    return bool(kernel) and kernel.endswith(OPTIMISED_SUFFIXES)


def measure(name: str, model, board, xq) -> dict:
    ops = {op.name: op for op in model.ops}
    with tempfile.TemporaryDirectory() as work:
        run = run_on_board(model, board, xq, work, name=name.replace("-", "_"))
    layers, types = [], {}
    for layer in run.layers:
        op = ops[layer.op]
        terms = len(op.inputs) * (2 if "weight2" in op.arrays else 1) if "weight" in op.arrays else 1
        row = {
            "op": layer.op,
            "kind": layer.kind,
            "type": layer_type(op, model),
            "kernel": layer.kernel,
            "optimised": is_optimised(layer.kernel),
            "network_macs": layer.macs // terms,
            "instructions": layer.instructions,
        }
        layers.append(row)
        if layer.kind == "reshape":
            continue
        t = types.setdefault(
            row["type"],
            {"instructions": 0.0, "portable_instructions": 0.0, "network_macs": 0, "kernels": set()},
        )
        t["instructions"] += row["instructions"]
        t["portable_instructions"] += 0 if row["optimised"] else row["instructions"]
        t["network_macs"] += row["network_macs"]
        t["kernels"].add(layer.kernel)
    for t in types.values():
        t["kernels"] = sorted(k for k in t["kernels"] if k)
        t["per_mac"] = t["instructions"] / t["network_macs"] if t["network_macs"] else None
    macs = sum(layer["network_macs"] for layer in layers)
    portable = sum(layer["instructions"] for layer in layers if not layer["optimised"])
    return {
        "model": name,
        "board": board.name,
        "core": CORE_NAMES.get(board.cpu, board.cpu),
        "bit_exact": run.ok,
        "instructions_per_inference": run.instructions,
        "network_macs": macs,
        "instructions_per_network_mac": run.instructions / macs,
        "portable_share": portable / run.instructions,
        "arena": run.ram["arena"],
        "layer_types": types,
        "layers": layers,
    }


def tables(rows: list[dict]) -> list[str]:
    out = [
        "### Whole networks (W4A8, default recipe, default kernels)",
        "",
        "| model | core | network MACs | instructions | instr/MAC | in portable kernels | bit-exact |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['model']} | {r['core']} | {r['network_macs']:,} | {r['instructions_per_inference']:,.0f} | "
            f"{r['instructions_per_network_mac']:.3f} | {100 * r['portable_share']:.1f} % | "
            f"{'yes' if r['bit_exact'] else 'NO'} |"
        )
    out += [
        "",
        "### Per layer type (share of the network's instructions; instr/MAC where it has MACs)",
        "",
        "| model | core | layer type | kernels | share | of it portable | instr/MAC |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        total = r["instructions_per_inference"]
        for name, t in sorted(r["layer_types"].items(), key=lambda kv: -kv[1]["instructions"]):
            per_mac = "-" if t["per_mac"] is None else f"{t['per_mac']:.2f}"
            out.append(
                f"| {r['model']} | {r['core']} | {name} | {', '.join(t['kernels'])} | "
                f"{100 * t['instructions'] / total:.1f} % | "
                f"{100 * t['portable_instructions'] / total:.1f} % | {per_mac} |"
            )
    return out


def plot(rows: list[dict], path: Path) -> None:
    """Per model and core: instructions per network MAC, split into optimised and portable kernels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cores = list(dict.fromkeys(r["core"] for r in rows))
    fig, axes = plt.subplots(1, len(cores), figsize=(6.5 * len(cores), 4.8), squeeze=False)
    for ax, core in zip(axes[0], cores):
        series = [r for r in rows if r["core"] == core]
        names = [r["model"] for r in series]
        total = [r["instructions_per_network_mac"] for r in series]
        portable = [t * r["portable_share"] for t, r in zip(total, series)]
        optimised = [t - p for t, p in zip(total, portable)]
        ax.bar(names, optimised, label="optimised kernels")
        ax.bar(names, portable, bottom=optimised, label="portable kernels")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("instructions per network MAC")
        ax.set_title(f"{core}: zoo models, W4A8, default kernels (QEMU -icount)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mcu_zoo.json"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--boards", default=",".join(BOARDS))
    args = ap.parse_args()
    names = args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise SystemExit(f"unknown zoo model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    boards = [load_board(b) for b in args.boards.split(",")]
    rows, skipped = [], []
    for i, name in enumerate(names, 1):
        t0 = time.time()
        calib = random_inputs(name, CALIB, seed=1).numpy()
        graph = load_float_model(zoo_onnx(name), calib[:1])
        model = quantize_graph(graph, calib, preset("default", 8))
        xq = quantize_input(model, random_inputs(name, 1, seed=2).numpy())
        print(f"[{i}/{len(names)}] {name}: quantized in {time.time() - t0:.0f} s", file=sys.stderr)
        for board in boards:
            t0 = time.time()
            try:
                row = measure(name, model, board, xq)
            except Q4Error as e:  # a model that does not fit the board's memory
                skipped.append(f"{name} on {board.name}: {e}")
                print(f"  {board.name}: skipped: {e}", file=sys.stderr)
                continue
            rows.append(row)
            print(
                f"  {board.name}: {row['instructions_per_inference']:,.0f} "
                f"({row['instructions_per_network_mac']:.3f}/MAC, "
                f"{100 * row['portable_share']:.0f} % portable), "
                f"{'bit-exact' if row['bit_exact'] else 'MISMATCH'} ({time.time() - t0:.0f} s)",
                file=sys.stderr,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "\n".join(tables(rows) + (["", "Not run:", ""] + [f"- {s}" for s in skipped] if skipped else []))
        + "\n"
    )
    out.write_text(
        json.dumps(
            {
                "recipe": "default",
                "activation_bits": 8,
                "calibration": f"{CALIB} random inputs (seed 1); weights seeded random (tests/zoo/models.py)",
                "measurement": "QEMU -icount shift=0; board timer ticks times instructions per tick",
                "results": rows,
                "skipped": skipped,
            },
            indent=2,
        )
        + "\n"
    )
    out.with_suffix(".md").write_text(text)
    plot(rows, out.with_suffix(".png"))
    print(text)
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    bad = [f"{r['board']} {r['model']}" for r in rows if not r["bit_exact"]]
    if bad:
        print(f"output differs from the oracle: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
