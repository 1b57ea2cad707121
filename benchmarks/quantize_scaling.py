"""Quantization time and peak memory against model size, for the `default` and `best` recipes.

Models: ResNet-8 (MLPerf Tiny, 78 k parameters) and the depthwise-separable dscnn_cifar10 from
../shared/models, and a CIFAR-style ResNet-18 at 32x32 (11.2 M parameters) built here in torch
with random weights whose BatchNorm statistics are re-estimated on the calibration images (the
time does not depend on the weights' values). Every (model, recipe) runs in its own process, so
the peak resident memory (ru_maxrss) is that run's: loading torch, the model and the data included.
Calibration: ../shared/data/cifar10_calib.npz at W4A4 (activations int4). Wall time and CPU time
of `quantize_graph` alone.

    python benchmarks/quantize_scaling.py [--models resnet8,dscnn,resnet18] [--recipes fast,default,best]
                                          [--skip resnet18:best] [--update]

--update keeps the rows of the existing results that this run does not re-measure; the files are
rewritten after every row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
OUT = ROOT / "benchmarks" / "results" / "quantize_scaling"


def _calib() -> np.ndarray:
    return np.load(SHARED / "data" / "cifar10_calib.npz")["x"].astype(np.float32).transpose(0, 3, 1, 2)


def resnet18_onnx(path: Path, calib: np.ndarray) -> None:
    """A CIFAR-style ResNet-18 (3x3 stem, four stages of two basic blocks, 64..512 channels) with
    seeded random weights and BatchNorm statistics re-estimated on ``calib``, exported to ONNX."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.short = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x):
            return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.short(x))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
            layers, cin = [], 64
            for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
                cin = cout
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(512, 10)

        def forward(self, x):
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))

    torch.manual_seed(0)
    net = ResNet18()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the re-estimation batches
    net.train()
    with torch.no_grad():
        for i in range(0, len(calib), 250):
            net(torch.as_tensor(calib[i : i + 250]))
    net.eval()
    torch.onnx.export(
        net,
        torch.as_tensor(calib[:1]),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
    )


def one(model: str, recipe_name: str) -> dict:
    """Quantize one model with one recipe in this process; time, CPU time and peak memory."""
    from q4sdk.frontend.onnx_import import load_onnx
    from q4sdk.progress import Progress
    from q4sdk.ptq.pipeline import quantize_graph
    from q4sdk.ptq.recipe import preset

    calib = _calib()
    with tempfile.TemporaryDirectory() as tmp:
        if model == "resnet18":
            path = Path(tmp) / "resnet18.onnx"
            resnet18_onnx(path, calib)
        else:
            path = SHARED / "models" / f"{model}_cifar10.onnx"
        graph = load_onnx(path)
    params = int(sum(np.prod(np.shape(v)) for n in graph.nodes for k, v in n.params.items()))
    t0, c0 = time.time(), time.process_time()
    quantize_graph(graph, calib, preset(recipe_name, 4), Progress(f"{model} {recipe_name}"))
    return {
        "model": model,
        "recipe": recipe_name,
        "parameters": params,
        "seconds": round(time.time() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
    }


def table(rows: list[dict], machine: str) -> str:
    out = [
        f"Quantization time and peak memory (W4A4, cifar10_calib.npz); machine: {machine}",
        "",
        "| model | parameters | recipe | time (s) | CPU time (s) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['model']} | {r['parameters']:,} | {r['recipe']} | {r['seconds']} | {r['cpu_seconds']} | "
            f"{r['peak_rss_mib']:.0f} |"
        )
    out += [
        "",
        "Time: wall clock of quantize_graph (one torch thread, the quantizer's own choice); CPU "
        "time: that process's. Peak RSS: the whole process (torch, model, calibration data). The "
        "machine is shared with other jobs, so wall time can exceed CPU time (the 2026-12-03 "
        "RECIPE_VERSION 3 rows: about 16 processes on 2 cores; the RECIPE_VERSION 4 rows, all but "
        "resnet18 fast: load average about 9). Each row is a fresh process, so "
        "CPU time includes one-time initialisation (about 1 s more than in "
        "ptq_ablation.py, which quantizes many times in one process).",
    ]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet8,dscnn,resnet18")
    ap.add_argument("--recipes", default="fast,default,best")
    ap.add_argument("--skip", default="resnet18:best", help="model:recipe pairs not to run (comma-separated)")
    ap.add_argument(
        "--update", action="store_true", help="keep the existing rows this run does not re-measure"
    )
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "RECIPE"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return 0
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs visible, Python {platform.python_version()}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.with_suffix(".json").read_text())["rows"] if args.update else []
    skip = [s for s in args.skip.split(",") if s]
    for model in args.models.split(","):
        for recipe in args.recipes.split(","):
            if f"{model}:{recipe}" in skip:
                continue
            p = subprocess.run(
                [sys.executable, __file__, "--one", model, recipe],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            if p.returncode:
                print(p.stderr, file=sys.stderr)
                return 1
            row = json.loads(p.stdout.strip().splitlines()[-1])
            rows = [r for r in rows if (r["model"], r["recipe"]) != (model, recipe)] + [row]
            rows.sort(key=lambda r: (r["parameters"], r["recipe"]))
            print(json.dumps(row), file=sys.stderr)
            md = table(rows, machine)
            done = {(r["model"], r["recipe"]) for r in rows}
            missing = [
                f"{m}:{r}"
                for m in ("resnet8", "dscnn", "resnet18")
                for r in ("fast", "default", "best")
                if (m, r) not in done
            ]
            if missing:
                md += f"\n\nNot measured: {', '.join(missing)}."
            out.with_suffix(".json").write_text(
                json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n"
            )
            out.with_suffix(".md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
