/*
 * q4_depthwise_conv2d_s4_terms_mve.c - multi-term depthwise 2-D convolution (dual INT4 weights
 * and/or a residual-quantized input, channel multiplier 1), int8-stored activations, for cores
 * with Helium (MVE, Cortex-M55/M85). Bit-exact with q4_depthwise_conv2d_s4_terms.
 *
 * Scheme (docs/kernels.md, "Depthwise, round 3"): term t = i * n_w + j (input i, weight tensor j)
 * accumulates acc_t = fold_t + sum x_i * w_j, fold_t = [bias] - z_i * sum(w_j) (the bias in term
 * 0 only; window positions outside the input hold z_i). The T accumulators of an output are
 * requantized once, 4 lanes at a time: with s'' = max(shift, 32) and m''_t = m_t * 2^(s'' - shift)
 * (q4_dwt_records), high31 = floor(sum acc_t * m''_t / 2^31) is the sum of the VQDMULH high words
 * plus the carry of the remainders (VMUL low words, VHADD.U32), then VRSHL by -(s'' - 31), + z_y,
 * clamp. Channels whose records say the sum could leave that range take q4_requantize_terms_clamp.
 *  - 3x3 kernels at stride 1 or 2 in both directions into rows of >= 8 outputs (the single-term
 *    plane path): per block of 8 channels and tile, the input pixels under the tile are widened
 *    once per input term into one int16 plane per channel with a fixed row pitch; per channel and
 *    term one 9-tap filter over the flat plane (inline assembly, VLDRH + VMLA.S16 by scalar) gives
 *    int16 sums, then the vector requantization of the T terms and a byte scatter store.
 *  - Other kernels and narrow rows: per output pixel (taps listed once) and block of 8 channels,
 *    per input one activation load per tap for both weight tensors (int16 lanes, VMUL + VADD,
 *    widened into int32 every 31 taps), per-lane requantization tables prepared once per call.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#include "q4_depthwise_mve.h"

#include "q4_conv_terms.h"

#define Q4_DWT_BLOCK 32      /* channels per block of requantization records (Q4_TERMS_ROWS) */
#define Q4_DWT_CH 8          /* channels widened together, int16 lanes */
#define Q4_DWT_INT16_TAPS 31 /* taps whose products sum exactly in int16 (31 * 1024 < 2^15) */
#define Q4_DWT_PLANE 400     /* int16 per channel plane; half of it per input with two inputs */
/* the scratch: records and folded accumulator starts, then the path's own part */
#define Q4_DWT_HEAD ((int32_t)sizeof(q4_terms_records) + 4 * Q4_TERMS_TERMS * Q4_DWT_BLOCK)
/* the 3x3 path: 8 planes (16 of half the size with two inputs), and the sums of T <= 2 terms in
 * planes of that size (T <= 4 in half-size ones) */
#define Q4_DWT_PLANES ((Q4_DWT_CH + 2) * Q4_DWT_PLANE * 2)

typedef char q4_dwt_block_fits_records[Q4_DWT_BLOCK <= Q4_TERMS_ROWS ? 1 : -1];

int32_t q4_depthwise_conv2d_s4_terms_mve_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t taps = filter_dims->h * filter_dims->w;
    const int32_t c8 = (filter_dims->c + Q4_DWT_CH - 1) & ~(Q4_DWT_CH - 1);
    /* other kernels: tap offsets [2][taps], lane tables [2 * 4 + 1][C8] int32, weights
     * [2 tensors][taps][C8] int8 */
    const int32_t general = Q4_DWT_HEAD + 8 * taps + 36 * c8 + 2 * taps * c8;
    return taps == 9 && Q4_DWT_HEAD + Q4_DWT_PLANES > general ? Q4_DWT_HEAD + Q4_DWT_PLANES
                                                              : general;
}

typedef struct {
    q4_terms_records rec;
    int32_t fold[Q4_TERMS_TERMS][Q4_DWT_BLOCK];
} q4_dwt_head;

typedef char q4_dwt_head_size[sizeof(q4_dwt_head) == Q4_DWT_HEAD ? 1 : -1];

/* The requantization records of channels c0 .. c0 + n - 1 (n <= 32), in rec's fields: with
 * s'' = max(shift, 32) and m''_t = m_t * 2^(s'' - shift), multiplier[t][i] = m''_t and right[i]
 * = s'' - 31, or 0 when an m''_t leaves int32 or the accumulator bounds let the sum reach 2^62
 * (the exact rule then). The result is floor((high31 + 2^(right - 1)) / 2^right) with
 * high31 = floor(sum acc_t * m''_t / 2^31) (q4_dwt_high31). |m| < 2^29 keeps every shift >= 30
 * on this path. */
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

/* floor(sum_t a_t * m_t / 2^31) per lane, exact, for 1, 2 or 4 terms (m: vectors, or one value
 * per term duplicated): VQDMULH gives q_t = floor(a_t * m_t / 2^31) (no saturation: m_t !=
 * INT32_MIN), r_t = a_t * m_t - q_t * 2^31 < 2^31 and 2 r_t is the low word of a_t * 2 m_t
 * (VMUL, wrapping); r_0 + r_1 = VHADD.U32(2 r_0, 2 r_1) exactly, and the carry of the r sum into
 * bit 31 is added. The int32 sums may wrap in between: the result fits. */
static inline int32x4_t q4_dwt_high31(const int32x4_t *a, const int32x4_t *m, int32_t n_terms)
{
    int32x4_t q = vqdmulhq_s32(a[0], m[0]);
    uint32x4_t r01, r23;
    if (n_terms == 1) {
        return q;
    }
    q = vaddq_s32(q, vqdmulhq_s32(a[1], m[1]));
    r01 = vhaddq_u32(vreinterpretq_u32_s32(vmulq_s32(a[0], vshlq_n_s32(m[0], 1))),
                     vreinterpretq_u32_s32(vmulq_s32(a[1], vshlq_n_s32(m[1], 1))));
    if (n_terms == 2) {
        return vaddq_s32(q, vreinterpretq_s32_u32(vshrq_n_u32(r01, 31)));
    }
    q = vaddq_s32(q, vaddq_s32(vqdmulhq_s32(a[2], m[2]), vqdmulhq_s32(a[3], m[3])));
    r23 = vhaddq_u32(vreinterpretq_u32_s32(vmulq_s32(a[2], vshlq_n_s32(m[2], 1))),
                     vreinterpretq_u32_s32(vmulq_s32(a[3], vshlq_n_s32(m[3], 1))));
    /* floor((r01 + r23) / 2^31) = floor(VHADD(r01, r23) / 2^30) */
    return vaddq_s32(q, vreinterpretq_s32_u32(vshrq_n_u32(vhaddq_u32(r01, r23), 30)));
}

/* The requantized outputs of 4 lanes from their T accumulators (records with right > 0). */
static inline int32x4_t q4_dwt_requantize4(const int32x4_t *acc, int32_t n_terms,
                                           const int32_t *m, int32_t right, int32_t zp,
                                           int32x4_t lo, int32x4_t hi)
{
    int32x4_t mv[Q4_TERMS_TERMS];
    int32_t t;
    for (t = 0; t < n_terms; ++t) {
        mv[t] = vdupq_n_s32(m[t]);
    }
    return vminq_s32(
        vmaxq_s32(vaddq_n_s32(vrshlq_n_s32(q4_dwt_high31(acc, mv, n_terms), -right), zp), lo),
        hi);
}

/* The same with per-lane multipliers m[t * stride + 0 .. 3] and shifts shift[0 .. 3] (-right). */
static inline int32x4_t q4_dwt_requantize4_lanes(const int32x4_t *acc, int32_t n_terms,
                                                 const int32_t *m, int32_t stride,
                                                 const int32_t *shift, int32_t zp, int32x4_t lo,
                                                 int32x4_t hi)
{
    int32x4_t mv[Q4_TERMS_TERMS];
    int32_t t;
    for (t = 0; t < n_terms; ++t) {
        mv[t] = vld1q_s32(m + t * stride);
    }
    return vminq_s32(
        vmaxq_s32(vaddq_n_s32(vrshlq_s32(q4_dwt_high31(acc, mv, n_terms), vld1q_s32(shift)), zp),
                  lo),
        hi);
}

/* The 9 weights of a 3x3 channel (5 packed bytes) into w; returns their sum. (A word of the
 * first 4 bytes, each nibble sign-extended: (n ^ 8) - 8.) */
static int32_t q4_dwt_weights9(const uint8_t *row, int32_t *w)
{
    const uint32_t word = (uint32_t)row[0] | (uint32_t)row[1] << 8 | (uint32_t)row[2] << 16 |
                          (uint32_t)row[3] << 24;
    int32_t t, sum;
    for (t = 0; t < 8; ++t) {
        w[t] = (int32_t)(((word >> (4 * t)) & 15u) ^ 8u) - 8;
    }
    w[8] = (int32_t)(((uint32_t)row[4] & 15u) ^ 8u) - 8;
    sum = w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7] + w[8];
    return sum;
}

/* Widens channels c0 .. c0 + n - 1 (n <= 8) of the input pixels (iy0 + r, ix0 + q), r < rows,
 * q < cols, into planes[i * plane + r * pitch + column(q)] (z_x outside the input),
 * column(q) = q at stride s = 1, (q odd) * half + q / 2 at s = 2: per pixel one widening
 * VLDRB.S16 and one VSTRH scatter into the n planes. */
static void q4_dwt_widen(int16_t *planes, const int8_t *input, int32_t iy0, int32_t ix0,
                         int32_t rows, int32_t cols, int32_t pitch, int32_t s, int32_t half,
                         int32_t in_h, int32_t in_w, int32_t ch, int32_t c0, int32_t n,
                         int32_t in_zp, int32_t plane)
{
    const uint16x8_t lanes = vmulq_n_u16(vidupq_n_u16(0, 1), (uint16_t)plane);
    const mve_pred16_t p = vctp16q((uint32_t)n);
    const int16x8_t zp = vdupq_n_s16((int16_t)in_zp);
    int32_t r, f, j;
    for (r = 0; r < rows; ++r) {
        const int32_t iy = iy0 + r;
        for (f = 0; f < s; ++f) { /* the columns q = f + s * j */
            int16_t *const dst = planes + r * pitch + f * half;
            const int32_t count = (cols - f + s - 1) / s, x0 = ix0 + f;
            int32_t j_lo = x0 >= 0 ? 0 : (-x0 + s - 1) / s;
            int32_t j_hi = in_w - x0 <= 0 ? 0 : (in_w - x0 + s - 1) / s;
            const int8_t *x;
            if (iy < 0 || iy >= in_h) {
                j_lo = j_hi = count;
            }
            j_lo = j_lo < count ? j_lo : count;
            j_hi = j_hi < j_lo ? j_lo : (j_hi < count ? j_hi : count);
            for (j = 0; j < j_lo; ++j) {
                vstrhq_scatter_shifted_offset_s16(dst + j, lanes, zp);
            }
            x = input + ((iy * in_w + x0 + s * j_lo) * ch + c0);
            if (n == Q4_DWT_CH) {
                for (j = j_lo; j < j_hi; ++j, x += s * ch) {
                    vstrhq_scatter_shifted_offset_s16(dst + j, lanes, vldrbq_s16(x));
                }
            } else {
                for (j = j_lo; j < j_hi; ++j, x += s * ch) {
                    vstrhq_scatter_shifted_offset_s16(dst + j, lanes, vldrbq_z_s16(x, p));
                }
            }
            for (j = j_hi; j < count; ++j) {
                vstrhq_scatter_shifted_offset_s16(dst + j, lanes, zp);
            }
        }
    }
}

/* Requantizes and stores the th x tw outputs of one channel from its T planes of int16 sums
 * (term t's row y at sums + t * plane + y * pitch; out row y at out + y * row_step,
 * pixels ch apart: out_offsets, ch8 = 8 * ch). fold, m: the channel's per-term values. Called
 * with a literal n_terms, so the term loops unroll. */
static inline __attribute__((always_inline)) void q4_dwt_store_body(
    const int16_t *sums, int32_t plane, const int32_t n_terms, int32_t pitch, int32_t th,
    int32_t tw, const int32_t *fold, const int32_t *m, int32_t right,
    const q4_conv_params *params, int8_t *out, int32_t row_step, int32_t ch8,
    uint16x8_t out_offsets)
{
    const int32x4_t lo = vdupq_n_s32(params->act_min), hi = vdupq_n_s32(params->act_max);
    const int32_t zp = params->output_zp;
    int32_t y, x, t;
    for (y = 0; y < th; ++y, sums += pitch, out += row_step) {
        int8_t *o = out;
        for (x = 0; x < tw; x += 8, o += ch8) {
            int32x4_t even[Q4_TERMS_TERMS], odd[Q4_TERMS_TERMS];
            int16x8_t v = vld1q_s16(sums + x);
            even[0] = vaddq_n_s32(vmovlbq_s16(v), fold[0]);
            odd[0] = vaddq_n_s32(vmovltq_s16(v), fold[0]);
            for (t = 1; t < n_terms; ++t) {
                const int16x8_t s16 = vld1q_s16(sums + t * plane + x);
                even[t] = vaddq_n_s32(vmovlbq_s16(s16), fold[t]);
                odd[t] = vaddq_n_s32(vmovltq_s16(s16), fold[t]);
            }
            v = vmovnbq_s32(vuninitializedq_s16(),
                            q4_dwt_requantize4(even, n_terms, m, right, zp, lo, hi));
            v = vmovntq_s32(v, q4_dwt_requantize4(odd, n_terms, m, right, zp, lo, hi));
            vstrbq_scatter_offset_p_s16(o, out_offsets, v, vctp16q((uint32_t)(tw - x)));
        }
    }
}

static __attribute__((noinline)) void q4_dwt_store(
    const int16_t *sums, int32_t plane, int32_t n_terms, int32_t pitch, int32_t th, int32_t tw,
    const int32_t *fold, const int32_t *m, int32_t right, const q4_conv_params *params,
    int8_t *out, int32_t row_step, int32_t ch8, uint16x8_t out_offsets)
{
    if (n_terms == 2) {
        q4_dwt_store_body(sums, plane, 2, pitch, th, tw, fold, m, right, params, out, row_step,
                          ch8, out_offsets);
    } else if (n_terms == 4) {
        q4_dwt_store_body(sums, plane, 4, pitch, th, tw, fold, m, right, params, out, row_step,
                          ch8, out_offsets);
    } else {
        q4_dwt_store_body(sums, plane, n_terms, pitch, th, tw, fold, m, right, params, out,
                          row_step, ch8, out_offsets);
    }
}

/* floor((a0 * m0 + a1 * m1) / 2^31) per lane, exact: VQDMULH gives q_t = floor(a_t * m_t / 2^31)
 * (no saturation: m_t != INT32_MIN), r_t = a_t * m_t - q_t * 2^31 < 2^31, and the carry of
 * r_0 + r_1 (< 2^32) into bit 31 is added. Scalar multipliers:
 * Helium has 8 vector registers, and vector ones spilled. */
static inline int32x4_t q4_dwt_high31x2(int32x4_t a0, int32x4_t a1, int32_t m0, int32_t m1)
{
    /* 2 r_t is the low word of a_t * 2 m_t (wrapping): the carry is bit 31 of their halving sum */
    const uint32x4_t r0 = vreinterpretq_u32_s32(vmulq_n_s32(a0, (int32_t)((uint32_t)m0 << 1)));
    const uint32x4_t r1 = vreinterpretq_u32_s32(vmulq_n_s32(a1, (int32_t)((uint32_t)m1 << 1)));
    const int32x4_t q = vaddq_s32(vqdmulhq_n_s32(a0, m0), vqdmulhq_n_s32(a1, m1));
    return vaddq_s32(q, vreinterpretq_s32_u32(vshrq_n_u32(vhaddq_u32(r0, r1), 31)));
}

/* The same as q4_dwt_store for two terms (dual weights, or one weight tensor on a residual input
 * pair): y = floor((high31 + 2^(right - 1)) / 2^right) (VRSHL). With `small` (both folds within
 * 2^15 - 1 - 9216, and |sum| <= 9 * 1024) the folds are added to the int16 sums, else to the
 * widened ones; z_y and the clamp are applied to the saturating int16 narrows (a value beyond
 * int16 clamps the same). */
static inline __attribute__((always_inline)) void q4_dwt_store2_body(
    const int16_t *sums, int32_t plane, int32_t pitch, int32_t th, int32_t tw, int32_t fold0,
    int32_t fold1, int32_t m0, int32_t m1, int32_t right, const q4_conv_params *params,
    int8_t *out, int32_t row_step, int32_t ch8, uint16x8_t out_offsets, const int small)
{
    const int16x8_t lo = vdupq_n_s16((int16_t)params->act_min);
    const int16x8_t hi = vdupq_n_s16((int16_t)params->act_max);
    const int16_t zp = (int16_t)params->output_zp;
    const int32_t shift = -right, vectors = (tw + 7) / 8;
    int32_t y, x;
    for (y = 0; y < th; ++y, sums += pitch, out += row_step) {
        const int16_t *r = sums;
        int8_t *o = out;
        for (x = 0; x < vectors; ++x, r += 8, o += ch8) {
            int16x8_t s0 = vld1q_s16(r), s1 = vld1q_s16(r + plane), v;
            int32x4_t even, odd;
            if (small) {
                s0 = vaddq_n_s16(s0, (int16_t)fold0);
                s1 = vaddq_n_s16(s1, (int16_t)fold1);
                even = q4_dwt_high31x2(vmovlbq_s16(s0), vmovlbq_s16(s1), m0, m1);
                odd = q4_dwt_high31x2(vmovltq_s16(s0), vmovltq_s16(s1), m0, m1);
            } else {
                even = q4_dwt_high31x2(vaddq_n_s32(vmovlbq_s16(s0), fold0),
                                       vaddq_n_s32(vmovlbq_s16(s1), fold1), m0, m1);
                odd = q4_dwt_high31x2(vaddq_n_s32(vmovltq_s16(s0), fold0),
                                      vaddq_n_s32(vmovltq_s16(s1), fold1), m0, m1);
            }
            v = vqmovnbq_s32(vuninitializedq_s16(), vrshlq_n_s32(even, shift));
            v = vqmovntq_s32(v, vrshlq_n_s32(odd, shift));
            v = vminq_s16(vmaxq_s16(vqaddq_n_s16(v, zp), lo), hi);
            vstrbq_scatter_offset_p_s16(o, out_offsets, v, vctp16q((uint32_t)(tw - 8 * x)));
        }
    }
}

static __attribute__((noinline)) void q4_dwt_store2(
    const int16_t *sums, int32_t plane, int32_t pitch, int32_t th, int32_t tw, int32_t fold0,
    int32_t fold1, int32_t m0, int32_t m1, int32_t right, const q4_conv_params *params,
    int8_t *out, int32_t row_step, int32_t ch8, uint16x8_t out_offsets)
{
    if (fold0 >= -23551 && fold0 <= 23551 && fold1 >= -23551 && fold1 <= 23551) {
        q4_dwt_store2_body(sums, plane, pitch, th, tw, fold0, fold1, m0, m1, right, params, out,
                           row_step, ch8, out_offsets, 1);
    } else {
        q4_dwt_store2_body(sums, plane, pitch, th, tw, fold0, fold1, m0, m1, right, params, out,
                           row_step, ch8, out_offsets, 0);
    }
}

/* 3x3 kernels at stride s = 1 or 2 (the same in both directions; a literal). */
static inline __attribute__((always_inline)) void q4_dwt_plane_body(
    const q4_conv_params *params, const q4_terms_params *terms, const q4_dims *input_dims,
    const int8_t *const *inputs, const uint8_t *const *filters, const int32_t *bias,
    const q4_dims *output_dims, int8_t *output, int32_t *scratch, const int32_t s)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights, n_terms = n_in * n_w;
    const int32_t pitch = q4_dwp_pitch(out_w, s), half = s == 2 ? pitch / 2 : 0;
    /* stride 1: rows of tw + 2 inputs; stride 2: half rows of tw + 1 even and tw odd inputs */
    const int32_t tile_w = s == 1 ? pitch - 2 : half - 1;
    /* two inputs: 8 planes of half the size each */
    const int32_t plane = n_in == 2 ? Q4_DWT_PLANE / 2 : Q4_DWT_PLANE;
    const int32_t tile_h = (plane / pitch - 3 + s) / s;
    q4_dwt_head *const head = (q4_dwt_head *)(void *)scratch;
    int16_t *const planes = (int16_t *)(void *)(scratch + Q4_DWT_HEAD / 4);
    int16_t *const sums = planes + Q4_DWT_CH * Q4_DWT_PLANE; /* T planes of `plane` */
    const uint16x8_t out_offsets = vmulq_n_u16(vidupq_n_u16(0, 1), (uint16_t)ch);
    int32_t c0, ty0, tx0, i, t, ii;

    for (c0 = 0; c0 < ch; c0 += Q4_DWT_CH) {
        const int32_t n = ch - c0 < Q4_DWT_CH ? ch - c0 : Q4_DWT_CH;
        int32_t w[2][Q4_DWT_CH][9];
        /* the block's records (index i) and folds: term t = ii * n_w + j starts at
         * [bias] - z_ii * sum(w_j) */
        q4_dwt_records(terms, bias, c0, n, ch, 9, &head->rec);
        for (i = 0; i < n; ++i) {
            int32_t sum[2] = {0, 0};
            for (t = 0; t < n_w; ++t) {
                sum[t] = q4_dwt_weights9(filters[t] + (c0 + i) * 5, w[t][i]);
            }
            for (t = 0; t < n_terms; ++t) {
                head->fold[t][i] = (t == 0 ? bias[c0 + i] : 0) -
                                   terms->input_zp[t / n_w] * sum[t % n_w];
            }
        }
        for (ty0 = 0; ty0 < out_h; ty0 += tile_h) {
            const int32_t th = out_h - ty0 < tile_h ? out_h - ty0 : tile_h;
            for (tx0 = 0; tx0 < out_w; tx0 += tile_w) {
                const int32_t tw = out_w - tx0 < tile_w ? out_w - tx0 : tile_w;
                /* stride 1: vectors covering the flat outputs 0 .. (th - 1) * pitch + tw - 1 */
                const int32_t vectors = ((th - 1) * pitch + tw + 7) / 8;
                for (ii = 0; ii < n_in; ++ii) {
                    q4_dwt_widen(planes + ii * Q4_DWT_CH * plane, inputs[ii],
                                 ty0 * s - params->pad_top, tx0 * s - params->pad_left,
                                 (th - 1) * s + 3, (tw - 1) * s + 3, pitch, s, half, in_h, in_w,
                                 ch, c0, n, terms->input_zp[ii], plane);
                }
                for (i = 0; i < n; ++i) {
                    const int32_t c = c0 + i, right = head->rec.right[i];
                    int8_t *out = output + (ty0 * out_w + tx0) * ch + c;
                    int32_t fold[Q4_TERMS_TERMS], m[Q4_TERMS_TERMS], y, x;
                    for (t = 0; t < n_terms; ++t) {
                        const int16_t *const src = planes + ((t / n_w) * Q4_DWT_CH + i) * plane;
                        int16_t *const term_sums = sums + t * plane;
                        fold[t] = head->fold[t][i];
                        m[t] = head->rec.multiplier[t][i];
                        if (s == 1) {
                            q4_dwp_filter(src, term_sums, vectors, pitch, w[t % n_w][i]);
                        } else { /* output row y from input rows 2y .. 2y + 2 */
                            for (y = 0; y < th; ++y) {
                                q4_dwp_filter(src + 2 * y * pitch, term_sums + y * pitch,
                                              (tw + 7) / 8, -pitch, w[t % n_w][i]);
                            }
                        }
                    }
                    if (right > 0 && n_terms == 2) {
                        q4_dwt_store2(sums, plane, pitch, th, tw, fold[0], fold[1], m[0], m[1],
                                      right, params, out, out_w * ch, 8 * ch, out_offsets);
                        continue;
                    }
                    if (right > 0) {
                        q4_dwt_store(sums, plane, n_terms, pitch, th, tw, fold, m, right,
                                     params, out, out_w * ch, 8 * ch, out_offsets);
                        continue;
                    }
                    for (y = 0; y < th; ++y, out += out_w * ch) {
                        for (x = 0; x < tw; ++x) {
                            int32_t acc[Q4_TERMS_TERMS];
                            for (t = 0; t < n_terms; ++t) {
                                acc[t] = fold[t] + sums[t * plane + y * pitch + x];
                            }
                            out[x * ch] = q4_requantize_terms_clamp(
                                acc, n_terms, terms->multiplier + c, ch, terms->shift[c],
                                params->output_zp, params->act_min, params->act_max);
                        }
                    }
                }
            }
        }
    }
}

/* The taps weights of one packed row into dst[0], dst[stride], ... as int8; returns their sum. */
static int32_t q4_dwt_unpack_row(const uint8_t *row, int32_t taps, int8_t *dst, int32_t stride)
{
    int32_t t, sum = 0;
    for (t = 0; t + 1 < taps; t += 2, dst += 2 * stride) {
        const uint32_t b = row[t / 2];
        const int32_t w0 = (int32_t)((b & 15u) ^ 8u) - 8, w1 = (int32_t)((b >> 4) ^ 8u) - 8;
        dst[0] = (int8_t)w0;
        dst[stride] = (int8_t)w1;
        sum += w0 + w1;
    }
    if (t < taps) {
        const int32_t w0 = (int32_t)(((uint32_t)row[t / 2] & 15u) ^ 8u) - 8;
        dst[0] = (int8_t)w0;
        sum += w0;
    }
    return sum;
}

/* The taps of one input for channels c .. c + 7 (predicate p) of one pixel, into the int32 even /
 * odd lane sums of its n_w terms (|x * w| <= 1024: int16 sums of up to 31 taps, then widened). */
static inline __attribute__((always_inline)) void q4_dwt_general_taps(
    const int8_t *x, const int32_t *offsets, int32_t taps, const int8_t *w0, const int8_t *w1,
    int32_t c8, int16_t in_zp, mve_pred16_t p, int32x4_t *even, int32x4_t *odd, const int n_w)
{
    int32_t t0, tap;
    for (t0 = 0; t0 < taps; t0 += Q4_DWT_INT16_TAPS) {
        const int32_t t_end = taps - t0 < Q4_DWT_INT16_TAPS ? taps : t0 + Q4_DWT_INT16_TAPS;
        int16x8_t acc0 = vdupq_n_s16(0), acc1 = vdupq_n_s16(0);
        for (tap = t0; tap < t_end; ++tap) {
            const int32_t at = offsets[tap];
            if (at >= 0) {
                const int16x8_t xv = vldrbq_z_s16(x + at, p);
                acc0 = vaddq_s16(acc0, vmulq_s16(xv, vldrbq_s16(w0 + tap * c8)));
                if (n_w == 2) {
                    acc1 = vaddq_s16(acc1, vmulq_s16(xv, vldrbq_s16(w1 + tap * c8)));
                }
            } else { /* outside the input: x = z_i */
                acc0 = vmlaq_n_s16(acc0, vldrbq_s16(w0 + tap * c8), in_zp);
                if (n_w == 2) {
                    acc1 = vmlaq_n_s16(acc1, vldrbq_s16(w1 + tap * c8), in_zp);
                }
            }
        }
        even[0] = vaddq_s32(even[0], vmovlbq_s16(acc0));
        odd[0] = vaddq_s32(odd[0], vmovltq_s16(acc0));
        if (n_w == 2) {
            even[1] = vaddq_s32(even[1], vmovlbq_s16(acc1));
            odd[1] = vaddq_s32(odd[1], vmovltq_s16(acc1));
        }
    }
}

/* Other kernels: per output pixel (its taps listed once) and block of 8 channels, per input the
 * taps in int16 lanes for both weight tensors (one activation load per tap), then the vector
 * requantization with per-lane multipliers and shifts (tables prepared once per call in the lane
 * order of VMOVLB / VMOVLT), or the exact rule per channel when a shift needs it. */
static inline __attribute__((always_inline)) void q4_dwt_general_body(
    const q4_conv_params *params, const q4_terms_params *terms, const q4_dims *input_dims,
    const int8_t *const *inputs, const q4_dims *filter_dims, const uint8_t *const *filters,
    const int32_t *bias, const q4_dims *output_dims, int8_t *output, int32_t *scratch,
    const int32_t n_in, const int32_t n_w)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, taps = k_h * k_w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t row_bytes = (taps + 1) / 2, c8 = (ch + Q4_DWT_CH - 1) & ~(Q4_DWT_CH - 1);
    const int32_t n_terms = n_in * n_w;
    const int32_t pad_top = params->pad_top, pad_left = params->pad_left;
    const int32_t zp = params->output_zp;
    const int32x4_t lo = vdupq_n_s32(params->act_min), hi = vdupq_n_s32(params->act_max);
    q4_dwt_head *const head = (q4_dwt_head *)(void *)scratch;
    /* tap offsets in the window [taps] and for the current pixel [taps]; per-lane folds and
     * multipliers [T][C8], shifts [C8]; weights [tensor][tap][C8] */
    int32_t *const tap_offset = scratch + Q4_DWT_HEAD / 4;
    int32_t *const tap_at = tap_offset + taps;
    int32_t *const lane_fold = tap_at + taps;
    int32_t *const lane_m = lane_fold + Q4_TERMS_TERMS * c8;
    int32_t *const lane_shift = lane_m + Q4_TERMS_TERMS * c8;
    int8_t *const weights = (int8_t *)(lane_shift + c8);
    int32_t c0, c, oy, ox, t, j, tap, fast = 1;

    for (t = 0; t < taps; ++t) {
        tap_offset[t] = ((t / k_w) * in_w + t % k_w) * ch;
    }
    for (c0 = 0; c0 < ch; c0 += Q4_DWT_BLOCK) {
        const int32_t nb = ch - c0 < Q4_DWT_BLOCK ? ch - c0 : Q4_DWT_BLOCK;
        q4_dwt_records(terms, bias, c0, nb, ch, taps, &head->rec);
        for (c = c0; c < c0 + nb; ++c) {
            const int32_t i = c - c0,
                          lane = c - c % Q4_DWT_CH + (c % 2) * 4 + (c % Q4_DWT_CH) / 2;
            int32_t sum[2] = {0, 0};
            for (j = 0; j < n_w; ++j) {
                sum[j] = q4_dwt_unpack_row(filters[j] + c * row_bytes, taps,
                                           weights + j * taps * c8 + c, c8);
            }
            for (t = 0; t < n_terms; ++t) {
                lane_fold[t * c8 + lane] = (t == 0 ? bias[c] : 0) -
                                           terms->input_zp[t / n_w] * sum[t % n_w];
                lane_m[t * c8 + lane] = head->rec.multiplier[t][i];
            }
            lane_shift[lane] = -head->rec.right[i];
            fast &= head->rec.right[i] > 0;
        }
    }
    for (c = ch; c < c8; ++c) { /* lanes past C: zero weights, any finite values */
        const int32_t lane = c - c % Q4_DWT_CH + (c % 2) * 4 + (c % Q4_DWT_CH) / 2;
        for (t = 0; t < n_terms; ++t) {
            lane_fold[t * c8 + lane] = 0;
            lane_m[t * c8 + lane] = 0;
        }
        lane_shift[lane] = -1;
        for (j = 0; j < n_w; ++j) {
            for (tap = 0; tap < taps; ++tap) {
                weights[(j * taps + tap) * c8 + c] = 0;
            }
        }
    }
    for (oy = 0; oy < out_h; ++oy) {
        const int32_t y0 = oy * params->stride_h - pad_top;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t x0 = ox * params->stride_w - pad_left;
            const int32_t inside = y0 >= 0 && y0 + k_h <= in_h && x0 >= 0 && x0 + k_w <= in_w;
            const int32_t window = (y0 * in_w + x0) * ch; /* may be negative: an offset */
            const int32_t *offsets = tap_offset;          /* tap t reads base + offsets[t] */
            int32_t base = window;
            int8_t *const out = output + (oy * out_w + ox) * ch;
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
            for (c = 0; c < ch; c += Q4_DWT_CH) {
                const int32_t n = ch - c < Q4_DWT_CH ? ch - c : Q4_DWT_CH;
                const mve_pred16_t p = vctp16q((uint32_t)n);
                int32x4_t even[Q4_TERMS_TERMS], odd[Q4_TERMS_TERMS];
                int32_t ii;
                for (t = 0; t < n_terms; ++t) {
                    even[t] = vld1q_s32(lane_fold + t * c8 + c);
                    odd[t] = vld1q_s32(lane_fold + t * c8 + c + 4);
                }
                for (ii = 0; ii < n_in; ++ii) {
                    const int8_t *const x = inputs[ii] + base + c;
                    const int8_t *const w0 = weights + c;
                    const int16_t in_zp = (int16_t)terms->input_zp[ii];
                    if (n_w == 2) {
                        q4_dwt_general_taps(x, offsets, taps, w0, w0 + taps * c8, c8, in_zp, p,
                                            even + 2 * ii, odd + 2 * ii, 2);
                    } else {
                        q4_dwt_general_taps(x, offsets, taps, w0, w0, c8, in_zp, p, even + ii,
                                            odd + ii, 1);
                    }
                }
                if (fast) {
                    int16x8_t v;
                    v = vmovnbq_s32(vuninitializedq_s16(),
                                    q4_dwt_requantize4_lanes(even, n_terms, lane_m + c, c8,
                                                             lane_shift + c, zp, lo, hi));
                    v = vmovntq_s32(v, q4_dwt_requantize4_lanes(odd, n_terms, lane_m + c + 4, c8,
                                                                lane_shift + c + 4, zp, lo, hi));
                    vstrbq_p_s16(out + c, v, p);
                } else {
                    int32_t lanes[Q4_TERMS_TERMS][Q4_DWT_CH], i;
                    for (t = 0; t < n_terms; ++t) {
                        vst1q_s32(lanes[t], even[t]);
                        vst1q_s32(lanes[t] + 4, odd[t]);
                    }
                    for (i = 0; i < n; ++i) {
                        const int32_t lane = (i % 2) * 4 + i / 2;
                        int32_t acc[Q4_TERMS_TERMS];
                        for (t = 0; t < n_terms; ++t) {
                            acc[t] = lanes[t][lane];
                        }
                        out[c + i] = q4_requantize_terms_clamp(
                            acc, n_terms, terms->multiplier + c + i, ch, terms->shift[c + i],
                            zp, params->act_min, params->act_max);
                    }
                }
            }
        }
    }
}

/* q4_dwt_general_body per (n_inputs, n_weights), so its term loops unroll and the sums stay in
 * registers. */
static void q4_dwt_general(const q4_conv_params *params, const q4_terms_params *terms,
                           const q4_dims *input_dims, const int8_t *const *inputs,
                           const q4_dims *filter_dims, const uint8_t *const *filters,
                           const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                           int32_t *scratch)
{
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights;
    if (n_in == 1 && n_w == 2) {
        q4_dwt_general_body(params, terms, input_dims, inputs, filter_dims, filters, bias,
                            output_dims, output, scratch, 1, 2);
    } else if (n_in == 2 && n_w == 1) {
        q4_dwt_general_body(params, terms, input_dims, inputs, filter_dims, filters, bias,
                            output_dims, output, scratch, 2, 1);
    } else if (n_in == 2) {
        q4_dwt_general_body(params, terms, input_dims, inputs, filter_dims, filters, bias,
                            output_dims, output, scratch, 2, 2);
    } else {
        q4_dwt_general_body(params, terms, input_dims, inputs, filter_dims, filters, bias,
                            output_dims, output, scratch, 1, 1);
    }
}

void q4_depthwise_conv2d_s4_terms_mve(const q4_conv_params *params, const q4_terms_params *terms,
                                      const q4_dims *input_dims, const int8_t *const *inputs,
                                      const q4_dims *filter_dims, const uint8_t *const *filters,
                                      const int32_t *bias, const q4_dims *output_dims,
                                      int8_t *output, int32_t *scratch)
{
    const int32_t ch = input_dims->c;
    if (filter_dims->h == 3 && filter_dims->w == 3 && 8 * ch < 65536 && output_dims->w >= 8 &&
        params->stride_w == params->stride_h && (params->stride_w == 1 || params->stride_w == 2)) {
        if (params->stride_w == 1) {
            q4_dwt_plane_body(params, terms, input_dims, inputs, filters, bias, output_dims,
                              output, scratch, 1);
        } else {
            q4_dwt_plane_body(params, terms, input_dims, inputs, filters, bias, output_dims,
                              output, scratch, 2);
        }
        return;
    }
    q4_dwt_general(params, terms, input_dims, inputs, filter_dims, filters, bias, output_dims,
                   output, scratch);
}

#else /* no MVE: the portable kernel (scratch unused) */

int32_t q4_depthwise_conv2d_s4_terms_mve_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_depthwise_conv2d_s4_terms_mve(const q4_conv_params *params, const q4_terms_params *terms,
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
