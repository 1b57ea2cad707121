/*
 * q4_depthwise_conv2d_s4_terms_dsp.c - multi-term depthwise 2-D convolution (dual INT4 weights
 * and/or a residual-quantized input, channel multiplier 1), int8-stored activations, for cores
 * with the Arm DSP extension (Cortex-M4/M7/M33/M55). Bit-exact with q4_depthwise_conv2d_s4_terms.
 *
 * Scheme (docs/kernels.md, "Depthwise, round 3"): term t = i * n_w + j (input i, weight tensor j)
 * accumulates acc_t = fold_t + sum x_i * w_j with fold_t = [bias] - z_i * sum(w_j) (the bias in
 * term 0 only; window positions outside the input hold z_i), then the T accumulators of an output
 * are requantized once (q4_dwt_store: SMULL/SMLAL, a 64-bit rounding add and one shift).
 *  - 3x3 kernels, stride_w 1 (or 2 into rows of >= 8 pixels), as the single-term row path: per
 *    block of 4 channels and row tile of up to 32 output pixels each input row of each input term
 *    is widened once into per-channel int16 rows (a ring of 3 per input); per channel, output row
 *    and term the fused 4-output tap groups (SMLAD of tap pairs, GNU inline assembly) write the
 *    tile's accumulators, then one requantization of the T terms per output.
 *  - Other kernels: per block of 32 channels the weights are unpacked into int16 pairs of channels
 *    (c, c + 2) per tensor; per output pixel, group of 4 channels and input one word of
 *    activations per tap, SXTB16 of it and of it shifted by 8, SMLABB/SMLATT for both weight
 *    tensors; one requantization loop over the pixel's channels.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"
#include "q4_depthwise_dsp.h"
#include "q4_conv_terms.h"

#define Q4_DWT_BLOCK 32 /* channels per block of requantization records (Q4_TERMS_ROWS) */
#define Q4_DWT_TILE 32
/* the scratch: records, fold[T][32], acc[T][32], then the path's own part */
#define Q4_DWT_HEAD ((int32_t)sizeof(q4_terms_records) + 4 * Q4_TERMS_TERMS * Q4_DWT_BLOCK * 2)
/* the 3x3 path: rings of 3 rows x 4 channels and a row of z_i, per input */
#define Q4_DWT_RINGS (Q4_TERMS_INPUTS * (3 * 4 + 1) * Q4_DW3_ROW * 2)

typedef char q4_dwt_block_fits_records[Q4_DWT_BLOCK <= Q4_TERMS_ROWS ? 1 : -1];

int32_t q4_depthwise_conv2d_s4_terms_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t taps = filter_dims->h * filter_dims->w;
    /* other kernels: tap offsets [2][taps], weight pairs [2 tensors][taps][32 channels] int16 */
    const int32_t general = Q4_DWT_HEAD + 8 * taps + 2 * 2 * Q4_DWT_BLOCK * taps;
    return taps == 9 && Q4_DWT_HEAD + Q4_DWT_RINGS > general ? Q4_DWT_HEAD + Q4_DWT_RINGS
                                                             : general;
}

/* The scratch's common part. */
typedef struct {
    q4_terms_records rec;
    int32_t fold[Q4_TERMS_TERMS][Q4_DWT_BLOCK];
    int32_t acc[Q4_TERMS_TERMS][Q4_DWT_BLOCK];
} q4_dwt_head;

typedef char q4_dwt_head_size[sizeof(q4_dwt_head) == Q4_DWT_HEAD ? 1 : -1];

/* The requantization records of channels c0 .. c0 + n - 1 (n <= 32), in rec's fields: with
 * s'' = max(shift, 32) and m''_t = m_t * 2^(s'' - shift), multiplier[t][i] = m''_t and right[i]
 * = s'' - 31, or 0 when an m''_t leaves int32 or the accumulator bounds let the sum reach 2^62
 * (the exact rule then). |m| < 2^29 keeps every shift >= 30 on the fast path (q4_dwt_store). */
static void q4_dwt_records(const q4_terms_params *terms, const int32_t *bias, int32_t c0,
                           int32_t n, int32_t ch, int32_t taps, q4_terms_records *rec)
{
    const int32_t n_terms = terms->n_inputs * terms->n_weights;
    /* |acc_t| <= |bias| (term 0) + 255 * 8 * taps */
    const uint64_t dot_bound = (uint64_t)2040u * (uint64_t)taps;
    int32_t i, t;
    for (i = 0; i < n; ++i) {
        const int32_t o = c0 + i, shift = terms->shift[o];
        const int32_t wide = shift > 32 ? shift : 32, up = wide - shift;
        const uint64_t bias_abs = bias[o] < 0 ? (uint64_t)(-(int64_t)bias[o]) : (uint64_t)bias[o];
        uint64_t bound = 0;
        int32_t ok = up < 31;
        for (t = 0; t < n_terms; ++t) {
            const int32_t m = terms->multiplier[t * ch + o];
            const uint64_t m_abs = ok ? (uint64_t)(m < 0 ? -(int64_t)m : (int64_t)m) << up : 0;
            ok &= m_abs < ((uint64_t)1 << 31);
            bound += ok ? m_abs * (dot_bound + (t == 0 ? bias_abs : 0u)) : 0u;
            rec->multiplier[t][i] = ok ? (int32_t)(uint32_t)((uint64_t)(uint32_t)m << up) : 0;
        }
        rec->right[i] = ok && bound < ((uint64_t)1 << 62) ? wide - 31 : 0;
    }
}

/* Requantizes and stores n outputs of channel o (index c in the records) from its terms'
 * accumulators acc[t][p] (out[p * out_step]): with the records' m''_t and s'' = right + 31,
 * y = floor(floor((sum acc_t * m''_t + 2^(s'' - 1)) / 2^32) / 2^(s'' - 32)) (SMULL, SMLAL, the
 * 64-bit rounding add, one shift: |sum| < 2^62, so no overflow); the exact rule when right = 0. */
static __attribute__((noinline)) void q4_dwt_store(const int32_t *const *acc, int32_t n_terms,
                                                   int32_t n, const q4_terms_records *rec,
                                                   int32_t c, int32_t o, int32_t ch,
                                                   const q4_terms_params *terms,
                                                   const q4_conv_params *params, int8_t *out,
                                                   int32_t out_step)
{
    /* locals: the int8 stores could otherwise alias the parameters */
    const int32_t zp = params->output_zp, lo = params->act_min, hi = params->act_max;
    const int32_t right = rec->right[c];
    int32_t p, t;
    if (right > 0) {
        const int64_t round = (int64_t)1 << (right + 30);
        const int32_t k = right - 1, m0 = rec->multiplier[0][c];
        if (n_terms == 2) {
            const int32_t m1 = rec->multiplier[1][c];
            const int32_t *const a0 = acc[0], *const a1 = acc[1];
            for (p = 0; p < n; ++p) {
                const int64_t total = (int64_t)a0[p] * m0 + (int64_t)a1[p] * m1 + round;
                int32_t y = zp + ((int32_t)(uint32_t)((uint64_t)total >> 32) >> k);
                y = y < lo ? lo : y;
                out[p * out_step] = (int8_t)(y > hi ? hi : y);
            }
            return;
        }
        for (p = 0; p < n; ++p) {
            int64_t total = (int64_t)acc[0][p] * m0 + round;
            int32_t y;
            for (t = 1; t < n_terms; ++t) {
                total += (int64_t)acc[t][p] * rec->multiplier[t][c];
            }
            y = zp + ((int32_t)(uint32_t)((uint64_t)total >> 32) >> k);
            y = y < lo ? lo : y;
            out[p * out_step] = (int8_t)(y > hi ? hi : y);
        }
        return;
    }
    for (p = 0; p < n; ++p) {
        int32_t terms_acc[Q4_TERMS_TERMS];
        for (t = 0; t < n_terms; ++t) {
            terms_acc[t] = acc[t][p];
        }
        out[p * out_step] = q4_requantize_terms_clamp(terms_acc, n_terms, terms->multiplier + o,
                                                      ch, terms->shift[o], zp, lo, hi);
    }
}

/* Requantization records and folded accumulator starts of channels c0 .. c0 + n - 1 (n <= 32),
 * and the nibbles of their weights (w[j][channel][tap], when w is not null). */
static void q4_dwt_block_setup(const q4_terms_params *terms, const uint8_t *const *filters,
                               const int32_t *bias, int32_t c0, int32_t n, int32_t ch,
                               int32_t taps, q4_dwt_head *head)
{
    const int32_t n_w = terms->n_weights, n_terms = terms->n_inputs * n_w;
    const int32_t row_bytes = (taps + 1) / 2;
    int32_t i, j, t, tap;
    q4_dwt_records(terms, bias, c0, n, ch, taps, &head->rec);
    for (i = 0; i < n; ++i) {
        int32_t sum[2] = {0, 0};
        for (j = 0; j < n_w; ++j) {
            for (tap = 0; tap < taps; ++tap) {
                sum[j] += q4_int4_at(filters[j] + (c0 + i) * row_bytes, tap);
            }
        }
        for (t = 0; t < n_terms; ++t) {
            head->fold[t][i] = (t == 0 ? bias[c0 + i] : 0) -
                               terms->input_zp[t / n_w] * sum[t % n_w];
        }
    }
}

/* acc[o] = start + the 9 taps of one channel for the outputs o < tw (rounded up to 4). */
#define Q4_DWT_ROW_FN(name, ROW, s)                                                     \
    static __attribute__((noinline)) void name(const int16_t *r0, const int16_t *r1,    \
                                               const int16_t *r2, const uint32_t *w,    \
                                               int32_t start, int32_t *acc, int32_t tw) \
    {                                                                                   \
        int32_t *const end = acc + tw;                                                  \
        for (; acc < end; acc += 4, r0 += 4, r1 += 4, r2 += 4) {                        \
            int32_t a0 = start, a1 = start, a2 = start, a3 = start;                     \
            Q4_DW3_GROUP(ROW, s, r0, r1, r2, w, a0, a1, a2, a3);                        \
            acc[0] = a0;                                                                \
            acc[1] = a1;                                                                \
            acc[2] = a2;                                                                \
            acc[3] = a3;                                                                \
        }                                                                               \
    }
Q4_DWT_ROW_FN(q4_dwt_row_s1, Q4_DW3_S1_ROW_ASM, 1)
Q4_DWT_ROW_FN(q4_dwt_row_s2, Q4_DW3_S2_ROW_ASM, 2)

/* 3x3 kernels, horizontal stride 1 or 2 (any vertical stride). */
static void q4_dwt3_dsp(const q4_conv_params *params, const q4_terms_params *terms,
                        const q4_dims *input_dims, const int8_t *const *inputs,
                        const uint8_t *const *filters, const int32_t *bias,
                        const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t s = params->stride_w, stride_h = params->stride_h;
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights, n_terms = n_in * n_w;
    const int32_t slot = 4 * Q4_DW3_ROW; /* int16 per ring row of 4 channels */
    q4_dwt_head *const head = (q4_dwt_head *)(void *)scratch;
    int16_t *const rings = (int16_t *)(void *)(scratch + Q4_DWT_HEAD / 4);
    int32_t c0, ox0, oy, i, t, ii;

    for (ii = 0; ii < n_in; ++ii) {
        int16_t *const zp_row = rings + ii * 13 * slot / 4 + 3 * slot;
        for (i = 0; i < Q4_DW3_ROW; ++i) {
            zp_row[i] = (int16_t)terms->input_zp[ii];
        }
    }
    for (c0 = 0; c0 < ch; c0 += 4) {
        const int32_t n = ch - c0 < 4 ? ch - c0 : 4, cb = c0 % Q4_DWT_BLOCK;
        uint32_t wp[2][4][9]; /* per tensor and channel: p01, p12, s02 per kernel row */
        int32_t j;
        if (cb == 0) {
            q4_dwt_block_setup(terms, filters, bias, c0,
                               ch - c0 < Q4_DWT_BLOCK ? ch - c0 : Q4_DWT_BLOCK, ch, 9, head);
        }
        for (j = 0; j < n_w; ++j) {
            for (i = 0; i < n; ++i) {
                const uint8_t *const row = filters[j] + (c0 + i) * 5;
                int32_t ky;
                for (ky = 0; ky < 3; ++ky) {
                    const uint32_t d0 = (uint32_t)q4_int4_at(row, 3 * ky) & 0xFFFFu;
                    const uint32_t d1 = (uint32_t)q4_int4_at(row, 3 * ky + 1) & 0xFFFFu;
                    const uint32_t d2 = (uint32_t)q4_int4_at(row, 3 * ky + 2) << 16;
                    wp[j][i][3 * ky] = d0 | d1 << 16;
                    wp[j][i][3 * ky + 1] = d1 | d2;
                    wp[j][i][3 * ky + 2] = d0 | d2;
                }
            }
        }
        for (ox0 = 0; ox0 < out_w; ox0 += Q4_DWT_TILE) {
            const int32_t tw = out_w - ox0 < Q4_DWT_TILE ? out_w - ox0 : Q4_DWT_TILE;
            const int32_t ix0 = ox0 * s - params->pad_left, span = (tw - 1) * s + 3;
            int32_t next_row = -params->pad_top; /* first input row not yet widened */
            for (oy = 0; oy < out_h; ++oy) {
                const int32_t y0 = oy * stride_h - params->pad_top;
                const int16_t *rows[2][3];
                int8_t *const out = output + (oy * out_w + ox0) * ch;
                int32_t ky;
                if (next_row < y0) {
                    next_row = y0;
                }
                for (; next_row < y0 + 3; ++next_row) {
                    if (next_row >= 0 && next_row < in_h) {
                        for (ii = 0; ii < n_in; ++ii) {
                            q4_dw3_widen_row(rings + ii * 13 * slot / 4 + (next_row % 3) * slot,
                                             inputs[ii], next_row, ix0, span, s, in_w, ch, c0,
                                             n, terms->input_zp[ii]);
                        }
                    }
                }
                for (ii = 0; ii < n_in; ++ii) {
                    int16_t *const ring = rings + ii * 13 * slot / 4;
                    for (ky = 0; ky < 3; ++ky) {
                        const int32_t iy = y0 + ky;
                        rows[ii][ky] = iy >= 0 && iy < in_h ? ring + (iy % 3) * slot : 0;
                    }
                }
                for (i = 0; i < n; ++i) {
                    const int32_t *accs[Q4_TERMS_TERMS];
                    for (t = 0; t < n_terms; ++t) {
                        const int16_t *const *r = rows[t / n_w];
                        const int16_t *const zp_row = rings + (t / n_w) * 13 * slot / 4 +
                                                      3 * slot;
                        const int16_t *const r0 = r[0] ? r[0] + i * Q4_DW3_ROW : zp_row;
                        const int16_t *const r1 = r[1] ? r[1] + i * Q4_DW3_ROW : zp_row;
                        const int16_t *const r2 = r[2] ? r[2] + i * Q4_DW3_ROW : zp_row;
                        if (s == 1) {
                            q4_dwt_row_s1(r0, r1, r2, wp[t % n_w][i], head->fold[t][cb + i],
                                          head->acc[t], tw);
                        } else {
                            q4_dwt_row_s2(r0, r1, r2, wp[t % n_w][i], head->fold[t][cb + i],
                                          head->acc[t], tw);
                        }
                        accs[t] = head->acc[t];
                    }
                    q4_dwt_store(accs, n_terms, tw, &head->rec, cb + i, c0 + i, ch, terms,
                                 params, out + c0 + i, ch);
                }
            }
        }
    }
}

/* One word of 4 channels of one tap (z_x outside the input; the last C % 4 channels byte by
 * byte, never past the pixel). */
static inline uint32_t q4_dwt_tap_word(const int8_t *input, int32_t at, int32_t n,
                                       uint32_t zp_word)
{
    uint32_t x = zp_word;
    int32_t b;
    if (at >= 0 && n == 4) {
        x = q4_load_u32(input + at);
    } else if (at >= 0) {
        for (x = 0, b = 0; b < n; ++b) {
            x |= ((uint32_t)input[at + b] & 0xFFu) << (8 * b);
        }
    }
    return x;
}

/* acc[0..3] = fold[0..3] + the taps of one input and weight tensor for a group of 4 channels:
 * per tap one word of activations, SXTB16 of it and of it shifted by 8 (channels (0, 2) and
 * (1, 3)), SMLABB/SMLATT with the weight pairs w[0], w[1] (then w += Q4_DWT_BLOCK / 2). */
static __attribute__((noinline)) void q4_dwt_taps1(const int8_t *input, int32_t base,
                                                   const int32_t *offsets, int32_t taps,
                                                   int32_t n, uint32_t zp_word, const uint32_t *w,
                                                   const int32_t *fold, int32_t *acc)
{
    int32_t a0 = fold[0], a1 = n > 1 ? fold[1] : 0, a2 = n > 2 ? fold[2] : 0;
    int32_t a3 = n > 3 ? fold[3] : 0, tap;
    input += base;
    for (tap = 0; tap < taps; ++tap, w += Q4_DWT_BLOCK / 2) {
        const uint32_t x = q4_dwt_tap_word(input, offsets[tap], n, zp_word);
        const int32_t x_even = (int32_t)q4_sxtb16(x), x_odd = (int32_t)q4_sxtb16(x >> 8);
        a0 = __smlabb(x_even, (int32_t)w[0], a0);
        a2 = __smlatt(x_even, (int32_t)w[0], a2);
        a1 = __smlabb(x_odd, (int32_t)w[1], a1);
        a3 = __smlatt(x_odd, (int32_t)w[1], a3);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* The same for both weight tensors of a dual layer (the second's pairs at w + w2), one
 * activation load per tap. */
static __attribute__((noinline)) void q4_dwt_taps2(const int8_t *input, int32_t base,
                                                   const int32_t *offsets, int32_t taps,
                                                   int32_t n, uint32_t zp_word,
                                                   const uint32_t *w, int32_t w2,
                                                   const int32_t *fold_a, const int32_t *fold_b,
                                                   int32_t *acc_a, int32_t *acc_b)
{
    int32_t a0 = fold_a[0], a1 = n > 1 ? fold_a[1] : 0, a2 = n > 2 ? fold_a[2] : 0;
    int32_t a3 = n > 3 ? fold_a[3] : 0;
    int32_t b0 = fold_b[0], b1 = n > 1 ? fold_b[1] : 0, b2 = n > 2 ? fold_b[2] : 0;
    int32_t b3 = n > 3 ? fold_b[3] : 0, tap;
    input += base;
    for (tap = 0; tap < taps; ++tap, w += Q4_DWT_BLOCK / 2) {
        const uint32_t x = q4_dwt_tap_word(input, offsets[tap], n, zp_word);
        const int32_t x_even = (int32_t)q4_sxtb16(x), x_odd = (int32_t)q4_sxtb16(x >> 8);
        a0 = __smlabb(x_even, (int32_t)w[0], a0);
        a2 = __smlatt(x_even, (int32_t)w[0], a2);
        a1 = __smlabb(x_odd, (int32_t)w[1], a1);
        a3 = __smlatt(x_odd, (int32_t)w[1], a3);
        b0 = __smlabb(x_even, (int32_t)w[w2], b0);
        b2 = __smlatt(x_even, (int32_t)w[w2], b2);
        b1 = __smlabb(x_odd, (int32_t)w[w2 + 1], b1);
        b3 = __smlatt(x_odd, (int32_t)w[w2 + 1], b3);
    }
    acc_a[0] = a0;
    acc_a[1] = a1;
    acc_a[2] = a2;
    acc_a[3] = a3;
    acc_b[0] = b0;
    acc_b[1] = b1;
    acc_b[2] = b2;
    acc_b[3] = b3;
}

/* Requantizes and stores the nb channels of one pixel from head->acc (channel c at out[c]): two
 * terms on the fast records in one loop (as q4_dwt_store), others per channel. */
static __attribute__((noinline)) void q4_dwt_store_pixel(const q4_dwt_head *head, int32_t n_terms,
                                                         int32_t nb, int32_t cb0, int32_t ch,
                                                         const q4_terms_params *terms,
                                                         const q4_conv_params *params,
                                                         int8_t *out)
{
    /* locals: the int8 stores could otherwise alias the parameters */
    const int32_t zp = params->output_zp, lo = params->act_min, hi = params->act_max;
    int32_t c, t;
    for (c = 0; c < nb; ++c) {
        const int32_t right = head->rec.right[c];
        if (n_terms == 2 && right > 0) {
            const int64_t total = (int64_t)head->acc[0][c] * head->rec.multiplier[0][c] +
                                  (int64_t)head->acc[1][c] * head->rec.multiplier[1][c] +
                                  ((int64_t)1 << (right + 30));
            int32_t y = zp + ((int32_t)(uint32_t)((uint64_t)total >> 32) >> (right - 1));
            y = y < lo ? lo : y;
            out[c] = (int8_t)(y > hi ? hi : y);
        } else {
            const int32_t *accs[Q4_TERMS_TERMS];
            for (t = 0; t < n_terms; ++t) {
                accs[t] = head->acc[t] + c;
            }
            q4_dwt_store(accs, n_terms, 1, &head->rec, c, cb0 + c, ch, terms, params, out + c, 1);
        }
    }
}

void q4_depthwise_conv2d_s4_terms_dsp(const q4_conv_params *params, const q4_terms_params *terms,
                                      const q4_dims *input_dims, const int8_t *const *inputs,
                                      const q4_dims *filter_dims, const uint8_t *const *filters,
                                      const int32_t *bias, const q4_dims *output_dims,
                                      int8_t *output, int32_t *scratch)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, taps = k_h * k_w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t row_bytes = (taps + 1) / 2;
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights, n_terms = n_in * n_w;
    const int32_t stride_h = params->stride_h, stride_w = params->stride_w;
    const int32_t pad_top = params->pad_top, pad_left = params->pad_left;
    q4_dwt_head *const head = (q4_dwt_head *)(void *)scratch;
    /* tap offsets in the window [taps], in the input for the current pixel [taps], weight pairs
     * [tensor][tap][8 groups][2] */
    int32_t *const tap_offset = scratch + Q4_DWT_HEAD / 4;
    int32_t *const tap_at = tap_offset + taps;
    uint32_t *const weights = (uint32_t *)(tap_at + taps);
    int32_t cb0, oy, ox, c, t, j;

    if (k_h == 3 && k_w == 3 && (stride_w == 1 || (stride_w == 2 && out_w >= 8))) {
        q4_dwt3_dsp(params, terms, input_dims, inputs, filters, bias, output_dims, output,
                    scratch);
        return;
    }
    for (t = 0; t < taps; ++t) {
        tap_offset[t] = ((t / k_w) * in_w + t % k_w) * ch;
    }
    for (cb0 = 0; cb0 < ch; cb0 += Q4_DWT_BLOCK) {
        const int32_t nb = ch - cb0 < Q4_DWT_BLOCK ? ch - cb0 : Q4_DWT_BLOCK;
        const int32_t groups = (nb + 3) / 4;
        int16_t *const w16 = (int16_t *)(void *)weights;
        q4_dwt_records(terms, bias, cb0, nb, ch, taps, &head->rec);
        for (c = 0; c < 4 * groups; ++c) {
            /* channel c of its group: pair word (c & 1), half (c >> 1) & 1 */
            const int32_t at = ((c / 4) * 2 + (c & 1)) * 2 + ((c >> 1) & 1);
            int32_t sum[2] = {0, 0};
            for (j = 0; j < n_w; ++j) {
                const uint8_t *const row = filters[j] + (cb0 + c) * row_bytes;
                int16_t *const dst = w16 + j * taps * Q4_DWT_BLOCK + at;
                for (t = 0; t < taps; ++t) {
                    const uint32_t nib = c < nb ? ((uint32_t)row[t / 2] >> (4 * (t & 1))) & 15u
                                                : 8u;
                    const int32_t w = (int32_t)(nib ^ 8u) - 8;
                    dst[t * Q4_DWT_BLOCK] = (int16_t)w;
                    sum[j] += w;
                }
            }
            for (t = 0; c < nb && t < n_terms; ++t) {
                head->fold[t][c] = (t == 0 ? bias[cb0 + c] : 0) -
                                   terms->input_zp[t / n_w] * sum[t % n_w];
            }
        }
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * stride_h - pad_top;
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * stride_w - pad_left;
                const int32_t inside = y0 >= 0 && y0 + k_h <= in_h && x0 >= 0 && x0 + k_w <= in_w;
                const int32_t window = (y0 * in_w + x0) * ch; /* may be negative: an offset */
                int8_t *const out = output + (oy * out_w + ox) * ch + cb0;
                const int32_t *offsets = tap_offset; /* tap t reads base + offsets[t] */
                int32_t base = window, g;
                if (!inside) { /* list the taps, -1 for those outside the input */
                    int32_t ky, kx;
                    for (ky = 0, t = 0; ky < k_h; ++ky) {
                        for (kx = 0; kx < k_w; ++kx, ++t) {
                            const int32_t iy = y0 + ky, ix = x0 + kx;
                            tap_at[t] = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w
                                            ? window + tap_offset[t]
                                            : -1;
                        }
                    }
                    offsets = tap_at;
                    base = 0;
                }
                for (g = 0; g < groups; ++g) {
                    const int32_t cl = 4 * g, n = nb - cl < 4 ? nb - cl : 4;
                    int32_t ii;
                    for (ii = 0; ii < n_in; ++ii) {
                        const int8_t *const input = inputs[ii] + cb0 + cl;
                        const uint32_t zp_word = ((uint32_t)terms->input_zp[ii] & 0xFFu) *
                                                 0x01010101u;
                        if (n_w == 2) {
                            q4_dwt_taps2(input, base, offsets, taps, n, zp_word,
                                         weights + g * 2, taps * Q4_DWT_BLOCK / 2,
                                         head->fold[2 * ii] + cl, head->fold[2 * ii + 1] + cl,
                                         head->acc[2 * ii] + cl, head->acc[2 * ii + 1] + cl);
                        } else {
                            q4_dwt_taps1(input, base, offsets, taps, n, zp_word, weights + g * 2,
                                         head->fold[ii] + cl, head->acc[ii] + cl);
                        }
                    }
                }
                q4_dwt_store_pixel(head, n_terms, nb, cb0, ch, terms, params, out);
            }
        }
    }
}

#else /* no DSP extension: the portable kernel (scratch unused) */

int32_t q4_depthwise_conv2d_s4_terms_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_depthwise_conv2d_s4_terms_dsp(const q4_conv_params *params, const q4_terms_params *terms,
                                      const q4_dims *input_dims, const int8_t *const *inputs,
                                      const q4_dims *filter_dims, const uint8_t *const *filters,
                                      const int32_t *bias, const q4_dims *output_dims,
                                      int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_depthwise_conv2d_s4_terms(params, terms, input_dims, inputs, filter_dims, filters, bias,
                                 output_dims, output);
}

#endif
