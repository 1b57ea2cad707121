/*
 * q4_depthwise_conv2d_s4_mve.c - depthwise 2-D convolution (channel multiplier 1), INT4 packed
 * weights, int8-stored activations (4 or 8 bits), for cores with Helium (MVE, Cortex-M55/M85).
 * Bit-exact with q4_depthwise_conv2d_s4.
 *
 * Scheme (docs/kernels.md):
 *  - Once per call the weights are unpacked into the scratch as int8 [tap][C8] (C8 = C rounded
 *    up to 8, zeros past C); the input zero point is folded into a per-channel bias
 *    (bias - z_x * sum(w)); biases, multipliers and shifts are stored per group of 8 channels in
 *    the lane order of VMOVLB/VMOVLT (even channels, then odd ones); the byte offset of every tap
 *    inside the window is tabulated.
 *  - Per output pixel the input offset of each tap is listed (-1 outside the input), then
 *    16 channels per step (the last ones 8 at a time, predicated) in int16 lanes: per tap a
 *    widening VLDRB.S16 of the activations and of the weights, VMUL.I16 and VADD.I16. |x * w| <= 1024, so up to 31 taps sum exactly in int16;
 *    every 31 taps VMOVLB/VMOVLT add the sums into two int32 vectors. Window positions outside
 *    the input hold z_x (they cancel the folded term): a VMLA of the weights by z_x instead.
 *  - Requantization of the two int32 vectors: when every shift is above 32,
 *    floor((acc * m + 2^(s-1)) / 2^s) = rounding_shift_right(VMULH(acc, m), s - 32) (VRSHL),
 *    VMAX/VMIN, then VMOVNB/VMOVNT put the channels back in order and one (predicated) VSTRB.16
 *    stores them; otherwise q4_requantize_clamp per channel.
 *  - 3x3 kernels at stride_w 1 or 2 take the row path instead (unless output rows are narrower
 *    than 12 pixels, C >= 32 and every shift is above 32): per block of 8 channels and row tile,
 *    each input row is widened once into per-channel int16 rows (one VLDRB.S16 of 8 channels
 *    and one VSTRH scatter per pixel; even/odd phase rows at stride 2), a ring of 3; per channel
 *    and output row the 9 taps of 8 output pixels are VLDRH + VMUL/VMLA.S16 by scalar weights
 *    (inline assembly, one kernel row at a time), then a vector requantization per channel
 *    (VQDMULH + VRSHL for shifts >= 32, else the scalar rule) and a byte scatter store.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#include "q4_depthwise_mve.h"

#define Q4_DW_GROUP 8       /* channels per int16 vector */
#define Q4_DW_INT16_TAPS 31 /* taps whose products sum exactly in int16 (31 * 1024 < 2^15) */

static int32_t q4_round_up8(int32_t c)
{
    return (c + Q4_DW_GROUP - 1) & ~(Q4_DW_GROUP - 1);
}

/* The 9 weights of a 3x3 channel (5 packed bytes) into w; returns their sum. (A word of the
 * first 4 bytes, each nibble sign-extended: (n ^ 8) - 8.) */
static int32_t q4_dw_weights9(const uint8_t *row, int32_t *w)
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

/* The 3x3 path: per channel, row tiles of up to Q4_DW3_TILE output pixels; each input row of the
 * tile's span is widened once into two int16 phase rows (even / odd pixels at stride 2) of
 * Q4_DW3_PHASE elements (the tile rounded up to 8 plus the taps read past it), a ring of 3. */
#define Q4_DW3_TILE 64
#define Q4_DW3_PHASE 72
#define Q4_DW3_ROW (2 * Q4_DW3_PHASE)
#define Q4_DW3_CH 8 /* channels widened together */
#define Q4_DW3_BYTES ((3 * Q4_DW3_CH + 1) * Q4_DW3_ROW * 2 + 2 * Q4_DW3_TILE)

int32_t q4_depthwise_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k = filter_dims->h * filter_dims->w, c8 = q4_round_up8(filter_dims->c);
    const int32_t general = 12 * c8 + 8 * k + k * c8;
    /* sized from kh * kw only (the generator knows K and C): 9 taps may take the 3x3 path */
    return k == 9 && general < Q4_DW3_BYTES ? Q4_DW3_BYTES : general;
}

/* Lane position of channel c in its group's permuted tables: even channels first. */
static int32_t q4_dw_lane(int32_t c)
{
    const int32_t i = c % Q4_DW_GROUP;
    return c - i + (i % 2) * 4 + i / 2;
}

/* Per-call output constants (locals: the int8 stores could otherwise alias *params, *quant). */
typedef struct {
    const int32_t *mult_p;  /* multipliers, permuted like the accumulators */
    const int32_t *shift_p; /* shifts, permuted */
    int32_t output_zp;
    int32_t act_min;
    int32_t act_max;
    int32_t fast; /* every shift above 32 */
} q4_dw_out;

/* Requantizes channels c .. c + n - 1 (n <= 8) from their even and odd accumulators and stores
 * them in order at out + c. */
static inline void q4_dw_finish8(int32x4_t acc_even, int32x4_t acc_odd, int32_t c, int32_t n,
                                 const q4_dw_out *q, int8_t *out)
{
    if (q->fast) {
        const int32x4_t lo = vdupq_n_s32(q->act_min), hi = vdupq_n_s32(q->act_max);
        const int32x4_t thirty_two = vdupq_n_s32(32);
        int32x4_t y_even = vmulhq_s32(acc_even, vldrwq_s32(q->mult_p + c));
        int32x4_t y_odd = vmulhq_s32(acc_odd, vldrwq_s32(q->mult_p + c + 4));
        int16x8_t y;
        y_even = vrshlq_s32(y_even, vsubq_s32(thirty_two, vldrwq_s32(q->shift_p + c)));
        y_odd = vrshlq_s32(y_odd, vsubq_s32(thirty_two, vldrwq_s32(q->shift_p + c + 4)));
        y_even = vminq_s32(vmaxq_s32(vaddq_n_s32(y_even, q->output_zp), lo), hi);
        y_odd = vminq_s32(vmaxq_s32(vaddq_n_s32(y_odd, q->output_zp), lo), hi);
        y = vmovntq_s32(vmovnbq_s32(vreinterpretq_s16_s32(y_odd), y_even), y_odd);
        vstrbq_p_s16(out + c, y, vctp16q((uint32_t)n));
    } else {
        int32_t lanes[Q4_DW_GROUP], i;
        vst1q_s32(lanes, acc_even);
        vst1q_s32(lanes + 4, acc_odd);
        for (i = 0; i < n; ++i) {
            const int32_t lane = q4_dw_lane(c + i) - c;
            out[c + i] = q4_requantize_clamp(lanes[lane], q->mult_p[c + lane],
                                             q->shift_p[c + lane], q->output_zp, q->act_min,
                                             q->act_max);
        }
    }
}

/* Widens channels c0 .. c0 + n - 1 (n <= 8) of input row iy, pixels ix0 .. ix0 + span - 1 (z_x
 * outside the input), into rows[i * Q4_DW3_ROW + (p % s) * Q4_DW3_PHASE + p / s] (p = ix - ix0):
 * per pixel one widening VLDRB.S16 of its n channels and one VSTRH scatter into the n rows. */
static void q4_dw3_widen_row(int16_t *rows, const int8_t *input, int32_t iy, int32_t ix0,
                             int32_t span, int32_t s, int32_t in_w, int32_t ch, int32_t c0,
                             int32_t n, int32_t in_zp)
{
    const uint16x8_t planes = vmulq_n_u16(vidupq_n_u16(0, 1), (uint16_t)Q4_DW3_ROW);
    const mve_pred16_t p = vctp16q((uint32_t)n);
    const int16x8_t zp = vdupq_n_s16((int16_t)in_zp);
    const int8_t *const src = input + iy * in_w * ch + c0;
    int32_t f, j;
    for (f = 0; f < s; ++f) {
        int16_t *const dst = rows + f * Q4_DW3_PHASE;
        const int32_t len = (span - f + s - 1) / s; /* pixels p = f + s * j < span */
        /* j inside the input: 0 <= ix0 + f + s * j < in_w */
        const int32_t j_lo = ix0 + f >= 0 ? 0 : (-(ix0 + f) + s - 1) / s;
        int32_t j_hi = ix0 + f + s * (len - 1) < in_w ? len : (in_w - (ix0 + f) + s - 1) / s;
        if (j_hi < j_lo) {
            j_hi = j_lo;
        }
        for (j = 0; j < j_lo; ++j) {
            vstrhq_scatter_shifted_offset_p_s16(dst + j, planes, zp, p);
        }
        if (n == Q4_DW3_CH) { /* whole chunks: no predication */
            const int8_t *x = src + (ix0 + f + s * j_lo) * ch;
            const int32_t step = s * ch;
            for (j = j_lo; j < j_hi; ++j, x += step) {
                vstrhq_scatter_shifted_offset_s16(dst + j, planes, vldrbq_s16(x));
            }
        } else {
            const int8_t *x = src + (ix0 + f + s * j_lo) * ch;
            const int32_t step = s * ch;
            for (j = j_lo; j < j_hi; ++j, x += step) {
                vstrhq_scatter_shifted_offset_p_s16(dst + j, planes, vldrbq_z_s16(x, p), p);
            }
        }
        for (j = j_hi; j < len; ++j) {
            vstrhq_scatter_shifted_offset_p_s16(dst + j, planes, zp, p);
        }
    }
}

/* sums[x] (+ with `add`) = wa * r[x] + wb * r[x + o1] + wc * r[x + o2] for x < tw rounded up to
 * 8; o1 and o2 are literals (1, 2 at stride 1; Q4_DW3_PHASE, 1 at stride 2), so the three loads
 * use immediate offsets. Per 8 pixels: 3 (4) VLDRH, VMUL/VMLA x 3, one VSTRH, SUBS + BNE. */
#define Q4_DW3_ASM_TAPS(first, o1b, o2b)                                               \
    __asm__ volatile("1:\n\t"                                                          \
                     "vldrh.16 q1, [%[r], #" #o1b "]\n\t"                              \
                     "vldrh.16 q2, [%[r], #" #o2b "]\n\t"                              \
                     "vldrh.16 q0, [%[r]], #16\n\t" first "vmla.s16 q3, q1, %[wb]\n\t" \
                     "vmla.s16 q3, q2, %[wc]\n\t"                                      \
                     "vstrh.16 q3, [%[s]], #16\n\t"                                    \
                     "subs %[n], %[n], #1\n\t"                                         \
                     "bne 1b\n\t"                                                      \
                     : [r] "+&r"(r), [s] "+&r"(sums), [n] "+&r"(n)                     \
                     : [wa] "r"(wa), [wb] "r"(wb), [wc] "r"(wc)                        \
                     : "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "cc", "memory")
/* the stride-2 offset 144 above is 2 * Q4_DW3_PHASE bytes */
typedef char q4_dw3_phase_is_72[Q4_DW3_PHASE == 72 ? 1 : -1];
#define Q4_DW3_FIRST "vmul.i16 q3, q0, %[wa]\n\t"
#define Q4_DW3_ADD "vldrh.16 q3, [%[s]]\n\tvmla.s16 q3, q0, %[wa]\n\t"

static inline __attribute__((always_inline)) void q4_dw3_taps(const int16_t *r, const int32_t o1,
                                                              const int32_t o2, int32_t wa,
                                                              int32_t wb, int32_t wc,
                                                              int16_t *sums, int32_t tw,
                                                              const int add)
{
    int32_t n = (tw + 7) / 8;
    if (o1 == 1 && add) {
        Q4_DW3_ASM_TAPS(Q4_DW3_ADD, 2, 4);
    } else if (o1 == 1) {
        Q4_DW3_ASM_TAPS(Q4_DW3_FIRST, 2, 4);
    } else if (add) {
        Q4_DW3_ASM_TAPS(Q4_DW3_ADD, 144, 2);
    } else {
        Q4_DW3_ASM_TAPS(Q4_DW3_FIRST, 144, 2);
    }
    (void)o2;
}

/* One output row of one channel: 8 pixels per step, 9 VLDRH.S16 + VMLA.S16 by the weights (tap
 * (ky, kx) at rows[ky] + o[kx] + ox), |sum| <= 9 * 1024; then VMOVLB/VMOVLT, the folded bias,
 * VQDMULH + VRSHL (fast) or the scalar rule, and a byte scatter store (pixels ch apart). */
static inline __attribute__((always_inline)) void q4_dw3_row(
    const int16_t *r0, const int16_t *r1, const int16_t *r2, int32_t o1, int32_t o2,
    const int32_t *w, int32_t tw, int32_t fb, int32_t m, int32_t sh, const q4_dw_out *q,
    int8_t *out, int32_t ch, uint16x8_t out_offsets, int16_t *sums)
{
    const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5];
    const int32_t w6 = w[6], w7 = w[7], w8 = w[8];
    const int32_t fast = sh >= 32 && m != INT32_MIN;
    const int16x8_t lo = vdupq_n_s16((int16_t)q->act_min), hi = vdupq_n_s16((int16_t)q->act_max);
    const int32_t right = 31 - sh;
    const int16_t zp = (int16_t)q->output_zp;
    int32_t ox;
    /* pass 1, one kernel row at a time: sums[] (+)= its 3 taps (inline assembly: GCC reloaded
     * the weights from the stack on every step) */
    q4_dw3_taps(r0, o1, o2, w0, w1, w2, sums, tw, 0);
    q4_dw3_taps(r1, o1, o2, w3, w4, w5, sums, tw, 1);
    q4_dw3_taps(r2, o1, o2, w6, w7, w8, sums, tw, 1);
    /* pass 2: requantize and scatter */
    if (fast) {
        for (ox = 0; ox < tw; ox += 8, out += 8 * ch) {
            const int16x8_t acc = vld1q_s16(sums + ox);
            int32x4_t even = vaddq_n_s32(vmovlbq_s16(acc), fb);
            int32x4_t odd = vaddq_n_s32(vmovltq_s16(acc), fb);
            int16x8_t y;
            even = vrshlq_n_s32(vqdmulhq_n_s32(even, m), right);
            odd = vrshlq_n_s32(vqdmulhq_n_s32(odd, m), right);
            y = vqmovntq_s32(vqmovnbq_s32(vuninitializedq_s16(), even), odd);
            y = vminq_s16(vmaxq_s16(vqaddq_n_s16(y, zp), lo), hi);
            vstrbq_scatter_offset_p_s16(out, out_offsets, y, vctp16q((uint32_t)(tw - ox)));
        }
    } else {
        for (ox = 0; ox < tw; ++ox) {
            out[ox * ch] = q4_requantize_clamp(sums[ox] + fb, m, sh, q->output_zp, q->act_min,
                                               q->act_max);
        }
    }
}

/* 3x3 kernels, horizontal stride 1 or 2 (any vertical stride), 7 * stride_w * ch < 65536 (the
 * uint16 gather and scatter offsets). */
static void q4_dw3_mve(const q4_conv_params *params, const q4_quant_params *quant,
                       const q4_dims *input_dims, const int8_t *input, const uint8_t *filter,
                       const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                       int32_t *scratch)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t in_zp = params->input_zp, s = params->stride_w, stride_h = params->stride_h;
    const int32_t slot = Q4_DW3_CH * Q4_DW3_ROW; /* int16 per ring slot */
    int16_t *const ring = (int16_t *)(void *)scratch;
    int16_t *const zp_row = ring + 3 * slot;
    int16_t *const sums = zp_row + Q4_DW3_ROW; /* Q4_DW3_TILE */
    const uint16x8_t out_offsets = vmulq_n_u16(vidupq_n_u16(0, 1), (uint16_t)ch);
    q4_dw_out q;
    int32_t c0, ox0, oy, i;

    q.output_zp = params->output_zp;
    q.act_min = params->act_min;
    q.act_max = params->act_max;
    for (i = 0; i < Q4_DW3_ROW; ++i) {
        zp_row[i] = (int16_t)in_zp;
    }
    for (c0 = 0; c0 < ch; c0 += Q4_DW3_CH) {
        const int32_t n = ch - c0 < Q4_DW3_CH ? ch - c0 : Q4_DW3_CH;
        int32_t w[Q4_DW3_CH][9], fb[Q4_DW3_CH];
        for (i = 0; i < n; ++i) {
            fb[i] = bias[c0 + i] - in_zp * q4_dw_weights9(filter + (c0 + i) * 5, w[i]);
        }
        for (ox0 = 0; ox0 < out_w; ox0 += Q4_DW3_TILE) {
            const int32_t tw = out_w - ox0 < Q4_DW3_TILE ? out_w - ox0 : Q4_DW3_TILE;
            const int32_t ix0 = ox0 * s - params->pad_left, span = (tw - 1) * s + 3;
            int32_t next_row = -params->pad_top; /* first input row not yet widened */
            for (oy = 0; oy < out_h; ++oy) {
                const int32_t y0 = oy * stride_h - params->pad_top;
                const int16_t *rows[3];
                int32_t ky;
                if (next_row < y0) {
                    next_row = y0;
                }
                for (; next_row < y0 + 3; ++next_row) {
                    if (next_row >= 0 && next_row < in_h) {
                        q4_dw3_widen_row(ring + (next_row % 3) * slot, input, next_row, ix0,
                                         span, s, in_w, ch, c0, n, in_zp);
                    }
                }
                for (ky = 0; ky < 3; ++ky) {
                    const int32_t iy = y0 + ky;
                    rows[ky] = iy >= 0 && iy < in_h ? ring + (iy % 3) * slot : 0;
                }
                for (i = 0; i < n; ++i) {
                    const int32_t c = c0 + i;
                    const int16_t *const r0 = rows[0] ? rows[0] + i * Q4_DW3_ROW : zp_row;
                    const int16_t *const r1 = rows[1] ? rows[1] + i * Q4_DW3_ROW : zp_row;
                    const int16_t *const r2 = rows[2] ? rows[2] + i * Q4_DW3_ROW : zp_row;
                    int8_t *const out = output + (oy * out_w + ox0) * ch + c;
                    if (s == 1) { /* literal tap offsets: immediate VLDRH offsets */
                        q4_dw3_row(r0, r1, r2, 1, 2, w[i], tw, fb[i], quant->multiplier[c],
                                   quant->shift[c], &q, out, ch, out_offsets, sums);
                    } else {
                        q4_dw3_row(r0, r1, r2, Q4_DW3_PHASE, 1, w[i], tw, fb[i],
                                   quant->multiplier[c], quant->shift[c], &q, out, ch,
                                   out_offsets, sums);
                    }
                }
            }
        }
    }
}

/* The 3x3 stride-1 plane path: per block of 8 channels and tile of th x tw output pixels, the
 * (th + 2) x (tw + 2) input pixels under it are widened once into one int16 plane per channel
 * with row pitch P (z_x outside the input), so output (y, x) is
 * sum_{ky, kx} w[ky][kx] * plane[(y + ky) * P + x + kx]: one 1-D 9-tap filter over the flat
 * plane, taps at the constant offsets ky * P + kx (immediate VLDRH offsets; P is one of
 * Q4_DWP_PITCHES). The columns x >= tw of each row are computed and never stored. */
#define Q4_DWP_PLANE 400 /* int16 per channel plane (8 planes and the sums fit Q4_DW3_BYTES) */
typedef char q4_dwp_fits[9 * Q4_DWP_PLANE * 2 <= Q4_DW3_BYTES ? 1 : -1];

/* Widens channels c0 .. c0 + n - 1 (n <= 8) of the input pixels (iy0 + r, ix0 + q), r < rows,
 * q < cols, into planes[i * Q4_DWP_PLANE + r * pitch + column(q)] (z_x outside the input),
 * column(q) = q at stride s = 1, (q odd) * half + q / 2 at s = 2: per pixel one widening
 * VLDRB.S16 and one VSTRH scatter into the n planes. */
static inline __attribute__((always_inline)) void q4_dwp_widen(
    int16_t *planes, const int8_t *input, int32_t iy0, int32_t ix0, int32_t rows, int32_t cols,
    int32_t pitch, int32_t s, int32_t half, int32_t in_h, int32_t in_w, int32_t ch, int32_t c0,
    int32_t n, int32_t in_zp)
{
    const uint16x8_t lanes = vmulq_n_u16(vidupq_n_u16(0, 1), (uint16_t)Q4_DWP_PLANE);
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
            if (n == Q4_DW3_CH) {
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

/* One vector of 8 int16 sums requantized (shift >= 32, m != INT32_MIN: floor((acc * m +
 * 2^(s-1)) / 2^s) = VRSHL(VQDMULH(acc, m), 31 - s)), + z_y and clamped. */
static inline int16x8_t q4_dwp_requantize8(int16x8_t acc, int32_t b, int32_t m, int32_t right,
                                           int16_t zp, int16x8_t lo, int16x8_t hi)
{
    int32x4_t even = vaddq_n_s32(vmovlbq_s16(acc), b);
    int32x4_t odd = vaddq_n_s32(vmovltq_s16(acc), b);
    int16x8_t v;
    even = vrshlq_n_s32(vqdmulhq_n_s32(even, m), right);
    odd = vrshlq_n_s32(vqdmulhq_n_s32(odd, m), right);
    v = vqmovntq_s32(vqmovnbq_s32(acc, even), odd);
    return vminq_s16(vmaxq_s16(vqaddq_n_s16(v, zp), lo), hi);
}

/* Requantizes the th x tw outputs of one channel from its sums (row y at sums + y * pitch) and
 * stores them (row y at out + y * row_step, pixels ch apart: out_offsets, ch8 = 8 * ch). */
static inline __attribute__((always_inline)) void q4_dwp_requantize(
    const int16_t *sums, int32_t pitch, int32_t th, int32_t tw, int32_t b, int32_t m,
    int32_t right, const q4_dw_out *q, int8_t *out, int32_t row_step, int32_t ch8,
    uint16x8_t out_offsets)
{
    const int16x8_t lo = vdupq_n_s16((int16_t)q->act_min), hi = vdupq_n_s16((int16_t)q->act_max);
    const int16_t zp = (int16_t)q->output_zp;
    const int32_t full = tw / 8, tail = tw % 8;
    const mve_pred16_t last = vctp16q((uint32_t)tail);
    int32_t y, x;
    for (y = 0; y < th; ++y, sums += pitch, out += row_step) {
        const int16_t *r = sums;
        int8_t *o = out;
        for (x = 0; x < full; ++x, r += 8, o += ch8) {
            vstrbq_scatter_offset_s16(o, out_offsets,
                                      q4_dwp_requantize8(vld1q_s16(r), b, m, right, zp, lo, hi));
        }
        if (tail) {
            vstrbq_scatter_offset_p_s16(
                o, out_offsets, q4_dwp_requantize8(vld1q_s16(r), b, m, right, zp, lo, hi), last);
        }
    }
}

/* 3x3 kernels at stride s = 1 or 2 (the same in both directions; a literal). */
static inline __attribute__((always_inline)) void q4_dwp_body(
    const q4_conv_params *params, const q4_quant_params *quant, const q4_dims *input_dims,
    const int8_t *input, const uint8_t *filter, const int32_t *bias, const q4_dims *output_dims,
    int8_t *output, int32_t *scratch, const int32_t s)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t in_zp = params->input_zp;
    const int32_t pitch = q4_dwp_pitch(out_w, s), half = s == 2 ? pitch / 2 : 0;
    /* stride 1: rows of tw + 2 inputs; stride 2: half rows of tw + 1 even and tw odd inputs */
    const int32_t tile_w = s == 1 ? pitch - 2 : half - 1;
    const int32_t tile_h = (Q4_DWP_PLANE / pitch - 3 + s) / s;
    int16_t *const planes = (int16_t *)(void *)scratch;
    int16_t *const sums = planes + Q4_DW3_CH * Q4_DWP_PLANE;
    const uint16x8_t out_offsets = vmulq_n_u16(vidupq_n_u16(0, 1), (uint16_t)ch);
    q4_dw_out q;
    int32_t c0, ty0, tx0, i;

    q.output_zp = params->output_zp;
    q.act_min = params->act_min;
    q.act_max = params->act_max;

    for (c0 = 0; c0 < ch; c0 += Q4_DW3_CH) {
        const int32_t n = ch - c0 < Q4_DW3_CH ? ch - c0 : Q4_DW3_CH;
        int32_t w[Q4_DW3_CH][9], fb[Q4_DW3_CH];
        for (i = 0; i < n; ++i) {
            fb[i] = bias[c0 + i] - in_zp * q4_dw_weights9(filter + (c0 + i) * 5, w[i]);
        }
        for (ty0 = 0; ty0 < out_h; ty0 += tile_h) {
            const int32_t th = out_h - ty0 < tile_h ? out_h - ty0 : tile_h;
            for (tx0 = 0; tx0 < out_w; tx0 += tile_w) {
                const int32_t tw = out_w - tx0 < tile_w ? out_w - tx0 : tile_w;
                /* stride 1: vectors covering the flat outputs 0 .. (th - 1) * pitch + tw - 1 */
                const int32_t vectors = ((th - 1) * pitch + tw + 7) / 8;
                q4_dwp_widen(planes, input, ty0 * s - params->pad_top,
                             tx0 * s - params->pad_left, (th - 1) * s + 3, (tw - 1) * s + 3,
                             pitch, s, half, in_h, in_w, ch, c0, n, in_zp);
                for (i = 0; i < n; ++i) {
                    const int32_t c = c0 + i, m = quant->multiplier[c], sh = quant->shift[c];
                    const int32_t b = fb[i];
                    int8_t *out = output + (ty0 * out_w + tx0) * ch + c;
                    int32_t y, x;
                    if (s == 1) {
                        q4_dwp_filter(planes + i * Q4_DWP_PLANE, sums, vectors, pitch, w[i]);
                    } else { /* output row y from input rows 2y .. 2y + 2 */
                        for (y = 0; y < th; ++y) {
                            q4_dwp_filter(planes + i * Q4_DWP_PLANE + 2 * y * pitch,
                                          sums + y * pitch, (tw + 7) / 8, -pitch, w[i]);
                        }
                    }
                    if (sh >= 32 && m != INT32_MIN) {
                        q4_dwp_requantize(sums, pitch, th, tw, b, m, 31 - sh, &q, out,
                                          out_w * ch, 8 * ch, out_offsets);
                    } else {
                        for (y = 0; y < th; ++y, out += out_w * ch) {
                            for (x = 0; x < tw; ++x) {
                                out[x * ch] = q4_requantize_clamp(sums[y * pitch + x] + b, m,
                                                                  sh, q.output_zp, q.act_min,
                                                                  q.act_max);
                            }
                        }
                    }
                }
            }
        }
    }
}

static void q4_dwp_mve(const q4_conv_params *params, const q4_quant_params *quant,
                       const q4_dims *input_dims, const int8_t *input, const uint8_t *filter,
                       const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                       int32_t *scratch)
{
    if (params->stride_w == 1) {
        q4_dwp_body(params, quant, input_dims, input, filter, bias, output_dims, output,
                    scratch, 1);
    } else {
        q4_dwp_body(params, quant, input_dims, input, filter, bias, output_dims, output,
                    scratch, 2);
    }
}

void q4_depthwise_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                                const q4_dims *input_dims, const int8_t *input,
                                const q4_dims *filter_dims, const uint8_t *filter,
                                const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                                int32_t *scratch)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, taps = k_h * k_w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t row_bytes = (taps + 1) / 2, c8 = q4_round_up8(ch);
    const int32_t in_zp = params->input_zp;
    const int32_t stride_h = params->stride_h, stride_w = params->stride_w;
    const int32_t pad_top = params->pad_top, pad_left = params->pad_left;
    /* scratch: folded biases, multipliers, shifts [C8] (permuted), tap offsets in the window
     * [taps], tap offsets in the input for the current pixel [taps], weights [taps][C8] */
    int32_t *const bias_p = scratch;
    int32_t *const mult_p = bias_p + c8;
    int32_t *const shift_p = mult_p + c8;
    int32_t *const tap_offset = shift_p + c8;
    int32_t *const tap_at = tap_offset + taps;
    int8_t *const weights = (int8_t *)(tap_at + taps);
    q4_dw_out q;
    int32_t oy, ox, c, t, fast = 1;

    for (c = 0; c < ch; ++c) {
        fast &= quant->shift[c] > 32;
    }
    /* the row path unless rows are narrow (its set-up per channel and output row dominates),
     * with 32 channels or more (which amortize the channel-vector path's per-pixel set-up) and
     * every shift above 32 (so that path requantizes by vectors); measured on DS-CNN's and the
     * test layers */
    /* the plane path at stride 1; at stride 2 (one filter call per output row) for rows of 8 to
     * 16 pixels, or of 4 to 7 when the channel-vector path below would not win (C < 32 or a
     * shift of 32 or less); measured on DS-CNN's and the test layers */
    if (k_h == 3 && k_w == 3 && 8 * ch < 65536 &&
        ((stride_w == 1 && stride_h == 1) || (stride_w == 2 && stride_h == 2 && out_w >= 4 &&
                                              out_w <= 16 && (out_w >= 8 || ch < 32 || !fast)))) {
        q4_dwp_mve(params, quant, input_dims, input, filter, bias, output_dims, output, scratch);
        return;
    }
    if (k_h == 3 && k_w == 3 && (stride_w == 1 || stride_w == 2) && 7 * stride_w * ch < 65536 &&
        (out_w >= 12 || ch < 32 || !fast)) {
        q4_dw3_mve(params, quant, input_dims, input, filter, bias, output_dims, output, scratch);
        return;
    }
    fast = 1;
    for (c = 0; c < c8; ++c) {
        const int32_t lane = q4_dw_lane(c);
        int32_t sum = 0;
        for (t = 0; t < taps; ++t) {
            const int32_t w = c < ch ? q4_int4_at(filter + c * row_bytes, t) : 0;
            weights[t * c8 + c] = (int8_t)w;
            sum += w;
        }
        bias_p[lane] = c < ch ? bias[c] - in_zp * sum : 0;
        mult_p[lane] = c < ch ? quant->multiplier[c] : 0;
        shift_p[lane] = c < ch ? quant->shift[c] : 33;
        fast &= shift_p[lane] > 32;
    }
    q.mult_p = mult_p;
    q.shift_p = shift_p;
    q.output_zp = params->output_zp;
    q.act_min = params->act_min;
    q.act_max = params->act_max;
    q.fast = fast;
    for (t = 0; t < taps; ++t) {
        tap_offset[t] = ((t / k_w) * in_w + t % k_w) * ch;
    }
    for (oy = 0; oy < out_h; ++oy) {
        const int32_t y0 = oy * stride_h - pad_top;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t x0 = ox * stride_w - pad_left;
            const int32_t inside = y0 >= 0 && y0 + k_h <= in_h && x0 >= 0 && x0 + k_w <= in_w;
            const int32_t window = (y0 * in_w + x0) * ch; /* may be negative: an offset only */
            const int32_t *offsets = tap_offset; /* tap t reads input + base + offsets[t] */
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
            for (c = 0; c + 2 * Q4_DW_GROUP <= ch; c += 2 * Q4_DW_GROUP) { /* 16 channels */
                int32x4_t even0 = vldrwq_s32(bias_p + c), odd0 = vldrwq_s32(bias_p + c + 4);
                int32x4_t even1 = vldrwq_s32(bias_p + c + 8), odd1 = vldrwq_s32(bias_p + c + 12);
                int32_t t0;
                for (t0 = 0; t0 < taps; t0 += Q4_DW_INT16_TAPS) {
                    const int32_t t_end = taps - t0 < Q4_DW_INT16_TAPS ? taps
                                                                       : t0 + Q4_DW_INT16_TAPS;
                    int16x8_t acc0 = vdupq_n_s16(0), acc1 = vdupq_n_s16(0);
                    for (t = t0; t < t_end; ++t) {
                        const int8_t *const w = weights + t * c8 + c;
                        const int32_t at = offsets[t];
                        if (at >= 0) {
                            const int8_t *const x = input + base + at + c;
                            acc0 = vaddq_s16(acc0, vmulq_s16(vldrbq_s16(x), vldrbq_s16(w)));
                            acc1 = vaddq_s16(acc1,
                                             vmulq_s16(vldrbq_s16(x + 8), vldrbq_s16(w + 8)));
                        } else { /* outside the input: x = z_x */
                            acc0 = vmlaq_n_s16(acc0, vldrbq_s16(w), (int16_t)in_zp);
                            acc1 = vmlaq_n_s16(acc1, vldrbq_s16(w + 8), (int16_t)in_zp);
                        }
                    }
                    even0 = vaddq_s32(even0, vmovlbq_s16(acc0));
                    odd0 = vaddq_s32(odd0, vmovltq_s16(acc0));
                    even1 = vaddq_s32(even1, vmovlbq_s16(acc1));
                    odd1 = vaddq_s32(odd1, vmovltq_s16(acc1));
                }
                q4_dw_finish8(even0, odd0, c, Q4_DW_GROUP, &q, out);
                q4_dw_finish8(even1, odd1, c + Q4_DW_GROUP, Q4_DW_GROUP, &q, out);
            }
            for (; c < ch; c += Q4_DW_GROUP) { /* the last 8 or fewer, predicated */
                const int32_t n = ch - c < Q4_DW_GROUP ? ch - c : Q4_DW_GROUP;
                const mve_pred16_t p = vctp16q((uint32_t)n);
                int32x4_t acc_even = vldrwq_s32(bias_p + c), acc_odd = vldrwq_s32(bias_p + c + 4);
                int32_t t0;
                for (t0 = 0; t0 < taps; t0 += Q4_DW_INT16_TAPS) {
                    const int32_t t_end = taps - t0 < Q4_DW_INT16_TAPS ? taps
                                                                       : t0 + Q4_DW_INT16_TAPS;
                    int16x8_t acc16 = vdupq_n_s16(0);
                    for (t = t0; t < t_end; ++t) {
                        const int16x8_t w = vldrbq_s16(weights + t * c8 + c);
                        const int32_t at = offsets[t];
                        if (at >= 0) {
                            const int8_t *const x = input + base + at + c;
                            acc16 = vaddq_s16(acc16, vmulq_s16(vldrbq_z_s16(x, p), w));
                        } else { /* outside the input: x = z_x */
                            acc16 = vmlaq_n_s16(acc16, w, (int16_t)in_zp);
                        }
                    }
                    acc_even = vaddq_s32(acc_even, vmovlbq_s16(acc16));
                    acc_odd = vaddq_s32(acc_odd, vmovltq_s16(acc16));
                }
                q4_dw_finish8(acc_even, acc_odd, c, n, &q, out);
            }
        }
    }
}

#else /* no MVE: the portable kernel (scratch unused) */

int32_t q4_depthwise_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_depthwise_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                                const q4_dims *input_dims, const int8_t *input,
                                const q4_dims *filter_dims, const uint8_t *filter,
                                const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                                int32_t *scratch)
{
    (void)scratch;
    q4_depthwise_conv2d_s4(params, quant, input_dims, input, filter_dims, filter, bias,
                           output_dims, output);
}

#endif
