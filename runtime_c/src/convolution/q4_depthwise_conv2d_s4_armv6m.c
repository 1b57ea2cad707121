/*
 * q4_depthwise_conv2d_s4_armv6m.c - depthwise conv2d (channel multiplier 1), INT4 packed
 * weights, int8 activations, for ARMv6-M cores (Cortex-M0/M0+). Bit-exact with
 * q4_depthwise_conv2d_s4; plain C99 for any core.
 *
 * Each input is used by one output only per pixel, so there is no pair to pack; what the
 * portable kernel spends is the nibble unpacking per MAC, the zero point per MAC, and above all
 * the 64-bit requantization per output (a library long multiply on ARMv6-M). Here:
 *  - the weights are unpacked once per call to int32 [C][kh * kw], and z_x is folded into a
 *    per-channel bias for windows inside the input (acc = bias - z_x * sum(w) + sum(x * w));
 *  - an interior output pixel reads its taps through a table of kh * kw input offsets (LDR of
 *    the offset, LDRSB, LDR of the weight, MULS, ADD per MAC; 3x3 windows unrolled); border
 *    pixels take the valid taps with x - z_x;
 *  - requantization without a long multiply (q4_armv6m_requantize_clamp).
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_armv6m.h"

/* Scratch: folded biases [C], tap offsets [kh * kw], weights [C][kh * kw], all int32. */
int32_t q4_depthwise_conv2d_s4_armv6m_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t taps = filter_dims->h * filter_dims->w, ch = filter_dims->c;
    return 4 * ch + 4 * taps + 4 * taps * ch;
}

void q4_depthwise_conv2d_s4_armv6m(const q4_conv_params *params, const q4_quant_params *quant,
                                   const q4_dims *input_dims, const int8_t *input,
                                   const q4_dims *filter_dims, const uint8_t *filter,
                                   const int32_t *bias, const q4_dims *output_dims,
                                   int8_t *output, int32_t *scratch)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, taps = k_h * k_w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t row_bytes = (taps + 1) / 2, zp = params->input_zp;
    const int32_t output_zp = params->output_zp, act_min = params->act_min;
    const int32_t act_max = params->act_max;
    const int32_t *const multiplier = quant->multiplier, *const shift = quant->shift;
    uint32_t *const folded = (uint32_t *)scratch;
    int32_t *const offsets = scratch + ch;
    int32_t *const weights = offsets + taps;
    int32_t oy, ox, c, t, ky, kx;

    for (c = 0; c < ch; ++c) {
        int32_t sum = 0;
        for (t = 0; t < taps; ++t) {
            const int32_t w = q4_int4_at(filter + c * row_bytes, t);
            weights[c * taps + t] = w;
            sum += w;
        }
        folded[c] = (uint32_t)bias[c] - (uint32_t)zp * (uint32_t)sum;
    }
    for (ky = 0; ky < k_h; ++ky) {
        for (kx = 0; kx < k_w; ++kx) {
            offsets[ky * k_w + kx] = (ky * in_w + kx) * ch;
        }
    }
    for (oy = 0; oy < out_h; ++oy) {
        const int32_t y0 = oy * params->stride_h - params->pad_top;
        const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = in_h - y0 < k_h ? in_h - y0 : k_h;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t x0 = ox * params->stride_w - params->pad_left;
            const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = in_w - x0 < k_w ? in_w - x0 : k_w;
            int8_t *const out = output + (oy * out_w + ox) * ch;
            const int32_t *wc = weights;
            if (ky0 == 0 && kx0 == 0 && ky1 == k_h && kx1 == k_w) {
                const int8_t *px = input + (y0 * in_w + x0) * ch;
                for (c = 0; c < ch; ++c, ++px, wc += taps) {
                    uint32_t acc = folded[c];
                    if (taps == 9) {
                        acc += (uint32_t)(px[offsets[0]] * wc[0] + px[offsets[1]] * wc[1] +
                                          px[offsets[2]] * wc[2] + px[offsets[3]] * wc[3] +
                                          px[offsets[4]] * wc[4] + px[offsets[5]] * wc[5] +
                                          px[offsets[6]] * wc[6] + px[offsets[7]] * wc[7] +
                                          px[offsets[8]] * wc[8]); /* |sum| < 2^14 */
                    } else {
                        for (t = 0; t < taps; ++t) {
                            acc += (uint32_t)(px[offsets[t]] * wc[t]);
                        }
                    }
                    out[c] = q4_armv6m_requantize_clamp(q4_armv6m_int32(acc), multiplier[c],
                                                        shift[c], output_zp, act_min, act_max);
                }
            } else {
                for (c = 0; c < ch; ++c, wc += taps) {
                    int32_t acc = bias[c];
                    for (ky = ky0; ky < ky1; ++ky) {
                        const int8_t *px = input + ((y0 + ky) * in_w + x0) * ch + c;
                        for (kx = kx0; kx < kx1; ++kx) {
                            acc += (px[kx * ch] - zp) * wc[ky * k_w + kx];
                        }
                    }
                    out[c] = q4_armv6m_requantize_clamp(acc, multiplier[c], shift[c], output_zp,
                                                        act_min, act_max);
                }
            }
        }
    }
}
