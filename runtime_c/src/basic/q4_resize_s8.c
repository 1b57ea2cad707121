/* q4_resize_s8.c - up-sampling by integer factors, nearest or bilinear (reference). */
#include "q4_resize.h"

void q4_resize_s8(const q4_resize_params *params, const q4_dims *input_dims,
                  const int8_t *input, const q4_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t s_h = params->scale_h, s_w = params->scale_w, zp = params->zp;
    const int32_t den = 4 * s_h * s_w;
    int32_t oy, ox, c;

    for (oy = 0; oy < output_dims->h; ++oy) {
        int32_t y0, y1, wy0, wy1;
        q4_resize_taps(oy, s_h, in_h, &y0, &y1, &wy0, &wy1);
        for (ox = 0; ox < output_dims->w; ++ox) {
            int8_t *dst = output + (oy * output_dims->w + ox) * ch;
            if (params->mode == 0) {
                const int8_t *src = input + ((oy / s_h) * in_w + ox / s_w) * ch;
                for (c = 0; c < ch; ++c) {
                    dst[c] = src[c];
                }
            } else {
                int32_t x0, x1, wx0, wx1;
                const int8_t *p00, *p01, *p10, *p11;
                q4_resize_taps(ox, s_w, in_w, &x0, &x1, &wx0, &wx1);
                p00 = input + (y0 * in_w + x0) * ch;
                p01 = input + (y0 * in_w + x1) * ch;
                p10 = input + (y1 * in_w + x0) * ch;
                p11 = input + (y1 * in_w + x1) * ch;
                for (c = 0; c < ch; ++c) {
                    const int32_t top = wx0 * (p00[c] - zp) + wx1 * (p01[c] - zp);
                    const int32_t bottom = wx0 * (p10[c] - zp) + wx1 * (p11[c] - zp);
                    dst[c] = (int8_t)(zp + q4_div_round_away(wy0 * top + wy1 * bottom, den));
                }
            }
        }
    }
}
