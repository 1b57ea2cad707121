/* q4_clamp_s8.c - clamp an int8 tensor to [act_min, act_max] (reference). */
#include "q4_kernels.h"

void q4_clamp_s8(int32_t act_min, int32_t act_max, int32_t size, const int8_t *input,
                 int8_t *output)
{
    int32_t i;

    for (i = 0; i < size; ++i) {
        int32_t v = input[i];
        if (v < act_min) {
            v = act_min;
        }
        if (v > act_max) {
            v = act_max;
        }
        output[i] = (int8_t)v;
    }
}
