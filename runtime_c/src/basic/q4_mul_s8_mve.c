/*
 * q4_mul_s8_mve.c - element-wise product of two int8 tensors (the second of the same shape or one
 * value per channel: squeeze-excite gates), for cores with Helium (MVE, Cortex-M55/M85).
 * Bit-exact with q4_mul_s8.
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"), 8 elements per step: widening
 * VLDRB.S16 of each input, VSUB of the zero points (|x - z| <= 255), VMULLB / VMULLT: the products
 * p = (a - z_a)(b - z_b) of the even and odd lanes as int32 (|p| <= 65025). For s >= 32, VQDMULH
 * by m gives floor(p m / 2^31) (it saturates only for p = m = -2^31; m >= 0) and VRSHL by 31 - s
 * rounds it right by s - 31, which is floor((p m + 2^(s-1)) / 2^s) (the bits below 2^31 cannot
 * carry into it); VADD z_y, VMOVNB / VMOVNT back into 8 int16 lanes in order, VMAX, VMIN and a
 * narrowing VSTRB.16. The last elements of a row are one tail-predicated step (VCTP16).
 * Shifts below 32 (multipliers of at least 1/2, and m = 0) use the portable arithmetic.
 * Scratch: none.
 */
#include "q4_elementwise.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

/* Per-call constants. */
typedef struct {
    int16_t za, zb;
    int32_t m, neg_k, zy;
    int16x8_t lo, hi;
} q4_mul_consts;

/* requantize(p, m, s) + z_y of the 4 products p (s >= 32). */
static inline int32x4_t q4_mul_lanes(int32x4_t p, const q4_mul_consts *k)
{
    return vaddq_n_s32(vrshlq_n_s32(vqdmulhq_n_s32(p, k->m), k->neg_k), k->zy);
}

/* The 8 clamped outputs of the 8 elements a, b (int16 lanes). The even products (VMULLB) narrow
 * into the even lanes and the odd ones (VMULLT) into the odd lanes, so the order is kept; the
 * values fit int16 (|requantize| < 2^15 for s >= 32), so the narrows are exact. */
static inline int16x8_t q4_mul_8(int16x8_t a, int16x8_t b, const q4_mul_consts *k)
{
    const int16x8_t da = vsubq_n_s16(a, k->za), db = vsubq_n_s16(b, k->zb);
    const int32x4_t even = q4_mul_lanes(vmullbq_int_s16(da, db), k);
    const int32x4_t odd = q4_mul_lanes(vmulltq_int_s16(da, db), k);
    const int16x8_t y = vmovntq_s32(vmovnbq_s32(vreinterpretq_s16_s32(odd), even), odd);
    return vminq_s16(vmaxq_s16(y, k->lo), k->hi);
}

void q4_mul_s8_mve(const q4_mul_params *params, int32_t rows, int32_t channels,
                   int32_t b_row_step, const int8_t *input_a, const int8_t *input_b,
                   int8_t *output)
{
    q4_mul_consts k;
    int32_t r, c;

    if (params->shift < 32) {
        q4_mul_s8(params, rows, channels, b_row_step, input_a, input_b, output);
        return;
    }
    k.za = (int16_t)params->a_zp;
    k.zb = (int16_t)params->b_zp;
    k.m = params->multiplier;
    k.neg_k = 31 - params->shift;
    k.zy = params->output_zp;
    k.lo = vdupq_n_s16((int16_t)params->act_min);
    k.hi = vdupq_n_s16((int16_t)params->act_max);
    if (b_row_step == channels) { /* b has a's shape: one row of every element */
        channels *= rows;
        rows = 1;
    }
    for (r = 0; r < rows; ++r) {
        const int8_t *a = input_a + r * channels;
        const int8_t *b = input_b + r * b_row_step;
        int8_t *y = output + r * channels;
        for (c = 0; c + 8 <= channels; c += 8) {
            vstrbq_s16(y + c, q4_mul_8(vldrbq_s16(a + c), vldrbq_s16(b + c), &k));
        }
        if (c < channels) {
            const mve_pred16_t p = vctp16q((uint32_t)(channels - c));
            const int16x8_t v = q4_mul_8(vldrbq_z_s16(a + c, p), vldrbq_z_s16(b + c, p), &k);
            vstrbq_p_s16(y + c, v, p);
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
