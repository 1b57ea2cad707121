/* q4_addsub_p4.c - element-wise add / subtract with signed multipliers, the second tensor of the
 * same shape or one value per channel, activations in packed 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_elementwise.h"
#include "q4_fixedpoint.h"

void q4_addsub_p4(const q4_add_params *params, int32_t rows, int32_t channels,
                  int32_t b_row_step, q4_src input_a, q4_src input_b, q4_dst output)
{
    const int32_t round = (int32_t)1 << (params->shift - 1);
    int32_t r, c;

    for (r = 0; r < rows; ++r) {
        for (c = 0; c < channels; ++c) {
            const int32_t i = r * channels + c;
            const int32_t acc = (q4_act_get(input_a, i) - params->a_zp) * params->a_multiplier +
                                (q4_act_get(input_b, r * b_row_step + c) - params->b_zp) *
                                    params->b_multiplier;
            int32_t v = params->output_zp + q4_floor_shift32(acc + round, params->shift);
            if (v < params->act_min) {
                v = params->act_min;
            }
            if (v > params->act_max) {
                v = params->act_max;
            }
            q4_act_set(output, i, v);
        }
    }
}
