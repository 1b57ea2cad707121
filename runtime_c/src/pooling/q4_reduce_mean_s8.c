/* q4_reduce_mean_s8.c - the mean over adjacent axes [outer, n, inner] -> [outer, 1, inner]
 * (reference). */
#include "q4_kernels.h"
#include "q4_fixedpoint.h"
#include "q4_reduce_mean.h"

void q4_reduce_mean_s8(const q4_reduce_mean_params *params, const int8_t *input, int8_t *output)
{
    const int32_t n = params->n, inner = params->inner;
    int32_t o, i, j;

    for (o = 0; o < params->outer; ++o) {
        const int8_t *base = input + o * n * inner;
        for (i = 0; i < inner; ++i) {
            int32_t acc = 0;
            for (j = 0; j < n; ++j) {
                acc += (int32_t)base[j * inner + i] - params->input_zp;
            }
            *output++ = q4_requantize_clamp(acc, params->multiplier, params->shift,
                                            params->output_zp, params->act_min, params->act_max);
        }
    }
}
