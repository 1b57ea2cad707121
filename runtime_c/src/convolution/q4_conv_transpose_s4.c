/* q4_conv_transpose_s4.c - 2-D transposed convolution, INT4 packed weights, int8 activations
 * (reference). Each output pixel gathers the input pixels that scatter into it: tap (ky, kx) reads
 * input row iy = (oy + pad_top - ky) / stride_h when that division is exact, so only every
 * stride_h-th kernel row (and stride_w-th column) contributes. */
#include "q4_conv_transpose.h"
#include "q4_fixedpoint.h"

void q4_conv_transpose_s4(const q4_conv_params *params, const q4_quant_params *quant,
                          const q4_dims *input_dims, const int8_t *input,
                          const q4_dims *filter_dims, const uint8_t *filter,
                          const int32_t *bias, const q4_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t s_h = params->stride_h, s_w = params->stride_w;
    const int32_t row_bytes = (k_h * k_w * in_c + 1) / 2;
    int32_t oy, ox, oc, ky, kx, ic;

    for (oy = 0; oy < out_h; ++oy) {
        const int32_t ty = oy + params->pad_top; /* >= 0 */
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t tx = ox + params->pad_left;
            for (oc = 0; oc < out_c; ++oc) {
                const uint8_t *row = filter + (int32_t)oc * row_bytes;
                int32_t acc = bias[oc];
                for (ky = ty % s_h; ky < k_h && ky <= ty; ky += s_h) {
                    const int32_t iy = (ty - ky) / s_h;
                    if (iy >= in_h) {
                        continue;
                    }
                    for (kx = tx % s_w; kx < k_w && kx <= tx; kx += s_w) {
                        const int32_t ix = (tx - kx) / s_w;
                        const int8_t *px;
                        int32_t k;
                        if (ix >= in_w) {
                            continue;
                        }
                        px = input + (iy * in_w + ix) * in_c;
                        k = (ky * k_w + kx) * in_c;
                        for (ic = 0; ic < in_c; ++ic) {
                            acc += ((int32_t)px[ic] - params->input_zp) * q4_int4_at(row, k + ic);
                        }
                    }
                }
                output[(oy * out_w + ox) * out_c + oc] = q4_requantize_clamp(
                    acc, quant->multiplier[oc], quant->shift[oc], params->output_zp,
                    params->act_min, params->act_max);
            }
        }
    }
}
