import numpy as np
import pytest

from q4sdk.ptq.residual import residual_mse_gain, residual_quantize


@pytest.mark.parametrize("signed", [True, False])
def test_residual_reduces_mse_by_a_large_factor(signed):
    rng = np.random.default_rng(0)
    x = rng.laplace(size=(64, 8, 8)) if signed else np.maximum(rng.standard_normal((64, 8, 8)), 0)
    x1, b1, x2, b2 = residual_quantize(x, 4, signed)
    assert x1.shape == x2.shape == x.shape and x1.dtype == x2.dtype == np.int8
    assert (x1.min() >= (-8 if signed else 0)) and x1.max() <= (7 if signed else 15)
    assert x2.min() >= -8 and x2.max() <= 7 and 0 < b2 < b1
    single = np.mean((x - b1 * x1) ** 2)
    double = np.mean((x - b1 * x1 - b2 * x2) ** 2)
    assert double < single / 50
    assert residual_mse_gain(x, 4, signed) == pytest.approx(single / double)


def test_residual_recovers_part_of_the_clipped_range():
    x = np.random.default_rng(1).laplace(size=20_000)
    clip = 2.0  # clips ~13% of the samples
    x1, b1, x2, b2 = residual_quantize(x, 4, True, clip=clip)
    assert b1 == pytest.approx(clip / 7)
    assert residual_mse_gain(x, 4, True, clip=clip) > 3


def test_unsigned_8bit_uses_int16_and_zero_input():
    x = np.linspace(0, 1, 1000)
    x1, _, _, _ = residual_quantize(x, 8, False)
    assert x1.dtype == np.int16 and x1.max() == 255
    x1, b1, x2, b2 = residual_quantize(np.zeros(5), 4, True)
    assert b1 == 0.0 and b2 == 0.0 and not x1.any() and not x2.any()
