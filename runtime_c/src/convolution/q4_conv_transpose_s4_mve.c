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

/* Scratch: the unpacked weights of a channel block, the 4 interleaved columns, a staging
 * column (also the gathered sub-kernel row) and a gather-offset table, sized for K >= K_p. */
int32_t q4_conv_transpose_s4_mve_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k16 = q4_round_up16(filter_dims->h * filter_dims->w * filter_dims->c);
    return (Q4_CT_CHANNELS + Q4_MVE_PIXELS + 2) * k16 + Q4_MVE_LANES;
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

/* The sums of every channel pair of a block with one group's columns: per pair `steps` GEMM
 * steps over its weights (w, the pairs one after the other), channel 2p's 4 pixels then 2p+1's
 * stored at sums + 8p (so channel c, pixel p at sums[4c + p]), up to sums_end. The values used
 * once per pair stay in memory: 4 general registers besides the accumulators, so it builds with
 * a frame pointer (-O0) and a fixed r9. */
#define Q4_CT_DEFINE_PAIRS(name, gemm)                                                       \
    static void name(const int8_t *w, const int8_t *cols, uint32_t steps, int32_t *sums,     \
                     const int32_t *sums_end)                                                \
    {                                                                                        \
        Q4_MVE_ACCUMULATORS;                                                                 \
        const int8_t *x;                                                                     \
        uint32_t n;                                                                          \
        __asm__ volatile(                                                                    \
            "0:\n\t"                                                                         \
            "ldr %[x], %[cols]\n\t"                                                          \
            "ldr %[n], %[steps]\n\t" gemm "vstrw.32 q1, [%[s], #16]\n\t"                     \
            "vstrw.32 q0, [%[s]], #32\n\t"                                                   \
            "ldr %[n], %[end]\n\t"                                                           \
            "cmp %[s], %[n]\n\t"                                                             \
            "bne 0b\n\t"                                                                     \
            : Q4_MVE_ACC_OPERANDS, [w] "+&r"(w), [x] "=&r"(x), [n] "=&r"(n), [s] "+&r"(sums) \
            : [cols] "m"(cols), [steps] "m"(steps), [end] "m"(sums_end)                      \
            : "q0", "q1", "q2", "q3", "cc", "memory");                                       \
    }

Q4_CT_DEFINE_PAIRS(q4_ct_pairs, Q4_MVE_GEMM)
Q4_CT_DEFINE_PAIRS(q4_ct_pairs1, Q4_MVE_GEMM_1) /* K_p <= 16 */
Q4_CT_DEFINE_PAIRS(q4_ct_pairs2, Q4_MVE_GEMM_2) /* K_p <= 32 */

/* The 4 interleaved columns of the group of output pixels j0 .. j0 + 3 of a phase row (window
 * top y0, the first one's left x0; n of them real, a missing one repeats the last). Windows
 * inside the input: whole-vector taps copied 4 pixels at a time (q4_mve_group_copy), other taps
 * gathered through the offset table (gather: NULL when it does not fit 8 bits); else one column
 * at a time with z_x outside the input. */
static void q4_ct_im2col(const q4_mve_geometry *g, int32_t y0, int32_t x0, int32_t n,
                         const uint8_t *gather, int8_t *staging, int8_t *cols)
{
    const int32_t in_c = g->in_c, in_w = g->in_w;
    int32_t c, v;
    if (n == Q4_MVE_PIXELS && y0 >= 0 && y0 + g->k_h <= g->in_h && x0 >= 0 &&
        x0 + Q4_MVE_PIXELS - 1 + g->k_w <= in_w) {
        const int8_t *base = g->input + (y0 * in_w + x0) * in_c;
        if (in_c % Q4_MVE_LANES == 0) {
            q4_mve_group_copy(base, in_w * in_c, in_c, g->k_h, g->k_w * in_c / Q4_MVE_LANES,
                              cols);
            return;
        }
        if (gather != NULL) {
            for (v = 0; v < g->k16 / Q4_MVE_LANES; ++v, cols += Q4_MVE_GROUP_STRIDE) {
                const uint8x16_t off = vld1q_u8(gather + v * Q4_MVE_LANES);
                vst1q_s8(cols, vldrbq_gather_offset_s8(base, off));
                vst1q_s8(cols + Q4_MVE_LANES, vldrbq_gather_offset_s8(base + in_c, off));
                vst1q_s8(cols + 2 * Q4_MVE_LANES, vldrbq_gather_offset_s8(base + 2 * in_c, off));
                vst1q_s8(cols + 3 * Q4_MVE_LANES, vldrbq_gather_offset_s8(base + 3 * in_c, off));
            }
            return;
        }
    }
    for (c = 0; c < Q4_MVE_PIXELS; ++c) {
        const int32_t x = x0 + (c < n ? c : n - 1);
        if (in_c % Q4_MVE_LANES == 0) {
            q4_mve_column_vectors(g, y0, x, cols + c * Q4_MVE_LANES);
        } else {
            q4_mve_column_staged(g, y0, x, staging, cols + c * Q4_MVE_LANES);
        }
    }
}

/* Requantizes a block's sums (channel c, pixel p at sums[4c + p]) for n pixels `pitch` bytes
 * apart from out: 4 channels per vector (a gather load of the 4 channels' sums), for blocks
 * whose shifts are all >= 32: rounding_shift_right(VQDMULH(acc, m), s - 31), + z_y, clamp, a
 * 4-byte store; other blocks per output with q4_requantize_clamp. */
static void q4_ct_requantize(const int32_t *sums, int32_t nb, int32_t n, const int32_t *bias,
                             const int32_t *multiplier, const int32_t *rshift, int32_t fast,
                             const int32_t *shift, const q4_conv_params *params, int8_t *out,
                             int32_t pitch)
{
    const int32_t zp = params->output_zp, lo = params->act_min, hi = params->act_max;
    int32_t c, p;
    if (fast) {
        const uint32x4_t channel_words = vidupq_n_u32(0, 4); /* byte offsets 0, 16, 32, 48 */
        const uint32x4_t offsets = vmulq_n_u32(channel_words, 4);
        for (c = 0; c < nb; c += 4) {
            const mve_pred16_t pred = vctp32q((uint32_t)(nb - c));
            const int32x4_t b = vld1q_s32(bias + c), m = vld1q_s32(multiplier + c);
            const int32x4_t r = vld1q_s32(rshift + c);
            for (p = 0; p < n; ++p) {
                int32x4_t y = vldrwq_gather_offset_s32(sums + 4 * c + p, offsets);
                y = vrshlq_s32(vqdmulhq_s32(vaddq_s32(y, b), m), r);
                y = vminq_s32(vmaxq_s32(vaddq_n_s32(y, zp), vdupq_n_s32(lo)), vdupq_n_s32(hi));
                vstrbq_p_s32(out + p * pitch + c, y, pred);
            }
        }
        return;
    }
    for (c = 0; c < nb; ++c) {
        for (p = 0; p < n; ++p) {
            out[p * pitch + c] = q4_requantize_clamp(
                (int32_t)((uint32_t)sums[4 * c + p] + (uint32_t)bias[c]), multiplier[c],
                shift[c], zp, lo, hi);
        }
    }
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
    /* scratch: unpacked weights, columns, staging column / gathered row, gather offsets */
    int8_t *weights = (int8_t *)scratch;
    int8_t *cols = weights + Q4_CT_CHANNELS * k_max;
    int8_t *staging = cols + Q4_MVE_PIXELS * k_max;
    uint8_t *offset_table = (uint8_t *)(staging + k_max + Q4_MVE_LANES);
    /* per block: folded biases, multipliers, 31 - shifts (zero past the block) */
    int32_t folded_bias[Q4_CT_CHANNELS] = {0}, multiplier[Q4_CT_CHANNELS] = {0};
    int32_t rshift[Q4_CT_CHANNELS] = {0}, sums[Q4_MVE_PIXELS * Q4_CT_CHANNELS];
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
            const uint8_t *gather;
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
            gather = in_c % Q4_MVE_LANES ? q4_mve_gather_offsets(&g, offset_table) : NULL;
            for (oc0 = 0; oc0 < out_c; oc0 += Q4_CT_CHANNELS) {
                const int32_t nb = out_c - oc0 < Q4_CT_CHANNELS ? out_c - oc0 : Q4_CT_CHANNELS;
                const int32_t *const sums_end = sums + 2 * Q4_MVE_PIXELS * ((nb + 1) / 2);
                int32_t i, j0, c, fast = 1;
                q4_ct_unpack_block(filter, filter_dims, ry, rx, params, &sub, bias, oc0, nb,
                                   (uint8_t *)staging, weights, folded_bias);
                for (c = 0; c < nb; ++c) {
                    multiplier[c] = quant->multiplier[oc0 + c];
                    rshift[c] = 31 - quant->shift[oc0 + c];
                    fast &= quant->shift[oc0 + c] >= 32;
                }
                for (i = 0; i < ay.count; ++i) {
                    const int32_t y0 = ay.base + i;
                    int8_t *row_out = output + (ay.first + i * sh) * out_w * out_c + oc0;
                    for (j0 = 0; j0 < ax.count; j0 += Q4_MVE_PIXELS) {
                        const int32_t n = ax.count - j0 < Q4_MVE_PIXELS ? ax.count - j0
                                                                        : Q4_MVE_PIXELS;
                        q4_ct_im2col(&g, y0, ax.base + j0, n, gather, staging, cols);
                        if (steps == 1) {
                            q4_ct_pairs1(weights, cols, 1, sums, sums_end);
                        } else if (steps == 2) {
                            q4_ct_pairs2(weights, cols, 2, sums, sums_end);
                        } else {
                            q4_ct_pairs(weights, cols, (uint32_t)steps, sums, sums_end);
                        }
                        q4_ct_requantize(sums, nb, n, folded_bias, multiplier, rshift, fast,
                                         quant->shift + oc0, params,
                                         row_out + (ax.first + j0 * sw) * out_c, pitch);
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
