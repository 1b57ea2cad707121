/*
 * q4_fixedpoint.h - integer helpers shared by the q4 kernels (internal, header-only).
 *
 * Right shifts of negative values are implementation-defined in C, so the flooring shifts below
 * never shift a negative number: for v < 0, floor(v / 2^s) == ~((~v) >> s), and ~v == -v - 1 is
 * exact because the exact-width types int32_t/int64_t are two's complement by definition (C99
 * 7.18.1.1).
 */
#ifndef Q4_FIXEDPOINT_H
#define Q4_FIXEDPOINT_H

#include <stdint.h>

/* floor(v / 2^s) for 0 <= s < 64. */
static inline int64_t q4_floor_shift64(int64_t v, int32_t s)
{
    return v >= 0 ? (v >> s) : ~((~v) >> s);
}

/* floor(v / 2^s) for 0 <= s < 32. */
static inline int32_t q4_floor_shift32(int32_t v, int32_t s)
{
    return v >= 0 ? (v >> s) : ~((~v) >> s);
}

/* requantize(acc, m, s) = floor((acc * m + 2^(s-1)) / 2^s) in 64-bit arithmetic.
 * With |acc| < 2^31, |m| <= 2^31 and 1 <= s <= 62 nothing overflows. */
static inline int64_t q4_requantize(int32_t acc, int32_t multiplier, int32_t shift)
{
    int64_t v = (int64_t)acc * (int64_t)multiplier + ((int64_t)1 << (shift - 1));
    return q4_floor_shift64(v, shift);
}

/* zp + requantized value, clamped to [act_min, act_max]. */
static inline int8_t q4_requantize_clamp(int32_t acc, int32_t multiplier, int32_t shift,
                                         int32_t output_zp, int32_t act_min, int32_t act_max)
{
    int64_t y = (int64_t)output_zp + q4_requantize(acc, multiplier, shift);
    if (y < act_min) {
        y = act_min;
    }
    if (y > act_max) {
        y = act_max;
    }
    return (int8_t)y;
}

/* Multi-term finish: zp + floor((sum_k acc[k] * multiplier[k * stride] + 2^(s-1)) / 2^s),
 * clamped. |acc[k]| < 2^31, |multiplier| < 2^29 and n_terms <= 4 keep the int64 sum below 2^62. */
static inline int8_t q4_requantize_terms_clamp(const int32_t *acc, int32_t n_terms,
                                               const int32_t *multiplier, int32_t stride,
                                               int32_t shift, int32_t output_zp,
                                               int32_t act_min, int32_t act_max)
{
    int64_t total = (int64_t)1 << (shift - 1);
    int64_t y;
    int32_t k;
    for (k = 0; k < n_terms; ++k) {
        total += (int64_t)acc[k] * (int64_t)multiplier[k * stride];
    }
    y = (int64_t)output_zp + q4_floor_shift64(total, shift);
    if (y < act_min) {
        y = act_min;
    }
    if (y > act_max) {
        y = act_max;
    }
    return (int8_t)y;
}

/* Signed 4-bit weight number k of a packed row (low nibble first). */
static inline int32_t q4_int4_at(const uint8_t *row, int32_t k)
{
    uint32_t b = row[k >> 1];
    uint32_t nibble = (k & 1) ? (b >> 4) : (b & 0xFu);
    return (int32_t)(nibble ^ 8u) - 8;
}

#endif /* Q4_FIXEDPOINT_H */
