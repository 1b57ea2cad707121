/*
 * q4_conv2d_s4_dsp.c - conv2d, INT4 packed weights, int8-stored activations (4 or 8 bits), for
 * cores with the Arm DSP extension (Cortex-M4/M7/M33/M55). Bit-exact with q4_conv2d_s4.
 *
 * Scheme (docs/kernels.md):
 *  - Output channels go in blocks of Q4_DSP_CHANNELS. A block's weight rows are unpacked once
 *    per call into int16 pairs of 16 * w (`(w << 4) & 0xF0F0F0F0` and `w & 0xF0F0F0F0` hold the
 *    even and odd nibbles times 16 as signed bytes), two channels interleaved, and the input zero
 *    point is folded into the bias: acc = bias - z_x * sum(w) + sum(x * w).
 *  - im2col: 4 output pixels at a time, widened to int16 pairs by SXTB16 straight from the
 *    input (window positions outside it take z_x). Per block of 8 K-indices x0..x7 a column
 *    holds (x0,x2) (x1,x3) (x4,x6) (x5,x7), the weights the same pairs, pixel-interleaved:
 *    cols[(block * 4 + pixel) * 4 + pair].
 *  - GEMM: 2 output channels x 4 pixels, 8 SMLAD per 2 weight and 4 activation loads. The
 *    accumulator is 16 * sum(x * w), exact for K <= Q4_OPT_MAX_K; its shift by 4 is exact.
 *  - Requantization: for shift > 32 (the usual case) floor((acc * m + 2^(s-1)) / 2^s) equals
 *    floor((hi + 2^(s-33)) / 2^(s-32)) with hi = floor(acc * m / 2^32); other shifts use
 *    q4_requantize_clamp.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include <arm_acle.h>

#define Q4_DSP_PIXELS 4    /* output pixels per im2col group */
#define Q4_DSP_CHANNELS 16 /* output channels per unpacked weight block (even) */
#define Q4_DSP_BLOCK 8     /* K-indices per block: 4 int16 pairs */

static inline uint32_t q4_load_u32(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

/* SXTB16: bytes 0 and 2 of x sign-extended to the two halfwords. */
static inline uint32_t q4_sxtb16(uint32_t x)
{
    return (uint32_t)__sxtb16((int32_t)x);
}

/* acc + the two halfword products of the pairs a and w. */
static inline int32_t q4_smlad(uint32_t a, uint32_t w, int32_t acc)
{
    return __smlad((int32_t)a, (int32_t)w, acc);
}

static int32_t q4_round_up8(int32_t k)
{
    return (k + Q4_DSP_BLOCK - 1) & ~(Q4_DSP_BLOCK - 1);
}

/* Scratch: folded biases of a channel block, its unpacked weights, the 4 im2col columns and an
 * int8 staging row. */
int32_t q4_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k = q4_round_up8(filter_dims->h * filter_dims->w * filter_dims->c);
    return 4 * Q4_DSP_CHANNELS + (Q4_DSP_CHANNELS + Q4_DSP_PIXELS) * 2 * k + k;
}

/* Widens 8 activations (two words) to the pairs (x0,x2) (x1,x3) (x4,x6) (x5,x7). */
static inline void q4_widen8(uint32_t a, uint32_t b, uint32_t *dst)
{
    dst[0] = q4_sxtb16(a);
    dst[1] = q4_sxtb16(a >> 8);
    dst[2] = q4_sxtb16(b);
    dst[3] = q4_sxtb16(b >> 8);
}

/* Widens n (a multiple of 8) activations from src into a column starting at dst. */
static void q4_widen_run(const int8_t *src, int32_t n, uint32_t *dst)
{
    for (; n > 0; n -= Q4_DSP_BLOCK, src += Q4_DSP_BLOCK, dst += 4 * Q4_DSP_PIXELS) {
        q4_widen8(q4_load_u32(src), q4_load_u32(src + 4), dst);
    }
}

/* n (a multiple of 8) positions of a column holding the zero point. */
static void q4_fill_run(uint32_t zp_pair, int32_t n, uint32_t *dst)
{
    for (; n > 0; n -= Q4_DSP_BLOCK, dst += 4 * Q4_DSP_PIXELS) {
        dst[0] = zp_pair;
        dst[1] = zp_pair;
        dst[2] = zp_pair;
        dst[3] = zp_pair;
    }
}

/* im2col of the window at input position (y0, x0) into the column at dst. When I is a
 * multiple of 8 every tap starts a block and is widened straight from the input; otherwise the
 * window is first gathered into the int8 staging row (K rounded up to 8, tail = z_x). */
static void q4_im2col(const q4_dims *input_dims, const int8_t *input, const q4_dims *filter_dims,
                      int32_t y0, int32_t x0, int32_t zp, int8_t *stage, uint32_t *dst)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t k = k_h * k_w * in_c;
    const uint32_t zp_pair = ((uint32_t)zp & 0xFFFFu) * 0x10001u;
    int32_t ky, kx, i;

    if (in_c % Q4_DSP_BLOCK == 0) {
        const int32_t stride = in_c / Q4_DSP_BLOCK * 4 * Q4_DSP_PIXELS; /* words per tap */
        for (ky = 0; ky < k_h; ++ky) {
            const int32_t iy = y0 + ky;
            if (iy < 0 || iy >= in_h) {
                q4_fill_run(zp_pair, k_w * in_c, dst);
            } else if (x0 >= 0 && x0 + k_w <= in_w) { /* the whole kernel row is inside */
                q4_widen_run(input + (iy * in_w + x0) * in_c, k_w * in_c, dst);
            } else {
                for (kx = 0; kx < k_w; ++kx) {
                    const int32_t ix = x0 + kx;
                    if (ix < 0 || ix >= in_w) {
                        q4_fill_run(zp_pair, in_c, dst + kx * stride);
                    } else {
                        q4_widen_run(input + (iy * in_w + ix) * in_c, in_c, dst + kx * stride);
                    }
                }
            }
            dst += k_w * stride;
        }
        return;
    }
    for (ky = 0, i = 0; ky < k_h; ++ky) {
        for (kx = 0; kx < k_w; ++kx) {
            const int32_t iy = y0 + ky, ix = x0 + kx;
            const int32_t inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
            int32_t c;
            for (c = 0; c < in_c; ++c, ++i) {
                stage[i] = inside ? input[(iy * in_w + ix) * in_c + c] : (int8_t)zp;
            }
        }
    }
    for (; i < q4_round_up8(k); ++i) {
        stage[i] = (int8_t)zp;
    }
    q4_widen_run(stage, i, dst);
}

/* Bytes 0 and 1 of v sign-extended to the two halfwords. */
static inline uint32_t q4_pair01(uint32_t v)
{
    return q4_sxtb16((v & 0xFFu) | ((v & 0xFF00u) << 8));
}

/* Unpacks the 8 weights of one packed word into 16 * w pairs (w0,w2) (w1,w3) (w4,w6) (w5,w7),
 * matching q4_widen8; returns 16 * their sum. */
static int32_t q4_unpack8(uint32_t w, uint32_t *dst)
{
    const uint32_t even = (w << 4) & 0xF0F0F0F0u; /* 16*w0 16*w2 16*w4 16*w6 as signed bytes */
    const uint32_t odd = w & 0xF0F0F0F0u;         /* 16*w1 16*w3 16*w5 16*w7 */
    int32_t sum = 0, i;
    dst[0] = q4_pair01(even);
    dst[1] = q4_pair01(odd);
    dst[2] = q4_pair01(even >> 16);
    dst[3] = q4_pair01(odd >> 16);
    for (i = 0; i < 4; ++i) {
        sum = q4_smlad(dst[i], 0x00010001u, sum);
    }
    return sum;
}

/* Unpacks nb rows (K weights each, from `rows`) into `dst`, two channels interleaved per block:
 * [block][channel of the pair][4 pairs]; an odd last channel is paired with zeros. Writes
 * folded_bias[r] = bias[r] - z_x * sum(w). A partial last block reads only the row's own bytes. */
static void q4_unpack_rows(const uint8_t *rows, const int32_t *bias, int32_t nb, int32_t k,
                           int32_t zp, uint32_t *dst, int32_t *folded_bias)
{
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t blocks = q4_round_up8(k) / Q4_DSP_BLOCK;
    int32_t r, b, i;

    for (r = 0; r < nb + (nb & 1); ++r) {
        const uint8_t *row = rows + r * row_bytes;
        uint32_t *out = dst + (r / 2) * blocks * 8 + (r % 2) * 4;
        int32_t sum16 = 0;
        for (b = 0; b < blocks; ++b, out += 8) {
            uint32_t w = 0;
            if (r >= nb) { /* the zero partner of an odd last channel */
                w = 0;
            } else if (4 * b + 4 <= row_bytes) {
                w = q4_load_u32(row + 4 * b);
            } else {
                for (i = 0; 4 * b + i < row_bytes; ++i) {
                    w |= (uint32_t)row[4 * b + i] << (8 * i);
                }
            }
            sum16 += q4_unpack8(w, out);
        }
        if (r < nb) {
            folded_bias[r] = bias[r] - zp * q4_floor_shift32(sum16, 4);
        }
    }
}

/* One K-pair step of the 2-channel x 4-pixel kernel: weight pairs wa, wb; column words at col. */
#define Q4_DSP_STEP(wa, wb, col)                             \
    do {                                                     \
        uint32_t x_ = (col)[0];                              \
        a0 = q4_smlad(x_, (wa), a0);                         \
        b0 = q4_smlad(x_, (wb), b0);                         \
        x_ = (col)[4];                                       \
        a1 = q4_smlad(x_, (wa), a1);                         \
        b1 = q4_smlad(x_, (wb), b1);                         \
        x_ = (col)[8];                                       \
        a2 = q4_smlad(x_, (wa), a2);                         \
        b2 = q4_smlad(x_, (wb), b2);                         \
        x_ = (col)[12];                                      \
        a3 = q4_smlad(x_, (wa), a3);                         \
        b3 = q4_smlad(x_, (wb), b3);                         \
    } while (0)

/* 16 * dot products of a pair of unpacked channels (w) with the 4 columns, over `blocks` blocks:
 * acc[0..3] for the first channel's pixels, acc[4..7] for the second's. */
static void q4_dot_2x4(const uint32_t *w, const uint32_t *col, int32_t blocks, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    const uint32_t *const w_end = w + 8 * blocks;
    for (; w != w_end; w += 8, col += 4 * Q4_DSP_PIXELS) {
        Q4_DSP_STEP(w[0], w[4], col);
        Q4_DSP_STEP(w[1], w[5], col + 1);
        Q4_DSP_STEP(w[2], w[6], col + 2);
        Q4_DSP_STEP(w[3], w[7], col + 3);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    acc[4] = b0;
    acc[5] = b1;
    acc[6] = b2;
    acc[7] = b3;
}

/* floor(a * b / 2^32): the high word of the 64-bit product (SMULL). */
static inline int32_t q4_mul_high(int32_t a, int32_t b)
{
    return (int32_t)(uint32_t)((uint64_t)((int64_t)a * b) >> 32);
}

/* Requantizes and stores the 16 * accumulators of one channel's n pixels (stride out_c). */
static inline void q4_store_channel(const int32_t *acc16, int32_t n, int32_t bias,
                                    int32_t multiplier, int32_t shift,
                                    const q4_conv_params *params, int8_t *out, int32_t out_c)
{
    /* locals: the int8 stores below could otherwise alias *params */
    const int32_t zp = params->output_zp, lo = params->act_min, hi = params->act_max;
    int32_t c;
    if (shift > 32) {
        const int32_t right = shift - 32, round = (int32_t)1 << (shift - 33);
        for (c = 0; c < n; ++c) {
            const int32_t acc = bias + q4_floor_shift32(acc16[c], 4);
            int32_t y = zp + q4_floor_shift32(q4_mul_high(acc, multiplier) + round, right);
            y = y < lo ? lo : y;
            y = y > hi ? hi : y;
            out[c * out_c] = (int8_t)y;
        }
        return;
    }
    for (c = 0; c < n; ++c) {
        out[c * out_c] = q4_requantize_clamp(bias + q4_floor_shift32(acc16[c], 4), multiplier,
                                             shift, zp, lo, hi);
    }
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
    /* scratch: folded biases and unpacked weights of one channel block, the 4 columns, the int8
     * staging row (used only when I is not a multiple of 8) */
    int32_t *folded_bias = scratch;
    uint32_t *weights = (uint32_t *)(scratch + Q4_DSP_CHANNELS);
    uint32_t *cols = weights + Q4_DSP_CHANNELS * (k_pad / 2);
    int8_t *stage = (int8_t *)(cols + Q4_DSP_PIXELS * (k_pad / 2));
    int32_t oc0, p0, c, oc;

    for (oc0 = 0; oc0 < out_c; oc0 += Q4_DSP_CHANNELS) {
        const int32_t nb = out_c - oc0 < Q4_DSP_CHANNELS ? out_c - oc0 : Q4_DSP_CHANNELS;
        q4_unpack_rows(filter + oc0 * row_bytes, bias + oc0, nb, k, params->input_zp, weights,
                       folded_bias);
        for (p0 = 0; p0 < pixels; p0 += Q4_DSP_PIXELS) {
            const int32_t n = pixels - p0 < Q4_DSP_PIXELS ? pixels - p0 : Q4_DSP_PIXELS;
            for (c = 0; c < Q4_DSP_PIXELS; ++c) {
                /* a missing last pixel repeats the previous window; its outputs are dropped */
                const int32_t p = p0 + (c < n ? c : n - 1);
                q4_im2col(input_dims, input, filter_dims,
                          p / out_w * params->stride_h - params->pad_top,
                          p % out_w * params->stride_w - params->pad_left, params->input_zp,
                          stage, cols + 4 * c);
            }
            for (oc = 0; oc < nb; oc += 2) {
                int32_t acc[2 * Q4_DSP_PIXELS];
                int8_t *out = output + p0 * out_c + oc0 + oc;
                q4_dot_2x4(weights + oc * (k_pad / 2), cols, blocks, acc);
                q4_store_channel(acc, n, folded_bias[oc], quant->multiplier[oc0 + oc],
                                 quant->shift[oc0 + oc], params, out, out_c);
                if (oc + 1 < nb) {
                    q4_store_channel(acc + Q4_DSP_PIXELS, n, folded_bias[oc + 1],
                                     quant->multiplier[oc0 + oc + 1], quant->shift[oc0 + oc + 1],
                                     params, out + 1, out_c);
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
