/*
 * q4_conv2d_s4_dsp.c - conv2d, INT4 packed weights, int8-stored activations (4 or 8 bits), for
 * cores with the Arm DSP extension (Cortex-M4/M7/M33/M55). Bit-exact with q4_conv2d_s4.
 *
 * Scheme (docs/kernels.md):
 *  - im2col: 4 output pixels at a time. Each pixel's window is gathered into a natural-order int8
 *    staging row (padding = z_x, tail up to a multiple of 8 = z_x), then widened to int16
 *    (x - z_x) in a permuted, pixel-interleaved layout: per block of 8 K-indices and per pixel
 *    c, the halfword pairs (x0,x4) (x2,x6) (x1,x5) (x3,x7) at cols[(block * 4 + c) * 8].
 *  - GEMM: one output channel x 4 pixels. A 32-bit load gives 8 weights; `w & 0xF0F0F0F0` and
 *    `(w << 4) & 0xF0F0F0F0` hold 16 * w in signed bytes, and SXTB16 (plain and rotated by 8)
 *    turns them into the int16 pairs (w0,w4) (w2,w6) (w1,w5) (w3,w7), which meet the matching
 *    activation pairs in SMLAD. The accumulator is 16 * sum((x - z_x) * w), exact for
 *    K <= Q4_OPT_MAX_K; its arithmetic shift by 4 is exact.
 *  - Requantization: for shift > 32 (the usual case) floor((acc * m + 2^(s-1)) / 2^s) equals
 *    floor((hi + 2^(s-33)) / 2^(s-32)) with hi = floor(acc * m / 2^32); other shifts use
 *    q4_requantize_clamp.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include <arm_acle.h>

#define Q4_DSP_PIXELS 4
#define Q4_DSP_BLOCK 8
#define Q4_DSP_CHANNELS 16

static inline uint32_t q4_load_u32(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static inline void q4_store_u32(void *p, uint32_t v)
{
    __builtin_memcpy(p, &v, sizeof v);
}

/* SXTB16 of x, and of x rotated right by 8: bytes 0,2 (resp. 1,3) sign-extended to halfwords. */
static inline int32_t q4_sxtb16(uint32_t x)
{
    return __sxtb16((int32_t)x);
}

static inline int32_t q4_sxtb16_ror8(uint32_t x)
{
    return __sxtb16((int32_t)((x >> 8) | (x << 24)));
}

/* acc + the two halfword products of the pairs a (activations, as loaded) and w. */
static inline int32_t q4_smlad(uint32_t a, int32_t w, int32_t acc)
{
    return __smlad((int32_t)a, w, acc);
}

static int32_t q4_round_up8(int32_t k)
{
    return (k + Q4_DSP_BLOCK - 1) & ~(Q4_DSP_BLOCK - 1);
}

int32_t q4_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k = q4_round_up8(filter_dims->h * filter_dims->w * filter_dims->c);
    return (Q4_DSP_CHANNELS * 2 + Q4_DSP_PIXELS * 2 + 1) * k;
}

/* Fills n bytes with the zero point (window positions outside the input). */
static void q4_fill(int8_t *dst, int32_t n, int32_t value)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        dst[i] = (int8_t)value;
    }
}

static void q4_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        q4_store_u32(dst + i, q4_load_u32(src + i));
    }
    for (; i < n; ++i) {
        dst[i] = src[i];
    }
}

/* Gathers the (zero-point padded) window of output pixel (oy, ox) into stage[0 .. k_pad). */
static void q4_gather(const q4_conv_params *params, const q4_dims *input_dims,
                      const int8_t *input, const q4_dims *filter_dims, int32_t oy, int32_t ox,
                      int8_t *stage, int32_t k_pad)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t y0 = oy * params->stride_h - params->pad_top;
    const int32_t x0 = ox * params->stride_w - params->pad_left;
    const int32_t zp = params->input_zp;
    int32_t ky, kx;
    int8_t *dst = stage;

    for (ky = 0; ky < k_h; ++ky) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h) {
            q4_fill(dst, k_w * in_c, zp);
            dst += k_w * in_c;
            continue;
        }
        if (x0 >= 0 && x0 + k_w <= in_w) { /* the whole kernel row is inside: one run */
            q4_copy(dst, input + (iy * in_w + x0) * in_c, k_w * in_c);
            dst += k_w * in_c;
            continue;
        }
        for (kx = 0; kx < k_w; ++kx) {
            const int32_t ix = x0 + kx;
            if (ix < 0 || ix >= in_w) {
                q4_fill(dst, in_c, zp);
            } else {
                q4_copy(dst, input + (iy * in_w + ix) * in_c, in_c);
            }
            dst += in_c;
        }
    }
    q4_fill(dst, (int32_t)(stage + k_pad - dst), zp);
}

/* Widens the staging row to int16 pairs (x - z_x) in the permuted block order, as column c:
 * per block of 8, (x0,x4) (x2,x6) (x1,x5) (x3,x7) at cols[(block * 4 + c) * 4]. */
static void q4_widen(const int8_t *stage, int32_t k_pad, int32_t zp, uint32_t *cols, int32_t c)
{
    const int32_t zp2 = (int32_t)(((uint32_t)zp & 0xFFFFu) * 0x10001u);
    uint32_t *dst = cols + c * 4;
    int32_t k;

    for (k = 0; k < k_pad; k += Q4_DSP_BLOCK) {
        const uint32_t a = q4_load_u32(stage + k);        /* x0 x1 x2 x3 */
        const uint32_t b = q4_load_u32(stage + k + 4);    /* x4 x5 x6 x7 */
        const uint32_t p = (a & 0xFFFFu) | (b << 16);     /* x0 x1 x4 x5 */
        const uint32_t q = (b & 0xFFFF0000u) | (a >> 16); /* x2 x3 x6 x7 */
        dst[0] = (uint32_t)__ssub16(q4_sxtb16(p), zp2);
        dst[1] = (uint32_t)__ssub16(q4_sxtb16(q), zp2);
        dst[2] = (uint32_t)__ssub16(q4_sxtb16_ror8(p), zp2);
        dst[3] = (uint32_t)__ssub16(q4_sxtb16_ror8(q), zp2);
        dst += Q4_DSP_PIXELS * 4;
    }
}

/* Unpacks nb weight rows (K weights each) into int16 pairs, 16 * w, in the permuted block order
 * of q4_widen: per block of 8, (w0,w4) (w2,w6) (w1,w5) (w3,w7). A partial last block reads only
 * the row's own bytes; its missing weights are 0. */
static void q4_unpack_rows(const uint8_t *rows, int32_t nb, int32_t k, uint32_t *dst)
{
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t full_blocks = k / Q4_DSP_BLOCK;
    const int32_t tail_bytes = row_bytes - full_blocks * 4;
    int32_t r, b;

    for (r = 0; r < nb; ++r) {
        const uint8_t *row = rows + r * row_bytes;
        for (b = 0; b <= full_blocks; ++b) {
            uint32_t w = 0, hi, lo;
            if (b < full_blocks) {
                w = q4_load_u32(row + 4 * b);
            } else if (tail_bytes > 0) {
                int32_t i;
                for (i = 0; i < tail_bytes; ++i) {
                    w |= (uint32_t)row[4 * b + i] << (8 * i);
                }
            } else {
                break;
            }
            hi = w & 0xF0F0F0F0u;
            lo = (w << 4) & 0xF0F0F0F0u;
            dst[0] = (uint32_t)q4_sxtb16(lo);
            dst[1] = (uint32_t)q4_sxtb16_ror8(lo);
            dst[2] = (uint32_t)q4_sxtb16(hi);
            dst[3] = (uint32_t)q4_sxtb16_ror8(hi);
            dst += 4;
        }
    }
}

/* Requantizes acc and clamps (docs/integer-spec.md section 3); `hi_shift` = shift - 32 > 0
 * selects the fast form, otherwise the generic one. */
static inline int8_t q4_dsp_requantize(int32_t acc, int32_t multiplier, int32_t shift,
                                       const q4_conv_params *params)
{
    int32_t y;
    if (shift > 32) {
        const int32_t hi = (int32_t)q4_floor_shift64((int64_t)acc * multiplier, 32);
        y = params->output_zp + q4_floor_shift32(hi + ((int32_t)1 << (shift - 33)), shift - 32);
        y = y < params->act_min ? params->act_min : y;
        y = y > params->act_max ? params->act_max : y;
        return (int8_t)y;
    }
    return q4_requantize_clamp(acc, multiplier, shift, params->output_zp, params->act_min,
                               params->act_max);
}

/* Two consecutive words (LDRD) of 4-byte aligned scratch. */
static inline void q4_load_pair(const uint32_t *p, uint32_t *lo, uint32_t *hi)
{
    uint64_t v;
    __builtin_memcpy(&v, __builtin_assume_aligned(p, 4), sizeof v);
    *lo = (uint32_t)v;
    *hi = (uint32_t)(v >> 32);
}

/* acc += the 4 SMLAD terms of one block: weight pairs w0..w3 against 4 activation words. */
#define Q4_DSP_BLOCK_MAC(acc, col, w0, w1, w2, w3)                                  \
    do {                                                                            \
        uint32_t a0_, a1_;                                                          \
        q4_load_pair((col), &a0_, &a1_);                                            \
        acc = q4_smlad(a0_, (int32_t)(w0), acc);                                    \
        acc = q4_smlad(a1_, (int32_t)(w1), acc);                                    \
        q4_load_pair((col) + 2, &a0_, &a1_);                                        \
        acc = q4_smlad(a0_, (int32_t)(w2), acc);                                    \
        acc = q4_smlad(a1_, (int32_t)(w3), acc);                                    \
    } while (0)

/* 16 * dot products of one unpacked weight row with the 4 columns, over `blocks` blocks. */
static inline void q4_dot4(const uint32_t *w, const uint32_t *col, int32_t blocks, int32_t *out)
{
    int32_t acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
    const uint32_t *const w_end = w + 4 * blocks;
    while (w != w_end) {
        uint32_t w0, w1, w2, w3;
        q4_load_pair(w, &w0, &w1);
        q4_load_pair(w + 2, &w2, &w3);
        Q4_DSP_BLOCK_MAC(acc0, col, w0, w1, w2, w3);
        Q4_DSP_BLOCK_MAC(acc1, col + 4, w0, w1, w2, w3);
        Q4_DSP_BLOCK_MAC(acc2, col + 8, w0, w1, w2, w3);
        Q4_DSP_BLOCK_MAC(acc3, col + 12, w0, w1, w2, w3);
        w += 4;
        col += 16;
    }
    out[0] = acc0;
    out[1] = acc1;
    out[2] = acc2;
    out[3] = acc3;
}

void q4_conv2d_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k_pad = q4_round_up8(k);
    const int32_t blocks = k_pad / Q4_DSP_BLOCK;
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t out_w = output_dims->w, out_c = output_dims->c;
    const int32_t pixels = output_dims->h * out_w;
    /* scratch: unpacked weights of one channel block, the 4 columns, the staging row */
    uint32_t *weights = (uint32_t *)scratch;
    uint32_t *cols = weights + Q4_DSP_CHANNELS * (k_pad / 2);
    int8_t *stage = (int8_t *)(cols + Q4_DSP_PIXELS * (k_pad / 2));
    int32_t oc0, p0, c, oc;

    for (oc0 = 0; oc0 < out_c; oc0 += Q4_DSP_CHANNELS) {
        const int32_t nb = out_c - oc0 < Q4_DSP_CHANNELS ? out_c - oc0 : Q4_DSP_CHANNELS;
        q4_unpack_rows(filter + oc0 * row_bytes, nb, k, weights);
        for (p0 = 0; p0 < pixels; p0 += Q4_DSP_PIXELS) {
            const int32_t n = pixels - p0 < Q4_DSP_PIXELS ? pixels - p0 : Q4_DSP_PIXELS;
            for (c = 0; c < Q4_DSP_PIXELS; ++c) {
                if (c < n) {
                    q4_gather(params, input_dims, input, filter_dims, (p0 + c) / out_w,
                              (p0 + c) % out_w, stage, k_pad);
                } else {
                    q4_fill(stage, k_pad, params->input_zp); /* unused column: zeros */
                }
                q4_widen(stage, k_pad, params->input_zp, cols, c);
            }
            for (oc = 0; oc < nb; ++oc) {
                const int32_t ch = oc0 + oc;
                const int32_t multiplier = quant->multiplier[ch], shift = quant->shift[ch];
                int8_t *out = output + p0 * out_c + ch;
                int32_t acc[Q4_DSP_PIXELS];
                q4_dot4(weights + oc * (k_pad / 2), cols, blocks, acc);
                for (c = 0; c < n; ++c) {
                    out[c * out_c] = q4_dsp_requantize(bias[ch] + q4_floor_shift32(acc[c], 4),
                                                       multiplier, shift, params);
                }
            }
        }
    }
}

#else /* no DSP extension: the portable kernel (scratch unused) */

int32_t q4_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_conv2d_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_conv2d_s4(params, quant, input_dims, input, filter_dims, filter, bias, output_dims,
                 output);
}

#endif
