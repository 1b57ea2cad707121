import numpy as np
import pytest

from q4sdk.ptq.dual import EXACT_MAX_K, dual_decompose, dual_reconstruct, layer_mse
from q4sdk.ptq.scale_search import exact_scales
from q4sdk.ptq.weights import quantize_to_int


def _single_mse(w):
    s = exact_scales(w)
    return layer_mse(w, quantize_to_int(w, s) * s[:, None])


def _check_types(t1, a1, t2, a2, shape):
    assert t1.dtype == np.int8 and t2.dtype == np.int8 and t1.shape == t2.shape == shape
    assert a1.shape == a2.shape == (shape[0],) and a1.dtype == np.float64
    for t in (t1, t2):
        assert t.min() >= -8 and t.max() <= 7


def test_alternating_dual_beats_single_tensor_by_large_factor():
    w = np.random.default_rng(0).standard_normal((32, 144))
    out = dual_decompose(w)
    _check_types(*out, w.shape)
    assert layer_mse(w, dual_reconstruct(*out)) < _single_mse(w) / 100  # measured ~185x


def test_exact_is_never_worse_than_alternating_and_better_overall():
    w = np.random.default_rng(1).standard_normal((24, 9))
    alt, ex = dual_decompose(w), dual_decompose(w, method="exact")
    _check_types(*ex, w.shape)
    e_alt = ((w - dual_reconstruct(*alt)) ** 2).sum(axis=1)
    e_ex = ((w - dual_reconstruct(*ex)) ** 2).sum(axis=1)
    assert np.all(e_ex <= e_alt + 1e-12)
    assert e_ex.sum() < 0.85 * e_alt.sum()  # measured 0.70
    assert e_ex.sum() / w.size < _single_mse(w) / 100


def test_refusals():
    with pytest.raises(ValueError, match="K <= 12"):
        dual_decompose(np.ones((2, EXACT_MAX_K + 1)), method="exact")
    with pytest.raises(ValueError, match="unknown method"):
        dual_decompose(np.ones((2, 3)), method="greedy")


def test_zero_kernel_and_layer_mse():
    w = np.zeros((2, 9))
    w[1] = np.linspace(-1, 1, 9)
    out = dual_decompose(w)
    assert layer_mse(w, dual_reconstruct(*out)) < 1e-4
    assert np.all(out[0][0] == 0) and np.all(out[2][0] == 0)
    assert layer_mse(np.ones(4), np.zeros(4)) == 1.0
