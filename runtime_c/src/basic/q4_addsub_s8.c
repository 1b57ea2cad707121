/* q4_addsub_s8.c - element-wise add / subtract of two int8 tensors with signed multipliers, the
 * second of the same shape or one value per channel (reference). */
#include "q4_elementwise.h"
#include "q4_fixedpoint.h"

void q4_addsub_s8(const q4_add_params *params, int32_t rows, int32_t channels, int32_t b_row_step,
                  const int8_t *input_a, const int8_t *input_b, int8_t *output)
{
    const int32_t round = (int32_t)1 << (params->shift - 1);
    int32_t r, c;

    for (r = 0; r < rows; ++r) {
        const int8_t *a = input_a + r * channels;
        const int8_t *b = input_b + r * b_row_step;
        int8_t *y = output + r * channels;
        for (c = 0; c < channels; ++c) {
            /* |da|, |db| <= 255 and |multipliers| < 2^21: |sum| + round stays below 2^31. */
            const int32_t acc = ((int32_t)a[c] - params->a_zp) * params->a_multiplier +
                                ((int32_t)b[c] - params->b_zp) * params->b_multiplier;
            int32_t v = params->output_zp + q4_floor_shift32(acc + round, params->shift);
            if (v < params->act_min) {
                v = params->act_min;
            }
            if (v > params->act_max) {
                v = params->act_max;
            }
            y[c] = (int8_t)v;
        }
    }
}
