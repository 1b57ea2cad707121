/* q4_reduce_mean_p4.c - the mean over adjacent axes [outer, n, inner] -> [outer, 1, inner],
 * activations in packed 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_fixedpoint.h"
#include "q4_reduce_mean.h"

void q4_reduce_mean_p4(const q4_reduce_mean_params *params, q4_src input, q4_dst output)
{
    const int32_t n = params->n, inner = params->inner;
    int32_t o, i, j, k = 0;

    for (o = 0; o < params->outer; ++o) {
        const int32_t base = o * n * inner;
        for (i = 0; i < inner; ++i) {
            int32_t acc = 0;
            for (j = 0; j < n; ++j) {
                acc += q4_act_get(input, base + j * inner + i) - params->input_zp;
            }
            q4_act_set(output, k++,
                       q4_requantize_clamp(acc, params->multiplier, params->shift,
                                           params->output_zp, params->act_min, params->act_max));
        }
    }
}
