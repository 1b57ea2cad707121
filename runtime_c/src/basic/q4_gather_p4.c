/* q4_gather_p4.c - slices along one axis copied by a constant index table, activations in packed
 * 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_gather.h"

void q4_gather_p4(const q4_gather_params *params, q4_src input, q4_dst output)
{
    const int32_t inner = params->inner;
    int32_t o, j, i, k = 0;

    for (o = 0; o < params->outer; ++o) {
        const int32_t base = o * params->axis_size * inner;
        for (j = 0; j < params->n_index; ++j) {
            const int32_t src = base + params->index[j] * inner;
            for (i = 0; i < inner; ++i) {
                q4_act_set(output, k++, q4_act_get(input, src + i));
            }
        }
    }
}
