/* q4_global_avgpool_s8.c - global average pooling (H, W, C) -> (1, 1, C) (reference). */
#include "q4_kernels.h"
#include "q4_fixedpoint.h"

void q4_global_avgpool_s8(const q4_pool_params *params, const q4_dims *input_dims,
                          const int8_t *input, int8_t *output)
{
    const int32_t pixels = input_dims->h * input_dims->w, ch = input_dims->c;
    int32_t c, p;

    for (c = 0; c < ch; ++c) {
        int32_t acc = 0;
        for (p = 0; p < pixels; ++p) {
            acc += (int32_t)input[p * ch + c] - params->input_zp;
        }
        output[c] = q4_requantize_clamp(acc, params->multiplier, params->shift,
                                        params->output_zp, params->act_min, params->act_max);
    }
}
