/* q4_conv_transpose_s4_terms.c - multi-term 2-D transposed convolution (dual INT4 weights and/or residual-quantized
 * input), int8 activations (reference). */
#include "q4_conv_transpose.h"
#include "q4_fixedpoint.h"

void q4_conv_transpose_s4_terms(const q4_conv_params *params, const q4_terms_params *terms,
                                const q4_dims *input_dims, const int8_t *const *inputs,
                                const q4_dims *filter_dims, const uint8_t *const *filters,
                                const int32_t *bias, const q4_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t s_h = params->stride_h, s_w = params->stride_w;
    const int32_t row_bytes = (k_h * k_w * in_c + 1) / 2;
    const int32_t n_terms = terms->n_inputs * terms->n_weights;
    int32_t oy, ox, oc, ky, kx, ic, t;

    for (oy = 0; oy < out_h; ++oy) {
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t ty = oy + params->pad_top, tx = ox + params->pad_left;
            for (oc = 0; oc < out_c; ++oc) {
                int32_t acc[4];
                for (t = 0; t < n_terms; ++t) {
                    const int32_t in_index = t / terms->n_weights;
                    const int8_t *input = inputs[in_index];
                    const int32_t zp = terms->input_zp[in_index];
                    const uint8_t *row = filters[t % terms->n_weights] + oc * row_bytes;
                    int32_t sum = t == 0 ? bias[oc] : 0;
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
                                sum += ((int32_t)px[ic] - zp) * q4_int4_at(row, k + ic);
                            }
                        }
                    }
                    acc[t] = sum;
                }
                output[(oy * out_w + ox) * out_c + oc] = q4_requantize_terms_clamp(
                    acc, n_terms, terms->multiplier + oc, out_c, terms->shift[oc],
                    params->output_zp, params->act_min, params->act_max);
            }
        }
    }
}
