/*
 * q4_concat_s8_dsp.c - concat of int8 tensors, each input requantized to the output, for cores
 * with the Arm DSP extension (Cortex-M4/M7/M33/M55). Bit-exact with q4_concat_s8.
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"): one input at a time, its
 * run of channels[i] elements in every output row (the per-input constants are set once):
 *  - an input with the output's quantization (m = 2^30, s = 30, the output's zero point) is a
 *    copy, one word per 4 elements; when [act_min, act_max] is narrower than int8 the clamp is
 *    bytewise (SSUB8 + SEL for the max, then for the min);
 *  - other inputs with 10 <= s <= 54: with j = max(0, 33 - s) and T = s + j,
 *    requantize(x - z, m, s) = floor((x' m + 2^(T-1)) / 2^T) for x' = (x - z) 2^j (one MLA,
 *    |x'| < 2^31), and with k = T - 32 >= 1 that is floor((hi + 2^(k-1)) / 2^k),
 *    hi = floor(x' m / 2^32) (the low word cannot carry): SMMLA(x', m, 2^(k-1) +
 *    (z_y - act_min) 2^k) shifted right by k is z_y - act_min + the requantized value (exact in
 *    int32: k = 1 when j > 0, and |hi| < 2^7 when j = 0), USAT #8 saturates it to [0, 255],
 *    the four bytes make a word and the clamp is y = act_max - UQSUB8(act_max - act_min, u);
 *  - other shifts (s < 10: scale ratios above 2^22) and the last run % 4 elements use the
 *    portable arithmetic.
 * Scratch: none.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"

/* acc + floor(a * b / 2^32) (SMMLA; GCC does not emit it from C). */
static inline int32_t q4_concat_smmla(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

/* The byte-wise signed max and min (SSUB8 then SEL, one statement so the GE flags stay). */
static inline uint32_t q4_concat_max4(uint32_t a, uint32_t x)
{
    uint32_t t;
    __asm__("ssub8 %0, %2, %1\n\tsel %1, %2, %1" : "=&r"(t), "+r"(a) : "r"(x) : "cc");
    (void)t;
    return a;
}

static inline uint32_t q4_concat_min4(uint32_t a, uint32_t x)
{
    uint32_t t;
    __asm__("ssub8 %0, %1, %2\n\tsel %1, %2, %1" : "=&r"(t), "+r"(a) : "r"(x) : "cc");
    (void)t;
    return a;
}

static inline void q4_concat_store(int8_t *p, uint32_t v)
{
    __builtin_memcpy(p, &v, sizeof v);
}

/* Per-input constants of the requantizing word path. */
typedef struct {
    int32_t scale;  /* 2^j */
    int32_t offset; /* -z 2^j */
    int32_t m;
    int32_t round; /* 2^(k-1) + (z_y - act_min) 2^k */
    int32_t k;
    uint32_t width; /* act_max - act_min in every byte */
    uint32_t top;   /* act_max in every byte */
} q4_concat_consts;

/* u in [0, 255]: the output minus act_min, saturated, of the input code x. */
static inline uint32_t q4_concat_one(int32_t x, const q4_concat_consts *k)
{
    return (uint32_t)__usat(q4_concat_smmla(x * k->scale + k->offset, k->m, k->round) >> k->k, 8);
}

/* n (a multiple of 4) requantized elements from x to y. */
static void q4_concat_requant(const int8_t *x, int8_t *y, int32_t n, const q4_concat_consts *k)
{
    int32_t c;
    for (c = 0; c < n; c += 4) {
        const uint32_t w = q4_load_u32(x + c);
        const uint32_t u = q4_concat_one((int8_t)w, k) | q4_concat_one((int8_t)(w >> 8), k) << 8 |
                           q4_concat_one((int8_t)(w >> 16), k) << 16 |
                           q4_concat_one((int32_t)w >> 24, k) << 24;
        q4_concat_store(y + c, (uint32_t)__usub8(k->top, __uqsub8(k->width, u)));
    }
}

void q4_concat_s8_dsp(const q4_concat_params *params, int32_t rows, const int8_t *const *inputs,
                      int8_t *output)
{
    const int32_t zy = params->output_zp, lo = params->act_min, hi = params->act_max;
    const uint32_t lo4 = ((uint32_t)lo & 0xFFu) * 0x01010101u;
    const uint32_t hi4 = ((uint32_t)hi & 0xFFu) * 0x01010101u;
    int32_t i, r, c, stride = 0, start = 0;

    for (i = 0; i < params->n_inputs; ++i) {
        stride += params->channels[i];
    }
    for (i = 0; i < params->n_inputs; ++i) {
        const int32_t n = params->channels[i], z = params->input_zp[i];
        const int32_t m = params->multiplier[i], s = params->shift[i];
        const int32_t words = n & ~3;
        const int8_t *x = inputs[i];
        int8_t *y = output + start;
        if (m == ((int32_t)1 << 30) && s == 30 && z == zy) { /* same quantization: a copy */
            for (r = 0; r < rows; ++r, x += n, y += stride) {
                if (lo == INT8_MIN && hi == INT8_MAX) {
                    for (c = 0; c < words; c += 4) {
                        q4_concat_store(y + c, q4_load_u32(x + c));
                    }
                } else {
                    for (c = 0; c < words; c += 4) {
                        const uint32_t v = q4_concat_max4(q4_load_u32(x + c), lo4);
                        q4_concat_store(y + c, q4_concat_min4(v, hi4));
                    }
                }
                for (c = words; c < n; ++c) {
                    y[c] = (int8_t)(x[c] < lo ? lo : x[c] > hi ? hi : x[c]);
                }
            }
        } else {
            const int32_t fast = s >= 10 && s <= 54 ? words : 0;
            q4_concat_consts k;
            const int32_t j = s < 33 ? 33 - s : 0;
            k.scale = fast ? (int32_t)1 << j : 0;
            k.offset = -z * k.scale;
            k.m = m;
            k.k = s + j - 32;
            k.round = fast ? ((int32_t)1 << (k.k - 1)) + (zy - lo) * ((int32_t)1 << k.k) : 0;
            k.width = (uint32_t)(hi - lo) * 0x01010101u;
            k.top = hi4;
            for (r = 0; r < rows; ++r, x += n, y += stride) {
                if (fast) {
                    q4_concat_requant(x, y, fast, &k);
                }
                for (c = fast; c < n; ++c) {
                    y[c] = q4_requantize_clamp((int32_t)x[c] - z, m, s, zy, lo, hi);
                }
            }
        }
        start += n;
    }
}

#else /* no DSP extension: the portable kernel */

void q4_concat_s8_dsp(const q4_concat_params *params, int32_t rows, const int8_t *const *inputs,
                      int8_t *output)
{
    q4_concat_s8(params, rows, inputs, output);
}

#endif
