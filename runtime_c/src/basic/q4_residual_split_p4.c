/* q4_residual_split_p4.c - q4_residual_split_s8 with operands of either storage width. */
#include "q4_packed.h"

void q4_residual_split_p4(const q4_split_params *params, int32_t size, q4_src input, q4_dst output)
{
    int32_t i;

    for (i = 0; i < size; ++i) {
        q4_act_set(output, i, q4_residual_split_one(params, q4_act_get(input, i)));
    }
}
