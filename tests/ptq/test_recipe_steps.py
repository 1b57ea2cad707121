"""CLE, ACIQ and the golden-section / alternating weight-scale searches as recipe steps."""

import dataclasses

import numpy as np
import pytest

from graphs import tiny_resnet
from q4sdk.check.report import fake_quant_nodes
from q4sdk.cli import build_parser
from q4sdk.cli.model import recipe_from_args
from q4sdk.errors import Q4Error
from q4sdk.ir.float_exec import run_float
from q4sdk.ir.float_graph import FloatGraph, FloatNode
from q4sdk.ir.oracle import dequantize_output, quantize_input, run_oracle
from q4sdk.ptq.activations import activation_params, quant_mse
from q4sdk.ptq.cle import equalize
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import Recipe
from q4sdk.ptq.weights import int_range

X = np.random.default_rng(1).standard_normal((300, 3, 8, 8)).astype(np.float32)


def _rel_err(m, g, x):
    yq = dequantize_output(m, run_oracle(m, quantize_input(m, x)))
    if yq.ndim == 4:  # the integer model's feature maps are channels-last
        yq = yq.transpose(0, 3, 1, 2)
    yf = run_float(g, x)
    return float(np.linalg.norm(yq - yf) / np.linalg.norm(yf))


@pytest.mark.parametrize(
    "fields",
    [
        {"weight_scale": "golden"},
        {"weight_scale": "alternating"},
        {"activation_range": "aciq_laplace"},
        {"activation_range": "aciq_gauss"},
        {"cle": True},
    ],
)
@pytest.mark.parametrize("unsigned", [False, True])
def test_each_step_reaches_the_integer_model(fields, unsigned):
    g = tiny_resnet()
    m = quantize_graph(g, X[:128], Recipe(activation_bits=8, unsigned_activations=unsigned, **fields))
    assert all(m.meta["recipe"][k] == v for k, v in fields.items())
    assert all(np.isfinite(t.scale) and t.scale > 0 for t in m.tensors.values())
    # each step is at least as good as plain min-max quantization (error 0.32; the default 0.20)
    baseline = quantize_graph(
        g,
        X[:128],
        Recipe(
            activation_bits=8, unsigned_activations=unsigned, weight_scale="minmax", activation_range="minmax"
        ),
    )
    assert _rel_err(m, g, X[128:]) < min(0.3, _rel_err(baseline, g, X[128:]))


def test_golden_and_alternating_scales_beat_minmax_per_kernel():
    g = tiny_resnet(seed=3)
    stats = {
        ws: quantize_graph(g, X[:64], Recipe(weight_scale=ws)).meta["layer_stats"]
        for ws in ("minmax", "golden", "alternating", "mmse")
    }
    for layer in ("conv1", "dw", "pw", "conv2", "fc"):
        mm = stats["minmax"][layer]["weight_mse"]
        assert stats["golden"][layer]["weight_mse"] <= mm
        assert stats["alternating"][layer]["weight_mse"] < 0.95 * mm
        # alternating from several starts is about as good as the 500-point grid search
        assert stats["alternating"][layer]["weight_mse"] < 1.1 * stats["mmse"][layer]["weight_mse"]


def _prior_samples(prior: str, signed: bool) -> np.ndarray:
    """Samples of the prior the method assumes (post-ReLU: its positive half and zeros)."""
    rng = np.random.default_rng(4)
    x = rng.laplace(scale=1.0, size=100_000) if prior == "aciq_laplace" else rng.normal(size=100_000)
    return x if signed else np.maximum(x, 0.0)


@pytest.mark.parametrize("prior", ["aciq_laplace", "aciq_gauss"])
@pytest.mark.parametrize("signed,unsigned_grid", [(True, False), (False, False), (False, True), (True, True)])
def test_aciq_clip_is_finite_within_the_range_and_beats_minmax_at_4_bits(prior, signed, unsigned_grid):
    x = _prior_samples(prior, signed)
    scale, zp = activation_params(x, 4, unsigned_grid, prior)
    qmin, qmax = int_range(4)
    top = (qmax - zp) * scale
    assert np.isfinite(scale) and scale > 0 and 0 < top < 0.8 * x.max()
    c, n = np.unique(x, return_counts=True)
    mm = activation_params(x, 4, unsigned_grid, "minmax")
    e = quant_mse(c, n.astype(np.float64), np.array([scale, mm[0]]), np.array([zp, mm[1]]), 4)
    assert e[0] < 0.7 * e[1]


def _unbalanced_pair() -> FloatGraph:
    """conv -> relu -> conv whose channel 0 is 100x smaller after layer 1 and read 100x stronger by
    layer 2: the same function as a balanced pair, but layer 2's kernels are dominated by channel 0."""
    rng = np.random.default_rng(5)
    c = 6
    w1 = rng.standard_normal((c, 3, 3, 3)) * 0.3
    b1 = rng.standard_normal(c) * 0.1
    w2 = rng.standard_normal((4, c, 3, 3)) * 0.2
    w1[0] /= 100.0
    b1[0] /= 100.0
    w2[:, 0] *= 100.0
    conv = {"stride": (1, 1), "pads": (1, 1, 1, 1), "groups": 1}
    nodes = [
        FloatNode(
            "conv1",
            "conv2d",
            ["x"],
            "c1",
            conv,
            {"weight": w1.astype(np.float32), "bias": b1.astype(np.float32)},
        ),
        FloatNode("relu1", "relu", ["c1"], "r1"),
        FloatNode(
            "conv2",
            "conv2d",
            ["r1"],
            "y",
            conv,
            {"weight": w2.astype(np.float32), "bias": (rng.standard_normal(4) * 0.1).astype(np.float32)},
        ),
    ]
    return FloatGraph(
        "pair", "x", (3, 8, 8), "y", nodes, {"x": (3, 8, 8), "c1": (c, 8, 8), "r1": (c, 8, 8), "y": (4, 8, 8)}
    )


def _weight_only_err(m, g, x):
    """Output error of the quantized weights alone: ``g`` with the model's dequantized weights, float
    activations."""
    yw = run_float(dataclasses.replace(g, nodes=fake_quant_nodes(m, g)), x)
    y = run_float(g, x)
    return float(np.linalg.norm(yw - y) / np.linalg.norm(y))


def test_cle_keeps_the_float_model_and_lowers_the_error_of_an_unbalanced_pair():
    g = _unbalanced_pair()
    eq = equalize(g)
    y0 = run_float(g, X[128:])
    assert np.allclose(run_float(eq, X[128:]), y0, rtol=1e-5, atol=1e-5 * np.abs(y0).max())
    plain = quantize_graph(g, X[:128], Recipe(activation_bits=8))
    cle = quantize_graph(g, X[:128], Recipe(activation_bits=8, cle=True))
    assert cle.meta["recipe"]["cle"] is True and plain.meta["recipe"]["cle"] is False
    # the per-kernel weight quantization error, as it reaches the output (float activations):
    # without CLE layer 2's kernels are dominated by channel 0 and the other channels round to 0
    assert _weight_only_err(cle, eq, X[128:]) < 0.5 * _weight_only_err(plain, g, X[128:])
    # and the whole integer model (channel 0 is also too small for the per-tensor activation grid)
    assert _rel_err(cle, g, X[128:]) < 0.3 * _rel_err(plain, g, X[128:])


@pytest.mark.parametrize(
    "field,value", [("weight_scale", "exact"), ("activation_range", "aciq"), ("cle", "yes")]
)
def test_bad_values_name_the_field(field, value):
    with pytest.raises(Q4Error, match=f"recipe field '{field}'"):
        Recipe.from_dict({field: value})


def test_cli_flags_set_the_recipe_fields():
    args = build_parser().parse_args(
        [
            "quantize",
            "m.onnx",
            "--calib",
            "c.npz",
            "-o",
            "m.q4",
            "--cle",
            "--weight-scale",
            "alternating",
            "--activation-range",
            "aciq_gauss",
        ]
    )
    r = recipe_from_args(args)
    assert (r.cle, r.weight_scale, r.activation_range) == (True, "alternating", "aciq_gauss")
    assert (
        recipe_from_args(
            build_parser().parse_args(["quantize", "m.onnx", "--calib", "c.npz", "-o", "m.q4"])
        ).cle
        is False
    )
