import numpy as np
import pytest

from q4sdk.ptq.scale_search import alternating_scales, exact_scales, golden_section_scales, kernel_sq_error
from q4sdk.ptq.weights import minmax_scales, quantize_to_int


def _weights(kind: str, shape=(48, 144), seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) if kind == "gauss" else rng.laplace(size=shape)


@pytest.mark.parametrize("kind", ["gauss", "laplace"])
@pytest.mark.parametrize("search", [golden_section_scales, alternating_scales, exact_scales])
def test_never_worse_than_minmax_and_clearly_better_overall(kind, search):
    w = _weights(kind)
    s = search(w)
    assert s.shape == (48,) and s.dtype == np.float64 and np.all(s > 0)
    e, e_mm = kernel_sq_error(w, s), kernel_sq_error(w, minmax_scales(w))
    assert np.all(e <= e_mm + 1e-12)
    assert e.sum() < 0.85 * e_mm.sum()


@pytest.mark.parametrize("kind", ["gauss", "laplace"])
def test_alternating_reaches_the_optimum(kind):
    w = _weights(kind)
    e_opt = kernel_sq_error(w, exact_scales(w)).sum()
    assert kernel_sq_error(w, alternating_scales(w)).sum() <= 1.01 * e_opt
    assert kernel_sq_error(w, golden_section_scales(w)).sum() <= 1.02 * e_opt


def test_exact_is_a_lower_bound_of_a_dense_scale_sweep():
    w = _weights("gauss", shape=(16, 9), seed=3)
    e_opt = kernel_sq_error(w, exact_scales(w))
    amax = np.abs(w).max(axis=1)
    for f in np.linspace(0.02, 1.5, 3000):
        assert np.all(e_opt <= kernel_sq_error(w, amax / 7 * f) + 1e-12)


def test_quantized_values_stay_in_int4_range_and_zero_kernel_is_safe():
    w = _weights("laplace", shape=(4, 32))
    w[2] = 0.0
    for search in (golden_section_scales, alternating_scales, exact_scales):
        s = search(w)
        assert np.isfinite(s).all() and s[2] == 1.0
        q = quantize_to_int(w, s)
        assert q.min() >= -8 and q.max() <= 7
