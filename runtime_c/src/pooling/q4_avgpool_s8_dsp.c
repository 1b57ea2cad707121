/*
 * q4_avgpool_s8_dsp.c - average pooling of an int8 tensor, for cores with the Arm DSP extension
 * (Cortex-M4/M7/M33/M55). Bit-exact with q4_avgpool_s8.
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"): per output pixel the window
 * is clipped to the input once (padded taps contribute x - z_x = 0); its n = rows * cols input
 * taps are summed 4 channels at a time, per tap one word load and two SXTAB16 (the second with
 * ROR #8) into int16 pair sums (n <= 256 int8 values lie in [-32768, 32512]), and
 * acc = sum - n z_x is the spec's sum of (x - z_x). The window's multiplier and shift (the
 * count_pads entry of its divisor, or the single pair) requantize it: for 19 <= s <= 54, with
 * j = max(0, 33 - s), T = s + j and k = T - 32 >= 1, acc' = acc 2^j = sum 2^j - n z_x 2^j (one MLA,
 * |acc'| < 2^31) and SMMLA(acc', m, 2^(k-1) + (z_y - act_min) 2^k) >> k is
 * z_y - act_min + requantize(acc, m, s) (the low word cannot carry; exact in int32), USAT #8,
 * four bytes in a word, the clamp bytewise act_max - UQSUB8(act_max - act_min, u). Other shifts,
 * windows of more than 256 taps and the last C % 4 channels use the portable arithmetic.
 * Scratch: none.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"

#define Q4_AVGPOOL_MAX_TAPS 256 /* int8 values per int16 lane sum */

/* acc + the bytes 1 and 3 of x sign-extended, per halfword (SXTAB16 with ROR #8). */
static inline uint32_t q4_avgpool_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}

/* acc + floor(a * b / 2^32) (SMMLA; GCC does not emit it from C). */
static inline int32_t q4_avgpool_smmla(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

/* The requantization of one window: fast is 0 where the portable arithmetic runs. */
typedef struct {
    int32_t fast;
    int32_t m, s;
    int32_t scale;  /* 2^j */
    int32_t offset; /* -n z_x 2^j */
    int32_t round;  /* 2^(k-1) + (z_y - act_min) 2^k */
    int32_t k;
} q4_avgpool_rq;

static inline uint32_t q4_avgpool_one(int32_t sum, const q4_avgpool_rq *q)
{
    return (uint32_t)__usat(q4_avgpool_smmla(sum * q->scale + q->offset, q->m, q->round) >> q->k,
                            8);
}

void q4_avgpool_s8_dsp(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t kh = params->kernel_h, kw = params->kernel_w;
    const int32_t zx = params->input_zp, zy = params->output_zp;
    const int32_t lo = params->act_min, hi = params->act_max;
    const uint32_t width = (uint32_t)(hi - lo) * 0x01010101u;
    const uint32_t top = ((uint32_t)hi & 0xFFu) * 0x01010101u;
    const int32_t row_step = in_w * ch;
    int32_t oy, ox, c;

    if (kh * kw > Q4_AVGPOOL_MAX_TAPS) {
        q4_avgpool_s8(params, input_dims, input, output_dims, output);
        return;
    }
    for (oy = 0; oy < output_dims->h; ++oy) {
        const int32_t y0 = oy * params->stride_h - params->pad_top;
        const int32_t ky0 = y0 < 0 ? -y0 : 0;
        const int32_t ky1 = in_h - y0 < kh ? in_h - y0 : kh;
        for (ox = 0; ox < output_dims->w; ++ox) {
            const int32_t x0 = ox * params->stride_w - params->pad_left;
            const int32_t kx0 = x0 < 0 ? -x0 : 0;
            const int32_t kx1 = in_w - x0 < kw ? in_w - x0 : kw;
            const int32_t rows = ky1 - ky0, cols = kx1 - kx0, n = rows * cols;
            const int8_t *base = input + ((y0 + ky0) * in_w + x0 + kx0) * ch;
            int8_t *out = output + (oy * output_dims->w + ox) * ch;
            q4_avgpool_rq q;
            q.m = params->multiplier;
            q.s = params->shift;
            if (params->count_multiplier != 0) {
                const int32_t d = q4_pool_count(params, y0, x0, in_h, in_w);
                q.m = params->count_multiplier[d - 1];
                q.s = params->count_shift[d - 1];
            }
            q.fast = q.s >= 19 && q.s <= 54;
            if (q.fast) {
                const int32_t j = q.s < 33 ? 33 - q.s : 0;
                q.scale = (int32_t)1 << j;
                q.offset = -n * zx * q.scale;
                q.k = q.s + j - 32;
                q.round = ((int32_t)1 << (q.k - 1)) + (zy - lo) * ((int32_t)1 << q.k);
                for (c = 0; c + 4 <= ch; c += 4) {
                    const int8_t *p = base + c;
                    uint32_t s02 = 0, s13 = 0, u;
                    int32_t r, k;
                    for (r = 0; r < rows; ++r, p += row_step) {
                        const int8_t *t = p;
                        for (k = 0; k < cols; ++k, t += ch) {
                            const uint32_t v = q4_load_u32(t);
                            s02 = (uint32_t)__sxtab16((int32_t)s02, (int32_t)v);
                            s13 = q4_avgpool_sxtab16_ror8(s13, v);
                        }
                    }
                    u = q4_avgpool_one((int16_t)(s02 & 0xFFFFu), &q) |
                        q4_avgpool_one((int16_t)(s13 & 0xFFFFu), &q) << 8 |
                        q4_avgpool_one((int32_t)s02 >> 16, &q) << 16 |
                        q4_avgpool_one((int32_t)s13 >> 16, &q) << 24;
                    u = (uint32_t)__usub8(top, __uqsub8(width, u));
                    __builtin_memcpy(out + c, &u, sizeof u);
                }
            } else {
                c = 0;
            }
            for (; c < ch; ++c) { /* the last C % 4 channels, or every channel (other shifts) */
                int32_t acc = 0, r, k;
                for (r = 0; r < rows; ++r) {
                    const int8_t *t = base + r * row_step + c;
                    for (k = 0; k < cols; ++k, t += ch) {
                        acc += *t;
                    }
                }
                out[c] = q4_requantize_clamp(acc - n * zx, q.m, q.s, zy, lo, hi);
            }
        }
    }
}

#else /* no DSP extension: the portable kernel */

void q4_avgpool_s8_dsp(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output)
{
    q4_avgpool_s8(params, input_dims, input, output_dims, output);
}

#endif
