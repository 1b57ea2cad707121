/*
 * q4_resize.h - up-sampling by integer factors (docs/integer-spec.md, resize); the output keeps the
 * input's quantization.
 *
 * mode 0 (nearest): y[oy][ox] = x[oy / scale_h][ox / scale_w].
 * mode 1 (bilinear, half-pixel centres): along an axis with factor s, output o = s*a + r reads the
 * taps i0, i0 + 1 (clamped to the input) with integer weights (2s - f, f), d = 2r + 1 - s,
 * i0 = a and f = d when d >= 0, else i0 = a - 1 and f = d + 2s;
 * y = zp + round_half_away(sum wy*wx*(x - zp) / (4*scale_h*scale_w)).
 *
 * The code generator copies this header only for models that use the op. Include q4_packed.h
 * first to get the packed-activation form as well.
 */
#ifndef Q4_RESIZE_H
#define Q4_RESIZE_H

#include <stdint.h>

#include "q4_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t mode; /* 0 nearest, 1 bilinear */
    int32_t scale_h;
    int32_t scale_w;
    int32_t zp; /* the input's (and output's) zero point */
} q4_resize_params;

/* One axis of a bilinear resize: taps *i0, *i1 and weights *w0, *w1 (in units of 1/(2s)) of
 * output coordinate o, for an input of `size` elements up-sampled by `scale`. */
static inline void q4_resize_taps(int32_t o, int32_t scale, int32_t size, int32_t *i0,
                                  int32_t *i1, int32_t *w0, int32_t *w1)
{
    const int32_t d = 2 * (o % scale) + 1 - scale;
    int32_t a = o / scale, f = d;
    if (d < 0) {
        a -= 1;
        f = d + 2 * scale;
    }
    *i0 = a < 0 ? 0 : (a > size - 1 ? size - 1 : a);
    *i1 = a + 1 > size - 1 ? size - 1 : a + 1;
    *w0 = 2 * scale - f;
    *w1 = f;
}

/* round_half_away(acc / den) for den > 0 and even, as the bilinear resize rounds. */
static inline int32_t q4_div_round_away(int32_t acc, int32_t den)
{
    return acc >= 0 ? (acc + den / 2) / den : -((-acc + den / 2) / den);
}

void q4_resize_s8(const q4_resize_params *params, const q4_dims *input_dims,
                  const int8_t *input, const q4_dims *output_dims, int8_t *output);

/* The optimised variant (docs/kernels.md, "Transposed convolution (and resize)"), the portable
 * signature: nearest by word copies (each input row widened once, its other output rows
 * copied); bilinear, or a core without the DSP extension, runs q4_resize_s8. */
void q4_resize_s8_dsp(const q4_resize_params *params, const q4_dims *input_dims,
                      const int8_t *input, const q4_dims *output_dims, int8_t *output);

#ifdef Q4_PACKED_H
void q4_resize_p4(const q4_resize_params *params, const q4_dims *input_dims, q4_src input,
                  const q4_dims *output_dims, q4_dst output);
#endif

#ifdef __cplusplus
}
#endif

#endif /* Q4_RESIZE_H */
