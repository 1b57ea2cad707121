/*
 * q4_fully_connected_s4_terms_mve.c - multi-term fully connected layer (dual INT4 weights and/or
 * a residual-quantized input), int8-stored activations (4 or 8 bits), for cores with Helium
 * (MVE, Cortex-M55/M85). Bit-exact with q4_fully_connected_s4_terms.
 *
 * Scheme (docs/kernels.md, "Cortex-M55 (Helium)"):
 *  - Each input is copied once into the scratch, zero-padded to a multiple of 32 bytes.
 *  - Per output row, per 16 packed bytes (32 weights) of each weight tensor: `w << 4` and
 *    `w & 0xF0` are the even and odd weights times 16 as int8 lanes (as in
 *    q4_fully_connected_s4_mve); one de-interleaving VLD2 of each input's 32 activations serves
 *    every weight tensor, two VMLADAVA per (input, tensor) accumulate 16 * sum(x * w) and two
 *    VADDVA per tensor 16 * sum(w) (|16 * sum| < 2^31 for input_size <= Q4_OPT_MAX_K).
 *  - acc_k = [bias] + sum(x_i * w_j) - z_i * sum(w_j) (term k = i * n_w + j, the bias in term 0),
 *    then the exact q4_requantize_terms_clamp (one rounding of sum_k acc_k * m[k][o]).
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#define Q4_FCT_BLOCK 32 /* weights per 16-byte vector */

static int32_t q4_fct_round_up32(int32_t k)
{
    return (k + Q4_FCT_BLOCK - 1) & ~(Q4_FCT_BLOCK - 1);
}

int32_t q4_fully_connected_s4_terms_mve_get_buffer_size(int32_t input_size)
{
    return 2 * q4_fct_round_up32(input_size);
}

/* The even and odd weights of 16 packed bytes, times 16, as int8 lanes: w << 4 and w & 0xF0
 * (two immediate VBICs on 16-bit lanes). */
static inline int8x16x2_t q4_fct_unpack(int8x16_t raw)
{
    const int16x8_t v = vreinterpretq_s16_s8(raw);
    int8x16x2_t w;
    w.val[0] = vshlq_n_s8(raw, 4);
    w.val[1] = vreinterpretq_s8_s16(vbicq_n_s16(vbicq_n_s16(v, 0x000F), 0x0F00));
    return w;
}

/* 16 * sum(x * w) over one 32-weight block. */
static inline int32_t q4_fct_dot(int32_t acc, const int8x16x2_t *x, const int8x16x2_t *w)
{
    return vmladavaq_s8(vmladavaq_s8(acc, x->val[0], w->val[0]), x->val[1], w->val[1]);
}

void q4_fully_connected_s4_terms_mve(const q4_fc_params *params, const q4_terms_params *terms,
                                     int32_t input_size, const int8_t *const *inputs,
                                     const uint8_t *const *filters, const int32_t *bias,
                                     int32_t output_size, int8_t *output, int32_t *scratch)
{
    const int32_t row_bytes = (input_size + 1) / 2;
    const int32_t blocks = (row_bytes + 15) / 16, padded = q4_fct_round_up32(input_size);
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights;
    /* locals: the int8 stores below could otherwise alias *params and *terms */
    const int32_t out_zp = params->output_zp, act_min = params->act_min;
    const int32_t act_max = params->act_max;
    const int32_t zp0 = terms->input_zp[0], zp1 = n_in > 1 ? terms->input_zp[1] : 0;
    int8_t *const cols = (int8_t *)scratch; /* input i at cols + i * padded */
    int32_t i, o, b;

    for (i = 0; i < n_in; ++i) {
        int32_t k;
        for (k = 0; k < input_size; k += 16) { /* lanes past the input load 0 */
            vst1q_s8(cols + i * padded + k,
                     vldrbq_z_s8(inputs[i] + k, vctp8q((uint32_t)(input_size - k))));
        }
        for (; k < padded; k += 16) {
            vst1q_s8(cols + i * padded + k, vdupq_n_s8(0));
        }
    }
    for (o = 0; o < output_size; ++o) {
        const int8_t *w0 = (const int8_t *)(filters[0] + o * row_bytes);
        const int8_t *w1 = (const int8_t *)(filters[n_w - 1] + o * row_bytes);
        const int8_t *x0 = cols, *x1 = cols + (n_in - 1) * padded;
        /* dot[i][j] = 16 * sum(x_i * w_j), sum[j] = 16 * sum(w_j) */
        int32_t d00 = 0, d01 = 0, d10 = 0, d11 = 0, s0 = 0, s1 = 0;
        int32_t acc[4];
        for (b = 0; b < blocks; ++b, w0 += 16, w1 += 16, x0 += Q4_FCT_BLOCK, x1 += Q4_FCT_BLOCK) {
            /* lanes past the row load 0 */
            const mve_pred16_t p = vctp8q((uint32_t)(row_bytes - b * 16));
            const int8x16x2_t wa = q4_fct_unpack(vldrbq_z_s8(w0, p));
            const int8x16x2_t xa = vld2q_s8(x0);
            d00 = q4_fct_dot(d00, &xa, &wa);
            s0 = vaddvaq_s8(vaddvaq_s8(s0, wa.val[0]), wa.val[1]);
            if (n_w == 2) {
                const int8x16x2_t wb = q4_fct_unpack(vldrbq_z_s8(w1, p));
                d01 = q4_fct_dot(d01, &xa, &wb);
                s1 = vaddvaq_s8(vaddvaq_s8(s1, wb.val[0]), wb.val[1]);
                if (n_in == 2) {
                    const int8x16x2_t xb = vld2q_s8(x1);
                    d10 = q4_fct_dot(d10, &xb, &wa);
                    d11 = q4_fct_dot(d11, &xb, &wb);
                }
            } else if (n_in == 2) {
                const int8x16x2_t xb = vld2q_s8(x1);
                d10 = q4_fct_dot(d10, &xb, &wa);
            }
        }
        s0 = q4_floor_shift32(s0, 4);
        s1 = q4_floor_shift32(s1, 4);
        /* modulo 2^32: each acc_k fits int32 (docs/integer-spec.md) */
        acc[0] = (int32_t)((uint32_t)bias[o] + (uint32_t)q4_floor_shift32(d00, 4) -
                           (uint32_t)zp0 * (uint32_t)s0);
        if (n_w == 2) {
            acc[1] = q4_floor_shift32(d01, 4) - zp0 * s1;
            acc[2] = q4_floor_shift32(d10, 4) - zp1 * s0;
            acc[3] = q4_floor_shift32(d11, 4) - zp1 * s1;
        } else {
            acc[1] = q4_floor_shift32(d10, 4) - zp1 * s0;
        }
        output[o] = q4_requantize_terms_clamp(acc, n_in * n_w, terms->multiplier + o, output_size,
                                              terms->shift[o], out_zp, act_min, act_max);
    }
}

#else /* no MVE: the portable kernel (scratch unused) */

int32_t q4_fully_connected_s4_terms_mve_get_buffer_size(int32_t input_size)
{
    (void)input_size;
    return 0;
}

void q4_fully_connected_s4_terms_mve(const q4_fc_params *params, const q4_terms_params *terms,
                                     int32_t input_size, const int8_t *const *inputs,
                                     const uint8_t *const *filters, const int32_t *bias,
                                     int32_t output_size, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_fully_connected_s4_terms(params, terms, input_size, inputs, filters, bias, output_size,
                                output);
}

#endif
