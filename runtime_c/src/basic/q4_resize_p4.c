/* q4_resize_p4.c - up-sampling by integer factors, nearest or bilinear, activations in packed
 * 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_resize.h"

void q4_resize_p4(const q4_resize_params *params, const q4_dims *input_dims, q4_src input,
                  const q4_dims *output_dims, q4_dst output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t s_h = params->scale_h, s_w = params->scale_w, zp = params->zp;
    const int32_t den = 4 * s_h * s_w;
    int32_t oy, ox, c;

    for (oy = 0; oy < output_dims->h; ++oy) {
        int32_t y0, y1, wy0, wy1;
        q4_resize_taps(oy, s_h, in_h, &y0, &y1, &wy0, &wy1);
        for (ox = 0; ox < output_dims->w; ++ox) {
            const int32_t dst = (oy * output_dims->w + ox) * ch;
            if (params->mode == 0) {
                const int32_t src = ((oy / s_h) * in_w + ox / s_w) * ch;
                for (c = 0; c < ch; ++c) {
                    q4_act_set(output, dst + c, q4_act_get(input, src + c));
                }
            } else {
                int32_t x0, x1, wx0, wx1, i00, i01, i10, i11;
                q4_resize_taps(ox, s_w, in_w, &x0, &x1, &wx0, &wx1);
                i00 = (y0 * in_w + x0) * ch;
                i01 = (y0 * in_w + x1) * ch;
                i10 = (y1 * in_w + x0) * ch;
                i11 = (y1 * in_w + x1) * ch;
                for (c = 0; c < ch; ++c) {
                    const int32_t top = wx0 * (q4_act_get(input, i00 + c) - zp) +
                                        wx1 * (q4_act_get(input, i01 + c) - zp);
                    const int32_t bottom = wx0 * (q4_act_get(input, i10 + c) - zp) +
                                           wx1 * (q4_act_get(input, i11 + c) - zp);
                    q4_act_set(output, dst + c,
                               zp + q4_div_round_away(wy0 * top + wy1 * bottom, den));
                }
            }
        }
    }
}
