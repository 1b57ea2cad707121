/*
 * q4_fully_connected_s4_mve.c - fully connected layer, INT4 packed weights, int8-stored
 * activations (4 or 8 bits), for cores with Helium (MVE, Cortex-M55/M85). Bit-exact with
 * q4_fully_connected_s4.
 *
 * Scheme (docs/kernels.md):
 *  - The input is copied once into the scratch, zero-padded to a multiple of 32 bytes, so every
 *    32-weight block can load its 32 activations without reading past the input.
 *  - Per output row, per 16 packed bytes (32 weights): `w << 4` and `w & 0xF0` (two immediate
 *    VBICs) are the even and odd weights times 16 as int8 lanes, a de-interleaving VLD2 gives the
 *    even and odd activations, two VMLADAVA accumulate 16 * sum(x * w) and two VADDVA
 *    16 * sum(w). The row tail is a predicated load (lanes past the row read 0).
 *  - acc = bias + sum(x * w) - z_x * sum(w) (both sums exact: K <= Q4_OPT_MAX_K), then the
 *    portable requantization.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#define Q4_MVE_BLOCK 32 /* weights per 16-byte vector */

static int32_t q4_round_up32(int32_t k)
{
    return (k + Q4_MVE_BLOCK - 1) & ~(Q4_MVE_BLOCK - 1);
}

int32_t q4_fully_connected_s4_mve_get_buffer_size(int32_t input_size)
{
    return q4_round_up32(input_size);
}

/* raw & 0xF0 in every byte (the odd weights times 16), by two immediate VBICs. */
static inline int8x16_t q4_mve_high_nibbles(int8x16_t raw)
{
    const int16x8_t v = vreinterpretq_s16_s8(raw);
    return vreinterpretq_s8_s16(vbicq_n_s16(vbicq_n_s16(v, 0x000F), 0x0F00));
}

void q4_fully_connected_s4_mve(const q4_fc_params *params, const q4_quant_params *quant,
                               int32_t input_size, const int8_t *input, const uint8_t *filter,
                               const int32_t *bias, int32_t output_size, int8_t *output,
                               int32_t *scratch)
{
    const int32_t row_bytes = (input_size + 1) / 2;
    const int32_t blocks = row_bytes / 16, tail = row_bytes % 16;
    const int32_t padded = q4_round_up32(input_size);
    /* locals: the int8 stores below could otherwise alias *params and *quant */
    const int32_t in_zp = params->input_zp, out_zp = params->output_zp;
    const int32_t act_min = params->act_min, act_max = params->act_max;
    const int32_t *const multiplier = quant->multiplier, *const shifts = quant->shift;
    int8_t *const col = (int8_t *)scratch;
    int32_t i, o;

    for (i = 0; i < input_size; i += 16) { /* lanes past the input load 0 */
        vst1q_s8(col + i, vldrbq_z_s8(input + i, vctp8q((uint32_t)(input_size - i))));
    }
    for (; i < padded; i += 16) {
        vst1q_s8(col + i, vdupq_n_s8(0));
    }
    for (o = 0; o < output_size; ++o) {
        const int8_t *w = (const int8_t *)(filter + o * row_bytes);
        const int8_t *x = col;
        int32_t dot16 = 0, sum16 = 0, b;
        for (b = blocks; b > 0; --b, w += 16, x += Q4_MVE_BLOCK) {
            const int8x16_t raw = vldrbq_s8(w);
            const int8x16_t w_even = vshlq_n_s8(raw, 4), w_odd = q4_mve_high_nibbles(raw);
            const int8x16x2_t xs = vld2q_s8(x);
            dot16 = vmladavaq_s8(dot16, xs.val[0], w_even);
            dot16 = vmladavaq_s8(dot16, xs.val[1], w_odd);
            sum16 = vaddvaq_s8(sum16, w_even);
            sum16 = vaddvaq_s8(sum16, w_odd);
        }
        if (tail > 0) { /* lanes past the row load 0 */
            const int8x16_t raw = vldrbq_z_s8(w, vctp8q((uint32_t)tail));
            const int8x16_t w_even = vshlq_n_s8(raw, 4), w_odd = q4_mve_high_nibbles(raw);
            const int8x16x2_t xs = vld2q_s8(x);
            dot16 = vmladavaq_s8(dot16, xs.val[0], w_even);
            dot16 = vmladavaq_s8(dot16, xs.val[1], w_odd);
            sum16 = vaddvaq_s8(sum16, w_even);
            sum16 = vaddvaq_s8(sum16, w_odd);
        }
        output[o] = q4_requantize_clamp(bias[o] + q4_floor_shift32(dot16, 4) -
                                            in_zp * q4_floor_shift32(sum16, 4),
                                        multiplier[o], shifts[o], out_zp, act_min, act_max);
    }
}

#else /* no MVE: the portable kernel (scratch unused) */

int32_t q4_fully_connected_s4_mve_get_buffer_size(int32_t input_size)
{
    (void)input_size;
    return 0;
}

void q4_fully_connected_s4_mve(const q4_fc_params *params, const q4_quant_params *quant,
                               int32_t input_size, const int8_t *input, const uint8_t *filter,
                               const int32_t *bias, int32_t output_size, int8_t *output,
                               int32_t *scratch)
{
    (void)scratch;
    q4_fully_connected_s4(params, quant, input_size, input, filter, bias, output_size, output);
}

#endif
