/*
 * q4_conv2d_s4_mve.c - conv2d, INT4 packed weights, int8-stored activations (4 or 8 bits), for
 * cores with Helium (MVE, Cortex-M55/M85). Bit-exact with q4_conv2d_s4.
 *
 * Scheme (docs/kernels.md):
 *  - The input zero point is folded into a per-channel bias: acc = bias - z_x * sum(w) +
 *    sum(x * w), with padded window positions holding z_x (so they contribute 0).
 *  - im2col: 4 output pixels at a time, each window gathered into an int8 column of ceil32(K)
 *    bytes (padding = z_x) with predicated vector copies.
 *  - GEMM: one output channel x 4 pixels. One 16-byte load gives 32 weights; `w << 4` and
 *    `w & 0xF0` are the even and odd weights times 16 as int8 lanes; a de-interleaving VLD2 of
 *    the column gives the matching even and odd activations; VMLADAVA accumulates 16 products
 *    per instruction. The K tail is a predicated weight load (lanes past the row read 0). The
 *    accumulator is 16 * sum(x * w), exact for K <= Q4_OPT_MAX_K.
 *  - Requantization of the 4 pixels in one vector: for shift > 32,
 *    floor((acc * m + 2^(s-1)) / 2^s) = rounding_shift_right(VMULH(acc, m), s - 32) (VRSHL);
 *    other shifts use q4_requantize_clamp per lane. The 4 bytes are scattered with VSTRB.
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

int32_t q4_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims, const q4_dims *output_dims)
{
    const int32_t k = filter_dims->h * filter_dims->w * filter_dims->c;
    return 4 * output_dims->c + q4_round_up32(k);
}

static void q4_mve_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n > 0; n -= 16, src += 16, dst += 16) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        vstrbq_p_s8(dst, vldrbq_z_s8(src, p), p);
    }
}

static void q4_mve_fill(int8_t *dst, int32_t n, int8x16_t value)
{
    for (; n > 0; n -= 16, dst += 16) {
        vstrbq_p_s8(dst, value, vctp8q((uint32_t)n));
    }
}

/* Gathers the (zero-point padded) window of output pixel (oy, ox) into col[0 .. K). */
static void q4_mve_gather(const q4_conv_params *params, const q4_dims *input_dims,
                          const int8_t *input, const q4_dims *filter_dims, int32_t oy,
                          int32_t ox, int8_t *col)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t y0 = oy * params->stride_h - params->pad_top;
    const int32_t x0 = ox * params->stride_w - params->pad_left;
    const int8x16_t zp = vdupq_n_s8((int8_t)params->input_zp);
    int32_t ky, kx;

    for (ky = 0; ky < k_h; ++ky) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h) {
            q4_mve_fill(col, k_w * in_c, zp);
        } else if (x0 >= 0 && x0 + k_w <= in_w) { /* the whole kernel row is inside */
            q4_mve_copy(col, input + (iy * in_w + x0) * in_c, k_w * in_c);
        } else {
            for (kx = 0; kx < k_w; ++kx) {
                const int32_t ix = x0 + kx;
                if (ix < 0 || ix >= in_w) {
                    q4_mve_fill(col + kx * in_c, in_c, zp);
                } else {
                    q4_mve_copy(col + kx * in_c, input + (iy * in_w + ix) * in_c, in_c);
                }
            }
        }
        col += k_w * in_c;
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

/* acc += 16 * (even weights . even activations + odd weights . odd activations), for one
 * 16-byte weight vector `raw` and the de-interleaved activations x. */
#define Q4_MVE_ROW_MAC(acc, raw, x, odd_mask)                                \
    do {                                                                     \
        acc = vmladavaq_s8(acc, (x).val[0], vshlq_n_s8((raw), 4));           \
        acc = vmladavaq_s8(acc, (x).val[1], vandq_s8((raw), (odd_mask)));    \
    } while (0)

/* 16 * dot products of 4 packed weight rows (starting at rows[0..3]) with one column. */
static inline int32x4_t q4_mve_dot4(const uint8_t *const rows[4], int32_t row_bytes,
                                    const int8_t *col)
{
    const int8x16_t odd_mask = vdupq_n_s8((int8_t)-16); /* 0xF0: the high nibble, times 16 */
    const int8_t *w0 = (const int8_t *)rows[0], *w1 = (const int8_t *)rows[1];
    const int8_t *w2 = (const int8_t *)rows[2], *w3 = (const int8_t *)rows[3];
    const int32_t tail = row_bytes % 16;
    int32_t acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0, b;
    int32x4_t acc = vdupq_n_s32(0);

    for (b = row_bytes / 16; b > 0; --b) {
        const int8x16x2_t x = vld2q_s8(col);
        Q4_MVE_ROW_MAC(acc0, vldrbq_s8(w0), x, odd_mask);
        Q4_MVE_ROW_MAC(acc1, vldrbq_s8(w1), x, odd_mask);
        Q4_MVE_ROW_MAC(acc2, vldrbq_s8(w2), x, odd_mask);
        Q4_MVE_ROW_MAC(acc3, vldrbq_s8(w3), x, odd_mask);
        col += Q4_MVE_BLOCK;
        w0 += 16;
        w1 += 16;
        w2 += 16;
        w3 += 16;
    }
    if (tail > 0) { /* lanes past the row load 0: the activations there do not count */
        const mve_pred16_t p = vctp8q((uint32_t)tail);
        const int8x16x2_t x = vld2q_s8(col);
        Q4_MVE_ROW_MAC(acc0, vldrbq_z_s8(w0, p), x, odd_mask);
        Q4_MVE_ROW_MAC(acc1, vldrbq_z_s8(w1, p), x, odd_mask);
        Q4_MVE_ROW_MAC(acc2, vldrbq_z_s8(w2, p), x, odd_mask);
        Q4_MVE_ROW_MAC(acc3, vldrbq_z_s8(w3, p), x, odd_mask);
    }
    acc = vsetq_lane_s32(acc0, acc, 0);
    acc = vsetq_lane_s32(acc1, acc, 1);
    acc = vsetq_lane_s32(acc2, acc, 2);
    acc = vsetq_lane_s32(acc3, acc, 3);
    return acc;
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
    const int32x4_t act_min = vdupq_n_s32(params->act_min);
    const int32x4_t act_max = vdupq_n_s32(params->act_max);
    /* scratch: the folded biases, then the im2col column */
    int32_t *folded_bias = scratch;
    int8_t *col = (int8_t *)(scratch + out_c);
    int32_t p, oc0, c;

    for (c = 0; c < out_c; ++c) {
        folded_bias[c] = bias[c] - params->input_zp * q4_mve_row_sum(filter + c * row_bytes,
                                                                      row_bytes);
    }
    q4_mve_fill(col + k, k_pad - k, vdupq_n_s8(0)); /* K tail: never met by a nonzero weight */
    for (p = 0; p < pixels; ++p) {
        int8_t *out = output + p * out_c;
        q4_mve_gather(params, input_dims, input, filter_dims, p / out_w, p % out_w, col);
        for (oc0 = 0; oc0 < out_c; oc0 += 4) {
            const int32_t n = out_c - oc0 < 4 ? out_c - oc0 : 4;
            const mve_pred16_t valid = vctp32q((uint32_t)n);
            const int32x4_t shift = vldrwq_z_s32(quant->shift + oc0, valid);
            const uint8_t *rows[4];
            int32x4_t acc;
            for (c = 0; c < 4; ++c) { /* missing channels re-read the last row */
                rows[c] = filter + (oc0 + (c < n ? c : n - 1)) * row_bytes;
            }
            acc = q4_mve_dot4(rows, row_bytes, col);
            acc = vaddq_s32(vshrq_n_s32(acc, 4), vldrwq_z_s32(folded_bias + oc0, valid));
            if (vminvq_s32(INT32_MAX, vpselq_s32(shift, vdupq_n_s32(INT32_MAX), valid)) > 32) {
                int32x4_t y = vmulhq_s32(acc, vldrwq_z_s32(quant->multiplier + oc0, valid));
                y = vrshlq_s32(y, vsubq_s32(vdupq_n_s32(32), shift));
                y = vaddq_n_s32(y, params->output_zp);
                y = vminq_s32(vmaxq_s32(y, act_min), act_max);
                vstrbq_p_s32(out + oc0, y, valid);
            } else {
                int32_t lanes[4];
                vst1q_s32(lanes, acc);
                for (c = 0; c < n; ++c) {
                    out[oc0 + c] = q4_requantize_clamp(lanes[c], quant->multiplier[oc0 + c],
                                                       quant->shift[oc0 + c], params->output_zp,
                                                       params->act_min, params->act_max);
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
