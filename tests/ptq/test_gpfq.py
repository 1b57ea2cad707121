import numpy as np
import pytest

from q4sdk.ptq.gpfq import gpfq_quantize
from q4sdk.ptq.weights import mmse_scales_grid, quantize_to_int


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    o, k, n = 16, 72, 1024
    w = rng.standard_normal((o, k)) * 0.1
    mix = rng.standard_normal((k, k)) * 0.3 + np.eye(k)
    x = np.maximum(rng.standard_normal((n, k)) @ mix, 0.0)
    xq = x + rng.standard_normal(x.shape) * 0.02  # the quantized path's inputs differ slightly
    return w, x, xq, mmse_scales_grid(w)


def _out_err(w, x, xq, s, q):
    return np.linalg.norm(x @ w.T - xq @ (q * s[:, None]).T)


def test_gpfq_beats_round_to_nearest(layer):
    w, x, xq, s = layer
    q = gpfq_quantize(w, x, xq, s)
    assert q.dtype == np.int8 and q.shape == w.shape and q.min() >= -8 and q.max() <= 7
    assert _out_err(w, x, xq, s, q) < 0.9 * _out_err(w, x, xq, s, quantize_to_int(w, s))


def test_gpfq_with_uncorrelated_identity_inputs_is_round_to_nearest():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 8))
    s = np.abs(w).max(axis=1) / 7
    assert np.array_equal(gpfq_quantize(w, np.eye(8), np.eye(8), s), quantize_to_int(w, s))


def test_sparsity_increases_zeros_at_moderate_cost(layer):
    w, x, xq, s = layer
    q0 = gpfq_quantize(w, x, xq, s)
    q1 = gpfq_quantize(w, x, xq, s, sparsity_lambda=20.0)
    assert (q1 == 0).mean() > (q0 == 0).mean() + 0.03
    # still better than round-to-nearest, which has fewer zeros
    assert _out_err(w, x, xq, s, q1) < _out_err(w, x, xq, s, quantize_to_int(w, s))


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="do not agree"):
        gpfq_quantize(np.ones((2, 3)), np.ones((4, 3)), np.ones((4, 2)), np.ones(2))


def _gpfq_running_error(w, x, xq, s, lam=0.0):
    """The paper's recursion written directly: u in R^N per kernel, one coordinate at a time."""
    q = np.zeros(w.shape)
    for o in range(w.shape[0]):
        u = np.zeros(x.shape[0])
        for t in range(w.shape[1]):
            target = u + w[o, t] * x[:, t]
            z = xq[:, t] @ target
            z = np.sign(z) * max(abs(z) - lam, 0.0)
            q[o, t] = np.clip(np.rint(z / (s[o] * (xq[:, t] @ xq[:, t]))), -8, 7)
            u = target - s[o] * q[o, t] * xq[:, t]
    return q


@pytest.mark.parametrize("lam", [0.0, 3.0])
def test_gram_form_equals_the_running_error_recursion(lam):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((6, 20)) * 0.2
    x = rng.standard_normal((200, 20))
    xq = x + 0.05 * rng.standard_normal(x.shape)
    s = np.abs(w).max(axis=1) / 7
    assert np.array_equal(
        gpfq_quantize(w, x, xq, s, sparsity_lambda=lam), _gpfq_running_error(w, x, xq, s, lam)
    )
