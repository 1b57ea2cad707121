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

int32_t q4_fully_connected_s4_dsp_get_buffer_size(int32_t input_size)
{
    return 2 * q4_round_up8(input_size);
}

#define Q4_FC_ROWS 2         /* output rows per pass (sharing the activation loads; 4 spill) */
#define Q4_FC_DRAIN_WORDS 32 /* packed words between drains: 4096 * 2040 * 256 < 2^31 */

/* acc + 4096 * the dot product of the 8 weights of packed word w (nibbles n0..n7) with the
 * pairs x0 = (x0, x4), x1 = (x1, x5), x2 = (x2, x6), x3 = (x3, x7): (w << (12 - 4i)) &
 * 0xF000F000 leaves nibbles i and i + 4 in the top bits of the two halfwords, i.e. the signed
 * halfwords (4096 * w_i, 4096 * w_(i+4)): one AND (with a shifted operand) per SMLAD. */
/* mask & (w << n) in one instruction (GCC emits LSL + AND): a one-instruction asm helper. */
#define Q4_AND_LSL(mask, w, n, out) \
    __asm__("and %0, %1, %2, lsl %3" : "=r"(out) : "r"(mask), "r"(w), "I"(n))

static inline int32_t q4_dot8(uint32_t w, uint32_t x0, uint32_t x1, uint32_t x2, uint32_t x3,
                              int32_t acc)
{
    const uint32_t top = 0xF000F000u;
    uint32_t t0, t1, t2;
    Q4_AND_LSL(top, w, 12, t0);
    Q4_AND_LSL(top, w, 8, t1);
    Q4_AND_LSL(top, w, 4, t2);
    acc = q4_smlad(t0, x0, acc);
    acc = q4_smlad(t1, x1, acc);
    acc = q4_smlad(t2, x2, acc);
    return q4_smlad(w & top, x3, acc);
}

/* x[k] - zp as an int16 halfword, 0 past the input. */
static uint32_t q4_centred(const int8_t *x, int32_t k, int32_t size, int32_t zp)
{
    return k < size ? (uint32_t)((int32_t)x[k] - zp) & 0xFFFFu : 0u;
}

/* Packed word b of a row of row_bytes bytes (bytes past the row read as 0). */
static inline uint32_t q4_fc_word(const uint8_t *row, int32_t row_bytes, int32_t b)
{
    uint32_t w = 0;
    int32_t j;
    if (4 * b + 4 <= row_bytes) {
        return q4_load_u32(row + 4 * b);
    }
    for (j = 0; 4 * b + j < row_bytes; ++j) {
        w |= (uint32_t)row[4 * b + j] << (8 * j);
    }
    return w;
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
    int32_t b, j, o;

    { /* whole blocks: SXTB16 of two words, paired by PKHBT/PKHTB, minus (z_x, z_x) */
        const uint32_t zp_pair = ((uint32_t)in_zp & 0xFFFFu) * 0x10001u;
        for (b = 0; b < input_size / Q4_DSP_BLOCK; ++b) {
            const uint32_t lo = q4_load_u32(input + Q4_DSP_BLOCK * b);
            const uint32_t hi = q4_load_u32(input + Q4_DSP_BLOCK * b + 4);
            const uint32_t l02 = q4_sxtb16(lo), h02 = q4_sxtb16(hi);
            const uint32_t l13 = q4_sxtb16(lo >> 8), h13 = q4_sxtb16(hi >> 8);
            uint32_t *const dst = pairs + 4 * b;
            dst[0] = (uint32_t)__ssub16((int32_t)((l02 & 0xFFFFu) | (h02 << 16)),
                                        (int32_t)zp_pair);
            dst[1] = (uint32_t)__ssub16((int32_t)((l13 & 0xFFFFu) | (h13 << 16)),
                                        (int32_t)zp_pair);
            dst[2] = (uint32_t)__ssub16((int32_t)((l02 >> 16) | (h02 & 0xFFFF0000u)),
                                        (int32_t)zp_pair);
            dst[3] = (uint32_t)__ssub16((int32_t)((l13 >> 16) | (h13 & 0xFFFF0000u)),
                                        (int32_t)zp_pair);
        }
    }
    for (b = input_size / Q4_DSP_BLOCK; b < blocks; ++b) { /* the partial last block */
        for (j = 0; j < 4; ++j) {
            const int32_t k = Q4_DSP_BLOCK * b + j;
            pairs[4 * b + j] = q4_centred(input, k, input_size, in_zp) |
                               (q4_centred(input, k + 4, input_size, in_zp) << 16);
        }
    }
    for (o = 0; o < output_size; o += Q4_FC_ROWS) {
        /* rows past the last one repeat it; their sums are dropped */
        const uint8_t *const row0 = filter + o * row_bytes;
        const uint8_t *const row1 = o + 1 < output_size ? row0 + row_bytes : row0;
        int32_t sum[Q4_FC_ROWS] = {0, 0};
        int32_t b0;
        for (b0 = 0; b0 < whole; b0 += Q4_FC_DRAIN_WORDS) {
            const int32_t b_end = whole - b0 < Q4_FC_DRAIN_WORDS ? whole : b0 + Q4_FC_DRAIN_WORDS;
            const uint32_t *x = pairs + 4 * b0;
            int32_t a0 = 0, a1 = 0;
            for (b = b0; b < b_end; ++b, x += 4) {
                const uint32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
                a0 = q4_dot8(q4_load_u32(row0 + 4 * b), x0, x1, x2, x3, a0);
                a1 = q4_dot8(q4_load_u32(row1 + 4 * b), x0, x1, x2, x3, a1);
            }
            /* the partial sums are multiples of 4096: exact division */
            sum[0] += q4_floor_shift32(a0, 12);
            sum[1] += q4_floor_shift32(a1, 12);
        }
        if (whole < blocks) { /* the row's last, partial word, read byte by byte */
            const uint32_t *const x = pairs + 4 * whole;
            sum[0] += q4_floor_shift32(
                q4_dot8(q4_fc_word(row0, row_bytes, whole), x[0], x[1], x[2], x[3], 0), 12);
            sum[1] += q4_floor_shift32(
                q4_dot8(q4_fc_word(row1, row_bytes, whole), x[0], x[1], x[2], x[3], 0), 12);
        }
        for (j = 0; j < Q4_FC_ROWS && o + j < output_size; ++j) {
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
