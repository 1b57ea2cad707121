/*
 * q4_conv_transpose_s4_mve.c - transposed convolution, INT4 packed weights, int8-stored
 * activations, for cores with Helium (MVE, Cortex-M55/M85). Bit-exact with
 * q4_conv_transpose_s4.
 *
 * Scheme (docs/kernels.md, "Transposed convolution (and resize)"):
 *  - Per output phase (ry, rx) of the stride (q4_conv_transpose_phase.h), a stride-1
 *    correlation with the phase's sub-kernel (K_p = ny * nx * I <= K MACs per output).
 *  - Per phase and block of Q4_CT_CHANNELS output channels, the sub-kernel rows are gathered
 *    (byte copies for even I) and unpacked into int8 (q4_mve_unpack_row), two channels
 *    interleaved per 16-weight vector, with z_x folded into the bias:
 *    acc = bias - z_x * sum(w) + sum(x * w).
 *  - Per phase row, groups of 4 output pixels (s_w apart in the output): im2col interleaved per
 *    16-byte vector (q4_mve_column_vectors / _staged, z_x outside the input), then the
 *    2-channel x 4-pixel VMLADAVA GEMM of q4_conv_mve.h (Q4_MVE_GEMM).
 *  - Requantization of one channel's 4 pixels per vector: for shift >= 32,
 *    floor((acc * m + 2^(s-1)) / 2^s) = rounding_shift_right(VQDMULH(acc, m), s - 31), + z_y,
 *    clamp, one scatter VSTRB.32; other shifts q4_requantize_clamp per output.
 * A phase without taps (kernel smaller than the stride) holds the requantized bias.
 */
#include "q4_conv_transpose.h"
#include "q4_fixedpoint.h"
#include "q4_kernels.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#include "q4_conv_mve.h"
#include "q4_conv_transpose_phase.h"

#define Q4_CT_CHANNELS 16 /* output channels per unpacked weight block (even) */

/* Scratch: folded biases of a channel block, its unpacked weights, the 4 interleaved columns
 * and a staging column (also the gathered sub-kernel row), sized for K >= K_p. */
int32_t q4_conv_transpose_s4_mve_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k16 = q4_round_up16(filter_dims->h * filter_dims->w * filter_dims->c);
    return 4 * Q4_CT_CHANNELS + (Q4_CT_CHANNELS + Q4_MVE_PIXELS + 1) * k16 + Q4_MVE_LANES;
}

/* The sub-kernel rows of channels oc0 .. oc0 + nb - 1 for phase (ry, rx), unpacked into dst as
 * pairs (pair p's vector b of its first channel at dst + p * 2 * k16 + b * 32, of its second 16
 * bytes further; an odd last channel paired with zeros); folded_bias[r] = bias - z_x * sum(w). */
static void q4_ct_unpack_block(const uint8_t *filter, const q4_dims *filter_dims, int32_t ry,
                               int32_t rx, const q4_conv_params *params, const q4_dims *sub,
                               const int32_t *bias, int32_t oc0, int32_t nb, uint8_t *row,
                               int8_t *dst, int32_t *folded_bias)
{
    const int32_t k = filter_dims->h * filter_dims->w * filter_dims->c;
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t k_p = sub->h * sub->w * sub->c, k16 = q4_round_up16(k_p);
    int32_t r, b;
    for (r = 0; r < nb; ++r) {
        int32_t sum;
        q4_ct_sub_row(filter + (oc0 + r) * row_bytes, filter_dims->w, filter_dims->c, ry, rx,
                      params->stride_h, params->stride_w, sub->h, sub->w, row);
        sum = q4_mve_unpack_row(row, (k_p + 1) / 2, k16,
                                dst + (r / 2) * 2 * k16 + (r % 2) * Q4_MVE_LANES);
        /* modulo 2^32: with the dot product it fits int32 (docs/integer-spec.md) */
        folded_bias[r] = (int32_t)((uint32_t)bias[oc0 + r] -
                                   (uint32_t)params->input_zp * (uint32_t)sum);
    }
    if (nb & 1) {
        int8_t *zero = dst + (nb / 2) * 2 * k16 + Q4_MVE_LANES;
        for (b = 0; b < k16 / Q4_MVE_LANES; ++b) {
            vst1q_s8(zero + b * 2 * Q4_MVE_LANES, vdupq_n_s8(0));
        }
    }
}

/* One channel's 4 sums (pixels `offsets` bytes from out, n of them real) requantized. */
static inline void q4_ct_store(int32x4_t sums, int32_t bias, int32_t multiplier, int32_t shift,
                               const q4_conv_params *params, int8_t *out, uint32x4_t offsets,
                               int32_t n, int32_t pitch)
{
    if (shift >= 32) {
        int32x4_t y = vqdmulhq_n_s32(vaddq_n_s32(sums, bias), multiplier);
        y = vaddq_n_s32(vrshlq_n_s32(y, 31 - shift), params->output_zp);
        y = vminq_s32(vmaxq_s32(y, vdupq_n_s32(params->act_min)), vdupq_n_s32(params->act_max));
        vstrbq_scatter_offset_s32(out, offsets, y);
        return;
    }
    {
        int32_t acc[Q4_MVE_PIXELS], p;
        vst1q_s32(acc, sums);
        for (p = 0; p < n; ++p) {
            out[p * pitch] = q4_requantize_clamp((int32_t)((uint32_t)acc[p] + (uint32_t)bias),
                                                 multiplier, shift, params->output_zp,
                                                 params->act_min, params->act_max);
        }
    }
}

/* The 2-channel x 4-pixel sums over `steps` 16-weight steps: sums[0..3] of the pair's first
 * channel, sums[4..7] of its second. */
static inline void q4_ct_gemm(const int8_t *w, const int8_t *cols, int32_t steps, int32_t *sums)
{
    Q4_MVE_ACCUMULATORS;
    uint32_t n = (uint32_t)steps;
    __asm__ volatile(Q4_MVE_GEMM "vstrw.32 q0, [%[sums]]\n\t"
                                 "vstrw.32 q1, [%[sums], #16]\n\t"
                     : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "+r"(cols), [n] "+r"(n)
                     : [sums] "r"(sums)
                     : "q0", "q1", "q2", "q3", "cc", "memory");
}

void q4_conv_transpose_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                              const q4_dims *input_dims, const int8_t *input,
                              const q4_dims *filter_dims, const uint8_t *filter,
                              const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                              int32_t *scratch)
{
    const int32_t in_c = input_dims->c;
    const int32_t sh = params->stride_h, sw = params->stride_w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t k_max = q4_round_up16(filter_dims->h * filter_dims->w * in_c);
    const int32_t pitch = sw * out_c;
    /* scratch: folded biases, unpacked weights, columns, staging column / gathered row */
    int32_t *folded_bias = scratch;
    int8_t *weights = (int8_t *)(scratch + Q4_CT_CHANNELS);
    int8_t *cols = weights + Q4_CT_CHANNELS * k_max;
    int8_t *staging = cols + Q4_MVE_PIXELS * k_max;
    q4_mve_geometry g;
    int32_t ry, rx;

    g.input = input;
    g.in_h = input_dims->h;
    g.in_w = input_dims->w;
    g.in_c = in_c;
    g.stride_h = 1;
    g.stride_w = 1;
    g.pad_top = 0;
    g.pad_left = 0;
    g.out_w = 0;
    g.zp = vdupq_n_s8((int8_t)params->input_zp);
    q4_mve_fill_spill(staging, k_max, vdupq_n_s8(0)); /* the bytes past K_p stay defined */
    for (ry = 0; ry < sh; ++ry) {
        for (rx = 0; rx < sw; ++rx) {
            q4_ct_axis ay, ax;
            q4_dims sub;
            int32_t steps, oc0;
            q4_ct_axis_init(ry, filter_dims->h, sh, params->pad_top, out_h, &ay);
            q4_ct_axis_init(rx, filter_dims->w, sw, params->pad_left, out_w, &ax);
            if (ay.count == 0 || ax.count == 0) {
                continue;
            }
            if (ay.taps == 0 || ax.taps == 0) {
                q4_ct_bias_only(params, quant, bias, &ay, &ax, out_w, out_c, output);
                continue;
            }
            sub.h = g.k_h = ay.taps;
            sub.w = g.k_w = ax.taps;
            sub.c = in_c;
            g.k = ay.taps * ax.taps * in_c;
            g.k16 = q4_round_up16(g.k);
            steps = g.k16 / Q4_MVE_LANES;
            for (oc0 = 0; oc0 < out_c; oc0 += Q4_CT_CHANNELS) {
                const int32_t nb = out_c - oc0 < Q4_CT_CHANNELS ? out_c - oc0 : Q4_CT_CHANNELS;
                int32_t i, j0, c, oc;
                q4_ct_unpack_block(filter, filter_dims, ry, rx, params, &sub, bias, oc0, nb,
                                   (uint8_t *)staging, weights, folded_bias);
                for (i = 0; i < ay.count; ++i) {
                    const int32_t y0 = ay.base + i;
                    int8_t *row_out = output + (ay.first + i * sh) * out_w * out_c + oc0;
                    for (j0 = 0; j0 < ax.count; j0 += Q4_MVE_PIXELS) {
                        const int32_t n = ax.count - j0 < Q4_MVE_PIXELS ? ax.count - j0
                                                                        : Q4_MVE_PIXELS;
                        /* a missing pixel repeats the last (same window, same output byte) */
                        const uint32x4_t offsets = vmulq_n_u32(
                            vminq_u32(vidupq_n_u32(0, 1), vdupq_n_u32((uint32_t)(n - 1))),
                            (uint32_t)pitch);
                        int8_t *out = row_out + (ax.first + j0 * sw) * out_c;
                        for (c = 0; c < Q4_MVE_PIXELS; ++c) {
                            const int32_t x0 = ax.base + j0 + (c < n ? c : n - 1);
                            if (in_c % Q4_MVE_LANES == 0) {
                                q4_mve_column_vectors(&g, y0, x0, cols + c * Q4_MVE_LANES);
                            } else {
                                q4_mve_column_staged(&g, y0, x0, staging,
                                                     cols + c * Q4_MVE_LANES);
                            }
                        }
                        for (oc = 0; oc < nb; oc += 2) {
                            int32_t sums[2 * Q4_MVE_PIXELS];
                            q4_ct_gemm(weights + oc * g.k16, cols, steps, sums);
                            q4_ct_store(vld1q_s32(sums), folded_bias[oc],
                                        quant->multiplier[oc0 + oc], quant->shift[oc0 + oc],
                                        params, out + oc, offsets, n, pitch);
                            if (oc + 1 < nb) {
                                q4_ct_store(vld1q_s32(sums + Q4_MVE_PIXELS),
                                            folded_bias[oc + 1], quant->multiplier[oc0 + oc + 1],
                                            quant->shift[oc0 + oc + 1], params, out + oc + 1,
                                            offsets, n, pitch);
                            }
                        }
                    }
                }
            }
        }
    }
}

#else /* no MVE: the portable kernel (scratch unused) */

int32_t q4_conv_transpose_s4_mve_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_conv_transpose_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
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
