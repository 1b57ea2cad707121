"""Data-driven dual layers / residual activations (sensitivity.py) and refinement's MAC budget."""

import numpy as np
import pytest

from graphs import tiny_resnet
from q4sdk.errors import Q4Error
from q4sdk.ir.oracle import quantize_input, run_oracle
from q4sdk.ptq import sensitivity
from q4sdk.ptq.pipeline import _forward, quantize_graph
from q4sdk.ptq.plan import build_plan
from q4sdk.ptq.recipe import Recipe
from q4sdk.ptq.refine import MIN_BATCH, MIN_ITERS, budgeted

X = np.random.default_rng(3).standard_normal((96, 3, 8, 8)).astype(np.float32)
A4 = {"activation_bits": 4, "unsigned_activations": True}


def _choose(graph, budget, **fields):
    recipe = Recipe.from_dict({**A4, **fields, "sensitivity_budget": budget})
    return sensitivity.choose(graph, build_plan(graph), X, recipe, _forward)


def test_choice_stays_within_the_budget_and_takes_the_most_loss_per_mac_first():
    g = tiny_resnet(seed=2, c=8)
    total = sum(sensitivity.layer_macs(g, build_plan(g), X, _forward).values())  # every layer once
    for budget in (0.05, 0.2, 0.5):
        dual, res, records = _choose(g, budget)
        chosen = [r for r in records if r["chosen"]]
        assert sum(r["extra_macs"] for r in chosen) <= budget * total
        assert {r["name"] for r in chosen if r["kind"] == "dual"} == set(dual)
        assert {r["name"] for r in chosen if r["kind"] == "residual"} == set(res)
        assert all(r["extra_macs"] <= budget * total for r in records)  # the rest is not measured
        # a candidate left out either fits no more or removes less loss per MAC than every chosen one
        spent = sum(r["extra_macs"] for r in chosen)
        for r in records:
            if not r["chosen"] and spent + r["extra_macs"] <= budget * total:
                assert all(r["kl"] / r["extra_macs"] <= c["kl"] / c["extra_macs"] for c in chosen)
    dual, res, records = _choose(g, 10.0)
    assert all(r["chosen"] == (r["kl"] > 0) for r in records)
    assert res and dual  # every measured candidate quantized alone costs something here


def test_only_layers_with_a_fast_multi_term_kernel_are_candidates(monkeypatch):
    """Dual weights and residual inputs only where the multi-term kernel has an optimised form
    (the kinds with terms_variants: conv2d, depthwise_conv2d, fully_connected): a portable
    multi-term layer costs 20-40x its MACs. Without a kind's fast kernel its layers drop out."""
    g = tiny_resnet(seed=2, c=8)
    kinds = {s.node.name: s.kind for s in build_plan(g)}
    assert "depthwise_conv2d" in kinds.values()
    for fast in (sensitivity.FAST_MULTI_TERM_KINDS, frozenset({"conv2d", "fully_connected"})):
        monkeypatch.setattr(sensitivity, "FAST_MULTI_TERM_KINDS", fast)
        _, _, records = _choose(g, 10.0)
        duals = {r["name"] for r in records if r["kind"] == "dual"}
        assert duals == {n for n, k in kinds.items() if k in fast}


def test_no_residual_candidates_at_8_bit_activations_and_none_chosen_without_budget():
    g = tiny_resnet(seed=2, c=8)
    _, _, records = _choose(g, 10.0, activation_bits=8)
    assert records and all(r["kind"] == "dual" for r in records)
    dual, res, records = _choose(g, 0.0)
    assert dual == [] and res == [] and records == []


def test_pipeline_applies_the_chosen_layers_and_records_them():
    g = tiny_resnet(seed=2, c=8)
    recipe = Recipe.from_dict({**A4, "sensitivity_budget": 0.3})
    model = quantize_graph(g, X, recipe)
    records = model.meta["sensitivity"]
    dual = {r["name"] for r in records if r["chosen"] and r["kind"] == "dual"}
    res = [r["name"] for r in records if r["chosen"] and r["kind"] == "residual"]
    assert dual and set(dual) <= set(model.meta["recipe"]["dual_layers"])
    assert model.meta["recipe"]["residual_activations"] == res
    for op in model.ops:
        if op.name in dual:
            assert "weight2" in op.arrays
    y = run_oracle(model, quantize_input(model, X[:8]))
    assert np.isfinite(y).all()
    # same choice, same bytes: the pass is deterministic
    again = quantize_graph(g, X, recipe)
    assert again.meta["sensitivity"] == records


def test_recipe_rejects_a_negative_budget():
    with pytest.raises(Q4Error, match="sensitivity_budget"):
        Recipe.from_dict({"sensitivity_budget": -0.1})
    with pytest.raises(Q4Error, match="refine_macs"):
        Recipe.from_dict({"refine_macs": 0})


def test_refinement_budget_shrinks_the_batch_then_the_iterations():
    assert budgeted(50, 64, 1000, None) == (50, 64)
    assert budgeted(50, 64, 1000, 50 * 64 * 1000) == (50, 64)  # fits
    assert budgeted(50, 64, 1000, 50 * 32 * 1000) == (50, 32)  # smaller batches first
    it, b = budgeted(50, 64, 1000, 20 * MIN_BATCH * 1000)
    assert (it, b) == (20, MIN_BATCH)  # then fewer iterations
    assert budgeted(50, 64, 1000, (MIN_ITERS - 1) * MIN_BATCH * 1000) == (0, MIN_BATCH)  # skipped


def test_refinement_within_a_small_budget_is_skipped_and_says_so():
    g = tiny_resnet(seed=2, c=8)
    fields = {**A4, "refine_iters": 20, "refine_loss": "kl"}
    model = quantize_graph(g, X, Recipe.from_dict({**fields, "refine_macs": 1.0}))
    assert model.meta["refine"]["applied"] is False and "skipped" in model.meta["refine"]
    model = quantize_graph(g, X, Recipe.from_dict({**fields, "refine_macs": 1e12}))
    assert "skipped" not in model.meta["refine"]
