/*
 * q4_depthwise_conv2d_s4_dsp.c - depthwise 2-D convolution (channel multiplier 1), INT4 packed
 * weights, int8-stored activations (4 or 8 bits), for cores with the Arm DSP extension
 * (Cortex-M4/M7/M33/M55). Bit-exact with q4_depthwise_conv2d_s4.
 *
 * Scheme (docs/kernels.md):
 *  - Once per call the weights are unpacked into the scratch as int16 pairs per tap and group of
 *    4 channels, (w_c0, w_c2) and (w_c1, w_c3), zeros past C; the input zero point is folded into
 *    a per-channel bias (bias - z_x * sum(w)); the byte offset of every tap in the window is
 *    tabulated.
 *  - Per output pixel the input offset of each tap is listed (-1 outside the input). Per group
 *    of 4 channels and tap: one word of activations (z_x in every byte outside the input),
 *    SXTB16 of it and of it shifted by 8 give (x_c0, x_c2) and (x_c1, x_c3), and SMLABB/SMLATT
 *    accumulate the 4 channels. The last C % 4 channels are read byte by byte.
 *  - Requantization per channel: for shift > 32, floor((acc * m + 2^(s-1)) / 2^s) equals
 *    floor((hi + 2^(s-33)) / 2^(s-32)) with hi = floor(acc * m / 2^32); other shifts use
 *    q4_requantize_clamp.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include <arm_acle.h>

static int32_t q4_round_up4(int32_t c)
{
    return (c + 3) & ~3;
}

int32_t q4_depthwise_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k = filter_dims->h * filter_dims->w, c4 = q4_round_up4(filter_dims->c);
    return 4 * c4 + 8 * k + 2 * k * c4;
}

static inline uint32_t q4_load_u32(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

/* SXTB16: bytes 0 and 2 of x sign-extended to the two halfwords. */
static inline int32_t q4_sxtb16(uint32_t x)
{
    return __sxtb16((int32_t)x);
}

/* floor(a * b / 2^32): the high word of the 64-bit product. */
static inline int32_t q4_mul_high(int32_t a, int32_t b)
{
    return (int32_t)(uint32_t)((uint64_t)((int64_t)a * b) >> 32);
}

/* Per-call output constants (locals: the int8 stores could otherwise alias *params, *quant). */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t output_zp;
    int32_t act_min;
    int32_t act_max;
} q4_dw_out;

static inline int8_t q4_dw_requantize(int32_t acc, int32_t c, const q4_dw_out *q)
{
    const int32_t shift = q->shift[c];
    int32_t y;
    if (shift <= 32) {
        return q4_requantize_clamp(acc, q->multiplier[c], shift, q->output_zp, q->act_min,
                                   q->act_max);
    }
    y = q->output_zp + q4_floor_shift32(q4_mul_high(acc, q->multiplier[c])
                                        + ((int32_t)1 << (shift - 33)), shift - 32);
    y = y < q->act_min ? q->act_min : y;
    return (int8_t)(y > q->act_max ? q->act_max : y);
}

void q4_depthwise_conv2d_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                                const q4_dims *input_dims, const int8_t *input,
                                const q4_dims *filter_dims, const uint8_t *filter,
                                const int32_t *bias,
                                const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, taps = k_h * k_w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t row_bytes = (taps + 1) / 2, c4 = q4_round_up4(ch), groups = c4 / 4;
    const int32_t in_zp = params->input_zp;
    const int32_t stride_h = params->stride_h, stride_w = params->stride_w;
    const int32_t pad_top = params->pad_top, pad_left = params->pad_left;
    const uint32_t zp_word = ((uint32_t)in_zp & 0xFFu) * 0x01010101u;
    const q4_dw_out q = {quant->multiplier, quant->shift, params->output_zp, params->act_min,
                         params->act_max};
    /* scratch: folded biases [C4], tap offsets in the window [taps], tap offsets in the input for
     * the current pixel [taps], weight pairs [taps][groups][2] */
    int32_t *const folded_bias = scratch;
    int32_t *const tap_offset = scratch + c4;
    int32_t *const tap_at = tap_offset + taps;
    uint32_t *const weights = (uint32_t *)(tap_at + taps);
    int32_t oy, ox, c, t, g;

    for (c = 0; c < c4; ++c) {
        int32_t sum = 0;
        for (t = 0; t < taps; ++t) {
            const int32_t w = c < ch ? q4_int4_at(filter + c * row_bytes, t) : 0;
            /* channel c of its group: pair word (c & 1), half (c >> 1) & 1 */
            uint32_t *const pair = &weights[(t * groups + c / 4) * 2 + (c & 1)];
            const uint32_t half = (uint32_t)w & 0xFFFFu;
            *pair = (c & 2) ? (*pair & 0xFFFFu) | (half << 16) : half;
            sum += w;
        }
        folded_bias[c] = c < ch ? bias[c] - in_zp * sum : 0;
    }
    for (t = 0; t < taps; ++t) {
        tap_offset[t] = ((t / k_w) * in_w + t % k_w) * ch;
    }
    for (oy = 0; oy < out_h; ++oy) {
        const int32_t y0 = oy * stride_h - pad_top;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t x0 = ox * stride_w - pad_left;
            const int32_t inside = y0 >= 0 && y0 + k_h <= in_h && x0 >= 0 && x0 + k_w <= in_w;
            const int32_t window = (y0 * in_w + x0) * ch; /* may be negative: an offset only */
            int8_t *const out = output + (oy * out_w + ox) * ch;
            const int32_t *offsets = tap_offset; /* tap t reads input + base + offsets[t] */
            int32_t base = window;
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
            for (g = 0, c = 0; g < groups; ++g, c += 4) {
                const int32_t n = ch - c < 4 ? ch - c : 4;
                const uint32_t *w = weights + 2 * g;
                int32_t a0 = folded_bias[c], a1 = folded_bias[c + 1];
                int32_t a2 = folded_bias[c + 2], a3 = folded_bias[c + 3];
                if (n == 4) {
                    for (t = 0; t < taps; ++t, w += 2 * groups) {
                        const int32_t at = offsets[t];
                        const uint32_t x = at >= 0 ? q4_load_u32(input + base + at + c) : zp_word;
                        const int32_t x_even = q4_sxtb16(x), x_odd = q4_sxtb16(x >> 8);
                        a0 = __smlabb(x_even, (int32_t)w[0], a0);
                        a2 = __smlatt(x_even, (int32_t)w[0], a2);
                        a1 = __smlabb(x_odd, (int32_t)w[1], a1);
                        a3 = __smlatt(x_odd, (int32_t)w[1], a3);
                    }
                } else { /* the last C % 4 channels: read byte by byte, never past the pixel */
                    for (t = 0; t < taps; ++t, w += 2 * groups) {
                        const int32_t at = offsets[t];
                        uint32_t x = zp_word;
                        int32_t i, x_even, x_odd;
                        if (at >= 0) {
                            for (x = 0, i = 0; i < n; ++i) {
                                x |= ((uint32_t)input[base + at + c + i] & 0xFFu) << (8 * i);
                            }
                        }
                        x_even = q4_sxtb16(x);
                        x_odd = q4_sxtb16(x >> 8);
                        a0 = __smlabb(x_even, (int32_t)w[0], a0);
                        a2 = __smlatt(x_even, (int32_t)w[0], a2);
                        a1 = __smlabb(x_odd, (int32_t)w[1], a1);
                        a3 = __smlatt(x_odd, (int32_t)w[1], a3);
                    }
                }
                out[c] = q4_dw_requantize(a0, c, &q);
                if (n > 1) {
                    out[c + 1] = q4_dw_requantize(a1, c + 1, &q);
                }
                if (n > 2) {
                    out[c + 2] = q4_dw_requantize(a2, c + 2, &q);
                }
                if (n > 3) {
                    out[c + 3] = q4_dw_requantize(a3, c + 3, &q);
                }
            }
        }
    }
}

#else /* no DSP extension: the portable kernel (scratch unused) */

int32_t q4_depthwise_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_depthwise_conv2d_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
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
