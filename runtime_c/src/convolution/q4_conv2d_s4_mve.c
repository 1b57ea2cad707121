/*
 * q4_conv2d_s4_mve.c - conv2d, INT4 packed weights, int8-stored activations (4 or 8 bits), for
 * cores with Helium (MVE, Cortex-M55/M85). Bit-exact with q4_conv2d_s4.
 *
 * Scheme (docs/kernels.md):
 *  - The input zero point is folded into a per-channel bias: acc = bias - z_x * sum(w) +
 *    sum(x * w), with padded window positions holding z_x (so they contribute 0).
 *  - im2col: 4 output pixels at a time, each window copied into an int8 column of ceil32(K)
 *    bytes: whole-vector copies for a window inside the input, else predicated copies with z_x
 *    for the taps outside.
 *  - GEMM: one output channel x 4 pixels. One 16-byte load gives 32 weights; `w << 4` and
 *    `w & 0xF0` (two immediate VBICs) are the even and odd weights times 16 as int8 lanes; a
 *    de-interleaving VLD2 of the column gives the matching even and odd activations; VMLADAVA
 *    accumulates 16 products per instruction. The K tail is a predicated weight load (lanes
 *    past the row read 0). The accumulator is 16 * sum(x * w), exact for K <= Q4_OPT_MAX_K.
 *  - Requantization of 4 output channels in one vector: for shift > 32,
 *    floor((acc * m + 2^(s-1)) / 2^s) = rounding_shift_right(VMULH(acc, m), s - 32) (VRSHL);
 *    other shifts use q4_requantize_clamp per lane. The 4 bytes go out with one VSTRB.32.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#define Q4_MVE_PIXELS 4   /* output pixels per im2col group */
#define Q4_MVE_CHANNELS 4 /* output channels per requantization vector */
#define Q4_MVE_BLOCK 32   /* weights per 16-byte vector */

static int32_t q4_round_up32(int32_t k)
{
    return (k + Q4_MVE_BLOCK - 1) & ~(Q4_MVE_BLOCK - 1);
}

int32_t q4_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims, const q4_dims *output_dims)
{
    const int32_t k = filter_dims->h * filter_dims->w * filter_dims->c;
    return 4 * output_dims->c + Q4_MVE_PIXELS * q4_round_up32(k);
}

/* Copies n bytes: whole vectors, then one predicated vector for the rest. */
static inline void q4_mve_copy(int8_t *dst, const int8_t *src, uint32_t n)
{
    uint32_t i;
    for (i = n / 16u; i > 0u; --i, src += 16, dst += 16) {
        vst1q_s8(dst, vld1q_s8(src));
    }
    if ((n & 15u) != 0u) {
        const mve_pred16_t p = vctp8q(n & 15u);
        vstrbq_p_s8(dst, vldrbq_z_s8(src, p), p);
    }
}

static inline void q4_mve_fill(int8_t *dst, uint32_t n, int8x16_t value)
{
    uint32_t i;
    for (i = n / 16u; i > 0u; --i, dst += 16) {
        vst1q_s8(dst, value);
    }
    if ((n & 15u) != 0u) {
        vstrbq_p_s8(dst, value, vctp8q(n & 15u));
    }
}

/* Gathers the window whose top-left input position is (y0, x0) into col[0 .. K), with the
 * zero point where the window leaves the input. */
static void q4_mve_gather(const q4_dims *input_dims, const int8_t *input,
                          const q4_dims *filter_dims, int32_t y0, int32_t x0, int8_t zp,
                          int8_t *col)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const uint32_t run = (uint32_t)(k_w * in_c);
    const int8x16_t fill = vdupq_n_s8(zp);
    int32_t ky, kx;

    for (ky = 0; ky < k_h; ++ky, col += run) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h) {
            q4_mve_fill(col, run, fill);
        } else if (x0 >= 0 && x0 + k_w <= in_w) { /* the whole kernel row is inside */
            q4_mve_copy(col, input + (iy * in_w + x0) * in_c, run);
        } else {
            for (kx = 0; kx < k_w; ++kx) {
                const int32_t ix = x0 + kx;
                if (ix < 0 || ix >= in_w) {
                    q4_mve_fill(col + kx * in_c, (uint32_t)in_c, fill);
                } else {
                    q4_mve_copy(col + kx * in_c, input + (iy * in_w + ix) * in_c,
                                (uint32_t)in_c);
                }
            }
        }
    }
}

/* Copies a window lying wholly inside the input whose kernel rows are `vectors` whole 16-byte
 * vectors long (the common case, I a multiple of 16): no padding or tail handling. */
static inline void q4_mve_copy_window(int8_t *dst, const int8_t *src, int32_t rows,
                                      int32_t vectors, int32_t src_stride)
{
    int32_t r, v;
    for (r = 0; r < rows; ++r) {
        const int8_t *row = src + r * src_stride;
        for (v = 0; v < vectors; ++v, row += 16, dst += 16) {
            vst1q_s8(dst, vld1q_s8(row));
        }
    }
}

/* Sum of the K signed weights of one packed row (row_bytes bytes). */
static int32_t q4_mve_row_sum(const uint8_t *row, int32_t row_bytes)
{
    int32_t sum = 0, i;
    for (i = 0; i < row_bytes; i += 16) {
        const int8x16_t w = vldrbq_z_s8((const int8_t *)row + i, vctp8q((uint32_t)(row_bytes - i)));
        sum = vaddvaq_s8(sum, vshrq_n_s8(vshlq_n_s8(w, 4), 4));
        sum = vaddvaq_s8(sum, vshrq_n_s8(w, 4));
    }
    return sum;
}

/* raw & 0xF0 in every byte (the odd weights times 16), by two immediate VBICs: no constant
 * vector register is needed, which keeps the GEMM loop free of spills. */
static inline int8x16_t q4_mve_high_nibbles(int8x16_t raw)
{
    const int16x8_t v = vreinterpretq_s16_s8(raw);
    return vreinterpretq_s8_s16(vbicq_n_s16(vbicq_n_s16(v, 0x000F), 0x0F00));
}

/* acc += 16 * (even weights . even activations + odd weights . odd activations) of a column:
 * a de-interleaving VLD2 gives the even and odd activations. */
#define Q4_MVE_COLUMN_MAC(acc, col, w_even, w_odd)            \
    do {                                                      \
        const int8x16x2_t x_ = vld2q_s8(col);                 \
        acc = vmladavaq_s8(acc, x_.val[0], w_even);           \
        acc = vmladavaq_s8(acc, x_.val[1], w_odd);            \
    } while (0)

/* 16 * dot products of one packed weight row with the Q4_MVE_PIXELS columns (stride k_pad);
 * out[c * Q4_MVE_PIXELS] receives column c's. */
static inline void q4_mve_dot4(const uint8_t *row, int32_t row_bytes, const int8_t *cols,
                               int32_t k_pad, int32_t *out)
{
    const int8_t *w = (const int8_t *)row;
    const int8_t *col0 = cols, *col1 = cols + k_pad, *col2 = cols + 2 * k_pad;
    const int8_t *col3 = cols + 3 * k_pad;
    const int32_t tail = row_bytes % 16;
    int32_t acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0, b;

    for (b = row_bytes / 16; b > 0; --b) {
        const int8x16_t raw = vldrbq_s8(w);
        const int8x16_t w_even = vshlq_n_s8(raw, 4);
        const int8x16_t w_odd = q4_mve_high_nibbles(raw);
        Q4_MVE_COLUMN_MAC(acc0, col0, w_even, w_odd);
        Q4_MVE_COLUMN_MAC(acc1, col1, w_even, w_odd);
        Q4_MVE_COLUMN_MAC(acc2, col2, w_even, w_odd);
        Q4_MVE_COLUMN_MAC(acc3, col3, w_even, w_odd);
        w += 16;
        col0 += Q4_MVE_BLOCK;
        col1 += Q4_MVE_BLOCK;
        col2 += Q4_MVE_BLOCK;
        col3 += Q4_MVE_BLOCK;
    }
    if (tail > 0) { /* lanes past the row load 0: the activations there do not count */
        const int8x16_t raw = vldrbq_z_s8(w, vctp8q((uint32_t)tail));
        const int8x16_t w_even = vshlq_n_s8(raw, 4);
        const int8x16_t w_odd = q4_mve_high_nibbles(raw);
        Q4_MVE_COLUMN_MAC(acc0, col0, w_even, w_odd);
        Q4_MVE_COLUMN_MAC(acc1, col1, w_even, w_odd);
        Q4_MVE_COLUMN_MAC(acc2, col2, w_even, w_odd);
        Q4_MVE_COLUMN_MAC(acc3, col3, w_even, w_odd);
    }
    out[0] = acc0;
    out[Q4_MVE_PIXELS] = acc1;
    out[2 * Q4_MVE_PIXELS] = acc2;
    out[3 * Q4_MVE_PIXELS] = acc3;
}

void q4_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k_pad = q4_round_up32(k);
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t out_w = output_dims->w, out_c = output_dims->c;
    const int32_t pixels = output_dims->h * out_w;
    /* scratch: the folded biases, then the im2col columns */
    int32_t *folded_bias = scratch;
    int8_t *cols = (int8_t *)(scratch + out_c);
    /* locals: the int8 stores below could otherwise alias *params and *quant */
    const int32_t in_zp = params->input_zp, out_zp = params->output_zp;
    const int32_t act_min = params->act_min, act_max = params->act_max;
    const int32_t stride_h = params->stride_h, stride_w = params->stride_w;
    const int32_t pad_top = params->pad_top, pad_left = params->pad_left;
    const int32_t *const multiplier = quant->multiplier, *const shifts = quant->shift;
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, run = k_w * in_c;
    int32_t p0, oc0, c, oy = 0, ox = 0;

    for (c = 0; c < out_c; ++c) {
        folded_bias[c] = bias[c] - in_zp * q4_mve_row_sum(filter + c * row_bytes, row_bytes);
    }
    for (c = 0; c < Q4_MVE_PIXELS; ++c) { /* K tail: never met by a nonzero weight */
        q4_mve_fill(cols + c * k_pad + k, (uint32_t)(k_pad - k), vdupq_n_s8(0));
    }
    for (p0 = 0; p0 < pixels; p0 += Q4_MVE_PIXELS) {
        const int32_t n_px = pixels - p0 < Q4_MVE_PIXELS ? pixels - p0 : Q4_MVE_PIXELS;
        for (c = 0; c < Q4_MVE_PIXELS; ++c) {
            if (c < n_px) {
                const int32_t y0 = oy * stride_h - pad_top, x0 = ox * stride_w - pad_left;
                if (run % 16 == 0 && y0 >= 0 && y0 + k_h <= in_h && x0 >= 0 &&
                    x0 + k_w <= in_w) {
                    q4_mve_copy_window(cols + c * k_pad, input + (y0 * in_w + x0) * in_c, k_h,
                                       run / 16, in_w * in_c);
                } else {
                    q4_mve_gather(input_dims, input, filter_dims, y0, x0, (int8_t)in_zp,
                                  cols + c * k_pad);
                }
                if (++ox == out_w) {
                    ox = 0;
                    ++oy;
                }
            } else {
                q4_mve_fill(cols + c * k_pad, (uint32_t)k, vdupq_n_s8(0)); /* unused column */
            }
        }
        for (oc0 = 0; oc0 < out_c; oc0 += Q4_MVE_CHANNELS) {
            const int32_t n_ch = out_c - oc0 < Q4_MVE_CHANNELS ? out_c - oc0 : Q4_MVE_CHANNELS;
            const mve_pred16_t valid = vctp32q((uint32_t)n_ch);
            int32_t acc[Q4_MVE_PIXELS][Q4_MVE_CHANNELS]; /* [pixel][channel], n_ch filled */
            int32x4_t shift;
            for (c = 0; c < n_ch; ++c) {
                q4_mve_dot4(filter + (oc0 + c) * row_bytes, row_bytes, cols, k_pad, &acc[0][c]);
            }
            shift = vldrwq_z_s32(shifts + oc0, valid);
            if (vminvq_s32(INT32_MAX, vpselq_s32(shift, vdupq_n_s32(INT32_MAX), valid)) > 32) {
                const int32x4_t bias_v = vldrwq_z_s32(folded_bias + oc0, valid);
                const int32x4_t mult_v = vldrwq_z_s32(multiplier + oc0, valid);
                const int32x4_t right = vsubq_s32(vdupq_n_s32(32), shift);
                for (c = 0; c < n_px; ++c) {
                    int32x4_t y = vshrq_n_s32(vldrwq_z_s32(acc[c], valid), 4);
                    y = vaddq_s32(y, bias_v);
                    y = vrshlq_s32(vmulhq_s32(y, mult_v), right);
                    y = vaddq_n_s32(y, out_zp);
                    y = vminq_s32(vmaxq_s32(y, vdupq_n_s32(act_min)), vdupq_n_s32(act_max));
                    vstrbq_p_s32(output + (p0 + c) * out_c + oc0, y, valid);
                }
            } else {
                int32_t i;
                for (c = 0; c < n_px; ++c) {
                    for (i = 0; i < n_ch; ++i) {
                        output[(p0 + c) * out_c + oc0 + i] = q4_requantize_clamp(
                            folded_bias[oc0 + i] + q4_floor_shift32(acc[c][i], 4),
                            multiplier[oc0 + i], shifts[oc0 + i],
                            out_zp, act_min, act_max);
                    }
                }
            }
        }
    }
}

#else /* no MVE: the portable kernel (scratch unused) */

int32_t q4_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims, const q4_dims *output_dims)
{
    (void)filter_dims;
    (void)output_dims;
    return 0;
}

void q4_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_conv2d_s4(params, quant, input_dims, input, filter_dims, filter, bias, output_dims,
                 output);
}

#endif
