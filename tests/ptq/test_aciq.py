import numpy as np
import pytest

from q4sdk.ptq.aciq import aciq_clip, analytical_mse, optimal_alpha_ratio


def _mse(x, clip, bits, signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    s = clip / hi
    return float(np.mean((x - s * np.clip(np.rint(x / s), lo, hi)) ** 2))


def _best_empirical_clip(x, bits, signed):
    clips = np.linspace(0.05, 1.0, 400) * np.abs(x).max()
    errs = [_mse(x, c, bits, signed) for c in clips]
    return clips[int(np.argmin(errs))], min(errs)


def test_laplace_4bit_signed_clip_beats_no_clipping_and_is_near_optimal():
    x = np.random.default_rng(0).laplace(scale=0.7, size=200_000)
    alpha = aciq_clip(x, 4, "laplace", signed=True)
    assert 0 < alpha < np.abs(x).max()
    assert _mse(x, alpha, 4, True) < 0.4 * _mse(x, np.abs(x).max(), 4, True)
    _, best = _best_empirical_clip(x, 4, True)
    assert _mse(x, alpha, 4, True) < 1.05 * best


def test_unsigned_post_relu_gauss_uses_the_half_distribution():
    x = np.maximum(np.random.default_rng(1).normal(scale=2.0, size=200_000), 0.0)
    alpha = aciq_clip(x, 4, "gauss", signed=False)
    _, best = _best_empirical_clip(x, 4, False)
    assert _mse(x, alpha, 4, False) < 1.05 * best
    assert _mse(x, alpha, 4, False) < _mse(x, x.max(), 4, False)
    # the unsigned grid has twice the levels on the positive side, so it clips later
    assert optimal_alpha_ratio(4, "gauss", False) > optimal_alpha_ratio(4, "gauss", True)


@pytest.mark.parametrize("prior", ["laplace", "gauss"])
def test_ratio_minimises_the_analytical_mse_and_grows_with_bits(prior):
    ratios = [optimal_alpha_ratio(b, prior, True) for b in (2, 3, 4, 8)]
    assert all(a < b for a, b in zip(ratios, ratios[1:]))
    r = ratios[2]
    neighbours = [analytical_mse(r * f, 4, prior, True) for f in (0.9, 0.99, 1.01, 1.1)]
    assert analytical_mse(r, 4, prior, True) <= min(neighbours)


def test_analytical_mse_matches_monte_carlo():
    x = np.random.default_rng(2).laplace(size=400_000)
    for alpha in (2.0, 4.0, 6.0):
        assert abs(_mse(x, alpha, 4, True) / analytical_mse(alpha, 4, "laplace", True) - 1) < 0.1


def test_degenerate_inputs():
    assert aciq_clip(np.zeros(10), 4) == 0.0
    assert aciq_clip(-np.ones(10), 4, signed=False) == 0.0
    with pytest.raises(ValueError, match="unknown prior"):
        aciq_clip(np.ones(3), 4, prior="cauchy")
