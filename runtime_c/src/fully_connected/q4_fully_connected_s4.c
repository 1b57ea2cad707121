/* q4_fully_connected_s4.c - fully connected layer, INT4 packed weights, int8 activations
 * (reference). */
#include "q4_kernels.h"
#include "q4_fixedpoint.h"

void q4_fully_connected_s4(const q4_fc_params *params, const q4_quant_params *quant,
                           int32_t input_size, const int8_t *input, const uint8_t *filter,
                           const int32_t *bias, int32_t output_size, int8_t *output)
{
    const int32_t row_bytes = (input_size + 1) / 2;
    int32_t o, i;

    for (o = 0; o < output_size; ++o) {
        const uint8_t *row = filter + o * row_bytes;
        int32_t acc = bias[o];
        for (i = 0; i < input_size; ++i) {
            acc += ((int32_t)input[i] - params->input_zp) * q4_int4_at(row, i);
        }
        output[o] = q4_requantize_clamp(acc, quant->multiplier[o], quant->shift[o],
                                        params->output_zp, params->act_min, params->act_max);
    }
}
