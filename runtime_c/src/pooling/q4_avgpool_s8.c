/* q4_avgpool_s8.c - average pooling of an int8 tensor (reference). */
#include "q4_kernels.h"
#include "q4_fixedpoint.h"

void q4_avgpool_s8(const q4_pool_params *params, const q4_dims *input_dims, const int8_t *input,
                   const q4_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    int32_t oy, ox, c, ky, kx;

    for (oy = 0; oy < output_dims->h; ++oy) {
        for (ox = 0; ox < output_dims->w; ++ox) {
            const int32_t y0 = oy * params->stride_h - params->pad_top;
            const int32_t x0 = ox * params->stride_w - params->pad_left;
            int32_t m = params->multiplier, s = params->shift;
            if (params->count_multiplier != 0) {
                const int32_t d = q4_pool_count(params, y0, x0, in_h, in_w);
                m = params->count_multiplier[d - 1];
                s = params->count_shift[d - 1];
            }
            for (c = 0; c < ch; ++c) {
                int32_t acc = 0;
                for (ky = 0; ky < params->kernel_h; ++ky) {
                    const int32_t iy = y0 + ky;
                    if (iy < 0 || iy >= in_h) {
                        continue; /* padding contributes zero */
                    }
                    for (kx = 0; kx < params->kernel_w; ++kx) {
                        const int32_t ix = x0 + kx;
                        if (ix < 0 || ix >= in_w) {
                            continue;
                        }
                        acc += (int32_t)input[(iy * in_w + ix) * ch + c] - params->input_zp;
                    }
                }
                output[(oy * output_dims->w + ox) * ch + c] = q4_requantize_clamp(
                    acc, m, s, params->output_zp, params->act_min, params->act_max);
            }
        }
    }
}
