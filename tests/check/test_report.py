import json
import math

import numpy as np
import pytest

from graphs import tiny_resnet
from q4sdk.check.report import (
    LAYER_KINDS,
    PLOTS,
    build_report,
    compression_ratio,
    dequantized_weights,
    fake_quant_nodes,
    run_fake_quant,
)
from q4sdk.cli import build_parser
from q4sdk.errors import Q4Error
from q4sdk.ir import oracle
from q4sdk.ir.q4file import save_q4
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import Recipe

X = np.random.default_rng(1).standard_normal((200, 3, 8, 8)).astype(np.float32)
FAST = dict(weight_grid=50, activation_grid=30)


@pytest.fixture(scope="module")
def graph():
    return tiny_resnet()


@pytest.fixture(scope="module")
def models(graph):
    """4- and 8-bit activation models; 'pw' is a dual (two INT4 tensors) layer."""
    return {
        bits: quantize_graph(graph, X, Recipe(activation_bits=bits, dual_layers=["pw"], **FAST))
        for bits in (4, 8)
    }


@pytest.fixture(scope="module")
def reports(models, graph, tmp_path_factory):
    out = {}
    for bits, m in models.items():
        d = tmp_path_factory.mktemp(f"report{bits}")
        build_report(m, X, None, graph, d)
        out[bits] = (d, json.loads((d / "report.json").read_text()))
    return out


def test_report_files_and_one_row_per_layer(models, reports):
    d, js = reports[4]
    for name in ("report.md", "report.html", "report.json", *PLOTS):
        assert (d / name).stat().st_size > 0
    layers = [op for op in models[4].ops if op.kind in LAYER_KINDS]
    assert [r["name"] for r in js["layers"]] == [op.name for op in layers]
    for r in js["layers"]:
        assert math.isfinite(r["activation_sqnr_db"]) and 0 <= r["clip_fraction"] < 0.2
        if r["kind"] in ("conv2d", "depthwise_conv2d", "fully_connected"):
            assert math.isfinite(r["weight_sqnr_db"]) and r["macs"] > 0 and r["weight_bytes"] > 0
    pw = next(r for r in js["layers"] if r["name"] == "pw")
    conv2 = next(r for r in js["layers"] if r["name"] == "conv2")
    assert pw["dual"] and not conv2["dual"]
    # 8x8 input, 1x1 conv 8->8: 64*64 MACs per weight tensor, twice for the dual layer
    assert pw["macs"] == 2 * 64 * 64
    # packed INT4 x2 (32 bytes each) + bias, multipliers [2, 8] and shift as int32
    assert pw["weight_bytes"] == 2 * 32 + 4 * (8 + 16 + 8)


def test_8bit_activations_have_higher_activation_sqnr(reports):
    r4 = {r["name"]: r["activation_sqnr_db"] for r in reports[4][1]["layers"]}
    r8 = {r["name"]: r["activation_sqnr_db"] for r in reports[8][1]["layers"]}
    assert all(r8[k] > r4[k] for k in r4), (r4, r8)
    # the logits are 8-bit in both models; every 4- vs 8-bit tensor differs by far more
    assert all(r8[k] > r4[k] + 5 for k in r4 if k != "fc"), (r4, r8)


def test_activation_sqnr_agrees_with_quantizer_estimate_on_calibration_data(reports):
    # same data as calibration: the integer program's error should match the quantizer's simulation
    for r in reports[4][1]["layers"]:
        assert abs(r["activation_sqnr_db"] - r["calib_output_sqnr_db"]) < 0.5, r["name"]


def test_no_labels_means_null_accuracies(reports):
    acc = reports[4][1]["accuracy"]
    assert acc["float"] is acc["fake_quant"] is acc["integer"] is None
    assert 0.9 < acc["top1_agreement"] <= 1.0


def test_html_is_self_contained(reports):
    d, _ = reports[4]
    text = (d / "report.html").read_text()
    assert text.count("src='data:image/png;base64,") == len(PLOTS)
    assert text.count("src=") == len(PLOTS) and "<script" not in text


def test_accuracies_with_labels(models, graph, tmp_path):
    m = models[8]
    y = np.random.default_rng(3).integers(0, 5, len(X))
    data = build_report(m, X, y, graph, tmp_path)
    expect = float((oracle.run_oracle(m, oracle.quantize_input(m, X)).argmax(axis=1) == y).mean())
    assert data.accuracy["integer"] == pytest.approx(expect)
    assert all(0 <= data.accuracy[k] <= 1 for k in ("float", "fake_quant"))
    js = json.loads((tmp_path / "report.json").read_text())
    assert js["accuracy"]["integer"] == pytest.approx(expect)


def test_dequantized_weights_reproduce_recorded_weight_sqnr(models, graph):
    m = models[4]
    nodes = {n.name: n for n in graph.nodes}
    for op in m.ops:
        if op.kind not in ("conv2d", "depthwise_conv2d", "fully_connected"):
            continue
        w = nodes[op.name].params["weight"].astype(np.float64)
        w_hat, _ = dequantized_weights(m, op)
        assert w_hat.shape == w.shape
        sqnr = 10 * np.log10((w**2).sum() / ((w - w_hat) ** 2).sum())
        assert sqnr == pytest.approx(m.meta["layer_stats"][op.name]["weight_sqnr_db"], abs=0.01), op.name


def test_fake_quant_tracks_the_integer_program(models, graph):
    from q4sdk.ir.float_exec import run_float

    m = models[8]
    y_int = oracle.dequantize_output(m, oracle.run_oracle(m, oracle.quantize_input(m, X)))
    y_fq = run_fake_quant(m, graph, fake_quant_nodes(m, graph), X)
    y_fp = run_float(graph, X)
    err_fq = np.linalg.norm(y_fq - y_int) / np.linalg.norm(y_int)
    err_fp = np.linalg.norm(y_fp - y_int) / np.linalg.norm(y_int)
    assert err_fq < 0.05 and err_fq < 0.5 * err_fp, (err_fq, err_fp)


def test_without_float_model_float_columns_are_null(models, tmp_path):
    data = build_report(models[4], X[:20], None, None, tmp_path)
    assert all(r.activation_sqnr_db is None and r.clip_fraction is None for r in data.layers)
    assert data.accuracy["top1_agreement"] is None and data.notes
    assert all(r.weight_sqnr_db is not None for r in data.layers if r.kind == "conv2d")
    assert (tmp_path / "report.html").is_file()


def test_compression_ratio_counts_dual_weights_twice(models, graph):
    m = quantize_graph(graph, X[:50], Recipe(activation_bits=8, output_bits=8, **FAST))
    assert compression_ratio(m) == {"weights": 8.0, "activations": 4.0}
    n_pw = 8 * 8  # 1x1 conv 8 -> 8
    n_all = sum(op.arrays["weight"].size for op in m.ops if "weight" in op.arrays)
    assert compression_ratio(models[8])["weights"] == pytest.approx(32 * n_all / (4 * (n_all + n_pw)))


def test_float_model_that_does_not_match_is_an_error(models, tmp_path):
    other = tiny_resnet(c=4)
    with pytest.raises(Q4Error, match="float model 'tiny'.*tensor 'c1'|float model 'tiny'.*tensor 'r1'"):
        build_report(models[4], X[:10], None, other, tmp_path)
    assert not (tmp_path / "report.json").exists()


def test_cli_report_command(models, tmp_path, capsys):
    q4 = tmp_path / "m.q4"
    save_q4(models[4], q4)
    np.savez(tmp_path / "d.npz", x=X[:40], y=np.arange(40) % 5)
    args = build_parser().parse_args(
        ["report", str(q4), "--data", str(tmp_path / "d.npz"), "--count", "30", "-o", str(tmp_path / "r")]
    )
    assert args.func(args) == 0
    js = json.loads((tmp_path / "r" / "report.json").read_text())
    assert js["samples"] == 30 and js["accuracy"]["integer"] is not None and js["accuracy"]["float"] is None
    assert "records no float model" in capsys.readouterr().out


def test_costs_match_the_code_generator(models):
    from q4sdk.check.report import op_costs
    from q4sdk.codegen.render import render

    _, gen = render(models[4], "tiny")
    assert {o.name: (o.macs, o.weight_bytes) for o in gen.ops} == {
        op.name: op_costs(models[4], op) for op in models[4].ops
    }


def test_residual_input_model(graph, tmp_path):
    m = quantize_graph(graph, X, Recipe(activation_bits=4, residual_input=True, **FAST))
    data = build_report(m, X, None, graph, tmp_path)
    conv1 = next(r for r in data.layers if r.name == "conv1")
    assert conv1.macs == 2 * 64 * 8 * 27 and len(conv1.input_shapes) == 2
    assert data.compression["activations"] < 8.0  # the input's second INT4 tensor costs bits
    y_int = oracle.dequantize_output(m, oracle.run_oracle(m, oracle.quantize_input(m, X)))
    y_fq = run_fake_quant(m, graph, fake_quant_nodes(m, graph), X)
    assert np.linalg.norm(y_fq - y_int) / np.linalg.norm(y_int) < 0.1
