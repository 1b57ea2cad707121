/*
 * q4_maxpool_s8_dsp.c - max pooling of an int8 tensor, for cores with the Arm DSP extension
 * (Cortex-M4/M7/M33/M55). Bit-exact with q4_maxpool_s8.
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"): per output pixel the window
 * is clipped to the input once (padding never wins, and every window holds an input tap), then
 * the channels run in blocks of 32, 16, 8 or 4 (4 bytes per word, the block's words held in
 * registers): the block's first tap is loaded, and every further tap is one word load and
 * SSUB8 + SEL per word (SSUB8 sets the byte-wise GE flags of x >= best, SEL picks x there): a
 * 4-lane signed byte max in two instructions. The last C % 4 channels take the scalar loop.
 * The max of int8 values is exact in any order. Scratch: none.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"

/* The byte-wise signed maximum of a and x: SSUB8 then SEL (GCC does not keep the GE flags
 * between two intrinsics reliably, so the pair is one statement). */
static inline uint32_t q4_max4(uint32_t a, uint32_t x)
{
    uint32_t t; /* SSUB8's difference, unused: only its GE flags are */
    __asm__("ssub8 %0, %2, %1\n\tsel %1, %2, %1" : "=&r"(t), "+r"(a) : "r"(x) : "cc");
    (void)t;
    return a;
}

static inline void q4_store_u32(void *p, uint32_t v)
{
    __builtin_memcpy(p, &v, sizeof v);
}

/* out[0 .. 4 * words) = the maximum over the rows x cols taps at p (taps ch bytes apart in a row,
 * rows row_step bytes apart); words is a constant at each call (8, 4, 2 or 1), so the running
 * maxima stay in registers. */
static inline void q4_maxpool_block(const int8_t *p, int32_t rows, int32_t cols, int32_t ch,
                                    int32_t row_step, int32_t words, int8_t *out)
{
    uint32_t m0 = q4_load_u32(p), m1 = 0, m2 = 0, m3 = 0, m4 = 0, m5 = 0, m6 = 0, m7 = 0;
    const int8_t *q = p + ch;
    int32_t r, n = cols - 1; /* the first tap is in m */
    if (words >= 2) {
        m1 = q4_load_u32(p + 4);
    }
    if (words >= 4) {
        m2 = q4_load_u32(p + 8);
        m3 = q4_load_u32(p + 12);
    }
    if (words == 8) {
        m4 = q4_load_u32(p + 16);
        m5 = q4_load_u32(p + 20);
        m6 = q4_load_u32(p + 24);
        m7 = q4_load_u32(p + 28);
    }
    for (r = 0; r < rows; ++r) {
        for (; n > 0; --n, q += ch) {
            m0 = q4_max4(m0, q4_load_u32(q));
            if (words >= 2) {
                m1 = q4_max4(m1, q4_load_u32(q + 4));
            }
            if (words >= 4) {
                m2 = q4_max4(m2, q4_load_u32(q + 8));
                m3 = q4_max4(m3, q4_load_u32(q + 12));
            }
            if (words == 8) {
                m4 = q4_max4(m4, q4_load_u32(q + 16));
                m5 = q4_max4(m5, q4_load_u32(q + 20));
                m6 = q4_max4(m6, q4_load_u32(q + 24));
                m7 = q4_max4(m7, q4_load_u32(q + 28));
            }
        }
        p += row_step;
        q = p;
        n = cols;
    }
    q4_store_u32(out, m0);
    if (words >= 2) {
        q4_store_u32(out + 4, m1);
    }
    if (words >= 4) {
        q4_store_u32(out + 8, m2);
        q4_store_u32(out + 12, m3);
    }
    if (words == 8) {
        q4_store_u32(out + 16, m4);
        q4_store_u32(out + 20, m5);
        q4_store_u32(out + 24, m6);
        q4_store_u32(out + 28, m7);
    }
}

void q4_maxpool_s8_dsp(const q4_pool_params *params, const q4_dims *input_dims,
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
            for (c = 0; c + 32 <= ch; c += 32) {
                q4_maxpool_block(base + c, rows, cols, ch, row_step, 8, out + c);
            }
            if (c + 16 <= ch) {
                q4_maxpool_block(base + c, rows, cols, ch, row_step, 4, out + c);
                c += 16;
            }
            if (c + 8 <= ch) {
                q4_maxpool_block(base + c, rows, cols, ch, row_step, 2, out + c);
                c += 8;
            }
            if (c + 4 <= ch) {
                q4_maxpool_block(base + c, rows, cols, ch, row_step, 1, out + c);
                c += 4;
            }
            for (; c < ch; ++c) { /* the last C % 4 channels */
                int32_t best = INT8_MIN, r, k;
                for (r = 0; r < rows; ++r) {
                    const int8_t *q = base + r * row_step + c;
                    for (k = 0; k < cols; ++k, q += ch) {
                        best = *q > best ? *q : best;
                    }
                }
                out[c] = (int8_t)best;
            }
        }
    }
}

#else /* no DSP extension: the portable kernel */

void q4_maxpool_s8_dsp(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output)
{
    q4_maxpool_s8(params, input_dims, input, output_dims, output);
}

#endif
