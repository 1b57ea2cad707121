"""Fixed-point requantization, exactly as docs/integer-spec.md defines it.

``requantize(acc, m, s) = (acc * m + 2^(s-1)) >> s`` in 64-bit arithmetic with an arithmetic
(flooring) shift: a single rounding, half-way cases round towards +infinity.
``m`` lies in [2^30, 2^31) (or is 0 for a zero multiplier) and ``s`` in [1, 62], so
``|acc * m| < 2^62`` for any int32 ``acc`` and nothing overflows.
"""

from __future__ import annotations

import math

import numpy as np

MULT_MIN = 1 << 30
MULT_MAX = (1 << 31) - 1
SHIFT_MIN, SHIFT_MAX = 1, 62

# add: two int32 multipliers below 2^21 and a shared shift <= 30 keep
# |(a-za)*ma + (b-zb)*mb| + 2^(s-1) < 2^31 for 8-bit operands (see the spec).
ADD_MULT_LIMIT = 1 << 21
ADD_SHIFT_MAX = 30


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Real multiplier M >= 0 -> (m, s) with M ~= m * 2^-s, m in [2^30, 2^31), s in [1, 62]."""
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"requantization multiplier must be finite and >= 0, got {real}")
    if real == 0.0:
        return 0, SHIFT_MIN
    frac, exp = math.frexp(real)  # real = frac * 2^exp, frac in [0.5, 1)
    m = int(round(frac * (1 << 31)))
    if m == (1 << 31):
        m //= 2
        exp += 1
    s = 31 - exp
    if s < SHIFT_MIN:
        raise ValueError(f"requantization multiplier {real} is too large (>= 2^30)")
    if s > SHIFT_MAX:  # tiny multiplier: drop precision, keep the value
        m = int(round(m / (1 << (s - SHIFT_MAX))))
        s = SHIFT_MAX
    return m, s


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, np.float64).ravel()]
    m = np.array([p[0] for p in pairs], np.int32)
    s = np.array([p[1] for p in pairs], np.int32)
    return m, s


def requantize(acc: np.ndarray, m, s) -> np.ndarray:
    """Vectorised requantize; ``m``/``s`` broadcast against ``acc`` (e.g. per channel on the last axis)."""
    acc = np.asarray(acc, np.int64)
    m = np.asarray(m, np.int64)
    s = np.asarray(s, np.int64)
    return (acc * m + (np.int64(1) << (s - 1))) >> s


TERM_MULT_LIMIT = 1 << 29
MAX_TERMS = 4


def requantize_terms(accs: list[np.ndarray], m: np.ndarray, s) -> np.ndarray:
    """Multi-term layers (dual weights and/or residual input): ``(sum_k acc_k*m[k] + 2^(s-1)) >> s``.

    ``m`` is [T, O] with |m| < 2^29, so with T <= 4 int32 accumulators the int64 sum stays below 2^62.
    """
    m = np.asarray(m, np.int64)
    s = np.asarray(s, np.int64)
    total = np.int64(1) << (s - 1)
    for k, acc in enumerate(accs):
        total = total + np.asarray(acc, np.int64) * m[k]
    return total >> s


def quantize_term_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real multipliers [T, O] of a multi-term layer -> (m int32 [T, O], shift int32 [O]).

    Per output channel, one shift shared by all terms: the largest in [1, 62] that keeps every
    |m| below 2^29. Multipliers may be negative (a second weight tensor often has the opposite sign).
    """
    r = np.asarray(reals, np.float64)
    if r.ndim != 2 or not 2 <= r.shape[0] <= MAX_TERMS:
        raise ValueError(f"multi-term multipliers must be [T, O] with 2 <= T <= {MAX_TERMS}")
    if not np.isfinite(r).all():
        raise ValueError("multi-term multipliers must be finite")
    m = np.zeros(r.shape, np.int64)
    sh = np.full(r.shape[1], SHIFT_MIN, np.int64)
    for o in range(r.shape[1]):
        big = float(np.abs(r[:, o]).max())
        if big == 0.0:
            continue
        _, exp = math.frexp(big)  # big in [2^(exp-1), 2^exp)
        s = min(SHIFT_MAX, 29 - exp)
        if s < SHIFT_MIN:
            raise ValueError(f"multi-term multiplier {big} is too large")
        while np.abs(np.rint(r[:, o] * 2.0**s)).max() >= TERM_MULT_LIMIT:
            s -= 1
        m[:, o], sh[o] = np.rint(r[:, o] * 2.0**s), s
    return m.astype(np.int32), sh.astype(np.int32)


def add_multipliers(ratio_a: float, ratio_b: float) -> tuple[int, int, int]:
    """Scale ratios sa/sy, sb/sy -> (ma, mb, s): the largest s <= 30 with both ma, mb < 2^21."""
    for s in range(ADD_SHIFT_MAX, 0, -1):
        ma = int(round(ratio_a * (1 << s)))
        mb = int(round(ratio_b * (1 << s)))
        if ma < ADD_MULT_LIMIT and mb < ADD_MULT_LIMIT:
            return ma, mb, s
    raise ValueError(f"add input/output scale ratios {ratio_a:.3g}, {ratio_b:.3g} are too large")


INPUT_CLAMP = np.float32(1024.0)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """float32 rounding used by the input quantizer: half-way cases away from zero, exactly.

    ``v`` is clamped to [-1024, 1024] (NaN counts as 0) so the conversion to an integer is always
    defined, then ``t = trunc(v)``, ``d = v - t`` (exact in float32), ``r = t + (d >= 0.5) - (d <= -0.5)``.
    (``floor(v + 0.5)`` would be wrong: 0.49999997f + 0.5f rounds to 1.0f.)
    """
    v = np.asarray(x, np.float32)
    v = np.where(np.isnan(v), np.float32(0), v)
    v = np.clip(v, -INPUT_CLAMP, INPUT_CLAMP)
    t = np.trunc(v)
    d = v - t
    return (t + (d >= 0.5).astype(np.float32) - (d <= -0.5).astype(np.float32)).astype(np.float32)
