/*
 * q4_conv_transpose_s4_dsp.c - transposed convolution, INT4 packed weights, int8-stored
 * activations, for cores with the Arm DSP extension (Cortex-M4/M7/M33/M55). Bit-exact with
 * q4_conv_transpose_s4.
 *
 * Scheme (docs/kernels.md, "Transposed convolution (and resize)"):
 *  - Per output phase (ry, rx) of the stride (q4_conv_transpose_phase.h), a stride-1
 *    correlation with the phase's sub-kernel: the gather form's taps without its divisibility
 *    tests, K_p = ny * nx * I <= K MACs per output instead of K tests.
 *  - Per phase and block of Q4_CT_CHANNELS output channels, the sub-kernel rows are gathered
 *    (q4_ct_sub_row) and unpacked into int16 pairs of 16 * w, two channels interleaved, with
 *    z_x folded into the bias: acc = bias - z_x * sum(w) + sum(x * w), as q4_conv2d_s4_dsp does
 *    (the helpers of q4_conv_dsp.h).
 *  - Per phase row, groups of 4 output pixels (s_w apart in the output): im2col by SXTB16 (one
 *    pass for the 4 pixels when their windows lie inside the input and I is a multiple of 8,
 *    else q4_im2col_fast per pixel, z_x outside the input), then 2 channels x 4 pixels of SMLAD
 *    (q4_dot_2x2).
 *  - Requantization: for shift > 32, floor((acc * m + 2^(s-1)) / 2^s) =
 *    floor((hi + 2^(s-33)) / 2^(s-32)) with hi = floor(acc * m / 2^32). Whole groups of a block
 *    whose shifts are all in (32, 53] take SMMLA with z_y - act_min folded into the rounding,
 *    USAT #8 and a minimum (q4_ct_rq_one); others SMULL (q4_ct_store) or, for shift <= 32,
 *    q4_requantize_clamp.
 * A phase without taps (kernel smaller than the stride) holds the requantized bias.
 */
#include "q4_conv_transpose.h"
#include "q4_fixedpoint.h"
#include "q4_kernels.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_conv_dsp.h"
#include "q4_conv_transpose_phase.h"

#define Q4_CT_CHANNELS 16 /* output channels per unpacked weight block (even) */

/* Scratch: folded biases of a channel block, its unpacked weights, the 4 im2col columns and an
 * int8 row (the gathered sub-kernel row, then the im2col staging row), sized for K >= K_p. */
int32_t q4_conv_transpose_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k = q4_round_up8(filter_dims->h * filter_dims->w * filter_dims->c);
    return 4 * Q4_CT_CHANNELS + (Q4_CT_CHANNELS + Q4_DSP_PIXELS) * 2 * k + k;
}

/* The sub-kernel rows of channels oc0 .. oc0 + nb - 1 for phase (ry, rx), unpacked into dst as
 * [channel pair][block][K-pair][channel of the pair] (an odd last channel paired with zeros);
 * folded_bias[r] = bias[oc0 + r] - z_x * sum(w). `row` holds one gathered packed row. */
static void q4_ct_unpack_block(const uint8_t *filter, const q4_dims *filter_dims, int32_t ry,
                               int32_t rx, const q4_conv_params *params, const q4_dims *sub,
                               const int32_t *bias, int32_t oc0, int32_t nb, uint8_t *row,
                               uint32_t *dst, int32_t *folded_bias)
{
    const int32_t k = filter_dims->h * filter_dims->w * filter_dims->c;
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t k_p = sub->h * sub->w * sub->c, sub_bytes = (k_p + 1) / 2;
    const int32_t blocks = q4_round_up8(k_p) / Q4_DSP_BLOCK;
    int32_t r, b;
    for (r = 0; r < nb + (nb & 1); ++r) {
        uint32_t *out = dst + (r / 2) * blocks * 8 + r % 2;
        int32_t sum16 = 0;
        const uint8_t *sub_row = row;
        if (r < nb) {
            sub_row = q4_ct_sub_row(filter + (oc0 + r) * row_bytes, filter_dims->w,
                                    filter_dims->c, ry, rx, params->stride_h, params->stride_w,
                                    sub->h, sub->w, row);
        }
        for (b = 0; b < blocks; ++b, out += 8) {
            sum16 += q4_unpack8(r < nb ? q4_row_word(sub_row, sub_bytes, b) : 0u, out);
        }
        if (r < nb) {
            folded_bias[r] = bias[oc0 + r] - params->input_zp * q4_floor_shift32(sum16, 4);
        }
    }
}

/* floor(a * b / 2^32): the high word of the 64-bit product (SMULL). */
static inline int32_t q4_ct_mul_high(int32_t a, int32_t b)
{
    return (int32_t)(uint32_t)((uint64_t)((int64_t)a * b) >> 32);
}

/* Requantizes and stores one channel's n accumulators (16 * sum(x * w)), `pitch` bytes apart. */
static inline void q4_ct_store(const int32_t *acc16, int32_t n, int32_t bias,
                               int32_t multiplier, int32_t shift, const q4_conv_params *params,
                               int8_t *out, int32_t pitch)
{
    const int32_t zp = params->output_zp, lo = params->act_min, hi = params->act_max;
    int32_t c;
    if (shift > 32) {
        const int32_t right = shift - 32, round = (int32_t)1 << (shift - 33);
        for (c = 0; c < n; ++c) {
            const int32_t acc = bias + q4_floor_shift32(acc16[c], 4);
            int32_t y = zp + q4_floor_shift32(q4_ct_mul_high(acc, multiplier) + round, right);
            y = y < lo ? lo : y;
            y = y > hi ? hi : y;
            out[c * pitch] = (int8_t)y;
        }
        return;
    }
    for (c = 0; c < n; ++c) {
        out[c * pitch] = q4_requantize_clamp(bias + q4_floor_shift32(acc16[c], 4), multiplier,
                                             shift, zp, lo, hi);
    }
}

/* acc + floor(a * b / 2^32): SMMLA (GCC does not emit it from C). */
static inline int32_t q4_ct_smmla(int32_t a, int32_t b, int32_t acc)
{
    int32_t result;
    __asm__("smmla %0, %1, %2, %3" : "=r"(result) : "r"(a), "r"(b), "r"(acc));
    return result;
}

/* A channel's requantization constants for shifts in (32, 53]: with right = shift - 32,
 * floor((hi + 2^(right-1)) / 2^right) + z_y - act_min = floor((hi + round) / 2^right) for
 * round = 2^(right-1) + (z_y - act_min) * 2^right (|round| < 2^30), so USAT #8 and a minimum
 * with act_max - act_min clamp it, and act_min is added back. */
typedef struct {
    int32_t bias; /* the folded bias */
    int32_t multiplier;
    int32_t round;
    int32_t right;
} q4_ct_rq;

#define Q4_CT_RQ_MAX_SHIFT 53

/* One output from 16 * sum(x * w) with the constants r; span = act_max - act_min. */
static inline int8_t q4_ct_rq_one(int32_t acc16, const q4_ct_rq *r, int32_t span, int32_t lo)
{
    const int32_t acc = r->bias + q4_floor_shift32(acc16, 4);
    int32_t u = (int32_t)__usat(
        q4_floor_shift32(q4_ct_smmla(acc, r->multiplier, r->round), r->right), 8);
    u = u < span ? u : span;
    return (int8_t)(u + lo);
}

/* im2col of the 4 output pixels of a phase row from window left x0 (n real, a missing one
 * repeats the last; window top y0) into the interleaved columns: when I is a multiple of 8 and
 * all 4 windows lie inside the input, per tap row and 8 bytes the 4 pixels' words widened
 * straight from the input; else one q4_im2col_fast per pixel. */
static void q4_ct_im2col_group(const q4_dims *input_dims, const int8_t *input,
                               const q4_dims *sub, int32_t y0, int32_t x0, int32_t n,
                               int32_t zp, int8_t *stage, uint32_t *cols)
{
    const int32_t in_w = input_dims->w, in_c = input_dims->c;
    int32_t c;
    if (n == Q4_DSP_PIXELS && in_c % Q4_DSP_BLOCK == 0 && y0 >= 0 && x0 >= 0 &&
        y0 + sub->h <= input_dims->h && x0 + Q4_DSP_PIXELS - 1 + sub->w <= in_w) {
        const int32_t run = sub->w * in_c, row_step = in_w * in_c;
        const int8_t *src = input + (y0 * in_w + x0) * in_c;
        int32_t ky, j;
        for (ky = 0; ky < sub->h; ++ky, src += row_step) {
            for (j = 0; j < run; j += Q4_DSP_BLOCK, cols += 4 * Q4_DSP_PIXELS) {
                const int8_t *s = src + j;
                q4_widen8(q4_load_u32(s), q4_load_u32(s + 4), cols);
                q4_widen8(q4_load_u32(s + in_c), q4_load_u32(s + in_c + 4), cols + 1);
                q4_widen8(q4_load_u32(s + 2 * in_c), q4_load_u32(s + 2 * in_c + 4), cols + 2);
                q4_widen8(q4_load_u32(s + 3 * in_c), q4_load_u32(s + 3 * in_c + 4), cols + 3);
            }
        }
        return;
    }
    for (c = 0; c < Q4_DSP_PIXELS; ++c) {
        q4_im2col_fast(input_dims, input, sub, y0, x0 + (c < n ? c : n - 1), zp, stage, cols + c);
    }
}

void q4_conv_transpose_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                              const q4_dims *input_dims, const int8_t *input,
                              const q4_dims *filter_dims, const uint8_t *filter,
                              const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                              int32_t *scratch)
{
    const int32_t in_c = input_dims->c;
    const int32_t sh = params->stride_h, sw = params->stride_w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t k_max = q4_round_up8(filter_dims->h * filter_dims->w * in_c);
    const int32_t zp = params->input_zp, pitch = sw * out_c;
    /* scratch: folded biases and unpacked weights of one channel block, the 4 columns, the int8
     * row (gathered sub-kernel row, then the im2col staging row when I is not a multiple of 8) */
    int32_t *folded_bias = scratch;
    uint32_t *weights = (uint32_t *)(scratch + Q4_CT_CHANNELS);
    uint32_t *cols = weights + Q4_CT_CHANNELS * (k_max / 2);
    int8_t *stage = (int8_t *)(cols + Q4_DSP_PIXELS * (k_max / 2));
    const int32_t lo = params->act_min, span = params->act_max - params->act_min;
    q4_ct_rq rq[Q4_CT_CHANNELS]; /* the block's fused requantization constants */
    int32_t ry, rx;

    for (ry = 0; ry < sh; ++ry) {
        for (rx = 0; rx < sw; ++rx) {
            q4_ct_axis ay, ax;
            q4_dims sub;
            int32_t k_pad, blocks, oc0;
            q4_ct_axis_init(ry, filter_dims->h, sh, params->pad_top, out_h, &ay);
            q4_ct_axis_init(rx, filter_dims->w, sw, params->pad_left, out_w, &ax);
            if (ay.count == 0 || ax.count == 0) {
                continue;
            }
            if (ay.taps == 0 || ax.taps == 0) {
                q4_ct_bias_only(params, quant, bias, &ay, &ax, out_w, out_c, output);
                continue;
            }
            sub.h = ay.taps;
            sub.w = ax.taps;
            sub.c = in_c;
            k_pad = q4_round_up8(ay.taps * ax.taps * in_c);
            blocks = k_pad / Q4_DSP_BLOCK;
            for (oc0 = 0; oc0 < out_c; oc0 += Q4_CT_CHANNELS) {
                const int32_t nb = out_c - oc0 < Q4_CT_CHANNELS ? out_c - oc0 : Q4_CT_CHANNELS;
                int32_t i, j0, oc, fused = 1;
                q4_ct_unpack_block(filter, filter_dims, ry, rx, params, &sub, bias, oc0, nb,
                                   (uint8_t *)stage, weights, folded_bias);
                for (oc = 0; oc < nb; ++oc) {
                    const int32_t shift = quant->shift[oc0 + oc];
                    const int32_t right = shift - 32;
                    fused &= shift > 32 && shift <= Q4_CT_RQ_MAX_SHIFT;
                    if (shift > 32 && shift <= Q4_CT_RQ_MAX_SHIFT) {
                        rq[oc].bias = folded_bias[oc];
                        rq[oc].multiplier = quant->multiplier[oc0 + oc];
                        rq[oc].right = right;
                        rq[oc].round = ((int32_t)1 << (right - 1)) +
                                       (params->output_zp - params->act_min) *
                                           ((int32_t)1 << right);
                    }
                }
                for (i = 0; i < ay.count; ++i) {
                    const int32_t y0 = ay.base + i;
                    int8_t *row_out = output + (ay.first + i * sh) * out_w * out_c + oc0;
                    for (j0 = 0; j0 < ax.count; j0 += Q4_DSP_PIXELS) {
                        const int32_t n = ax.count - j0 < Q4_DSP_PIXELS ? ax.count - j0
                                                                        : Q4_DSP_PIXELS;
                        int8_t *out = row_out + (ax.first + j0 * sw) * out_c;
                        q4_ct_im2col_group(input_dims, input, &sub, y0, ax.base + j0, n, zp,
                                           stage, cols);
                        for (oc = 0; oc < nb; oc += 2) {
                            const uint32_t *w = weights + oc * (k_pad / 2);
                            int32_t acc[2 * Q4_DSP_PIXELS];
                            q4_dot_2x2(w, cols, blocks, acc);
                            q4_dot_2x2(w, cols + 2, blocks, acc + 4);
                            /* acc: channel a pixels 0 1, channel b pixels 0 1, a 2 3, b 2 3 */
                            if (fused && n == Q4_DSP_PIXELS && oc + 1 < nb) {
                                const q4_ct_rq *ra = rq + oc, *rb = rq + oc + 1;
                                int8_t *o = out + oc;
                                o[0] = q4_ct_rq_one(acc[0], ra, span, lo);
                                o[1] = q4_ct_rq_one(acc[2], rb, span, lo);
                                o[pitch] = q4_ct_rq_one(acc[1], ra, span, lo);
                                o[pitch + 1] = q4_ct_rq_one(acc[3], rb, span, lo);
                                o[2 * pitch] = q4_ct_rq_one(acc[4], ra, span, lo);
                                o[2 * pitch + 1] = q4_ct_rq_one(acc[6], rb, span, lo);
                                o[3 * pitch] = q4_ct_rq_one(acc[5], ra, span, lo);
                                o[3 * pitch + 1] = q4_ct_rq_one(acc[7], rb, span, lo);
                                continue;
                            }
                            {
                                const int32_t a[4] = {acc[0], acc[1], acc[4], acc[5]};
                                const int32_t b[4] = {acc[2], acc[3], acc[6], acc[7]};
                                q4_ct_store(a, n, folded_bias[oc], quant->multiplier[oc0 + oc],
                                            quant->shift[oc0 + oc], params, out + oc, pitch);
                                if (oc + 1 < nb) {
                                    q4_ct_store(b, n, folded_bias[oc + 1],
                                                quant->multiplier[oc0 + oc + 1],
                                                quant->shift[oc0 + oc + 1], params,
                                                out + oc + 1, pitch);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#else /* no DSP extension: the portable kernel (scratch unused) */

int32_t q4_conv_transpose_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_conv_transpose_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                              const q4_dims *input_dims, const int8_t *input,
                              const q4_dims *filter_dims, const uint8_t *filter,
                              const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                              int32_t *scratch)
{
    (void)scratch;
    q4_conv_transpose_s4(params, quant, input_dims, input, filter_dims, filter, bias,
                         output_dims, output);
}

#endif
