/*
 * q4_avgpool_s8_mve.c - average pooling of an int8 tensor, for cores with Helium (MVE,
 * Cortex-M55/M85). Bit-exact with q4_avgpool_s8.
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"): per output pixel the window
 * is clipped to the input once (padded taps contribute x - z_x = 0); 8 channels at a time its
 * n = rows * cols input taps are summed into int16 lanes, one VLDRB.S16 and one VADD per tap
 * (n <= 256 int8 values lie in [-32768, 32512]). VMOVLB / VMOVLT widen the even and odd lanes,
 * VSUB n z_x gives acc (|acc| <= 255 n), and the window's multiplier and shift requantize it:
 * for s >= 18, with j = max(0, 32 - s), VSHL by j (|acc 2^j| < 2^30), VQDMULH by m and VRSHL
 * by 31 - (s + j) give floor((acc m + 2^(s-1)) / 2^s) (the bits below 2^31 cannot carry into
 * it); VADD z_y, saturating VQMOVNB / VQMOVNT back into 8 int16 lanes in order (saturation
 * cannot change a value clamped to int8 bounds), VMAX, VMIN, VSTRB.16. The last C % 8 channels are one VCTP16-predicated step. Other shifts and windows of
 * more than 256 taps use the portable kernel's arithmetic. Scratch: none.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#define Q4_AVGPOOL_MAX_TAPS 256 /* int8 values per int16 lane sum */

/* The window's requantization constants. */
typedef struct {
    int32_t offset; /* n z_x */
    int32_t j, m, neg_k, zy;
    int16x8_t lo, hi;
} q4_avgpool_rq;

static inline int32x4_t q4_avgpool_lanes(int32x4_t sum, const q4_avgpool_rq *q)
{
    const int32x4_t acc = vshlq_r_s32(vsubq_n_s32(sum, q->offset), q->j);
    return vaddq_n_s32(vrshlq_n_s32(vqdmulhq_n_s32(acc, q->m), q->neg_k), q->zy);
}

/* The 8 outputs of the int16 lane sums s. */
static inline int16x8_t q4_avgpool_out(int16x8_t s, const q4_avgpool_rq *q)
{
    const int32x4_t even = q4_avgpool_lanes(vmovlbq_s16(s), q);
    const int32x4_t odd = q4_avgpool_lanes(vmovltq_s16(s), q);
    const int16x8_t y = vqmovntq_s32(vqmovnbq_s32(vreinterpretq_s16_s32(odd), even), odd);
    return vminq_s16(vmaxq_s16(y, q->lo), q->hi);
}

void q4_avgpool_s8_mve(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t kh = params->kernel_h, kw = params->kernel_w;
    const int32_t zx = params->input_zp, zy = params->output_zp;
    const int32_t lo = params->act_min, hi = params->act_max;
    const int32_t row_step = in_w * ch;
    q4_avgpool_rq q;
    int32_t oy, ox, c;

    if (kh * kw > Q4_AVGPOOL_MAX_TAPS) {
        q4_avgpool_s8(params, input_dims, input, output_dims, output);
        return;
    }
    q.zy = zy;
    q.lo = vdupq_n_s16((int16_t)lo);
    q.hi = vdupq_n_s16((int16_t)hi);
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
            int32_t m = params->multiplier, s = params->shift;
            if (params->count_multiplier != 0) {
                const int32_t d = q4_pool_count(params, y0, x0, in_h, in_w);
                m = params->count_multiplier[d - 1];
                s = params->count_shift[d - 1];
            }
            if (s < 18) { /* the portable arithmetic */
                for (c = 0; c < ch; ++c) {
                    int32_t acc = 0, r, k;
                    for (r = 0; r < rows; ++r) {
                        const int8_t *t = base + r * row_step + c;
                        for (k = 0; k < cols; ++k, t += ch) {
                            acc += *t;
                        }
                    }
                    out[c] = q4_requantize_clamp(acc - n * zx, m, s, zy, lo, hi);
                }
                continue;
            }
            q.offset = n * zx;
            q.j = s < 32 ? 32 - s : 0;
            q.m = m;
            q.neg_k = 31 - (s + q.j);
            for (c = 0; c < ch; c += 8) {
                const mve_pred16_t p = vctp16q((uint32_t)(ch - c));
                const int8_t *t0 = base + c;
                int16x8_t sum = vdupq_n_s16(0);
                int32_t r, k;
                for (r = 0; r < rows; ++r, t0 += row_step) {
                    const int8_t *t = t0;
                    for (k = 0; k < cols; ++k, t += ch) {
                        sum = vaddq_s16(sum, vldrbq_z_s16(t, p));
                    }
                }
                vstrbq_p_s16(out + c, q4_avgpool_out(sum, &q), p);
            }
        }
    }
}

#else /* no MVE: the portable kernel */

void q4_avgpool_s8_mve(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output)
{
    q4_avgpool_s8(params, input_dims, input, output_dims, output);
}

#endif
