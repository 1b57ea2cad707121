import numpy as np
import pytest

from q4sdk.ptq.bias_correction import analytical_weight_bias_correction, empirical_bias_correction
from q4sdk.ptq.weights import minmax_scales, quantize_to_int


def _case():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 27))
    s = minmax_scales(w)
    w_hat = quantize_to_int(w, s) * s[:, None]
    x = np.abs(rng.standard_normal((4096, 27))) + 0.5  # post-ReLU-like inputs, mean far from 0
    return w, w_hat, x


def test_analytical_correction_removes_the_mean_output_shift():
    w, w_hat, x = _case()
    delta = analytical_weight_bias_correction(w, w_hat, x.mean(axis=0))
    assert delta.shape == (8,) and delta.dtype == np.float64
    shift = (x @ w.T).mean(axis=0) - (x @ w_hat.T).mean(axis=0)
    assert np.abs(shift).max() > 1e-2  # there was a shift to remove
    assert np.allclose((x @ w_hat.T).mean(axis=0) + delta, (x @ w.T).mean(axis=0))
    # output MSE drops as well
    y = x @ w.T
    assert np.mean((y - x @ w_hat.T - delta) ** 2) < np.mean((y - x @ w_hat.T) ** 2)


def test_empirical_matches_analytical_for_weight_only_error():
    w, w_hat, x = _case()
    emp = empirical_bias_correction((x @ w.T).mean(axis=0), (x @ w_hat.T).mean(axis=0))
    assert np.allclose(emp, analytical_weight_bias_correction(w, w_hat, x.mean(axis=0)))
    assert np.array_equal(empirical_bias_correction(np.array([1.0, 2.0]), np.array([0.5, 2.5])), [0.5, -0.5])


def test_shape_errors():
    with pytest.raises(ValueError):
        empirical_bias_correction(np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        analytical_weight_bias_correction(np.ones((2, 3)), np.ones((2, 3)), np.ones(4))
