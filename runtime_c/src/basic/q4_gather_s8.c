/* q4_gather_s8.c - slices along one axis copied by a constant index table (reference). */
#include "q4_kernels.h"
#include "q4_gather.h"

void q4_gather_s8(const q4_gather_params *params, const int8_t *input, int8_t *output)
{
    const int32_t inner = params->inner;
    int32_t o, j, i;

    for (o = 0; o < params->outer; ++o) {
        const int8_t *base = input + o * params->axis_size * inner;
        for (j = 0; j < params->n_index; ++j) {
            const int8_t *src = base + params->index[j] * inner;
            for (i = 0; i < inner; ++i) {
                *output++ = src[i];
            }
        }
    }
}
