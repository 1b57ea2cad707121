/*
 * q4_conv_terms.h - what the optimised multi-term conv2d kernels (q4_conv2d_s4_terms_dsp.c,
 * q4_conv2d_s4_terms_mve.c) share: the per-block requantization records and the requantization
 * of a channel's T accumulators (portable C; the 64-bit products become SMULL / SMLAL).
 * Private to those files.
 *
 * With s' = max(shift, 33) and m'_k = m_k * 2^(s' - shift), floor((sum acc_k * m'_k + 2^(s'-1))
 * / 2^s') is floor((hi + 2^(s'-33)) / 2^(s'-32)), hi the high word of the 64-bit sum: the low
 * word cannot carry into the result. A channel takes this path when every m'_k fits int32 and the
 * accumulator bounds keep the sum below 2^62; otherwise q4_requantize_terms_clamp.
 */
#ifndef Q4_CONV_TERMS_H
#define Q4_CONV_TERMS_H

#include <stdint.h>

#include "q4_kernels.h"
#include "q4_fixedpoint.h"

#if defined(__GNUC__)
#define Q4_TERMS_HELPER __attribute__((unused))
#else
#define Q4_TERMS_HELPER
#endif

#define Q4_TERMS_ROWS 32 /* (weight tensor, channel) rows unpacked per block (even) */
#define Q4_TERMS_TERMS 4 /* at most 2 inputs x 2 weight tensors */
#define Q4_TERMS_INPUTS 2

/* The per-block requantization records (int32 words, at the start of the scratch). */
typedef struct {
    int32_t fold[Q4_TERMS_INPUTS][Q4_TERMS_ROWS]; /* [bias] - z_i * sum(w) per input and row */
    int32_t multiplier[Q4_TERMS_TERMS][Q4_TERMS_ROWS]; /* m'_k per term and channel of the block */
    int32_t right[Q4_TERMS_ROWS]; /* s' - 32, or 0: the exact 64-bit path */
} q4_terms_records;

/* Fills the requantization records of the block's n_ch channels (see the file comment). */
static Q4_TERMS_HELPER void q4_terms_channel_records(const q4_terms_params *terms,
                                                     const int32_t *bias, int32_t oc0,
                                                     int32_t n_ch, int32_t out_c, int32_t k,
                                                     q4_terms_records *rec)
{
    const int32_t n_terms = terms->n_inputs * terms->n_weights;
    /* |acc_k| <= |bias| (term 0) + 255 * 8 * K, K <= Q4_OPT_MAX_K */
    const uint64_t dot_bound = (uint64_t)2040u * (uint64_t)k;
    int32_t c, t;

    for (c = 0; c < n_ch; ++c) {
        const int32_t o = oc0 + c, shift = terms->shift[o];
        const int32_t wide = shift > 33 ? shift : 33, up = wide - shift;
        const uint64_t bias_abs = bias[o] < 0 ? (uint64_t)(-(int64_t)bias[o]) : (uint64_t)bias[o];
        uint64_t bound = 0;
        int32_t ok = 1;
        for (t = 0; t < n_terms; ++t) {
            const int32_t m = terms->multiplier[t * out_c + o];
            const uint64_t m_abs = (uint64_t)(m < 0 ? -(int64_t)m : (int64_t)m) << up;
            ok &= m_abs < ((uint64_t)1 << 31);
            bound += m_abs * (dot_bound + (t == 0 ? bias_abs : 0u));
            /* 2^(wide - shift) * m, in range when ok */
            rec->multiplier[t][c] = (int32_t)(uint32_t)((uint64_t)(uint32_t)m << up);
        }
        rec->right[c] = ok && bound < ((uint64_t)1 << 62) ? wide - 32 : 0;
    }
}

/* Kept out of line: inlined into the tile loop, its 64-bit sums would compete for registers
 * with the loop's and spill. */
#if defined(__GNUC__)
#define Q4_TERMS_NOINLINE __attribute__((noinline))
#else
#define Q4_TERMS_NOINLINE
#endif

/* The high word of a * b + c * d, floor((a * b + c * d) / 2^32) (SMULL, SMLAL). */
static inline int32_t q4_terms_high2(int32_t a, int32_t b, int32_t c, int32_t d)
{
    const int64_t total = (int64_t)a * b + (int64_t)c * d;
    return (int32_t)(uint32_t)((uint64_t)total >> 32);
}

/* Requantizes and stores one channel's n pixels (stride out_c) from its terms' accumulators
 * acc[t][pixel]; c is the channel's index in the block, o in the layer. */
static Q4_TERMS_HELPER Q4_TERMS_NOINLINE void q4_terms_store_channel(
    const int32_t *const *acc, int32_t n_terms, int32_t n, const q4_terms_records *rec,
    int32_t c, int32_t o, const q4_terms_params *terms, const q4_conv_params *params,
    int8_t *out, int32_t out_c)
{
    /* locals: the int8 stores below could otherwise alias the parameters */
    const int32_t zp = params->output_zp, lo = params->act_min, hi = params->act_max;
    const int32_t right = rec->right[c];
    int32_t p, t;
    if (right > 0) {
        const int32_t round = (int32_t)1 << (right - 1);
        const int32_t m0 = rec->multiplier[0][c];
        if (n_terms == 2) { /* the usual case (dual weights) */
            const int32_t *const a0 = acc[0], *const a1 = acc[1];
            const int32_t m1 = rec->multiplier[1][c];
            for (p = 0; p < n; ++p) {
                int32_t y = zp + q4_floor_shift32(q4_terms_high2(a0[p], m0, a1[p], m1) + round,
                                                  right);
                y = y < lo ? lo : y;
                y = y > hi ? hi : y;
                out[p * out_c] = (int8_t)y;
            }
            return;
        }
        for (p = 0; p < n; ++p) {
            int64_t total = (int64_t)acc[0][p] * m0;
            int32_t y;
            for (t = 1; t < n_terms; ++t) {
                total += (int64_t)acc[t][p] * rec->multiplier[t][c];
            }
            /* the high word, floor(total / 2^32) */
            y = (int32_t)(uint32_t)((uint64_t)total >> 32);
            y = zp + q4_floor_shift32(y + round, right);
            y = y < lo ? lo : y;
            y = y > hi ? hi : y;
            out[p * out_c] = (int8_t)y;
        }
        return;
    }
    for (p = 0; p < n; ++p) {
        int32_t terms_acc[Q4_TERMS_TERMS];
        for (t = 0; t < n_terms; ++t) {
            terms_acc[t] = acc[t][p];
        }
        out[p * out_c] = q4_requantize_terms_clamp(terms_acc, n_terms, terms->multiplier + o,
                                                   out_c, terms->shift[o], zp, lo, hi);
    }
}

#endif /* Q4_CONV_TERMS_H */
