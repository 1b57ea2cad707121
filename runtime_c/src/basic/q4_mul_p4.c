/* q4_mul_p4.c - element-wise product of two tensors, the second of the same shape or one value
 * per channel, activations in packed 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_elementwise.h"
#include "q4_fixedpoint.h"

void q4_mul_p4(const q4_mul_params *params, int32_t rows, int32_t channels, int32_t b_row_step,
               q4_src input_a, q4_src input_b, q4_dst output)
{
    int32_t r, c;

    for (r = 0; r < rows; ++r) {
        for (c = 0; c < channels; ++c) {
            const int32_t i = r * channels + c;
            const int32_t acc = (q4_act_get(input_a, i) - params->a_zp) *
                                (q4_act_get(input_b, r * b_row_step + c) - params->b_zp);
            q4_act_set(output, i,
                       q4_requantize_clamp(acc, params->multiplier, params->shift,
                                           params->output_zp, params->act_min, params->act_max));
        }
    }
}
