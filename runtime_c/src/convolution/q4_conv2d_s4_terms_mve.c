/*
 * q4_conv2d_s4_terms_mve.c - multi-term conv2d (dual INT4 weights and/or a residual-quantized
 * input), int8-stored activations (4 or 8 bits), for cores with Helium (MVE, Cortex-M55/M85).
 * Bit-exact with q4_conv2d_s4_terms.
 *
 * Scheme (docs/kernels.md, "Multi-term conv2d"):
 *  - The weight tensors are read as one list of "rows": row r of a block is channel
 *    oc0 + r / n_weights of weight tensor r % n_weights, so a dual layer's two tensors of one
 *    channel form a pair. Q4_TERMS_ROWS rows are unpacked per block into int8, zero-padded to a
 *    multiple of 16 K-indices, the two rows of a pair interleaved per 16-weight vector; the
 *    input zero points are folded per (input, row): acc = fold + sum(x * w) with
 *    fold = [bias] - z_i * sum(w) (the bias in term 0 only), padded positions holding z_i.
 *  - im2col: 4 output pixels at a time for every input term, interleaved per 16-byte vector
 *    (pixel 0's k 0..15, pixel 1's, ..., then k 16..31), with predicated copies per kernel row
 *    or tap and z_i vectors where the window leaves the input.
 *  - GEMM: 2 rows x 4 pixels, per 16 K-indices 2 weight and 4 column loads and 8 VMLADAVA.S8.
 *  - Requantization of the T accumulators of an output as in q4_conv2d_s4_terms_dsp: with
 *    s' = max(shift, 33) and m'_k = m_k * 2^(s' - shift), floor((hi + 2^(s'-33)) / 2^(s'-32)),
 *    hi the high word of the 64-bit sum (SMULL, SMLAL), when every m'_k fits int32 and the
 *    accumulator bounds keep the sum below 2^62; otherwise q4_requantize_terms_clamp.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#include "q4_conv_terms.h"

#define Q4_TM_PIXELS 4 /* output pixels per im2col group */
#define Q4_TM_LANES 16 /* int8 lanes per vector */

static int32_t q4_tm_round_up16(int32_t k)
{
    return (k + Q4_TM_LANES - 1) & ~(Q4_TM_LANES - 1);
}

/* Scratch: the records, the unpacked rows of a block, the 4 interleaved columns of each input
 * and one window in natural order. */
int32_t q4_conv2d_s4_terms_mve_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k16 = q4_tm_round_up16(filter_dims->h * filter_dims->w * filter_dims->c);
    return (int32_t)sizeof(q4_terms_records) +
           (Q4_TERMS_ROWS + Q4_TERMS_INPUTS * Q4_TM_PIXELS + 1) * k16;
}

/* Sign-extended weights 16 * b .. 16 * b + 15 of a packed row of row_bytes bytes (0 past it):
 * each byte widened to a 16-bit lane becomes the bytes (low nibble << 4, high nibble << 4),
 * shifted back arithmetically. */
static inline int8x16_t q4_tm_unpack16(const uint8_t *row, int32_t row_bytes, int32_t b)
{
    const int32_t left = row_bytes - b * (Q4_TM_LANES / 2);
    const uint16x8_t raw = vldrbq_z_u16(row + b * (Q4_TM_LANES / 2), vctp16q((uint32_t)left));
    const uint16x8_t nibbles = vsliq_n_u16(vshlq_n_u16(raw, 4), vbicq_n_u16(raw, 0xF), 8);
    return vshrq_n_s8(vreinterpretq_s8_u16(nibbles), 4);
}

/* Unpacks the block's n_rows rows (row r: channel oc0 + r / n_w of weight tensor r % n_w) into
 * dst as pairs (pair p's vector b: row 2p at dst + (p * k16 + 16 * b) * 2, row 2p + 1 16 bytes
 * further); an odd last row is paired with zeros. Writes rec->fold for every input. */
static void q4_tm_unpack_rows(const q4_terms_params *terms, const uint8_t *const *filters,
                              const int32_t *bias, int32_t oc0, int32_t n_rows, int32_t k,
                              int8_t *dst, q4_terms_records *rec)
{
    const int32_t n_w = terms->n_weights, n_in = terms->n_inputs;
    const int32_t row_bytes = (k + 1) / 2, k16 = q4_tm_round_up16(k);
    int32_t r, b, i;

    for (r = 0; r < n_rows + (n_rows & 1); ++r) {
        int8_t *out = dst + (r / 2) * 2 * k16 + (r % 2) * Q4_TM_LANES;
        if (r >= n_rows) { /* the zero partner of an odd last row */
            for (b = 0; b < k16 / Q4_TM_LANES; ++b) {
                vst1q_s8(out + b * 2 * Q4_TM_LANES, vdupq_n_s8(0));
            }
            for (i = 0; i < n_in; ++i) {
                rec->fold[i][r] = 0;
            }
        } else {
            const int32_t channel = oc0 + r / n_w;
            const uint8_t *row = filters[r % n_w] + channel * row_bytes;
            int32_t sum = 0;
            for (b = 0; b < k16 / Q4_TM_LANES; ++b) {
                const int8x16_t v = q4_tm_unpack16(row, row_bytes, b);
                sum = vaddvaq_s8(sum, v);
                vst1q_s8(out + b * 2 * Q4_TM_LANES, v);
            }
            for (i = 0; i < n_in; ++i) {
                const int32_t base = i == 0 && r % n_w == 0 ? bias[channel] : 0;
                rec->fold[i][r] = base - terms->input_zp[i] * sum;
            }
        }
    }
}

/* Where the im2col reads from. */
typedef struct {
    int32_t in_h, in_w, in_c, k_h, k_w;
} q4_tm_geometry;

/* Copies n bytes (predicated 16-byte vectors); the source is read only below src + n. */
static inline void q4_tm_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n > 0; n -= Q4_TM_LANES, src += Q4_TM_LANES, dst += Q4_TM_LANES) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        vstrbq_p_s8(dst, vldrbq_z_s8(src, p), p);
    }
}

static inline void q4_tm_fill(int8_t *dst, int32_t n, int8x16_t value)
{
    for (; n > 0; n -= Q4_TM_LANES, dst += Q4_TM_LANES) {
        vstrbq_p_s8(dst, value, vctp8q((uint32_t)n));
    }
}

/* The window at input position (y0, x0) in natural K order into stage (positions outside the
 * input take zp); the bytes past K are left as they are. */
static void q4_tm_window(const q4_tm_geometry *g, const int8_t *input, int8x16_t zp, int32_t y0,
                         int32_t x0, int8_t *stage)
{
    const int32_t in_h = g->in_h, in_w = g->in_w, in_c = g->in_c, k_h = g->k_h, k_w = g->k_w;
    const int32_t run = k_w * in_c;
    int32_t ky, kx;
    for (ky = 0; ky < k_h; ++ky, stage += run) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h) {
            q4_tm_fill(stage, run, zp);
        } else if (x0 >= 0 && x0 + k_w <= in_w) {
            q4_tm_copy(stage, input + (iy * in_w + x0) * in_c, run);
        } else {
            for (kx = 0; kx < k_w; ++kx) {
                const int32_t ix = x0 + kx;
                if (ix < 0 || ix >= in_w) {
                    q4_tm_fill(stage + kx * in_c, in_c, zp);
                } else {
                    q4_tm_copy(stage + kx * in_c, input + (iy * in_w + ix) * in_c, in_c);
                }
            }
        }
    }
}

/* 2 rows x 4 pixels: sum(x * w) of the interleaved row pair w with the group's interleaved
 * columns over `steps` vectors, plus the rows' folds: acc[0..3] for the first row's pixels,
 * acc[4..7] for the second's. */
static void q4_tm_dot_2x4(const int8_t *w, const int8_t *cols, int32_t steps, int32_t fold_a,
                          int32_t fold_b, int32_t *acc)
{
    int32_t a0 = fold_a, a1 = fold_a, a2 = fold_a, a3 = fold_a;
    int32_t b0 = fold_b, b1 = fold_b, b2 = fold_b, b3 = fold_b;
    for (; steps > 0; --steps, w += 2 * Q4_TM_LANES, cols += Q4_TM_PIXELS * Q4_TM_LANES) {
        const int8x16_t wa = vld1q_s8(w), wb = vld1q_s8(w + Q4_TM_LANES);
        int8x16_t x = vld1q_s8(cols);
        a0 = vmladavaq_s8(a0, x, wa);
        b0 = vmladavaq_s8(b0, x, wb);
        x = vld1q_s8(cols + Q4_TM_LANES);
        a1 = vmladavaq_s8(a1, x, wa);
        b1 = vmladavaq_s8(b1, x, wb);
        x = vld1q_s8(cols + 2 * Q4_TM_LANES);
        a2 = vmladavaq_s8(a2, x, wa);
        b2 = vmladavaq_s8(b2, x, wb);
        x = vld1q_s8(cols + 3 * Q4_TM_LANES);
        a3 = vmladavaq_s8(a3, x, wa);
        b3 = vmladavaq_s8(b3, x, wb);
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

void q4_conv2d_s4_terms_mve(const q4_conv_params *params, const q4_terms_params *terms,
                            const q4_dims *input_dims, const int8_t *const *inputs,
                            const q4_dims *filter_dims, const uint8_t *const *filters,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                            int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k16 = q4_tm_round_up16(k), steps = k16 / Q4_TM_LANES;
    const int32_t out_w = output_dims->w, out_c = output_dims->c;
    const int32_t pixels = output_dims->h * out_w;
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights, n_terms = n_in * n_w;
    const int32_t block_channels = Q4_TERMS_ROWS / n_w;
    const int32_t group = Q4_TM_PIXELS * k16; /* bytes of one input's 4 columns */
    /* scratch: records, the unpacked rows of a block, the 4 columns of each input, a window
     * in natural order (its bytes past K stay zero) */
    q4_terms_records *rec = (q4_terms_records *)(void *)scratch;
    int8_t *weights = (int8_t *)(rec + 1);
    int8_t *cols = weights + Q4_TERMS_ROWS * k16;
    int8_t *stage = cols + Q4_TERMS_INPUTS * group;
    q4_tm_geometry g;
    int32_t oc0, p0, c, i, r, j, v;

    g.in_h = input_dims->h;
    g.in_w = input_dims->w;
    g.in_c = input_dims->c;
    g.k_h = filter_dims->h;
    g.k_w = filter_dims->w;
    q4_tm_fill(stage, k16, vdupq_n_s8(0));
    for (oc0 = 0; oc0 < out_c; oc0 += block_channels) {
        const int32_t n_ch = out_c - oc0 < block_channels ? out_c - oc0 : block_channels;
        const int32_t n_rows = n_ch * n_w;
        q4_tm_unpack_rows(terms, filters, bias, oc0, n_rows, k, weights, rec);
        q4_terms_channel_records(terms, bias, oc0, n_ch, out_c, k, rec);
        for (p0 = 0; p0 < pixels; p0 += Q4_TM_PIXELS) {
            const int32_t n = pixels - p0 < Q4_TM_PIXELS ? pixels - p0 : Q4_TM_PIXELS;
            for (i = 0; i < n_in; ++i) {
                const int8x16_t zp = vdupq_n_s8((int8_t)terms->input_zp[i]);
                for (c = 0; c < Q4_TM_PIXELS; ++c) {
                    /* a missing last pixel repeats the previous window; its outputs are dropped */
                    const int32_t p = p0 + (c < n ? c : n - 1);
                    int8_t *col = cols + i * group + c * Q4_TM_LANES;
                    q4_tm_window(&g, inputs[i], zp,
                                 p / out_w * params->stride_h - params->pad_top,
                                 p % out_w * params->stride_w - params->pad_left, stage);
                    for (v = 0; v < steps; ++v) {
                        vst1q_s8(col + v * Q4_TM_PIXELS * Q4_TM_LANES,
                                 vld1q_s8(stage + v * Q4_TM_LANES));
                    }
                }
            }
            for (r = 0; r < n_rows; r += 2) {
                int32_t dot[Q4_TERMS_INPUTS][2 * Q4_TM_PIXELS];
                const int32_t *acc[Q4_TERMS_TERMS];
                for (i = 0; i < n_in; ++i) {
                    q4_tm_dot_2x4(weights + r * k16, cols + i * group, steps, rec->fold[i][r],
                                  rec->fold[i][r + 1], dot[i]);
                }
                for (c = 0; c < 2 / n_w && r + c * n_w < n_rows; ++c) {
                    const int32_t ch = r / n_w + c;
                    for (i = 0; i < n_in; ++i) {
                        for (j = 0; j < n_w; ++j) {
                            acc[i * n_w + j] = dot[i] + (c * n_w + j) * Q4_TM_PIXELS;
                        }
                    }
                    q4_terms_store_channel(acc, n_terms, n, rec, ch, oc0 + ch, terms, params,
                                           output + p0 * out_c + oc0 + ch, out_c);
                }
            }
        }
    }
}

#else /* no MVE: the portable kernel (scratch unused) */

int32_t q4_conv2d_s4_terms_mve_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_conv2d_s4_terms_mve(const q4_conv_params *params, const q4_terms_params *terms,
                            const q4_dims *input_dims, const int8_t *const *inputs,
                            const q4_dims *filter_dims, const uint8_t *const *filters,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                            int32_t *scratch)
{
    (void)scratch;
    q4_conv2d_s4_terms(params, terms, input_dims, inputs, filter_dims, filters, bias,
                       output_dims, output);
}

#endif
