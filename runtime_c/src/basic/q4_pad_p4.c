/* q4_pad_p4.c - constant spatial padding, activations in packed 4-bit (or int8) storage
 * (reference). */
#include "q4_packed.h"

void q4_pad_p4(const q4_pad_params *params, const q4_dims *input_dims, q4_src input,
               const q4_dims *output_dims, q4_dst output)
{
    const int32_t ch = output_dims->c;
    int32_t oy, ox, c;

    for (oy = 0; oy < output_dims->h; ++oy) {
        const int32_t iy = oy - params->pad_top;
        for (ox = 0; ox < output_dims->w; ++ox) {
            const int32_t ix = ox - params->pad_left;
            const int32_t dst = (oy * output_dims->w + ox) * ch;
            if (iy < 0 || iy >= input_dims->h || ix < 0 || ix >= input_dims->w) {
                for (c = 0; c < ch; ++c) {
                    q4_act_set(output, dst + c, params->fill);
                }
            } else {
                const int32_t src = (iy * input_dims->w + ix) * ch;
                for (c = 0; c < ch; ++c) {
                    q4_act_set(output, dst + c, q4_act_get(input, src + c));
                }
            }
        }
    }
}
