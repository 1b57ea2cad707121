/* q4_global_avgpool_p4.c - global average pooling (H, W, C) -> (1, 1, C), activations in packed
 * 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_fixedpoint.h"

void q4_global_avgpool_p4(const q4_pool_params *params, const q4_dims *input_dims, q4_src input,
                          q4_dst output)
{
    const int32_t pixels = input_dims->h * input_dims->w, ch = input_dims->c;
    int32_t c, p;

    for (c = 0; c < ch; ++c) {
        int32_t acc = 0;
        for (p = 0; p < pixels; ++p) {
            acc += q4_act_get(input, p * ch + c) - params->input_zp;
        }
        q4_act_set(output, c,
                   q4_requantize_clamp(acc, params->multiplier, params->shift,
                                       params->output_zp, params->act_min, params->act_max));
    }
}
