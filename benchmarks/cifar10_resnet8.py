"""ResNet-8 (MLPerf Tiny) on CIFAR-10: FP32 vs INT4 accuracy, flash, arena and quantization time.

Calibrates on ../shared/data/cifar10_calib.npz only, evaluates on the dev split (indices 0..4999) of
../shared/data/cifar10_test.npz — or the holdout (5000..9999) with --holdout, for final reporting.
All layers and the network input are quantized. Integer accuracy is the oracle's, which the tests
prove equal to the generated C bit for bit (this script re-checks it on --verify samples).

    python benchmarks/cifar10_resnet8.py [--recipe best] [--holdout] [--seeds N] [--json FILE]

The recipe's seed (row sampling of AdaRound, mini-batches of refinement) moves 4-bit results by
several tenths of a point; ``--seeds N`` also quantizes with seeds 1..N-1 and reports every
seed's accuracy with their mean, minimum and maximum (the headline number stays seed 0's, the
recipe default).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

from q4sdk.check.verify import verify  # noqa: E402
from q4sdk.codegen.render import generate  # noqa: E402
from q4sdk.frontend.onnx_import import load_onnx  # noqa: E402
from q4sdk.ir import oracle  # noqa: E402
from q4sdk.ir.float_exec import run_float  # noqa: E402
from q4sdk.ptq.pipeline import quantize_graph  # noqa: E402
from q4sdk.ptq.recipe import preset  # noqa: E402
from q4sdk.targets.host_build import CModel  # noqa: E402


def load_split(holdout: bool):
    test = np.load(SHARED / "data" / "cifar10_test.npz")
    sl = slice(5000, 10000) if holdout else slice(0, 5000)
    x = test["x"][sl].astype(np.float32).transpose(0, 3, 1, 2)
    return x, test["y"][sl].astype(np.int64)


def run(recipe_name: str, holdout: bool, n_verify: int, n_seeds: int = 1) -> dict:
    graph = load_onnx(SHARED / "models" / "resnet8_cifar10.onnx")
    calib = np.load(SHARED / "data" / "cifar10_calib.npz")["x"].astype(np.float32).transpose(0, 3, 1, 2)
    x, y = load_split(holdout)
    result = {
        "model": "resnet8_cifar10.onnx",
        "split": "holdout 5000..9999" if holdout else "dev 0..4999",
        "recipe": recipe_name,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "fp32_accuracy": float((run_float(graph, x).argmax(1) == y).mean()),
        "configs": {},
    }
    for bits in (8, 4):
        recipe = preset(recipe_name, bits)
        t0, c0 = time.time(), time.process_time()
        model = quantize_graph(graph, calib, recipe)
        seconds, cpu = time.time() - t0, time.process_time() - c0
        xq = oracle.quantize_input(model, x)
        acc = float((oracle.run_oracle(model, xq).argmax(1) == y).mean())
        with tempfile.TemporaryDirectory() as tmp:
            report = generate(model, Path(tmp) / "gen", "resnet8")
            mismatches = None
            if n_verify:
                mismatches = verify(model, CModel(Path(tmp) / "gen"), xq[:n_verify]).mismatches
        result["configs"][f"W4A{bits}"] = {
            "accuracy": acc,
            "quantize_seconds": round(seconds, 1),
            "quantize_cpu_seconds": round(cpu, 1),
            "weight_bytes": report.weight_bytes,
            "arena_bytes": report.arena_bytes,
            "macs": report.macs,
            "verified_samples": n_verify,
            "c_mismatches": mismatches,
            "recipe": model.meta["recipe"],
        }
        print(f"W4A{bits}: {100 * acc:.2f} %  ({seconds:.1f} s, CPU {cpu:.1f} s)", file=sys.stderr)
        if n_seeds > 1:
            accs, cpus = [acc], [round(cpu, 1)]
            for seed in range(1, n_seeds):
                c0 = time.process_time()
                m = quantize_graph(graph, calib, preset(recipe_name, bits, seed=seed))
                cpus.append(round(time.process_time() - c0, 1))
                accs.append(float((oracle.run_oracle(m, oracle.quantize_input(m, x)).argmax(1) == y).mean()))
                print(f"W4A{bits} seed {seed}: {100 * accs[-1]:.2f} % (CPU {cpus[-1]} s)", file=sys.stderr)
            result["configs"][f"W4A{bits}"]["seeds"] = {
                "accuracies": accs,
                "cpu_seconds": cpus,
                "mean": float(np.mean(accs)),
                "min": min(accs),
                "max": max(accs),
            }
    return result


def table(r: dict) -> str:
    rows = [
        f"ResNet-8, CIFAR-10 {r['split']}, recipe '{r['recipe']}', all layers and the input quantized",
        "",
        "| config | top-1 | weights in flash (B) | arena (B) | quantization (s) | CPU (s) | C = oracle |",
        "|---|---|---|---|---|---|---|",
        f"| FP32 | {100 * r['fp32_accuracy']:.2f} % | | | | | |",
    ]
    for name, c in r["configs"].items():
        ok = "n/a" if c["c_mismatches"] is None else ("yes" if c["c_mismatches"] == 0 else "NO")
        rows.append(
            f"| {name} | {100 * c['accuracy']:.2f} % | {c['weight_bytes']:,} | {c['arena_bytes']:,} | "
            f"{c['quantize_seconds']} | {c.get('quantize_cpu_seconds', '')} | {ok} ({c['verified_samples']} images) |"
        )
    seeded = {name: c["seeds"] for name, c in r["configs"].items() if "seeds" in c}
    if seeded:
        rows += ["", "| config | top-1 per seed (0, 1, ...) | mean | min | max |", "|---|---|---|---|---|"]
        for name, sd in seeded.items():
            rows.append(
                f"| {name} | {', '.join(f'{100 * a:.2f}' for a in sd['accuracies'])} | "
                f"{100 * sd['mean']:.2f} % | {100 * sd['min']:.2f} % | {100 * sd['max']:.2f} % |"
            )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="best")
    ap.add_argument("--holdout", action="store_true", help="report on the holdout split (never tune on it)")
    ap.add_argument("--verify", type=int, default=200, help="images re-checked C vs oracle (0: skip)")
    ap.add_argument(
        "--seeds", type=int, default=1, help="also quantize with seeds 1..N-1 and report the spread"
    )
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "cifar10_resnet8.json"))
    args = ap.parse_args()
    if not (SHARED / "models" / "resnet8_cifar10.onnx").is_file():
        print(
            f"error: {SHARED} not found (the benchmark needs ../shared beside the checkout)", file=sys.stderr
        )
        return 2
    r = run(args.recipe, args.holdout, args.verify, args.seeds)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    print(table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
