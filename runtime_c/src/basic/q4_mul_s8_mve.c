/*
 * q4_mul_s8_mve.c - element-wise product of two int8 tensors (the second of the same shape or one
 * value per channel: squeeze-excite gates), for cores with Helium (MVE, Cortex-M55/M85).
 * Bit-exact with q4_mul_s8.
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"), 4 int32 lanes per step:
 * widening VLDRB.S32 of each input, VSUB of the zero points, VMUL: p = (a - z_a)(b - z_b)
 * exactly (|p| <= 65025). For s >= 32, VQDMULH by m gives floor(p m / 2^31) (it saturates only
 * for p = m = -2^31; m >= 0) and VRSHL by 31 - s rounds it right by s - 31, which is
 * floor((p m + 2^(s-1)) / 2^s) (the bits below 2^31 cannot carry into it); then VADD z_y, VMAX,
 * VMIN and a narrowing VSTRB.32. The last elements of a row are one tail-predicated step (VCTP32).
 * Shifts below 32 (multipliers of at least 1/2, and m = 0) use the portable arithmetic.
 * Scratch: none.
 */
#include "q4_elementwise.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

void q4_mul_s8_mve(const q4_mul_params *params, int32_t rows, int32_t channels,
                   int32_t b_row_step, const int8_t *input_a, const int8_t *input_b,
                   int8_t *output)
{
    const int32_t za = params->a_zp, zb = params->b_zp, zy = params->output_zp;
    const int32_t m = params->multiplier, s = params->shift;
    const int32_t lo = params->act_min, hi = params->act_max;
    int32_t r, c;

    if (s < 32) {
        q4_mul_s8(params, rows, channels, b_row_step, input_a, input_b, output);
        return;
    }
    if (b_row_step == channels) { /* b has a's shape: one row of every element */
        channels *= rows;
        rows = 1;
    }
    for (r = 0; r < rows; ++r) {
        const int8_t *a = input_a + r * channels;
        const int8_t *b = input_b + r * b_row_step;
        int8_t *y = output + r * channels;
        for (c = 0; c < channels; c += 4) {
            const mve_pred16_t p = vctp32q((uint32_t)(channels - c));
            const int32x4_t da = vsubq_x_n_s32(vldrbq_z_s32(a + c, p), za, p);
            const int32x4_t db = vsubq_x_n_s32(vldrbq_z_s32(b + c, p), zb, p);
            int32x4_t v = vqdmulhq_n_s32(vmulq_s32(da, db), m);
            v = vaddq_n_s32(vrshlq_n_s32(v, 31 - s), zy);
            v = vminq_s32(vmaxq_s32(v, vdupq_n_s32(lo)), vdupq_n_s32(hi));
            vstrbq_p_s32(y + c, v, p);
        }
    }
}

#else /* no MVE: the portable kernel */

void q4_mul_s8_mve(const q4_mul_params *params, int32_t rows, int32_t channels,
                   int32_t b_row_step, const int8_t *input_a, const int8_t *input_b,
                   int8_t *output)
{
    q4_mul_s8(params, rows, channels, b_row_step, input_a, input_b, output);
}

#endif
