/* q4_lut_p4.c - y = table[x - input_min] element-wise, activations in packed 4-bit (or int8)
 * storage (reference). */
#include "q4_packed.h"
#include "q4_lut.h"

void q4_lut_p4(const int8_t *table, int32_t input_min, int32_t size, q4_src input, q4_dst output)
{
    int32_t i;

    for (i = 0; i < size; ++i) {
        q4_act_set(output, i, table[q4_act_get(input, i) - input_min]);
    }
}
