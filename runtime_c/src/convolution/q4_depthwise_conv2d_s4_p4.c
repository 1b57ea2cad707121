/* q4_depthwise_conv2d_s4_p4.c - depthwise 2-D convolution (any channel multiplier, dilation),
 * INT4 packed weights, activations in packed 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_fixedpoint.h"

void q4_depthwise_conv2d_s4_p4(const q4_conv_params *params, const q4_quant_params *quant,
                               const q4_dims *input_dims, q4_src input,
                               const q4_dims *filter_dims, const uint8_t *filter,
                               const int32_t *bias, const q4_dims *output_dims, q4_dst output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    /* output channel c reads input channel c / mult (channel multiplier mult = out_c / ch) */
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t mult = out_c / ch;
    const int32_t dil_h = q4_dilation(params->dilation_h),
                  dil_w = q4_dilation(params->dilation_w);
    const int32_t row_bytes = (k_h * k_w + 1) / 2;
    int32_t oy, ox, c, ky, kx;

    for (oy = 0; oy < out_h; ++oy) {
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t y0 = oy * params->stride_h - params->pad_top;
            const int32_t x0 = ox * params->stride_w - params->pad_left;
            for (c = 0; c < out_c; ++c) {
                const int32_t ic = c / mult; /* the input channel read */
                const uint8_t *row = filter + c * row_bytes;
                int32_t acc = bias[c];
                for (ky = 0; ky < k_h; ++ky) {
                    const int32_t iy = y0 + ky * dil_h; /* below H + bottom pad: no overflow */
                    if (iy < 0 || iy >= in_h) {
                        continue; /* padding equals the zero point: contributes 0 */
                    }
                    for (kx = 0; kx < k_w; ++kx) {
                        const int32_t ix = x0 + kx * dil_w;
                        if (ix < 0 || ix >= in_w) {
                            continue;
                        }
                        acc += (q4_act_get(input, (iy * in_w + ix) * ch + ic) - params->input_zp) *
                               q4_nibble_get(row, ky * k_w + kx);
                    }
                }
                q4_act_set(output, (oy * out_w + ox) * out_c + c,
                           q4_requantize_clamp(acc, quant->multiplier[c], quant->shift[c],
                                               params->output_zp, params->act_min,
                                               params->act_max));
            }
        }
    }
}
