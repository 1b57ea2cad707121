/* q4_lut_channel_p4.c - y = table[c][x - input_min] with one table per channel, activations in
 * packed 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_elementwise.h"

void q4_lut_channel_p4(const int8_t *table, int32_t input_min, int32_t table_size, int32_t rows,
                       int32_t channels, q4_src input, q4_dst output)
{
    int32_t r, c;

    for (r = 0; r < rows; ++r) {
        for (c = 0; c < channels; ++c) {
            const int32_t i = r * channels + c;
            q4_act_set(output, i, table[c * table_size + q4_act_get(input, i) - input_min]);
        }
    }
}
