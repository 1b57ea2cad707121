"""One model end to end, as a user runs it: quantize (default recipe) -> .q4 round trip ->
generate C -> build (cffi) -> C against the oracle on every tensor, and the integer output against
the float model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from q4sdk.api import load_float_model
from q4sdk.check.verify import verify
from q4sdk.codegen.render import generate
from q4sdk.ir import oracle
from q4sdk.ir.float_exec import run_float
from q4sdk.ir.q4file import load_q4, save_q4
from q4sdk.ir.qmodel import QModel
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import preset
from q4sdk.targets.host_build import CModel


@dataclass
class EndToEnd:
    model: QModel
    float_out: np.ndarray  # [N, F] float model
    int_out: np.ndarray  # [N, F] integer output (C), dequantized
    generate_report: object

    @property
    def sqnr_db(self) -> float:
        noise = float(((self.float_out - self.int_out) ** 2).sum())
        return (
            float("inf")
            if noise == 0
            else 10 * np.log10(max(float((self.float_out**2).sum()), 1e-30) / noise)
        )

    @property
    def top1_agreement(self) -> float:
        f = self.float_out.reshape(len(self.float_out), -1).argmax(1)
        q = self.int_out.reshape(len(self.int_out), -1).argmax(1)
        return float((f == q).mean())


def dequantize_output(model: QModel, q: np.ndarray) -> np.ndarray:
    t = model.output_tensor
    return (t.scale * (q.astype(np.float64) - t.zero_point)).reshape(len(q), -1)


def run_end_to_end(
    source, calib: np.ndarray, x_test: np.ndarray, tmp_path: Path, bits: int = 8, name: str = "m", recipe=None
) -> EndToEnd:
    """``source``: ONNX path, onnx.ModelProto, torch module or FloatGraph. Asserts bit-exactness."""
    graph = load_float_model(source, calib[:1])
    model = quantize_graph(graph, calib, recipe or preset("default", bits))
    work = tmp_path / f"{name}_a{bits}"
    k = 0
    while work.exists():
        k += 1
        work = tmp_path / f"{name}_a{bits}_{k}"
    work.mkdir(parents=True)
    save_q4(model, work / "m.q4")  # the meta (numerics records, stats) must be saveable
    model = load_q4(work / "m.q4")
    report = generate(model, work / "gen", name)
    cm = CModel(work / "gen", build_dir=work / "build")
    xq = oracle.quantize_input(model, x_test)
    result = verify(model, cm, xq)
    assert result.ok, f"C differs from the oracle: {result.first_mismatch}"
    int_out = dequantize_output(model, cm.run(xq))
    float_out = run_float(graph, x_test).reshape(len(x_test), -1).astype(np.float64)
    return EndToEnd(model, float_out, int_out, report)
