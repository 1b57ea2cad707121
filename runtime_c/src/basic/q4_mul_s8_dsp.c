/*
 * q4_mul_s8_dsp.c - element-wise product of two int8 tensors (the second of the same shape or one
 * value per channel: squeeze-excite gates), for cores with the Arm DSP extension
 * (Cortex-M4/M7/M33/M55). Bit-exact with q4_mul_s8.
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"), 4 elements per step:
 *  - one word of each input; SXTAB16 with the pair (-z, -z), plain and with ROR #8, gives the
 *    int16 pairs (x0 - z, x2 - z) and (x1 - z, x3 - z) exactly (|x - z| <= 255);
 *  - SMULBB / SMULTT: the products p = (a - z_a)(b - z_b), |p| <= 65025;
 *  - requantization for 19 <= s <= 54: with j = max(0, 33 - s) (s < 33: products of at least
 *    1/2 in output steps, as W4A4 gates give), p' = p 2^j (one LSL, |p'| < 2^30), T = s + j and
 *    k = T - 32 >= 1, floor((p m + 2^(s-1)) / 2^s) = floor((p' m + 2^(T-1)) / 2^T)
 *    = floor((hi + 2^(k-1)) / 2^k) with hi = floor(p' m / 2^32) (the low word cannot carry), so
 *    SMMLA(p', m, 2^(k-1) + (z_y - act_min) 2^k) (exact: k = 1 when j > 0, else |hi| < 2^15 and
 *    255 * 2^k < 2^30) shifted right by k is u = z_y - act_min + requantize(p, m, s); USAT #8
 *    saturates it to [0, 255];
 *  - the four bytes are one word; the clamp to [act_min, act_max] is bytewise:
 *    y = act_max - UQSUB8(act_max - act_min, u) = min(act_min + u, act_max) (modulo 256), or
 *    for the full range [-128, 127] y = u EOR 0x80808080.
 * Other shifts (s < 19: scale ratios above 2^12, and m = 0; s > 54) and the last
 * channels % 4 elements of a row (of the whole tensor when b has a's shape) use the portable arithmetic. Scratch: none.
 */
#include "q4_elementwise.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"

/* acc + the bytes 1 and 3 of x sign-extended, per halfword (SXTAB16 with ROR #8). */
static inline uint32_t q4_mul_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}

/* acc + floor(a * b / 2^32) (SMMLA; GCC does not emit it from C). */
static inline int32_t q4_mul_smmla(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

/* The products of the low and of the high halfwords (SMULBB, SMULTT). */
static inline int32_t q4_bottoms(int32_t x, int32_t y)
{
    return (int32_t)(int16_t)x * (int16_t)y;
}

static inline int32_t q4_tops(int32_t x, int32_t y)
{
    return (x >> 16) * (y >> 16);
}

/* Per-call constants of the word path. */
typedef struct {
    uint32_t neg_za; /* (-z_a, -z_a) */
    uint32_t neg_zb;
    int32_t m;
    int32_t round; /* 2^(k-1) + (z_y - act_min) 2^k */
    int32_t k;
    int32_t j;      /* the pre-shift of the products: max(0, 33 - s) */
    uint32_t width; /* act_max - act_min in every byte */
    uint32_t top;   /* act_max in every byte */
} q4_mul_consts;

/* u in [0, 255]: the output minus act_min, saturated, of the product p. */
static inline uint32_t q4_mul_one(int32_t p, const q4_mul_consts *k, int32_t pre)
{
    if (pre) { /* s < 33: p 2^j (|p| <= 65025, j <= 14) */
        p <<= k->j;
    }
    return (uint32_t)__usat(q4_mul_smmla(p, k->m, k->round) >> k->k, 8);
}

/* The first n (a multiple of 4) outputs of each of the rows (a, y advance by channels per row,
 * b by b_step); full (a constant at each call): the clamp is [-128, 127], so y = u - 128 modulo
 * 256 is one EOR with an immediate. */
static inline void q4_mul_words(const int8_t *a, const int8_t *b, int8_t *y, int32_t rows,
                                int32_t channels, int32_t b_step, int32_t n,
                                const q4_mul_consts *k, int32_t full, int32_t pre)
{
    int32_t r, c;
    for (r = 0; r < rows; ++r, a += channels, b += b_step, y += channels) {
        for (c = 0; c < n; c += 4) {
            const uint32_t wa = q4_load_u32(a + c), wb = q4_load_u32(b + c);
            const int32_t a02 = (int32_t)__sxtab16((int32_t)k->neg_za, (int32_t)wa);
            const int32_t a13 = (int32_t)q4_mul_sxtab16_ror8(k->neg_za, wa);
            const int32_t b02 = (int32_t)__sxtab16((int32_t)k->neg_zb, (int32_t)wb);
            const int32_t b13 = (int32_t)q4_mul_sxtab16_ror8(k->neg_zb, wb);
            const uint32_t u = q4_mul_one(q4_bottoms(a02, b02), k, pre) |
                               q4_mul_one(q4_bottoms(a13, b13), k, pre) << 8 |
                               q4_mul_one(q4_tops(a02, b02), k, pre) << 16 |
                               q4_mul_one(q4_tops(a13, b13), k, pre) << 24;
            const uint32_t v = full ? u ^ 0x80808080u
                                    : (uint32_t)__usub8(k->top, __uqsub8(k->width, u));
            __builtin_memcpy(y + c, &v, sizeof v);
        }
    }
}

void q4_mul_s8_dsp(const q4_mul_params *params, int32_t rows, int32_t channels,
                   int32_t b_row_step, const int8_t *input_a, const int8_t *input_b,
                   int8_t *output)
{
    const int32_t za = params->a_zp, zb = params->b_zp, zy = params->output_zp;
    const int32_t m = params->multiplier, s = params->shift;
    const int32_t lo = params->act_min, hi = params->act_max;
    q4_mul_consts k;
    int32_t r, c, words;

    if (b_row_step == channels) { /* b has a's shape: one row of every element */
        channels *= rows;
        rows = 1;
    }
    words = s >= 19 && s <= 54 ? channels & ~3 : 0;

    k.neg_za = ((uint32_t)-za & 0xFFFFu) * 0x10001u;
    k.neg_zb = ((uint32_t)-zb & 0xFFFFu) * 0x10001u;
    k.m = m;
    k.j = s < 33 ? 33 - s : 0;
    k.k = s + k.j - 32;
    k.round = words > 0 ? (1 << (k.k - 1)) + (zy - lo) * (1 << k.k) : 0;
    k.width = (uint32_t)(hi - lo) * 0x01010101u;
    k.top = ((uint32_t)hi & 0xFFu) * 0x01010101u;
    if (words > 0) {
        const int32_t full = lo == INT8_MIN && hi == INT8_MAX;
        if (full && k.j == 0) {
            q4_mul_words(input_a, input_b, output, rows, channels, b_row_step, words, &k, 1, 0);
        } else if (k.j == 0) {
            q4_mul_words(input_a, input_b, output, rows, channels, b_row_step, words, &k, 0, 0);
        } else if (full) {
            q4_mul_words(input_a, input_b, output, rows, channels, b_row_step, words, &k, 1, 1);
        } else {
            q4_mul_words(input_a, input_b, output, rows, channels, b_row_step, words, &k, 0, 1);
        }
    }
    for (r = 0; r < rows; ++r) { /* the last channels % 4 of each row */
        const int8_t *a = input_a + r * channels;
        const int8_t *b = input_b + r * b_row_step;
        int8_t *y = output + r * channels;
        for (c = words; c < channels; ++c) {
            const int32_t acc = ((int32_t)a[c] - za) * ((int32_t)b[c] - zb);
            y[c] = q4_requantize_clamp(acc, m, s, zy, lo, hi);
        }
    }
}

#else /* no DSP extension: the portable kernel */

void q4_mul_s8_dsp(const q4_mul_params *params, int32_t rows, int32_t channels,
                   int32_t b_row_step, const int8_t *input_a, const int8_t *input_b,
                   int8_t *output)
{
    q4_mul_s8(params, rows, channels, b_row_step, input_a, input_b, output);
}

#endif
