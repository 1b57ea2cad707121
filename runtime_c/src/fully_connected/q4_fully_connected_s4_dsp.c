/*
 * q4_fully_connected_s4_dsp.c - fully connected layer, INT4 packed weights, int8-stored
 * activations (4 or 8 bits), for cores with the Arm DSP extension (Cortex-M4/M7/M33/M55).
 * Bit-exact with q4_fully_connected_s4.
 *
 * Scheme (docs/kernels.md):
 *  - The input is widened once into the scratch as int16 pairs of x - z_x (exact: |x - z_x| <=
 *    255), per block of 8 in the order (x0,x4) (x2,x6) (x1,x5) (x3,x7), zero past the input.
 *  - Per output row, per packed word (8 weights): `(w << 4) & 0xF0F0F0F0` and `w & 0xF0F0F0F0`
 *    hold the even and odd weights times 16 as signed bytes; SXTB16 of each, and of each shifted
 *    by 8, gives the pairs (16w0,16w4) (16w2,16w6) (16w1,16w5) (16w3,16w7) that match the
 *    input; four SMLAD per 8 MACs. The accumulator is 16 * sum((x - z_x) * w), exact for
 *    K <= Q4_OPT_MAX_K (16 * 255 * 8 * 65536 < 2^31), and its shift by 4 is exact.
 *  - The last partial word of a row is read byte by byte (never past the weights).
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"

int32_t q4_fully_connected_s4_dsp_get_buffer_size(int32_t input_size)
{
    return 2 * q4_round_up8(input_size);
}

/* acc + 16 * the dot product of the 8 weights of packed word w with the widened pairs x0..x3:
 * (w << 4) & 0xF0F0F0F0 holds 16*w0 16*w2 16*w4 16*w6, w & 0xF0F0F0F0 16*w1 16*w3 16*w5 16*w7. */
static inline int32_t q4_dot8(uint32_t w, uint32_t x0, uint32_t x1, uint32_t x2, uint32_t x3,
                              int32_t acc)
{
    const uint32_t even = (w << 4) & 0xF0F0F0F0u, odd = w & 0xF0F0F0F0u;
    acc = q4_smlad(q4_sxtb16(even), x0, acc);
    acc = q4_smlad(q4_sxtb16(even >> 8), x1, acc);
    acc = q4_smlad(q4_sxtb16(odd), x2, acc);
    return q4_smlad(q4_sxtb16(odd >> 8), x3, acc);
}

/* x[k] - zp as an int16 halfword, 0 past the input. */
static uint32_t q4_centred(const int8_t *x, int32_t k, int32_t size, int32_t zp)
{
    return k < size ? (uint32_t)((int32_t)x[k] - zp) & 0xFFFFu : 0u;
}

void q4_fully_connected_s4_dsp(const q4_fc_params *params, const q4_quant_params *quant,
                               int32_t input_size, const int8_t *input,
                               const uint8_t *filter, const int32_t *bias,
                               int32_t output_size, int8_t *output, int32_t *scratch)
{
    /* the input pair order of one block, matching the weight pairs */
    static const int8_t pair_lo[4] = {0, 2, 1, 3};
    const int32_t row_bytes = (input_size + 1) / 2;
    const int32_t blocks = q4_round_up8(input_size) / Q4_DSP_BLOCK;
    const int32_t whole = row_bytes / 4; /* words of a row that can be loaded whole */
    /* locals: the int8 stores below could otherwise alias *params and *quant */
    const int32_t in_zp = params->input_zp, out_zp = params->output_zp;
    const int32_t act_min = params->act_min, act_max = params->act_max;
    const int32_t *const multiplier = quant->multiplier, *const shifts = quant->shift;
    uint32_t *const pairs = (uint32_t *)scratch;
    int32_t b, j, o;

    for (b = 0; b < blocks; ++b) {
        for (j = 0; j < 4; ++j) {
            const int32_t k = Q4_DSP_BLOCK * b + pair_lo[j];
            pairs[4 * b + j] = q4_centred(input, k, input_size, in_zp)
                             | (q4_centred(input, k + 4, input_size, in_zp) << 16);
        }
    }
    for (o = 0; o < output_size; o += 2) {
        /* two rows per pass share the activation loads; an odd last row pairs with itself */
        const uint8_t *const row0 = filter + o * row_bytes;
        const uint8_t *const row1 = o + 1 < output_size ? row0 + row_bytes : row0;
        int32_t acc[2] = {0, 0};
        const uint32_t *x = pairs;
        for (b = 0; b < whole; ++b, x += 4) {
            const uint32_t w0 = q4_load_u32(row0 + 4 * b), w1 = q4_load_u32(row1 + 4 * b);
            const uint32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
            acc[0] = q4_dot8(w0, x0, x1, x2, x3, acc[0]);
            acc[1] = q4_dot8(w1, x0, x1, x2, x3, acc[1]);
        }
        if (whole < blocks) { /* the row's last, partial word, read byte by byte */
            uint32_t w0 = 0, w1 = 0;
            for (j = 0; 4 * whole + j < row_bytes; ++j) {
                w0 |= (uint32_t)row0[4 * whole + j] << (8 * j);
                w1 |= (uint32_t)row1[4 * whole + j] << (8 * j);
            }
            acc[0] = q4_dot8(w0, x[0], x[1], x[2], x[3], acc[0]);
            acc[1] = q4_dot8(w1, x[0], x[1], x[2], x[3], acc[1]);
        }
        for (j = 0; j < 2 && o + j < output_size; ++j) {
            output[o + j] = q4_requantize_clamp(bias[o + j] + q4_floor_shift32(acc[j], 4),
                                                multiplier[o + j], shifts[o + j], out_zp,
                                                act_min, act_max);
        }
    }
}

#else /* no DSP extension: the portable kernel (scratch unused) */

int32_t q4_fully_connected_s4_dsp_get_buffer_size(int32_t input_size)
{
    (void)input_size;
    return 0;
}

void q4_fully_connected_s4_dsp(const q4_fc_params *params, const q4_quant_params *quant,
                               int32_t input_size, const int8_t *input,
                               const uint8_t *filter, const int32_t *bias,
                               int32_t output_size, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_fully_connected_s4(params, quant, input_size, input, filter, bias, output_size, output);
}

#endif
