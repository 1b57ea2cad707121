/* q4_lut_channel_s8.c - y = table[c][x - input_min] with one table per channel (reference). */
#include "q4_elementwise.h"

void q4_lut_channel_s8(const int8_t *table, int32_t input_min, int32_t table_size, int32_t rows,
                       int32_t channels, const int8_t *input, int8_t *output)
{
    int32_t r, c;

    for (r = 0; r < rows; ++r) {
        for (c = 0; c < channels; ++c) {
            const int32_t i = r * channels + c;
            output[i] = table[c * table_size + (int32_t)input[i] - input_min];
        }
    }
}
