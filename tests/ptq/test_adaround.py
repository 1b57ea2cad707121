import time

import numpy as np
import pytest
import torch

from q4sdk.ptq.adaround import adaround
from q4sdk.ptq.weights import mmse_scales_grid, quantize_to_int


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    o, k, n = 16, 144, 2048
    w = rng.standard_normal((o, k)) * 0.1
    mix = rng.standard_normal((k, k)) * 0.3 + np.eye(k)
    x = np.maximum(rng.standard_normal((n, k)) @ mix, 0.0)
    return w, x, mmse_scales_grid(w)


def _out_mse(w, x, s, q, xq=None):
    xq = x if xq is None else xq
    return np.mean((x @ w.T - xq @ (q * s[:, None]).T) ** 2)


def test_adaround_beats_round_to_nearest_quickly(layer):
    w, x, s = layer
    adaround(w[:2, :8], x[:16, :8], s[:2], iters=2)  # warm torch up outside the timing
    t0 = time.process_time()
    q = adaround(w, x, s)
    elapsed = time.process_time() - t0
    assert q.dtype == np.int8 and q.shape == w.shape and q.min() >= -8 and q.max() <= 7
    rtn = quantize_to_int(w, s)
    down = np.clip(np.floor(w / s[:, None]), -8, 7)
    up = np.clip(down + 1, -8, 7)
    assert np.all((q == down) | (q == up))  # only up/down choices
    assert _out_mse(w, x, s, q) < 0.75 * _out_mse(w, x, s, rtn)
    assert elapsed < 2.0  # CPU seconds; ~0.9 s on one core


def test_adaround_uses_quantized_path_inputs(layer):
    w, x, s = layer
    xq = x * 1.05  # the quantized path sees systematically larger inputs
    q = adaround(w, x, s, xq=xq, iters=500)
    assert _out_mse(w, x, s, q, xq) < _out_mse(w, x, s, adaround(w, x, s, iters=500), xq)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="do not agree"):
        adaround(np.ones((2, 3)), np.ones((4, 2)), np.ones(2))


def test_works_under_no_grad(layer):
    w, x, s = layer
    with torch.no_grad():
        q = adaround(w[:4], x[:256], s[:4], iters=50)
    assert q.shape == (4, w.shape[1])
