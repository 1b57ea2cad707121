"""Layers on small feature maps: 1x1 convolutions as conv calls or as one fc call per pixel, and
depthwise 3x3 on small maps, under QEMU, bit-exact.

1x1 part: one model whose 1x1 conv2d layers (24 -> 96 -> 24 channels, single-term and dual-weight)
run at 16, 8, 4, 2 and 1 output pixels (stride-2 1x1 convs step between the sizes), generated twice
per board: every 1x1 conv as the conv kernel, and every one as one fully_connected call per output
pixel (``q4sdk.codegen.kernels.POINTWISE_FC_MAX_PIXELS`` forced). The per-layer instructions of
the two builds give, per core and pixel count, which is faster: the crossover sets
``POINTWISE_FC_MAX_PIXELS`` (docs/kernels.md, "Small feature maps").

Depthwise part: 3x3 and 5x5 depthwise layers ("same" pads, stride 1 and 2, 32 and 96 channels,
single-term and dual-weight) on 1x1 .. 16x16 maps, with the board's kernels and with the portable
kernel.

Writes JSON and Markdown (``.md``). Instructions (QEMU icount), never cycles. Exits non-zero if any
output differs from the oracle.

    python3 benchmarks/mcu_small_maps.py [--boards mps2-an386,mps3-an547] [--out /tmp/small_maps.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from q4sdk.codegen import kernels  # noqa: E402
from q4sdk.ir.qmodel import QModel, QOp, QTensor  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402
from q4sdk.targets.run import run_on_board  # noqa: E402

BOARDS = ("mps2-an386", "mps3-an547")
NEVER, ALWAYS = 0, 1 << 30


class _Net:
    """A QModel grown op by op with seeded random weights and requantization."""

    def __init__(self, rng: np.random.Generator, shape, bits: int = 8):
        self.rng, self.bits = rng, bits
        self.lo, self.hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        self.tensors = {"x": QTensor("x", tuple(shape), bits, 0.05, self.lo)}
        self.ops: list[QOp] = []
        self.cur = "x"

    def _out(self, shape) -> str:
        name = f"t{len(self.tensors)}"
        zp = int(self.rng.integers(self.lo // 4, self.hi // 4 + 1))
        self.tensors[name] = QTensor(name, tuple(shape), self.bits, 0.05, zp)
        return name

    def _requant(self, o: int, k: int, terms: int):
        m = self.rng.integers(1 << 30, 1 << 31, size=o).astype(np.int32)
        s = np.full(o, int(31 + np.log2(40 * np.sqrt(k) * (1 << (8 - self.bits)))), np.int32)
        if terms == 1:
            return m, s
        mt = self.rng.integers(1 << 27, 1 << 28, size=(terms, o)).astype(np.int32)
        return mt, s - 3

    def conv(self, o: int, k: int = 1, stride=(1, 1), pads=(0, 0, 0, 0), dual=False, depthwise=False) -> str:
        h, w, c = self.tensors[self.cur].shape
        ho = (h + pads[0] + pads[2] - k) // stride[0] + 1
        wo = (w + pads[1] + pads[3] - k) // stride[1] + 1
        o = c if depthwise else o
        out = self._out((ho, wo, o))
        shape = (c, k, k) if depthwise else (o, k, k, c)
        kk = k * k * (1 if depthwise else c)
        m, s = self._requant(o, kk, 2 if dual else 1)
        arrays = {
            "weight": self.rng.integers(-8, 8, size=shape).astype(np.int8),
            "bias": self.rng.integers(-500, 500, size=o).astype(np.int32),
            "multiplier": m,
            "shift": s,
        }
        if dual:
            arrays["weight2"] = self.rng.integers(-8, 8, size=shape).astype(np.int8)
        kind = "depthwise_conv2d" if depthwise else "conv2d"
        attrs = {"stride": list(stride), "pads": list(pads), "act_min": self.lo, "act_max": self.hi}
        self.ops.append(QOp(f"l{len(self.ops)}_{kind}_{ho}x{wo}", kind, [self.cur], out, attrs, arrays))
        self.cur = out
        return out

    def model(self, name: str) -> QModel:
        return QModel(name, "x", self.cur, self.tensors, self.ops, {"input_layout": "NHWC"})


def pointwise_ladder(bits: int) -> QModel:
    """1x1 convs at 16, 8, 4, 2, 1 output pixels: 24 -> 96 -> 24, then the same dual-weight."""
    net = _Net(np.random.default_rng(0), (4, 4, 24), bits)
    for step in ((1, 2), (2, 1), (1, 2), (2, 1), None):
        net.conv(96)
        net.conv(24)
        net.conv(96, dual=True)
        net.conv(24, dual=True)
        if step is not None:
            net.conv(24, stride=step)
    return net.model(f"pointwise_ladder_a{bits}")


def depthwise_ladder(channels: int, k: int = 3, dual: bool = False) -> QModel:
    """k x k depthwise ("same" pads) at 16x16, 8x8, 4x4, 2x2, 1x1, stride 1, with stride-2 steps
    between; single-term or dual-weight."""
    net = _Net(np.random.default_rng(1), (16, 16, channels))
    p = k // 2
    for size in (16, 8, 4, 2, 1):
        net.conv(0, k=k, pads=(p, p, p, p), depthwise=True, dual=dual)
        if size > 1:
            net.conv(0, k=k, stride=(2, 2), pads=(p, p, p, p), depthwise=True, dual=dual)
    return net.model(f"depthwise_ladder_{k}x{k}_{channels}{'_dual' if dual else ''}")


def _run(model: QModel, board, kernel_choice: str, fc_pixels: int) -> list[dict]:
    saved = dict(kernels.POINTWISE_FC_MAX_PIXELS)
    kernels.POINTWISE_FC_MAX_PIXELS.update({key: ((0, fc_pixels),) for key in saved})
    try:
        t = model.input_tensor
        xq = np.random.default_rng(2).integers(t.qmin, t.qmax + 1, size=(2, *t.shape)).astype(np.int8)
        with tempfile.TemporaryDirectory() as work:
            run = run_on_board(model, board, xq, work, kernels=kernel_choice)
    finally:
        kernels.POINTWISE_FC_MAX_PIXELS.update(saved)
    if not run.ok:
        raise SystemExit(
            f"{model.name} on {board.name}: output differs from the oracle ({run.first_mismatch})"
        )
    return [
        {"op": layer.op, "kernel": layer.kernel, "macs": layer.macs, "instructions": layer.instructions}
        for layer in run.layers
    ]


def _pixels(model: QModel, op_name: str) -> int:
    op = next(op for op in model.ops if op.name == op_name)
    h, w, _ = model.tensors[op.output].shape
    return h * w


def measure(boards) -> dict:
    result = {"pointwise": [], "depthwise": []}
    for board_name in boards:
        board = load_board(board_name)
        for kernel_choice, bits in (("optimised", 8), ("optimised", 4), ("portable", 8)):
            ladder = pointwise_ladder(bits)
            conv = _run(ladder, board, kernel_choice, NEVER)
            fc = _run(ladder, board, kernel_choice, ALWAYS)
            for a, b in zip(conv, fc):
                op = next(op for op in ladder.ops if op.name == a["op"])
                result["pointwise"].append(
                    {
                        "board": board_name,
                        "kernels": kernel_choice,
                        "activation_bits": bits,
                        "op": a["op"],
                        "pixels": _pixels(ladder, a["op"]),
                        "in_channels": int(op.arrays["weight"].shape[3]),
                        "out_channels": int(op.arrays["weight"].shape[0]),
                        "dual": "weight2" in op.arrays,
                        "macs": a["macs"],
                        "conv_kernel": a["kernel"],
                        "conv_instructions": a["instructions"],
                        "fc_kernel": b["kernel"],
                        "fc_instructions": b["instructions"],
                    }
                )
        for channels, k, dual in (
            (32, 3, False),
            (96, 3, False),
            (96, 5, False),
            (96, 3, True),
            (96, 5, True),
        ):
            model = depthwise_ladder(channels, k, dual)
            runs = {choice: _run(model, board, choice, NEVER) for choice in ("optimised", "portable")}
            for a, b in zip(runs["optimised"], runs["portable"]):
                op = next(op for op in model.ops if op.name == a["op"])
                h, w, _ = model.tensors[op.output].shape
                result["depthwise"].append(
                    {
                        "board": board_name,
                        "op": a["op"],
                        "out_hw": [int(h), int(w)],
                        "channels": channels,
                        "window": k,
                        "dual": dual,
                        "stride": list(op.attrs["stride"]),
                        "macs": a["macs"],
                        "kernel": a["kernel"],
                        "instructions": a["instructions"],
                        "portable_instructions": b["instructions"],
                    }
                )
    return result


def markdown(result: dict) -> str:
    lines = [
        "### 1x1 conv2d: conv kernel vs one fc call per output pixel (instructions per MAC)",
        "",
        "| board | kernels | bits | pixels | channels | dual | conv kernel | conv | fc kernel | fc | fc / conv |",
        "|---|---|---:|---:|---|---|---|---:|---|---:|---:|",
    ]
    for r in result["pointwise"]:
        conv, fc = r["conv_instructions"] / r["macs"], r["fc_instructions"] / r["macs"]
        lines.append(
            f"| {r['board']} | {r['kernels']} | {r['activation_bits']} | {r['pixels']} | {r['in_channels']} -> {r['out_channels']} | "
            f"{'yes' if r['dual'] else 'no'} | {r['conv_kernel']} | {conv:.2f} | {r['fc_kernel']} | {fc:.2f} | "
            f"{fc / conv:.2f} |"
        )
    lines += [
        "",
        "### depthwise on small maps (instructions per MAC)",
        "",
        "| board | window | output | channels | dual | stride | kernel | instr/MAC | portable | portable / kernel |",
        "|---|---|---|---:|---|---|---|---:|---:|---:|",
    ]
    for r in result["depthwise"]:
        opt, port = r["instructions"] / r["macs"], r["portable_instructions"] / r["macs"]
        lines.append(
            f"| {r['board']} | {r['window']}x{r['window']} | {r['out_hw'][0]}x{r['out_hw'][1]} | {r['channels']} | "
            f"{'yes' if r['dual'] else 'no'} | {r['stride'][0]} | {r['kernel']} | {opt:.2f} | {port:.2f} | {port / opt:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default=",".join(BOARDS))
    parser.add_argument("--out", type=Path, default=Path("/tmp/small_maps.json"))
    args = parser.parse_args()
    result = measure(args.boards.split(","))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
