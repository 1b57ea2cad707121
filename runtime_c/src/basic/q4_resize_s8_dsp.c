/*
 * q4_resize_s8_dsp.c - up-sampling by integer factors for Cortex-M cores with unaligned word
 * access (the DSP-extension cores: Cortex-M4/M7/M33/M55). Bit-exact with q4_resize_s8.
 *
 * Nearest (mode 0) is a copy: each input row is widened once into the first of its s_h output
 * rows (every input pixel's C bytes written s_w times, by words), and the other s_h - 1 output
 * rows are word copies of that row, instead of one index computation and byte copy per output
 * byte. With C a multiple of 4 each input word is loaded once and stored s_w times. Bilinear
 * (mode 1) runs the portable kernel.
 */
#include "q4_resize.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

/* Copies n bytes: 16 at a time, then words, then bytes (unaligned word accesses allowed). */
static inline void q4_resize_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 16; n -= 16, src += 16, dst += 16) {
        uint32_t a, b, c, d;
        __builtin_memcpy(&a, src, sizeof a);
        __builtin_memcpy(&b, src + 4, sizeof b);
        __builtin_memcpy(&c, src + 8, sizeof c);
        __builtin_memcpy(&d, src + 12, sizeof d);
        __builtin_memcpy(dst, &a, sizeof a);
        __builtin_memcpy(dst + 4, &b, sizeof b);
        __builtin_memcpy(dst + 8, &c, sizeof c);
        __builtin_memcpy(dst + 12, &d, sizeof d);
    }
    for (; n >= 4; n -= 4, src += 4, dst += 4) {
        uint32_t a;
        __builtin_memcpy(&a, src, sizeof a);
        __builtin_memcpy(dst, &a, sizeof a);
    }
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
}

void q4_resize_s8_dsp(const q4_resize_params *params, const q4_dims *input_dims,
                      const int8_t *input, const q4_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t s_h = params->scale_h, s_w = params->scale_w;
    const int32_t row_bytes = output_dims->w * ch;
    int32_t iy, ix, r;

    if (params->mode != 0) {
        q4_resize_s8(params, input_dims, input, output_dims, output);
        return;
    }
    for (iy = 0; iy < in_h; ++iy) {
        int8_t *const first = output + iy * s_h * row_bytes;
        const int8_t *src = input + iy * in_w * ch;
        if (s_w == 1) {
            q4_resize_copy(first, src, row_bytes);
        } else if (ch % 4 == 0) { /* per word of a pixel, one load and s_w stores */
            int8_t *dst = first;
            for (ix = 0; ix < in_w; ++ix, src += ch, dst += s_w * ch) {
                int32_t k;
                for (k = 0; k < ch; k += 4) {
                    uint32_t v;
                    __builtin_memcpy(&v, src + k, sizeof v);
                    __builtin_memcpy(dst + k, &v, sizeof v);
                    __builtin_memcpy(dst + ch + k, &v, sizeof v);
                    for (r = 2; r < s_w; ++r) {
                        __builtin_memcpy(dst + r * ch + k, &v, sizeof v);
                    }
                }
            }
        } else {
            int8_t *dst = first;
            for (ix = 0; ix < in_w; ++ix, src += ch) {
                for (r = 0; r < s_w; ++r, dst += ch) {
                    q4_resize_copy(dst, src, ch);
                }
            }
        }
        for (r = 1; r < s_h; ++r) {
            q4_resize_copy(first + r * row_bytes, first, row_bytes);
        }
    }
}

#else /* no DSP extension: the portable kernel */

void q4_resize_s8_dsp(const q4_resize_params *params, const q4_dims *input_dims,
                      const int8_t *input, const q4_dims *output_dims, int8_t *output)
{
    q4_resize_s8(params, input_dims, input, output_dims, output);
}

#endif
