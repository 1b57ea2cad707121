/* q4_add_s8.c - element-wise add of two int8 tensors with different quantization (reference). */
#include "q4_kernels.h"
#include "q4_fixedpoint.h"

void q4_add_s8(const q4_add_params *params, int32_t size, const int8_t *input_a,
               const int8_t *input_b, int8_t *output)
{
    const int32_t round = (int32_t)1 << (params->shift - 1);
    int32_t i;

    for (i = 0; i < size; ++i) {
        /* |da|, |db| <= 255 and multipliers < 2^21: the sum stays below 2^30. */
        const int32_t acc = ((int32_t)input_a[i] - params->a_zp) * params->a_multiplier +
                            ((int32_t)input_b[i] - params->b_zp) * params->b_multiplier;
        int32_t y = params->output_zp + q4_floor_shift32(acc + round, params->shift);
        if (y < params->act_min) {
            y = params->act_min;
        }
        if (y > params->act_max) {
            y = params->act_max;
        }
        output[i] = (int8_t)y;
    }
}
