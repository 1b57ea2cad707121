/*
 * q4_maxpool_s8_mve.c - max pooling of an int8 tensor, for cores with Helium (MVE,
 * Cortex-M55/M85). Bit-exact with q4_maxpool_s8.
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"): per output pixel the window
 * is clipped to the input once (padding never wins, and every window holds an input tap), then
 * the channels run in blocks of 64, 32 or 16 (16 bytes per vector, the block's vectors held in
 * registers): per tap one VLDRB.8 and one VMAX.S8 per vector. The last C % 16 channels are one
 * tail-predicated vector (VCTP8: the loads read no byte past the row, the store writes none past
 * the output). The max of int8 values is exact in any order. Scratch: none.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

/* out[0 .. 16 * vecs) = the maximum over the rows x cols taps at p; vecs is a constant at each
 * call (4, 2 or 1). */
static inline void q4_maxpool_vecs(const int8_t *p, int32_t rows, int32_t cols, int32_t ch,
                                   int32_t row_step, int32_t vecs, int8_t *out)
{
    int8x16_t m0 = vldrbq_s8(p), m1 = m0, m2 = m0, m3 = m0;
    int32_t r, k;
    if (vecs >= 2) {
        m1 = vldrbq_s8(p + 16);
    }
    if (vecs == 4) {
        m2 = vldrbq_s8(p + 32);
        m3 = vldrbq_s8(p + 48);
    }
    for (r = 0; r < rows; ++r, p += row_step) {
        const int8_t *q = p;
        for (k = 0; k < cols; ++k, q += ch) {
            m0 = vmaxq_s8(m0, vldrbq_s8(q));
            if (vecs >= 2) {
                m1 = vmaxq_s8(m1, vldrbq_s8(q + 16));
            }
            if (vecs == 4) {
                m2 = vmaxq_s8(m2, vldrbq_s8(q + 32));
                m3 = vmaxq_s8(m3, vldrbq_s8(q + 48));
            }
        }
    }
    vstrbq_s8(out, m0);
    if (vecs >= 2) {
        vstrbq_s8(out + 16, m1);
    }
    if (vecs == 4) {
        vstrbq_s8(out + 32, m2);
        vstrbq_s8(out + 48, m3);
    }
}

/* The last n < 16 channels: one predicated vector. */
static inline void q4_maxpool_tail(const int8_t *p, int32_t rows, int32_t cols, int32_t ch,
                                   int32_t row_step, int32_t n, int8_t *out)
{
    const mve_pred16_t pred = vctp8q((uint32_t)n);
    int8x16_t m = vldrbq_z_s8(p, pred);
    int32_t r, k;
    for (r = 0; r < rows; ++r, p += row_step) {
        const int8_t *q = p;
        for (k = 0; k < cols; ++k, q += ch) {
            m = vmaxq_s8(m, vldrbq_z_s8(q, pred));
        }
    }
    vstrbq_p_s8(out, m, pred);
}

void q4_maxpool_s8_mve(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t kh = params->kernel_h, kw = params->kernel_w;
    const int32_t row_step = in_w * ch;
    int32_t oy, ox, c;

    for (oy = 0; oy < output_dims->h; ++oy) {
        const int32_t y0 = oy * params->stride_h - params->pad_top;
        const int32_t ky0 = y0 < 0 ? -y0 : 0;
        const int32_t ky1 = in_h - y0 < kh ? in_h - y0 : kh;
        for (ox = 0; ox < output_dims->w; ++ox) {
            const int32_t x0 = ox * params->stride_w - params->pad_left;
            const int32_t kx0 = x0 < 0 ? -x0 : 0;
            const int32_t kx1 = in_w - x0 < kw ? in_w - x0 : kw;
            const int32_t rows = ky1 - ky0, cols = kx1 - kx0;
            const int8_t *base = input + ((y0 + ky0) * in_w + x0 + kx0) * ch;
            int8_t *out = output + (oy * output_dims->w + ox) * ch;
            for (c = 0; c + 64 <= ch; c += 64) {
                q4_maxpool_vecs(base + c, rows, cols, ch, row_step, 4, out + c);
            }
            if (c + 32 <= ch) {
                q4_maxpool_vecs(base + c, rows, cols, ch, row_step, 2, out + c);
                c += 32;
            }
            if (c + 16 <= ch) {
                q4_maxpool_vecs(base + c, rows, cols, ch, row_step, 1, out + c);
                c += 16;
            }
            if (c < ch) {
                q4_maxpool_tail(base + c, rows, cols, ch, row_step, ch - c, out + c);
            }
        }
    }
}

#else /* no MVE: the portable kernel */

void q4_maxpool_s8_mve(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output)
{
    q4_maxpool_s8(params, input_dims, input, output_dims, output);
}

#endif
