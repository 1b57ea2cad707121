/*
 * q4_fully_connected_s4_dsp.c - fully connected layer, INT4 packed weights, int8-stored
 * activations (4 or 8 bits), for cores with the Arm DSP extension (Cortex-M4/M7/M33/M55).
 * Bit-exact with q4_fully_connected_s4.
 *
 * Scheme (docs/kernels.md):
 *  - The input is widened once into the scratch as int16 pairs of x - z_x (exact: |x - z_x| <=
 *    255), per block of 8 in the order (x0,x4) (x1,x5) (x2,x6) (x3,x7), zero past the input.
 *  - Two output rows per pass share the activation loads. Per row and packed word (8 weights):
 *    `(w << 12 - 4i) & 0xF000F000` is the halfword pair (4096 * w_i, 4096 * w_(i+4)) as signed
 *    int16, so one AND with a shifted operand and one SMLAD add 2 MACs: 4 AND + 4 SMLAD per 8
 *    MACs. The accumulator is 4096 * sum((x - z_x) * w); every 32 words (256 MACs, |sum| <=
 *    2040 * 256, 4096 times that < 2^31) it is divided by 4096 (exact: a multiple) into the
 *    row sum.
 *  - The last partial word of a row is read byte by byte (never past the weights).
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"
#include "q4_fc_dsp.h"

int32_t q4_fully_connected_s4_dsp_get_buffer_size(int32_t input_size)
{
    return 2 * q4_round_up8(input_size);
}

#define Q4_FC_ROWS 2 /* output rows per pass of the C loop (sharing the activation loads) */

/* The dot product of rows row0 and row1 (n_rows = 2) or of row0 alone (n_rows = 1) over words
 * [0, whole), added to sum[0..n_rows). n_rows is a constant at each call. */
static inline void q4_fc_rows2(const uint32_t *pairs, const uint8_t *row0, const uint8_t *row1,
                               int32_t whole, int32_t n_rows, int32_t *sum)
{
    int32_t b0, b;
    for (b0 = 0; b0 < whole; b0 += Q4_FC_DRAIN_WORDS) {
        const int32_t b_end = whole - b0 < Q4_FC_DRAIN_WORDS ? whole : b0 + Q4_FC_DRAIN_WORDS;
        const uint32_t *x = pairs + 4 * b0;
        int32_t a0 = 0, a1 = 0;
        for (b = b0; b < b_end; ++b, x += 4) {
            const uint32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
            a0 = q4_fc_dot8(q4_load_u32(row0 + 4 * b), x0, x1, x2, x3, a0);
            if (n_rows == 2) {
                a1 = q4_fc_dot8(q4_load_u32(row1 + 4 * b), x0, x1, x2, x3, a1);
            }
        }
        /* the partial sums are multiples of 4096: exact division */
        sum[0] += q4_floor_shift32(a0, 12);
        if (n_rows == 2) {
            sum[1] += q4_floor_shift32(a1, 12);
        }
    }
}

void q4_fully_connected_s4_dsp(const q4_fc_params *params, const q4_quant_params *quant,
                               int32_t input_size, const int8_t *input, const uint8_t *filter,
                               const int32_t *bias, int32_t output_size, int8_t *output,
                               int32_t *scratch)
{
    const int32_t row_bytes = (input_size + 1) / 2;
    const int32_t blocks = q4_round_up8(input_size) / Q4_DSP_BLOCK;
    const int32_t whole = row_bytes / 4; /* words of a row that can be loaded whole */
    /* locals: the int8 stores below could otherwise alias *params and *quant */
    const int32_t in_zp = params->input_zp, out_zp = params->output_zp;
    const int32_t act_min = params->act_min, act_max = params->act_max;
    const int32_t *const multiplier = quant->multiplier, *const shifts = quant->shift;
    uint32_t *const pairs = (uint32_t *)scratch;
    int32_t j, o = 0;

    q4_fc_widen(input, input_size, in_zp, pairs);
    if (whole > 0) {
        /* 8 rows per step, 4 per pass: rows {1, 2, 4, 0} from row 0 with stride +row_bytes,
         * rows {6, 5, 3, 7} from row 7 with stride -row_bytes */
        static const int8_t rows[8] = {1, 2, 4, 0, 6, 5, 3, 7};
        for (; o + 8 <= output_size; o += 8) {
            const uint8_t *const row0 = filter + o * row_bytes;
            q4_fc_pass pass[2] = {
                {pairs, row0, row_bytes, pairs + 4 * whole, {0, 0, 0, 0}},
                {pairs, row0 + 7 * row_bytes, -row_bytes, pairs + 4 * whole, {0, 0, 0, 0}}};
            q4_fc_rows4(&pass[0]);
            q4_fc_rows4(&pass[1]);
            for (j = 0; j < 8; ++j) {
                const int32_t r = o + rows[j];
                int32_t sum = pass[j / 4].sum[j % 4];
                if (whole < blocks) { /* the row's last, partial word, read byte by byte */
                    const uint32_t *const x = pairs + 4 * whole;
                    sum += q4_floor_shift32(
                        q4_fc_dot8(q4_fc_word(filter + r * row_bytes, row_bytes, whole), x[0],
                                   x[1], x[2], x[3], 0),
                        12);
                }
                output[r] = q4_requantize_clamp(bias[r] + sum, multiplier[r], shifts[r], out_zp,
                                                act_min, act_max);
            }
        }
    }
    for (; o < output_size; o += Q4_FC_ROWS) { /* the last output_size % 8 rows, two at a time */
        const uint8_t *const row0 = filter + o * row_bytes;
        const uint8_t *const row1 = row0 + row_bytes;
        const int32_t n_rows = o + 1 < output_size ? 2 : 1;
        int32_t sum[Q4_FC_ROWS] = {0, 0};
        if (n_rows == 2) {
            q4_fc_rows2(pairs, row0, row1, whole, 2, sum);
        } else {
            q4_fc_rows2(pairs, row0, row0, whole, 1, sum);
        }
        if (whole < blocks) { /* the row's last, partial word, read byte by byte */
            const uint32_t *const x = pairs + 4 * whole;
            for (j = 0; j < n_rows; ++j) {
                sum[j] += q4_floor_shift32(
                    q4_fc_dot8(q4_fc_word(row0 + j * row_bytes, row_bytes, whole), x[0], x[1],
                               x[2], x[3], 0),
                    12);
            }
        }
        for (j = 0; j < n_rows; ++j) {
            output[o + j] = q4_requantize_clamp(bias[o + j] + sum[j], multiplier[o + j],
                                                shifts[o + j], out_zp, act_min, act_max);
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
                               int32_t input_size, const int8_t *input, const uint8_t *filter,
                               const int32_t *bias, int32_t output_size, int8_t *output,
                               int32_t *scratch)
{
    (void)scratch;
    q4_fully_connected_s4(params, quant, input_size, input, filter, bias, output_size, output);
}

#endif
