/* q4_fully_connected_s4_p4.c - fully connected layer, INT4 packed weights, activations in packed
 * 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_fixedpoint.h"

void q4_fully_connected_s4_p4(const q4_fc_params *params, const q4_quant_params *quant,
                              int32_t input_size, q4_src input, const uint8_t *filter,
                              const int32_t *bias, int32_t output_size, q4_dst output)
{
    const int32_t row_bytes = (input_size + 1) / 2;
    int32_t o;

    for (o = 0; o < output_size; ++o) {
        const int32_t acc = bias[o] + q4_dot_run(input, 0, input_size, params->input_zp,
                                                 filter + o * row_bytes, 0);
        q4_act_set(output, o,
                   q4_requantize_clamp(acc, quant->multiplier[o], quant->shift[o],
                                       params->output_zp, params->act_min, params->act_max));
    }
}
