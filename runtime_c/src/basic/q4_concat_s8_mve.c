/*
 * q4_concat_s8_mve.c - concat of int8 tensors, each input requantized to the output, for cores
 * with Helium (MVE, Cortex-M55/M85). Bit-exact with q4_concat_s8.
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"): one input at a time, its
 * run of channels[i] elements in every output row (the per-input constants are set once):
 *  - an input with the output's quantization (m = 2^30, s = 30, the output's zero point) is a
 *    copy, 16 bytes per VLDRB / VSTRB, with VMAX / VMIN when [act_min, act_max] is narrower than
 *    int8;
 *  - other inputs with s >= 10: with j = max(0, 32 - s), x' = (x - z) 2^j (|x'| < 2^30) and
 *    T = s + j >= 32, requantize(x - z, m, s) = floor((x' m + 2^(T-1)) / 2^T); VQDMULH gives
 *    floor(x' m / 2^31) (no saturation: m >= 0) and VRSHL by 31 - T rounds it right by T - 31
 *    (the bits below 2^31 cannot carry into it). Per 4 int32 lanes: VLDRB.S32, VSUB, VSHL,
 *    VQDMULH, VRSHL, VADD z_y, VMAX, VMIN, VSTRB.32;
 *  - inputs with s < 10 (scale ratios above 2^21) use the portable arithmetic.
 * The last elements of a run are one tail-predicated step. Scratch: none.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

/* requantize(x - z, m, s) + z_y clamped, of 4 lanes. */
static inline int32x4_t q4_concat_lanes(int32x4_t x, int32_t z, int32_t j, int32_t m,
                                        int32_t neg_k, int32_t zy, int32x4_t lo, int32x4_t hi)
{
    const int32x4_t v = vqdmulhq_n_s32(vshlq_r_s32(vsubq_n_s32(x, z), j), m);
    return vminq_s32(vmaxq_s32(vaddq_n_s32(vrshlq_n_s32(v, neg_k), zy), lo), hi);
}

void q4_concat_s8_mve(const q4_concat_params *params, int32_t rows, const int8_t *const *inputs,
                      int8_t *output)
{
    const int32_t zy = params->output_zp, lo = params->act_min, hi = params->act_max;
    const int32x4_t lo32 = vdupq_n_s32(lo), hi32 = vdupq_n_s32(hi);
    const int8x16_t lo8 = vdupq_n_s8((int8_t)lo), hi8 = vdupq_n_s8((int8_t)hi);
    const int32_t full = lo == INT8_MIN && hi == INT8_MAX;
    int32_t i, r, c, stride = 0, start = 0;

    for (i = 0; i < params->n_inputs; ++i) {
        stride += params->channels[i];
    }
    for (i = 0; i < params->n_inputs; ++i) {
        const int32_t n = params->channels[i], z = params->input_zp[i];
        const int32_t m = params->multiplier[i], s = params->shift[i];
        const int8_t *x = inputs[i];
        int8_t *y = output + start;
        if (m == ((int32_t)1 << 30) && s == 30 && z == zy) { /* same quantization: a copy */
            for (r = 0; r < rows; ++r, x += n, y += stride) {
                for (c = 0; c < n; c += 16) {
                    const mve_pred16_t p = vctp8q((uint32_t)(n - c));
                    int8x16_t v = vldrbq_z_s8(x + c, p);
                    if (!full) {
                        v = vminq_s8(vmaxq_s8(v, lo8), hi8);
                    }
                    vstrbq_p_s8(y + c, v, p);
                }
            }
        } else if (s >= 10) {
            const int32_t j = s < 32 ? 32 - s : 0, neg_k = 31 - (s + j);
            for (r = 0; r < rows; ++r, x += n, y += stride) {
                for (c = 0; c + 4 <= n; c += 4) {
                    const int32x4_t v = q4_concat_lanes(vldrbq_s32(x + c), z, j, m, neg_k, zy,
                                                        lo32, hi32);
                    vstrbq_s32(y + c, v);
                }
                if (c < n) {
                    const mve_pred16_t p = vctp32q((uint32_t)(n - c));
                    const int32x4_t v = q4_concat_lanes(vldrbq_z_s32(x + c, p), z, j, m, neg_k,
                                                        zy, lo32, hi32);
                    vstrbq_p_s32(y + c, v, p);
                }
            }
        } else {
            for (r = 0; r < rows; ++r, x += n, y += stride) {
                for (c = 0; c < n; ++c) {
                    y[c] = q4_requantize_clamp((int32_t)x[c] - z, m, s, zy, lo, hi);
                }
            }
        }
        start += n;
    }
}

#else /* no MVE: the portable kernel */

void q4_concat_s8_mve(const q4_concat_params *params, int32_t rows, const int8_t *const *inputs,
                      int8_t *output)
{
    q4_concat_s8(params, rows, inputs, output);
}

#endif
