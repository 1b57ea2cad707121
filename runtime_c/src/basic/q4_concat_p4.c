/* q4_concat_p4.c - concat on the channel axis, each input requantized to the output, activations
 * in packed 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_fixedpoint.h"

void q4_concat_p4(const q4_concat_params *params, int32_t rows, const q4_src *inputs,
                  q4_dst output)
{
    int32_t r, i, c, o = 0;

    for (r = 0; r < rows; ++r) {
        for (i = 0; i < params->n_inputs; ++i) {
            const int32_t channels = params->channels[i];
            const int32_t start = r * channels;

            for (c = 0; c < channels; ++c) {
                const int32_t d = q4_act_get(inputs[i], start + c) - params->input_zp[i];
                q4_act_set(output, o++,
                           q4_requantize_clamp(d, params->multiplier[i], params->shift[i],
                                               params->output_zp, params->act_min,
                                               params->act_max));
            }
        }
    }
}
