/*
 * q4_conv_transpose_s4_mve.c - transposed convolution, INT4 packed weights, int8-stored
 * activations, for cores with Helium (MVE, Cortex-M55/M85). Bit-exact with
 * q4_conv_transpose_s4.
 *
 * Scheme (docs/kernels.md, "Transposed convolution (and resize)"):
 *  - Per output phase (ry, rx) of the stride (q4_conv_transpose_phase.h), a stride-1
 *    correlation with the phase's sub-kernel (K_p = ny * nx * I <= K MACs per output).
 *  - Per phase and block of Q4_CT_CHANNELS output channels, the sub-kernel rows are gathered
 *    (q4_ct_sub_row) and unpacked into int8 (q4_mve_unpack_row), two channels interleaved per
 *    16-weight vector, with z_x folded into the bias of each pair's requantization record:
 *    acc = bias - z_x * sum(w) + sum(x * w).
 *  - Per phase row, groups of 4 output pixels (s_w apart in the output): im2col interleaved per
 *    16-byte vector (4-pixel copies or byte gathers when the windows lie inside the input, else
 *    q4_mve_column_vectors / _staged with z_x outside it), then one inline-assembly loop over
 *    the block's pairs: the 2-channel x 4-pixel VMLADAVA GEMM of q4_conv_mve.h (Q4_MVE_GEMM)
 *    and the requantization of each channel's 4 pixels as one vector: for shift >= 32,
 *    floor((acc * m + 2^(s-1)) / 2^s) = rounding_shift_right(VQDMULH(acc, m), s - 31), + z_y,
 *    clamp, one scatter VSTRB.32. A block with a shift below 32: q4_requantize_clamp per output.
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

/* A pair's requantization record, in the order the tile loop loads it (one LDM). */
enum {
    Q4_CT_BIAS_A, /* folded bias, multiplier, 31 - shift of the pair's first channel */
    Q4_CT_MULT_A,
    Q4_CT_RSHIFT_A,
    Q4_CT_BIAS_B, /* the same for its second channel */
    Q4_CT_MULT_B,
    Q4_CT_RSHIFT_B,
    Q4_CT_DELTA_B, /* second channel - first channel (1, or 0 for a block of one channel) */
    Q4_CT_NEXT,    /* the next pair's first channel - this one's */
    Q4_CT_RECORD   /* words per record */
};

/* The sub-kernel rows of the block's channels oc0 .. oc0 + nb - 1 for phase (ry, rx), unpacked
 * into dst as pairs: pair p holds channels a = min(2p, nb - 2) and a + 1 (channel 0 twice when
 * nb == 1; an odd block's last pair overlaps the one before), its vector b of channel a at
 * dst + p * 2 * k16 + b * 32 and of the second channel 16 bytes further. Writes each pair's
 * record, with the bias folded: bias - z_x * sum(w). Returns 1 when every shift of the block is
 * at least 32 (the vector requantization applies). */
static int32_t q4_ct_unpack_block(const uint8_t *filter, const q4_dims *filter_dims, int32_t ry,
                                  int32_t rx, const q4_conv_params *params, const q4_dims *sub,
                                  const int32_t *bias, const q4_quant_params *quant, int32_t oc0,
                                  int32_t nb, uint8_t *row, int8_t *dst, int32_t *records)
{
    const int32_t k = filter_dims->h * filter_dims->w * filter_dims->c;
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t k_p = sub->h * sub->w * sub->c, k16 = q4_round_up16(k_p);
    int32_t c, half, fast = 1;
    for (c = 0; c < nb; c += 2, records += Q4_CT_RECORD, dst += 2 * k16) {
        const int32_t a = c + 2 <= nb ? c : (nb >= 2 ? nb - 2 : 0);
        for (half = 0; half < 2; ++half) {
            const int32_t ch = oc0 + (nb >= 2 ? a + half : a);
            int32_t *rec = records + (Q4_CT_BIAS_B - Q4_CT_BIAS_A) * half;
            int32_t sum;
            sum = q4_mve_unpack_row(q4_ct_sub_row(filter + ch * row_bytes, filter_dims->w,
                                                  filter_dims->c, ry, rx, params->stride_h,
                                                  params->stride_w, sub->h, sub->w, row),
                                    (k_p + 1) / 2, k16, dst + half * Q4_MVE_LANES);
            /* modulo 2^32: with the dot product it fits int32 (docs/integer-spec.md) */
            rec[Q4_CT_BIAS_A] = (int32_t)((uint32_t)bias[ch] -
                                          (uint32_t)params->input_zp * (uint32_t)sum);
            rec[Q4_CT_MULT_A] = quant->multiplier[ch];
            rec[Q4_CT_RSHIFT_A] = 31 - quant->shift[ch];
            fast &= quant->shift[ch] >= 32;
        }
        records[Q4_CT_DELTA_B] = nb >= 2 ? 1 : 0;
        records[Q4_CT_NEXT] = c + 4 <= nb ? 2 : (nb >= 2 ? nb - 2 - a : 0);
    }
    return fast;
}

/* Every 2-channel x 4-pixel tile of a block for one group, requantized and stored: per pair,
 * `steps` GEMM steps over its weights (w, the pairs one after the other) and the group's
 * columns, then its record (records .. records_end) requantizes the two channels' 4 pixels per
 * vector: + folded bias, VQDMULH, VRSHL, + z_y, clamp, one scatter VSTRB.32 (offsets: the
 * pixels' byte offsets from out, the group's first pixel at the pair's first channel). The
 * values used once per pair stay in memory: 4 general registers besides the accumulators, so it
 * builds with a frame pointer (-O0) and a fixed r9. */
#define Q4_CT_DEFINE_TILES(name, gemm)                                                             \
    static void name(const int8_t *cols, uint32_t steps, const int32_t *records,                   \
                     const int32_t *records_end, const int8_t *w, int8_t *out, int32x4_t lo,       \
                     int32x4_t hi, int32x4_t zp, uint32x4_t offsets)                               \
    {                                                                                              \
        Q4_MVE_ACCUMULATORS;                                                                       \
        const int8_t *x;                                                                           \
        uint32_t n;                                                                                \
        __asm__ volatile("0:\n\t"                                                                  \
                         "ldr %[x], %[cols]\n\t"                                                   \
                         "ldr %[n], %[steps]\n\t" gemm "ldr %[n], %[rec]\n\t"                      \
                         "ldm %[n]!, {%[a0], %[a1], %[a2], %[a3], %[b0], %[b1], %[b2], %[b3]}\n\t" \
                         "str %[n], %[rec]\n\t"                                                    \
                         "vadd.i32 q0, q0, %[a0]\n\t"                                              \
                         "vadd.i32 q1, q1, %[a3]\n\t"                                              \
                         "vqdmulh.s32 q0, q0, %[a1]\n\t"                                           \
                         "vqdmulh.s32 q1, q1, %[b0]\n\t"                                           \
                         "vrshl.s32 q0, %[a2]\n\t"                                                 \
                         "vrshl.s32 q1, %[b1]\n\t"                                                 \
                         "vadd.i32 q0, q0, %q[zp]\n\t"                                             \
                         "vadd.i32 q1, q1, %q[zp]\n\t"                                             \
                         "vmax.s32 q0, q0, %q[lo]\n\t"                                             \
                         "vmax.s32 q1, q1, %q[lo]\n\t"                                             \
                         "vmin.s32 q0, q0, %q[hi]\n\t"                                             \
                         "vmin.s32 q1, q1, %q[hi]\n\t"                                             \
                         "vstrb.32 q0, [%[out], %q[off]]\n\t"                                      \
                         "add %[b2], %[b2], %[out]\n\t"                                            \
                         "vstrb.32 q1, [%[b2], %q[off]]\n\t"                                       \
                         "add %[out], %[out], %[b3]\n\t"                                           \
                         "ldr %[a0], %[end]\n\t"                                                   \
                         "cmp %[n], %[a0]\n\t"                                                     \
                         "bne 0b\n\t"                                                              \
                         : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "=&r"(x), [n] "=&r"(n),           \
                           [out] "+r"(out), [rec] "+m"(records)                                    \
                         : [cols] "m"(cols), [steps] "m"(steps), [end] "m"(records_end),           \
                           [lo] "w"(lo), [hi] "w"(hi), [zp] "w"(zp), [off] "w"(offsets)            \
                         : "q0", "q1", "q2", "q3", "cc", "memory");                                \
    }

Q4_CT_DEFINE_TILES(q4_ct_tiles, Q4_MVE_GEMM)
Q4_CT_DEFINE_TILES(q4_ct_tiles1, Q4_MVE_GEMM_1) /* K_p <= 16 */
Q4_CT_DEFINE_TILES(q4_ct_tiles2, Q4_MVE_GEMM_2) /* K_p <= 32 */

/* The same tiles for a block with a shift below 32: each pair's 8 sums requantized one by one
 * (q4_requantize_clamp); n pixels `pitch` bytes apart. */
static void q4_ct_tiles_scalar(const int8_t *cols, int32_t steps, const int32_t *records,
                               const int32_t *records_end, const int8_t *w, int8_t *out,
                               const int32_t *shift, int32_t n, int32_t pitch,
                               const q4_conv_params *params)
{
    int32_t a = 0; /* the pair's first channel, from the block's first */
    for (; records != records_end; records += Q4_CT_RECORD) {
        Q4_MVE_ACCUMULATORS;
        const int8_t *x = cols;
        uint32_t left = (uint32_t)steps;
        int32_t sums[2 * Q4_MVE_PIXELS], half, p;
        __asm__ volatile(Q4_MVE_GEMM "vstrw.32 q0, [%[sums]]\n\t"
                                     "vstrw.32 q1, [%[sums], #16]\n\t"
                         : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "+r"(x), [n] "+r"(left)
                         : [sums] "r"(sums)
                         : "q0", "q1", "q2", "q3", "cc", "memory");
        for (half = 0; half < 2; ++half) {
            const int32_t *r = records + (Q4_CT_BIAS_B - Q4_CT_BIAS_A) * half;
            const int32_t ch = a + half * records[Q4_CT_DELTA_B];
            for (p = 0; p < n; ++p) {
                const uint32_t acc = (uint32_t)sums[half * Q4_MVE_PIXELS + p] +
                                     (uint32_t)r[Q4_CT_BIAS_A];
                out[p * pitch + ch] = q4_requantize_clamp((int32_t)acc, r[Q4_CT_MULT_A],
                                                          shift[ch], params->output_zp,
                                                          params->act_min, params->act_max);
            }
        }
        a += records[Q4_CT_NEXT];
    }
}

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
    int32_t records[Q4_CT_RECORD * Q4_CT_CHANNELS / 2]; /* the block's pair records */
    const int32x4_t lo = vdupq_n_s32(params->act_min), hi = vdupq_n_s32(params->act_max);
    const int32x4_t zp = vdupq_n_s32(params->output_zp);
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
                const int32_t *const records_end = records + Q4_CT_RECORD * ((nb + 1) / 2);
                const int32_t fast = q4_ct_unpack_block(filter, filter_dims, ry, rx, params,
                                                        &sub, bias, quant, oc0, nb,
                                                        (uint8_t *)staging, weights, records);
                int32_t i, j0;
                for (i = 0; i < ay.count; ++i) {
                    const int32_t y0 = ay.base + i;
                    int8_t *row_out = output + (ay.first + i * sh) * out_w * out_c + oc0;
                    for (j0 = 0; j0 < ax.count; j0 += Q4_MVE_PIXELS) {
                        const int32_t n = ax.count - j0 < Q4_MVE_PIXELS ? ax.count - j0
                                                                        : Q4_MVE_PIXELS;
                        int8_t *out = row_out + (ax.first + j0 * sw) * out_c;
                        q4_ct_im2col(&g, y0, ax.base + j0, n, gather, staging, cols);
                        if (!fast) {
                            q4_ct_tiles_scalar(cols, steps, records, records_end, weights, out,
                                               quant->shift + oc0, n, pitch, params);
                        } else {
                            /* a missing pixel repeats the last (same window, same byte) */
                            const uint32x4_t offsets = vmulq_n_u32(
                                vminq_u32(vidupq_n_u32(0, 1), vdupq_n_u32((uint32_t)(n - 1))),
                                (uint32_t)pitch);
                            if (steps == 1) {
                                q4_ct_tiles1(cols, 1, records, records_end, weights, out, lo,
                                             hi, zp, offsets);
                            } else if (steps == 2) {
                                q4_ct_tiles2(cols, 2, records, records_end, weights, out, lo,
                                             hi, zp, offsets);
                            } else {
                                q4_ct_tiles(cols, (uint32_t)steps, records, records_end,
                                            weights, out, lo, hi, zp, offsets);
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
