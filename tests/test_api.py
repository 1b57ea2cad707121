"""The Python API: ``q4sdk.quantize`` works any number of times in one process (the quantizer
subpackage is ``q4sdk.ptq``, so nothing rebinds the name), and the README's example runs as written."""

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

import q4sdk
from q4sdk.ir.qmodel import QModel
from small_onnx import write_small_onnx

ROOT = Path(__file__).resolve().parents[1]
CALIB = np.random.default_rng(0).uniform(0, 1, (16, 3, 6, 6)).astype(np.float32)


def _activation_bits(m: QModel) -> set[int]:
    """Bits of the activations, leaving out the output and the 8-bit fine-grid tensors that hold a
    residual-quantized activation's two INT4 codes."""
    fine = set(m.meta.get("residual_activations", []))
    fine |= {op.inputs[0] for op in m.ops if op.kind == "residual_split"}  # (through reshapes)
    return {m.tensors[op.output].bits for op in m.ops[:-1] if op.output not in fine}


def test_quantize_twice_in_a_row(tmp_path):
    write_small_onnx(tmp_path / "m.onnx")
    recipe = {"calib_samples": 8}
    w4a8 = q4sdk.quantize(str(tmp_path / "m.onnx"), CALIB, activations=8, recipe=None)
    w4a4 = q4sdk.quantize(str(tmp_path / "m.onnx"), CALIB, activations="int4", unsigned_activations=True)
    again = q4sdk.quantize(str(tmp_path / "m.onnx"), CALIB, recipe={**recipe, "activation_bits": 4})
    assert callable(q4sdk.quantize) and isinstance(w4a8, QModel) and isinstance(w4a4, QModel)
    assert _activation_bits(w4a8) == {8} and _activation_bits(w4a4) == {4} == _activation_bits(again)


def test_readme_example_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"From Python:\s*```python\n(.*?)```", readme, re.S).group(1)
    assert "q4sdk.quantize(" in code
    write_small_onnx(tmp_path / "model.onnx")
    torch_module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5)).eval()
    monkeypatch.chdir(tmp_path)
    scope = {"calib_x": CALIB, "torch_module": torch_module, "torch": torch}
    exec(compile(code, "README.md", "exec"), scope)
    assert isinstance(scope["qmodel"], QModel) and _activation_bits(scope["qmodel"]) == {8}
