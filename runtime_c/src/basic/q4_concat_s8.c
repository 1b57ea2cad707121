/* q4_concat_s8.c - concat on the channel axis, each input requantized to the output (reference). */
#include "q4_kernels.h"
#include "q4_fixedpoint.h"

void q4_concat_s8(const q4_concat_params *params, int32_t rows, const int8_t *const *inputs,
                  int8_t *output)
{
    int32_t r, i, c;

    for (r = 0; r < rows; ++r) {
        for (i = 0; i < params->n_inputs; ++i) {
            const int32_t channels = params->channels[i];
            const int8_t *src = inputs[i] + r * channels;
            const int32_t zp = params->input_zp[i];
            const int32_t multiplier = params->multiplier[i];
            const int32_t shift = params->shift[i];

            if (multiplier == ((int32_t)1 << 30) && shift == 30 && zp == params->output_zp) {
                for (c = 0; c < channels; ++c) { /* same quantization: a copy (clamped) */
                    int32_t y = src[c];
                    if (y < params->act_min) {
                        y = params->act_min;
                    }
                    if (y > params->act_max) {
                        y = params->act_max;
                    }
                    output[c] = (int8_t)y;
                }
            } else {
                for (c = 0; c < channels; ++c) {
                    output[c] = q4_requantize_clamp((int32_t)src[c] - zp, multiplier, shift,
                                                    params->output_zp, params->act_min,
                                                    params->act_max);
                }
            }
            output += channels;
        }
    }
}
