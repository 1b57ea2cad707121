"""The zoo's architectures through the command line, as a user runs them: ``q4sdk quantize``
(default recipe, W4A8 and W4A4) -> ``generate`` -> ``verify`` (C against the oracle, bit-exact,
exit status 0) on the exported ONNX file. ``test_zoo.py`` covers the same models through the API
and from the ``nn.Module``; the one-op models (``op_*``) are left to it."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest

from q4sdk.cli import main
from q4sdk.frontend.onnx_import import supported_op_types
from tests.zoo.models import ZOO, random_inputs, zoo_onnx
from tests.zoo.test_zoo import activation_op_types

ARCHITECTURES = [name for name in ZOO if not name.startswith("op_")]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_zoo_model_from_the_command_line(name, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = zoo_onnx(name)
    missing = activation_op_types(model) - set(supported_op_types())
    assert not missing, f"{name} needs {sorted(missing)}"
    onnx.save(model, tmp_path / f"{name}.onnx")
    np.savez(tmp_path / "calib.npz", x=random_inputs(name, 32, seed=1).numpy())
    np.savez(tmp_path / "test.npz", x=random_inputs(name, 3, seed=2).numpy())
    for bits in (8, 4):
        q4, gen = tmp_path / f"w4a{bits}.q4", tmp_path / f"gen{bits}"
        argv = [
            ["quantize", tmp_path / f"{name}.onnx", "--calib", tmp_path / "calib.npz", "-q", "-o", q4]
            + ["--activations", f"int{bits}"],
            ["generate", q4, "-o", gen],
            ["verify", q4, gen, "--data", tmp_path / "test.npz"],
        ]
        for args in argv:
            rc = main([str(a) for a in args])
            assert rc == 0, (args[0], bits, capsys.readouterr().err[-2000:])
        out = capsys.readouterr().out
        assert "C vs oracle           bit-exact (0 samples differ)" in out, out[-2000:]
