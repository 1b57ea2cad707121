/* q4_lut_s8.c - y = table[x - input_min] element-wise (reference). */
#include "q4_lut.h"

void q4_lut_s8(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
               int8_t *output)
{
    int32_t i;

    for (i = 0; i < size; ++i) {
        output[i] = table[(int32_t)input[i] - input_min];
    }
}
