import numpy as np
import pytest
import torch

from graphs import tiny_resnet
from q4sdk.errors import Q4Error
from q4sdk.ir.oracle import dequantize_output, quantize_input, run_oracle
from q4sdk.ptq.activations import activation_params
from q4sdk.ptq.pipeline import _forward, quantize_graph
from q4sdk.ptq.plan import build_plan
from q4sdk.ptq.recipe import Recipe
from q4sdk.ptq.weights import minmax_scales, mmse_scales_grid, quantize_to_int, weight_mse

X = np.random.default_rng(1).standard_normal((400, 3, 8, 8)).astype(np.float32)


def _float_out(g, x):
    vals = {g.input_name: torch.as_tensor(x)}
    for s in build_plan(g):
        vals[s.output] = _forward(s, [vals[i] for i in s.inputs])[1]
    return vals[g.output_name].numpy()


def _rel_err(m, g, x):
    yq = dequantize_output(m, run_oracle(m, quantize_input(m, x)))
    yf = _float_out(g, x)
    return float(np.linalg.norm(yq - yf) / np.linalg.norm(yf))


def test_plan_fuses_activations():
    steps = build_plan(tiny_resnet())
    kinds = [(s.node.name, s.kind, s.act) for s in steps]
    assert ("conv1", "conv2d", (0.0, float("inf"))) in kinds
    assert ("add", "add", (0.0, 6.0)) in kinds
    assert all(s.node.op not in ("relu", "clamp") for s in steps)
    fc = [s for s in steps if s.kind == "fully_connected"][0]
    assert fc.flatten_from == (8, 2, 2)


def test_mmse_weight_scales_beat_minmax():
    w = np.random.default_rng(0).standard_normal((16, 72))
    s_mm = minmax_scales(w)
    s_mse = mmse_scales_grid(w, 4, 500)
    e_mm = weight_mse(w, quantize_to_int(w, s_mm), s_mm)
    e_mse = weight_mse(w, quantize_to_int(w, s_mse), s_mse)
    assert (e_mse <= e_mm + 1e-12).all() and e_mse.mean() < 0.8 * e_mm.mean()


def test_activation_params_mmse_clips_heavy_tails():
    x = np.abs(np.random.default_rng(0).laplace(size=100_000))
    s_mm, z_mm = activation_params(x, 4, True, "minmax")
    s_mse, z_mse = activation_params(x, 4, True, "mmse")
    assert z_mm == z_mse == -8
    assert s_mse < s_mm
    sym, zs = activation_params(x, 4, False, "mmse")
    assert zs == 0 and sym > s_mse  # signed wastes half the codes on a non-negative tensor


@pytest.mark.parametrize("bits,unsigned,tol", [(8, False, 0.25), (8, True, 0.25), (4, True, 0.4)])
def test_quantized_model_tracks_float(bits, unsigned, tol):
    g = tiny_resnet()
    m = quantize_graph(g, X[:256], Recipe(activation_bits=bits, unsigned_activations=unsigned))
    assert _rel_err(m, g, X[256:]) < tol
    assert m.input_tensor.bits == bits and m.output_tensor.bits == 8
    assert all(t.zero_point == 0 for t in m.tensors.values()) == (not unsigned)
    for op in m.ops:
        if "weight" in op.arrays:
            assert op.arrays["weight"].min() >= -8 and op.arrays["weight"].max() <= 7


def test_bias_correction_reduces_error_at_4_bits():
    g = tiny_resnet(seed=3)
    r0 = Recipe(activation_bits=4, unsigned_activations=True, weight_scale="minmax")
    r1 = Recipe(activation_bits=4, unsigned_activations=True, weight_scale="minmax", bias_correction=True)
    e0 = _rel_err(quantize_graph(g, X[:256], r0), g, X[256:])
    e1 = _rel_err(quantize_graph(g, X[:256], r1), g, X[256:])
    assert e1 < e0


def test_dense_after_flatten_is_permuted_to_channels_last():
    g = tiny_resnet()
    m = quantize_graph(g, X[:64], Recipe())
    fc = [o for o in m.ops if o.kind == "fully_connected"][0]
    assert fc.arrays["weight"].shape == (5, 32)
    assert m.tensors[fc.inputs[0]].shape == (32,)


def test_bad_calibration_and_recipe_are_clear_errors():
    g = tiny_resnet()
    with pytest.raises(Q4Error, match="calibration data: sample shape"):
        quantize_graph(g, X[:, :2], Recipe())
    bad = X[:8].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(Q4Error, match="NaN"):
        quantize_graph(g, bad, Recipe())
    with pytest.raises(Q4Error, match="activation_bits"):
        Recipe(activation_bits=5).validate()
    with pytest.raises(Q4Error, match="unknown field 'foo'"):
        Recipe.from_dict({"foo": 1})


def test_scale_refinement_lowers_the_output_error():
    g = tiny_resnet(seed=2)
    m = quantize_graph(g, X[:128], Recipe(activation_bits=4, unsigned_activations=True, refine_iters=30))
    r = m.meta["refine"]
    assert r["applied"] and r["loss_after"] < 0.9 * r["loss_before"]


def test_refinement_on_kl_lowers_the_divergence():
    g = tiny_resnet(seed=2)
    base = Recipe(activation_bits=4, unsigned_activations=True, refine_iters=30, refine_lr=3e-3)
    kl = quantize_graph(g, X[:128], Recipe.from_dict({**base.to_dict(), "refine_loss": "kl"}))
    r = kl.meta["refine"]
    assert r["applied"] and r["loss_after"] < 0.9 * r["loss_before"]
    assert kl.meta["recipe"]["refine_loss"] == "kl"
    with pytest.raises(Q4Error, match="refine_loss"):
        Recipe(refine_loss="l1").validate()


def test_fake_quant_node_matches_the_elementwise_reference():
    """The fused fake-quantization node has the forward and LSQ gradients of the plain composition
    (round passed straight through), inside the range and where the code clamps, for both layouts."""
    from q4sdk.ptq.refine import fake_quant_ste

    def reference(x, s, zp, lo, hi):
        v = x / s
        v = v + (torch.round(v) - v).detach()
        return (torch.clamp(v + zp, lo, hi) - zp) * s

    gen = torch.Generator().manual_seed(0)
    for zp, bits, fmt in (
        (0, 4, torch.contiguous_format),
        (5, 4, torch.channels_last),
        (-3, 8, torch.channels_last),
    ):
        x0 = (torch.randn(4, 6, 5, 5, generator=gen) * 1.5).contiguous(memory_format=fmt)
        w = torch.randn(4, 6, 5, 5, generator=gen)
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        grads = []
        for f in (lambda x, s: fake_quant_ste(x, s, zp, bits), lambda x, s: reference(x, s, zp, lo, hi)):
            x = x0.clone().requires_grad_(True)
            s = torch.tensor(0.2 if bits == 4 else 0.015, requires_grad=True)  # both ranges clamp some
            y = f(x, s)
            (y * w).sum().backward()
            grads.append((y.detach(), x.grad, s.grad))
        (y1, gx1, gs1), (y2, gx2, gs2) = grads
        assert torch.equal(y1, y2)
        assert torch.equal(gx1 == 0, gx2 == 0) and torch.allclose(gx1, gx2, rtol=1e-6)
        assert 0 < int((gx1 == 0).sum()) < gx1.numel()  # some codes clamp, most do not
        assert torch.allclose(gs1, gs2, rtol=1e-4)


def test_refinement_runs_are_averaged():
    """refine_runs: 2 keeps the mean of the runs' log-factors, so each refined activation scale is
    the geometric mean of the two single runs' (run r draws its mini-batches from seed + 1000 r)."""
    g = tiny_resnet(seed=2)
    base = Recipe(activation_bits=4, unsigned_activations=True, refine_iters=20, refine_lr=3e-3)

    def scales(**kw):
        m = quantize_graph(g, X[:128], Recipe.from_dict({**base.to_dict(), **kw}))
        assert m.meta["refine"]["applied"]
        return np.array([t.scale for _, t in sorted(m.tensors.items())])

    one, other, soup = scales(seed=0), scales(seed=1000), scales(seed=0, refine_runs=2)
    assert not np.allclose(one, other, rtol=1e-4)  # the runs differ ...
    np.testing.assert_allclose(soup, np.sqrt(one * other), rtol=1e-5)  # ... and the soup is their mean
    with pytest.raises(Q4Error, match="refine_runs"):
        Recipe(refine_runs=0).validate()


@pytest.mark.parametrize(
    "fields",
    [
        {"dual_layers": ["@first", "@last"]},
        {"weight_rounding": "adaround", "adaround_iters": 50},
        {"weight_rounding": "gpfq"},
    ],
)
def test_recipe_methods_reach_the_integer_model(fields):
    g = tiny_resnet()
    m = quantize_graph(g, X[:128], Recipe(activation_bits=8, unsigned_activations=True, **fields))
    dual = [o.name for o in m.ops if "weight2" in o.arrays]
    assert dual == (["conv1", "fc"] if "dual_layers" in fields else [])
    assert m.meta["recipe"]["dual_layers"] == (["conv1", "fc"] if "dual_layers" in fields else [])
    assert _rel_err(m, g, X[256:]) < 0.25
