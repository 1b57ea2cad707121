/* q4_pad_s8.c - constant spatial padding of an int8 tensor (reference). */
#include "q4_kernels.h"

void q4_pad_s8(const q4_pad_params *params, const q4_dims *input_dims, const int8_t *input,
               const q4_dims *output_dims, int8_t *output)
{
    const int32_t ch = output_dims->c;
    int32_t oy, ox, c;

    for (oy = 0; oy < output_dims->h; ++oy) {
        const int32_t iy = oy - params->pad_top;
        for (ox = 0; ox < output_dims->w; ++ox) {
            const int32_t ix = ox - params->pad_left;
            int8_t *dst = output + (oy * output_dims->w + ox) * ch;
            if (iy < 0 || iy >= input_dims->h || ix < 0 || ix >= input_dims->w) {
                for (c = 0; c < ch; ++c) {
                    dst[c] = (int8_t)params->fill;
                }
            } else {
                const int8_t *src = input + (iy * input_dims->w + ix) * ch;
                for (c = 0; c < ch; ++c) {
                    dst[c] = src[c];
                }
            }
        }
    }
}
