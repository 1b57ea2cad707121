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
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#define Q4_DW_GROUP 8       /* channels per int16 vector */
#define Q4_DW_INT16_TAPS 31 /* taps whose products sum exactly in int16 (31 * 1024 < 2^15) */

static int32_t q4_round_up8(int32_t c)
{
    return (c + Q4_DW_GROUP - 1) & ~(Q4_DW_GROUP - 1);
}

int32_t q4_depthwise_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k = filter_dims->h * filter_dims->w, c8 = q4_round_up8(filter_dims->c);
    return 12 * c8 + 8 * k + k * c8;
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
    int32_t fast;           /* every shift above 32 */
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

void q4_depthwise_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                                const q4_dims *input_dims, const int8_t *input,
                                const q4_dims *filter_dims, const uint8_t *filter,
                                const int32_t *bias,
                                const q4_dims *output_dims, int8_t *output, int32_t *scratch)
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
                                  ? window + tap_offset[t] : -1;
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
                    const int32_t t_end = taps - t0 < Q4_DW_INT16_TAPS ? taps : t0 + Q4_DW_INT16_TAPS;
                    int16x8_t acc0 = vdupq_n_s16(0), acc1 = vdupq_n_s16(0);
                    for (t = t0; t < t_end; ++t) {
                        const int8_t *const w = weights + t * c8 + c;
                        const int32_t at = offsets[t];
                        if (at >= 0) {
                            const int8_t *const x = input + base + at + c;
                            acc0 = vaddq_s16(acc0, vmulq_s16(vldrbq_s16(x), vldrbq_s16(w)));
                            acc1 = vaddq_s16(acc1, vmulq_s16(vldrbq_s16(x + 8), vldrbq_s16(w + 8)));
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
                    const int32_t t_end = taps - t0 < Q4_DW_INT16_TAPS ? taps : t0 + Q4_DW_INT16_TAPS;
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
                                const int32_t *bias,
                                const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_depthwise_conv2d_s4(params, quant, input_dims, input, filter_dims, filter, bias,
                           output_dims, output);
}

#endif
