"""The parts that keep quantization time proportional to the model: the coarse-to-fine weight
scale search, the gathered im2col rows, and the size limit of data-driven rounding."""

import numpy as np
import torch
import torch.nn.functional as F

from graphs import tiny_resnet
from q4sdk.ptq import weights
from q4sdk.ptq.pipeline import _batched, _layer_rows, _pad4, quantize_graph
from q4sdk.ptq.plan import build_plan
from q4sdk.ptq.recipe import Recipe, preset


def _err(w, s):
    return ((w - weights.quantize_to_int(w, s) * s[:, None]) ** 2).sum(axis=1)


def test_coarse_to_fine_scale_search_matches_the_exhaustive_grid(monkeypatch):
    w = np.random.default_rng(0).laplace(size=(48, 300)) * 0.05
    exhaustive = weights.mmse_scales_grid(w, 4, 500)
    monkeypatch.setattr(weights, "EXHAUSTIVE_LIMIT", 0)  # force the coarse-to-fine path
    fast = weights.mmse_scales_grid(w, 4, 500)
    assert fast.dtype == np.float64 and fast.shape == (48,)
    assert (_err(w, fast) <= _err(w, exhaustive) * (1 + 1e-5)).mean() > 0.95
    assert _err(w, fast).sum() <= _err(w, exhaustive).sum() * 1.001


def test_gathered_rows_equal_the_full_im2col_rows():
    g = tiny_resnet(seed=0, c=8)
    x = torch.randn(40, 8, 16, 16)
    conv2 = [s for s in build_plan(g) if s.node.name == "conv2"][0]  # 3x3, stride 2, pads 1
    (rows,) = _layer_rows(conv2, [x], 200, seed=3)
    a = conv2.node.attrs
    cols = F.unfold(_pad4(x, a["pads"]), (3, 3), stride=tuple(a["stride"]))  # [N, K, L]
    full = cols.transpose(1, 2).reshape(-1, cols.shape[1]).double().numpy()
    # every gathered row is a row of the full im2col of some image
    full_set = {r.tobytes() for r in full}
    assert rows.shape == (200, 72) and all(r.tobytes() in full_set for r in rows)


def test_batched_forward_keeps_only_the_asked_parts():
    x = torch.randn(70, 4)

    def relu(xs):
        return xs[0] * 2, torch.relu(xs[0] * 2)

    pre, out = _batched(relu, [x], bs=32)
    assert torch.equal(pre, x * 2) and torch.equal(out, torch.relu(x * 2))
    none, out_only = _batched(relu, [x], bs=32, keep=(False, True))
    assert none is None and torch.equal(out_only, out)
    pre_only, none = _batched(relu, [x], bs=32, keep=(True, False))
    assert none is None and torch.equal(pre_only, pre)

    # without an activation the output is the pre-activation: one tensor, not two copies
    def no_act(xs):
        y = xs[0] + 1
        return y, y

    pre, out = _batched(no_act, [x], bs=32)
    assert out is pre and torch.equal(pre, x + 1)


def test_data_driven_rounding_skips_kernels_above_opt_max_k():
    g = tiny_resnet(seed=2, c=16)
    x = np.random.default_rng(0).standard_normal((64, 3, 8, 8)).astype(np.float32)
    base = {"activation_bits": 8, "weight_rounding": "gpfq"}
    nearest = quantize_graph(g, x, Recipe.from_dict({**base, "weight_rounding": "nearest"}))
    limited = quantize_graph(g, x, Recipe.from_dict({**base, "opt_max_k": 100}))  # conv2 has K = 144
    every = quantize_graph(g, x, Recipe.from_dict(base))
    w = {
        m: {o.name: o.arrays["weight"] for o in mod.ops if "weight" in o.arrays}
        for m, mod in (("nearest", nearest), ("limited", limited), ("every", every))
    }
    assert np.array_equal(w["limited"]["conv2"], w["nearest"]["conv2"])
    assert not np.array_equal(w["every"]["conv2"], w["nearest"]["conv2"])
    assert not np.array_equal(w["limited"]["conv1"], w["nearest"]["conv1"])  # K = 27: rounded by GPFQ


def test_presets_range_from_fast_to_best():
    for bits in (4, 8):
        fast, default, best = (preset(n, bits) for n in ("fast", "default", "best"))
        assert fast.refine_iters == 0 < default.refine_iters < best.refine_iters * best.refine_runs
        assert fast.residual_input == default.residual_input == (bits == 4)
        assert fast.weight_rounding == "gpfq" and fast.bias_correction and fast.unsigned_activations
