/* q4_mul_s8.c - element-wise product of two int8 tensors, the second of the same shape or one
 * value per channel (reference). */
#include "q4_elementwise.h"
#include "q4_fixedpoint.h"

void q4_mul_s8(const q4_mul_params *params, int32_t rows, int32_t channels, int32_t b_row_step,
               const int8_t *input_a, const int8_t *input_b, int8_t *output)
{
    int32_t r, c;

    for (r = 0; r < rows; ++r) {
        const int8_t *a = input_a + r * channels;
        const int8_t *b = input_b + r * b_row_step;
        int8_t *y = output + r * channels;
        for (c = 0; c < channels; ++c) {
            /* |a - za|, |b - zb| <= 255: the product fits 17 bits. */
            const int32_t acc = ((int32_t)a[c] - params->a_zp) * ((int32_t)b[c] - params->b_zp);
            y[c] = q4_requantize_clamp(acc, params->multiplier, params->shift,
                                       params->output_zp, params->act_min, params->act_max);
        }
    }
}
