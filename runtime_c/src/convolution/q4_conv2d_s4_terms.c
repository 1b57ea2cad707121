/* q4_conv2d_s4_terms.c - multi-term 2-D convolution (dual INT4 weights and/or residual-quantized
 * input), int8 activations (reference). */
#include "q4_kernels.h"
#include "q4_fixedpoint.h"

void q4_conv2d_s4_terms(const q4_conv_params *params, const q4_terms_params *terms,
                        const q4_dims *input_dims, const int8_t *const *inputs,
                        const q4_dims *filter_dims, const uint8_t *const *filters,
                        const int32_t *bias, const q4_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    /* groups = in_c / group_c: output oc reads input channels [g group_c, (g + 1) group_c) of
     * its group g = oc / group_o */
    const int32_t group_c = filter_dims->c, group_o = out_c / (in_c / group_c);
    const int32_t dil_h = q4_dilation(params->dilation_h),
                  dil_w = q4_dilation(params->dilation_w);
    const int32_t row_bytes = (k_h * k_w * group_c + 1) / 2;
    const int32_t n_terms = terms->n_inputs * terms->n_weights;
    int32_t oy, ox, oc, ky, kx, ic, t;

    for (oy = 0; oy < out_h; ++oy) {
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t y0 = oy * params->stride_h - params->pad_top;
            const int32_t x0 = ox * params->stride_w - params->pad_left;
            for (oc = 0; oc < out_c; ++oc) {
                const int32_t c0 = oc / group_o * group_c; /* the group's first input channel */
                int32_t acc[4];
                for (t = 0; t < n_terms; ++t) {
                    const int32_t in_index = t / terms->n_weights;
                    const int8_t *input = inputs[in_index];
                    const int32_t zp = terms->input_zp[in_index];
                    const uint8_t *row = filters[t % terms->n_weights] + oc * row_bytes;
                    int32_t sum = t == 0 ? bias[oc] : 0;
                    for (ky = 0; ky < k_h; ++ky) {
                        const int32_t iy = y0 + ky * dil_h; /* below H + bottom pad: no overflow */
                        if (iy < 0 || iy >= in_h) {
                            continue; /* padding equals the zero point: contributes 0 */
                        }
                        for (kx = 0; kx < k_w; ++kx) {
                            const int32_t ix = x0 + kx * dil_w;
                            const int8_t *px;
                            int32_t k;
                            if (ix < 0 || ix >= in_w) {
                                continue;
                            }
                            px = input + (iy * in_w + ix) * in_c + c0;
                            k = (ky * k_w + kx) * group_c;
                            for (ic = 0; ic < group_c; ++ic) {
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
