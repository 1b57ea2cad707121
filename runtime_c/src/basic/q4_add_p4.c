/* q4_add_p4.c - element-wise add of two tensors with different quantization, activations in
 * packed 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_fixedpoint.h"

void q4_add_p4(const q4_add_params *params, int32_t size, q4_src input_a, q4_src input_b,
               q4_dst output)
{
    const int32_t round = (int32_t)1 << (params->shift - 1);
    int32_t i;

    for (i = 0; i < size; ++i) {
        /* |da|, |db| <= 255 and multipliers < 2^21: the sum stays below 2^30. */
        const int32_t acc = (q4_act_get(input_a, i) - params->a_zp) * params->a_multiplier +
                            (q4_act_get(input_b, i) - params->b_zp) * params->b_multiplier;
        int32_t y = params->output_zp + q4_floor_shift32(acc + round, params->shift);
        if (y < params->act_min) {
            y = params->act_min;
        }
        if (y > params->act_max) {
            y = params->act_max;
        }
        q4_act_set(output, i, y);
    }
}
