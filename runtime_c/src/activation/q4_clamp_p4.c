/* q4_clamp_p4.c - clamp a tensor to [act_min, act_max], activations in packed 4-bit (or int8)
 * storage (reference). */
#include "q4_packed.h"

void q4_clamp_p4(int32_t act_min, int32_t act_max, int32_t size, q4_src input, q4_dst output)
{
    int32_t i;

    for (i = 0; i < size; ++i) {
        int32_t v = q4_act_get(input, i);
        if (v < act_min) {
            v = act_min;
        }
        if (v > act_max) {
            v = act_max;
        }
        q4_act_set(output, i, v);
    }
}
