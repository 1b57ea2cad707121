"""The model zoo (tests/zoo/models.py) and the trained reference models, through q4sdk.

For every zoo model (random weights, BatchNorm statistics re-estimated on random inputs): ONNX op
types, parameters, MACs, and whether q4sdk supports it (``q4sdk check``) or which ops it misses.
For each supported model, at W4A8 and W4A4 with the default recipe: quantize time, flash (weights +
tables), arena (and the packed 4-bit arena), output SQNR and top-1 agreement of the integer model
against the float model on random inputs, and C == oracle on a few of them; on each board of ``--boards`` (default the Cortex-M4 and Cortex-M55
QEMU boards, optimised kernels as ``q4sdk run`` gives them), instructions per inference and per MAC
(QEMU -icount), every output checked against the oracle.
The trained models in ../shared/models (ResNet-8, the DS-CNN) get real top-1 on the first images of
the CIFAR-10 dev split (cifar10_test.npz indices 0..4999), calibrated on cifar10_calib.npz.

Integer outputs are the oracle's; the C is compared with it bit for bit on ``--verify`` samples.

    python benchmarks/model_zoo.py [--dev-images 1000] [--samples 64] [--verify 4] [--boards mps2-an386,mps3-an547] [--out benchmarks/results/model_zoo]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

from q4sdk.check.model_check import check_model  # noqa: E402
from q4sdk.check.verify import verify  # noqa: E402
from q4sdk.codegen.render import generate, render  # noqa: E402
from q4sdk.errors import Q4Error  # noqa: E402
from q4sdk.frontend.onnx_import import import_onnx_model, load_onnx  # noqa: E402
from q4sdk.ir import oracle  # noqa: E402
from q4sdk.ir.float_exec import run_float  # noqa: E402
from q4sdk.ptq.pipeline import quantize_graph  # noqa: E402
from q4sdk.ptq.recipe import preset  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402
from q4sdk.targets.host_build import CModel  # noqa: E402
from q4sdk.targets.run import run_on_board  # noqa: E402
from tests.zoo.models import ZOO, random_inputs, zoo_onnx  # noqa: E402


def _sqnr(ref: np.ndarray, approx: np.ndarray) -> float | None:
    noise = float(((ref - approx) ** 2).sum())
    return None if noise == 0 else round(10 * np.log10(max(float((ref**2).sum()), 1e-30) / noise), 2)


def _dequant(model, q: np.ndarray) -> np.ndarray:
    t = model.output_tensor
    return (t.scale * (q.astype(np.float64) - t.zero_point)).reshape(len(q), -1)


BOARDS = ("mps2-an386", "mps3-an547")  # Cortex-M4 (DSP), Cortex-M55 (Helium)


def board_figures(model, macs: int, xq: np.ndarray, boards: list[str], n_run: int) -> dict:
    """Instructions per inference on each board, outputs checked against the oracle."""
    out = {}
    for name in boards:
        board = load_board(name)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                run = run_on_board(model, board, xq[: max(1, n_run)], Path(tmp), name="m")
            except Q4Error as e:
                out[name] = {"core": board.cpu, "error": str(e).splitlines()[0][:160]}
                continue
        out[name] = {
            "core": board.cpu,
            "instructions_per_inference": run.instructions,
            "instructions_per_mac": None if run.instructions is None else round(run.instructions / macs, 3),
            "bit_exact": run.ok,
            "samples": run.samples,
        }
    return out


def quantized_figures(
    graph, calib, x, x_user, bits: int, n_verify: int, labels=None, boards=(), n_run: int = 1
) -> dict:
    """Quantize, generate, compare; ``x`` in the graph's layout, ``x_user`` in the user's."""
    t0 = time.time()
    model = quantize_graph(graph, calib, preset("default", bits))
    seconds = time.time() - t0
    _, report = render(model, "m")
    packed = render(model, "m", pack_activations=True)[1].arena_bytes if bits == 4 else None
    xq = oracle.quantize_input(model, x_user)
    q_out = _dequant(model, oracle.run_oracle(model, xq))
    f_out = run_float(graph, x).reshape(len(x), -1).astype(np.float64)
    row = {
        "quantize_seconds": round(seconds, 1),
        "weight_bytes": report.weight_bytes,
        "arena_bytes": report.arena_bytes,
        "arena_bytes_packed": packed,
        "output_sqnr_db": _sqnr(f_out, q_out),
        "top1_agreement": round(float((f_out.argmax(1) == q_out.argmax(1)).mean()), 4),
        "numerics": len(model.meta.get("numerics", [])),
    }
    if labels is not None:
        row["top1"] = round(float((q_out.argmax(1) == labels).mean()), 4)
    if n_verify:
        with tempfile.TemporaryDirectory() as tmp:
            generate(model, Path(tmp) / "gen", "m")
            cm = CModel(Path(tmp) / "gen", build_dir=Path(tmp) / "build")
            row["c_bit_exact"] = verify(model, cm, xq[:n_verify]).ok
            row["c_verified_samples"] = min(n_verify, len(xq))
    if boards:
        row["boards"] = board_figures(model, report.macs, xq, list(boards), n_run)
    return row


def zoo_row(name: str, n_samples: int, n_verify: int, boards=(), n_run: int = 1) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = zoo_onnx(name)
    c = check_model(model)
    row = {
        "model": name,
        "input": list(random_inputs(name, 1).shape[1:]),
        "ops": c.op_types,
        "parameters": c.parameters,
        "macs": c.macs,
        "supported": c.supported,
        "missing_ops": c.unsupported_op_types,
        "other_issues": sorted({i["message"].split(": ", 1)[-1][:90] for i in c.issues if not i["op_level"]}),
    }
    if c.supported:
        graph = import_onnx_model(model, name)
        calib = random_inputs(name, 64, seed=1).numpy()
        x = random_inputs(name, n_samples, seed=2).numpy()
        for bits in (8, 4):
            row[f"w4a{bits}"] = quantized_figures(graph, calib, x, x, bits, n_verify, None, boards, n_run)
    return row


def trained_row(file: str, n_images: int, n_verify: int, boards=(), n_run: int = 1) -> dict | None:
    path = SHARED / "models" / file
    if not path.is_file():
        return None
    graph = load_onnx(path)
    calib = np.load(SHARED / "data" / "cifar10_calib.npz")["x"].astype(np.float32).transpose(0, 3, 1, 2)
    test = np.load(SHARED / "data" / "cifar10_test.npz")
    x = test["x"][:n_images].astype(np.float32).transpose(0, 3, 1, 2)
    y = test["y"][:n_images].astype(np.int64)
    c = check_model(path)
    row = {
        "model": path.stem,
        "input": list(graph.input_shape),
        "ops": c.op_types,
        "parameters": c.parameters,
        "macs": c.macs,
        "supported": c.supported,
        "missing_ops": c.unsupported_op_types,
        "other_issues": [],
        "dev_images": n_images,
        "float_top1": round(float((run_float(graph, x).reshape(len(x), -1).argmax(1) == y).mean()), 4),
    }
    for bits in (8, 4):
        row[f"w4a{bits}"] = quantized_figures(graph, calib, x, x, bits, n_verify, y, boards, n_run)
    return row


def _board_cell(q: dict, board: str) -> str:
    b = q.get("boards", {}).get(board)
    if b is None:
        return ""
    if "error" in b:
        return "does not fit" if "fit" in b["error"] else "error"
    exact = "" if b["bit_exact"] else " NOT bit-exact"
    return f"{b['instructions_per_inference'] / 1e6:.2f} M ({b['instructions_per_mac']:.2f}){exact}"


def markdown(result: dict) -> str:
    boards = result.get("boards", [])
    lines = [
        f"# Model zoo ({result['date']}, {result['machine']}, default recipe)",
        "",
        "Zoo models have random weights: SQNR and top-1 agreement are integer vs float on random inputs. "
        "Trained models: top-1 on the first CIFAR-10 dev images. Integer results are the oracle's; "
        "C == oracle on the verified samples. Board columns: instructions per inference (per MAC) under "
        "QEMU -icount with the board's default (optimised) kernels, every output checked against the oracle.",
        "",
        "| model | params | MACs | supported / missing | bits | quantize s | flash B | arena B | "
        "packed arena B | SQNR dB | top-1 agree | top-1 (float) | C bit-exact |"
        + "".join(f" {b} ({result['board_cores'][b]}) |" for b in boards),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(boards),
    ]
    for r in result["models"]:
        status = "yes" if r["supported"] else "no: " + ", ".join(r["missing_ops"] + r["other_issues"])
        base = f"| {r['model']} | {r['parameters']:,} | {r['macs']:,} | {status} |"
        if not r["supported"]:
            lines.append(base + " | | | | | | | | |" + " |" * len(boards))
            continue
        for bits in (8, 4):
            q = r[f"w4a{bits}"]
            top1 = f"{100 * q['top1']:.2f} % ({100 * r['float_top1']:.2f} %)" if "top1" in q else ""
            packed = "" if q["arena_bytes_packed"] is None else f"{q['arena_bytes_packed']:,}"
            lines.append(
                f"{base} W4A{bits} | {q['quantize_seconds']} | {q['weight_bytes']:,} | "
                f"{q['arena_bytes']:,} | {packed} | "
                f"{q['output_sqnr_db']} | {100 * q['top1_agreement']:.1f} % | {top1} | "
                f"{q.get('c_bit_exact', '')} |" + "".join(f" {_board_cell(q, b)} |" for b in boards)
            )
            base = "| | | | |"
    lines += [
        "",
        f"ONNX op types the importer supports: {result['supported_op_types_count']} "
        f"({', '.join(result['supported_op_types'])}).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    from q4sdk.frontend.onnx_import import supported_op_types

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev-images", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=64, help="random inputs per zoo model")
    ap.add_argument(
        "--verify", type=int, default=4, help="samples compared C vs oracle per model and precision"
    )
    ap.add_argument("--models", help="comma-separated zoo models (default: all)")
    ap.add_argument(
        "--boards",
        default=",".join(BOARDS),
        help="comma-separated QEMU boards to run each model on ('' for none)",
    )
    ap.add_argument("--board-samples", type=int, default=1, help="inferences per board run")
    ap.add_argument(
        "--boards-for-op-models",
        action="store_true",
        help="also run the one-op models (op_*) on the boards (off: they are coverage, not workloads)",
    )
    ap.add_argument(
        "--out",
        default=str(ROOT / "benchmarks" / "results" / "model_zoo"),
        help="output path without extension (.json and .md are written)",
    )
    args = ap.parse_args()
    names = args.models.split(",") if args.models else list(ZOO)
    boards = [b for b in args.boards.split(",") if b]
    rows = []
    for name in names:
        t = time.time()
        on = boards if args.boards_for_op_models or not name.startswith("op_") else []
        rows.append(zoo_row(name, args.samples, args.verify, on, args.board_samples))
        print(
            f"{name}: {'supported' if rows[-1]['supported'] else 'missing ' + str(rows[-1]['missing_ops'])} "
            f"({time.time() - t:.0f}s)",
            flush=True,
        )
    for file in ("resnet8_cifar10.onnx", "dscnn_cifar10.onnx"):
        r = trained_row(file, args.dev_images, args.verify, boards, args.board_samples)
        if r is not None:
            rows.append(r)
            print(
                f"{file}: float {r['float_top1']}, W4A8 {r['w4a8']['top1']}, W4A4 {r['w4a4']['top1']}",
                flush=True,
            )
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "boards": boards,
        "board_cores": {b: load_board(b).cpu for b in boards},
        "supported_op_types": supported_op_types(),
        "supported_op_types_count": len(supported_op_types()),
        "models": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
