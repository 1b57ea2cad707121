"""Same model, data, recipe and seed -> the same .q4 bytes, whatever the torch thread count."""

import numpy as np
import torch

from graphs import tiny_resnet
from q4sdk.ir.q4file import save_q4
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import Recipe

X = np.random.default_rng(5).standard_normal((256, 3, 8, 8)).astype(np.float32)
# a short best-like recipe: every step whose float sums could depend on the thread count
SHORT_BEST = {
    "activation_bits": 4,
    "unsigned_activations": True,
    "bias_correction": True,
    "weight_rounding": "adaround",
    "adaround_iters": 20,
    "dual_layers": ["@first"],
    "residual_input": True,
    "refine_iters": 8,
    "refine_runs": 2,
    "refine_loss": "kl",
    "refine_batch": 32,
    "sensitivity_budget": 0.3,
}


def _bytes(tmp_path, name, threads, recipe):
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = quantize_graph(tiny_resnet(seed=4, c=32), X, Recipe.from_dict(recipe))
        assert torch.get_num_threads() == threads  # the quantizer restores the caller's count
    finally:
        torch.set_num_threads(prev)
    path = tmp_path / f"{name}_{threads}.q4"
    save_q4(model, path, overwrite=True)
    return path.read_bytes()


def test_same_bytes_with_one_and_two_threads(tmp_path):
    for name, recipe in (("default", {}), ("short_best", SHORT_BEST)):
        one = _bytes(tmp_path, name, 1, recipe)
        assert one == _bytes(tmp_path, name, 2, recipe), name
        assert one == _bytes(tmp_path, name, 1, recipe), name  # and run after run


def test_meta_holds_no_wall_clock_and_no_machine_path(tmp_path):
    model = quantize_graph(tiny_resnet(), X[:32], Recipe())
    for key in ("quantize_seconds", "source_path", "torch_threads"):
        assert key not in model.meta
    assert isinstance(model.meta["recipe_version"], int)
