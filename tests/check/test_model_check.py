"""``q4sdk check``: the figures it gives before quantizing are the ones ``generate`` reports after."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from q4sdk.check.model_check import check_model, flash_warning, largest_flash_board
from q4sdk.cli import main
from q4sdk.codegen.render import render
from q4sdk.frontend import import_onnx_model
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import preset
from tests.zoo.models import zoo_onnx


@pytest.mark.parametrize("name", ["dscnn", "mlp_autoencoder"])
def test_plan_figures_equal_generate(name):
    model = zoo_onnx(name)
    c = check_model(model)
    assert c.supported and c.estimate == "plan" and c.issues == []
    graph = import_onnx_model(model, name)
    x = np.random.default_rng(0).normal(size=(16, *graph.input_shape)).astype(np.float32)
    q8 = quantize_graph(graph, x, preset("default", 8, sensitivity_budget=None))  # no data-driven layers
    _, rep8 = render(q8, "m")
    assert (c.macs, c.weight_bytes, c.arena_bytes_a8) == (rep8.macs, rep8.weight_bytes, rep8.arena_bytes)
    q4 = quantize_graph(graph, x, preset("default", 4, sensitivity_budget=None))
    _, rep4 = render(q4, "m", pack_activations=True)
    assert c.arena_bytes_a4_packed == rep4.arena_bytes


def test_unsupported_model_lists_everything_and_still_counts():
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    fc = numpy_helper.from_array(np.ones((5, 4), np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], "conv", pads=[1, 1, 1, 1]),
        helper.make_node("Erf", ["c"], ["s"], "erf"),
        helper.make_node("Conv", ["s", "w2"], ["d"], "grouped", group=2),
        helper.make_node("GlobalAveragePool", ["d"], ["g"], "gap"),
        helper.make_node("Flatten", ["g"], ["f"], "flat"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], "fc", transB=1),
    ]
    w2 = numpy_helper.from_array(np.ones((4, 2, 1, 1), np.float32), "w2")
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, w2, fc],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    c = check_model(model, boards=["nrf52840"])
    assert not c.supported and c.estimate == "onnx"
    assert c.unsupported_op_types == ["Erf"]
    assert [i["node"] for i in c.issues] == ["erf"]  # the grouped conv is supported
    assert c.macs == 64 * 4 * 27 + 64 * 4 * 2 + 5 * 4
    assert c.weight_bytes == (4 * 14 + 48) + (4 * 1 + 48) + (5 * 2 + 60)
    assert c.arena_bytes_a8 >= 2 * 256 and c.parameters == 108 + 8 + 20
    assert c.boards["nrf52840"]["a8"]["fits"]


def test_cli_check(tmp_path, capsys):
    model = zoo_onnx("dscnn")
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert main(["check", str(path), "--board", "mps2-an386", "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "supported" in out and "board mps2-an386 (A8): fits" in out and (tmp_path / "c.json").is_file()
    assert main(["check", str(path), "--json", str(tmp_path / "c.json")]) == 2  # no overwrite without --force


def test_generate_flash_warning():
    name, size = largest_flash_board()
    assert flash_warning(size) is None
    assert name in flash_warning(size + 1) and f"{size + 1:,}" in flash_warning(size + 1)
