import math

import numpy as np
import pytest

from q4sdk.ir import fixedpoint as fx
from q4sdk.ir.packing import pack_int4_rows, unpack_int4_rows


@pytest.mark.parametrize("real", [1e-9, 3.7e-5, 0.0123, 0.25, 0.5, 0.999999, 1.0, 7.5, 12345.0])
def test_quantize_multiplier_is_accurate_and_in_range(real):
    m, s = fx.quantize_multiplier(real)
    assert fx.MULT_MIN <= m <= fx.MULT_MAX
    assert fx.SHIFT_MIN <= s <= fx.SHIFT_MAX
    assert abs(m * 2.0**-s - real) <= real * 2**-30


def test_quantize_multiplier_edges():
    assert fx.quantize_multiplier(0.0) == (0, 1)
    m, s = fx.quantize_multiplier(1e-25)  # would need s > 62: precision dropped, value kept
    assert s == 62 and abs(m * 2.0**-62 - 1e-25) < 2.0**-62
    with pytest.raises(ValueError):
        fx.quantize_multiplier(2.0**31)
    with pytest.raises(ValueError):
        fx.quantize_multiplier(-1.0)
    with pytest.raises(ValueError):
        fx.quantize_multiplier(math.nan)


def test_requantize_rounds_half_up_including_negatives():
    m, s = fx.quantize_multiplier(0.5)
    acc = np.array([1, 3, 5, -1, -3, -5, 2, -2])
    # exact halves round towards +inf: 0.5->1, 1.5->2, 2.5->3, -0.5->0, -1.5->-1, -2.5->-2
    assert fx.requantize(acc, m, s).tolist() == [1, 2, 3, 0, -1, -2, 1, -1]


def test_requantize_extremes_do_not_overflow():
    acc = np.array([2**31 - 1, -(2**31)], np.int64)
    out = fx.requantize(acc, fx.MULT_MAX, 1)
    exact = [(int(a) * fx.MULT_MAX + 1) >> 1 for a in acc]
    assert out.tolist() == exact


def test_requantize_matches_real_multiplication():
    rng = np.random.default_rng(0)
    acc = rng.integers(-(2**20), 2**20, 1000)
    for real in (0.001, 0.0371, 0.7):
        m, s = fx.quantize_multiplier(real)
        assert np.abs(fx.requantize(acc, m, s) - acc * real).max() <= 0.5 + 2**20 * real * 2**-30


def test_add_multipliers_keep_int32_headroom():
    ma, mb, s = fx.add_multipliers(0.8, 3.1)
    assert max(ma, mb) < fx.ADD_MULT_LIMIT and 1 <= s <= fx.ADD_SHIFT_MAX
    assert 2 * 255 * max(ma, mb) + (1 << (s - 1)) < 2**31
    assert abs(ma / 2**s - 0.8) < 2**-18 and abs(mb / 2**s - 3.1) < 2**-18
    with pytest.raises(ValueError):
        fx.add_multipliers(2.0**22, 1.0)


def test_round_half_away():
    v = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.49, 0.49999997], np.float32)
    assert fx.round_half_away(v).tolist() == [1, 2, 3, -1, -2, -2, 0]


def test_pack_low_nibble_first_and_row_padding():
    rows = np.array([[1, -2, 7], [-8, 0, 3]])
    p = pack_int4_rows(rows)
    assert p.shape == (2, 2)
    assert p[0].tolist() == [0xE1, 0x07]  # 1 | (-2 & 0xF) << 4 ; 7 | pad 0
    assert p[1].tolist() == [0x08, 0x03]
    assert (unpack_int4_rows(p, 3) == rows).all()


def test_pack_round_trip_random_and_range_check():
    rng = np.random.default_rng(1)
    for k in (1, 2, 7, 64):
        v = rng.integers(-8, 8, (5, k))
        assert (unpack_int4_rows(pack_int4_rows(v), k) == v).all()
    with pytest.raises(ValueError):
        pack_int4_rows(np.array([[8]]))
