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
 * carry into it); for 18 <= s < 32 the products are first shifted left by j = 32 - s (VSHL,
 * |p 2^j| < 2^30) and the shift is s + j. VADD z_y, saturating VQMOVNB / VQMOVNT back into 8
 * int16 lanes in order, VMAX, VMIN and a narrowing VSTRB.16. The last elements of a row are one
 * tail-predicated step (VCTP16). Shifts below 18 (scale ratios above 2^13, and m = 0) use the
 * portable arithmetic.
 * Scratch: none.
 */
#include "q4_elementwise.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

/* Per-call constants. */
typedef struct {
    int16_t za, zb;
    int32_t j, m, neg_k, zy;
    int16x8_t lo, hi;
} q4_mul_consts;

/* requantize(p, m, s) + z_y of the 4 products p; pre (a constant at each call): s < 32, the
 * products are shifted left by j = 32 - s first. */
static inline int32x4_t q4_mul_lanes(int32x4_t p, const q4_mul_consts *k, int32_t pre)
{
    if (pre) {
        p = vshlq_r_s32(p, k->j);
    }
    return vaddq_n_s32(vrshlq_n_s32(vqdmulhq_n_s32(p, k->m), k->neg_k), k->zy);
}

/* The 8 clamped outputs of the 8 elements a, b (int16 lanes). The even products (VMULLB) narrow
 * into the even lanes and the odd ones (VMULLT) into the odd lanes, so the order is kept; the
 * narrows saturate (|requantize| < 2^15 for s >= 32; for s < 32 saturation cannot change a value
 * clamped to int8 bounds). */
static inline int16x8_t q4_mul_8(int16x8_t a, int16x8_t b, const q4_mul_consts *k, int32_t pre)
{
    const int16x8_t da = vsubq_n_s16(a, k->za), db = vsubq_n_s16(b, k->zb);
    const int32x4_t even = q4_mul_lanes(vmullbq_int_s16(da, db), k, pre);
    const int32x4_t odd = q4_mul_lanes(vmulltq_int_s16(da, db), k, pre);
    const int16x8_t y = vqmovntq_s32(vqmovnbq_s32(vreinterpretq_s16_s32(odd), even), odd);
    return vminq_s16(vmaxq_s16(y, k->lo), k->hi);
}

/* Every row of rows x channels (a, y advance by channels per row, b by b_step). */
static inline void q4_mul_rows(const int8_t *a, const int8_t *b, int8_t *y, int32_t rows,
                               int32_t channels, int32_t b_step, const q4_mul_consts *k,
                               int32_t pre)
{
    int32_t r, c;
    for (r = 0; r < rows; ++r, a += channels, b += b_step, y += channels) {
        for (c = 0; c + 8 <= channels; c += 8) {
            vstrbq_s16(y + c, q4_mul_8(vldrbq_s16(a + c), vldrbq_s16(b + c), k, pre));
        }
        if (c < channels) {
            const mve_pred16_t p = vctp16q((uint32_t)(channels - c));
            const int16x8_t v = q4_mul_8(vldrbq_z_s16(a + c, p), vldrbq_z_s16(b + c, p), k, pre);
            vstrbq_p_s16(y + c, v, p);
        }
    }
}

void q4_mul_s8_mve(const q4_mul_params *params, int32_t rows, int32_t channels,
                   int32_t b_row_step, const int8_t *input_a, const int8_t *input_b,
                   int8_t *output)
{
    q4_mul_consts k;

    if (params->shift < 18) {
        q4_mul_s8(params, rows, channels, b_row_step, input_a, input_b, output);
        return;
    }
    k.za = (int16_t)params->a_zp;
    k.zb = (int16_t)params->b_zp;
    k.m = params->multiplier;
    k.j = params->shift < 32 ? 32 - params->shift : 0;
    k.neg_k = 31 - (params->shift + k.j);
    k.zy = params->output_zp;
    k.lo = vdupq_n_s16((int16_t)params->act_min);
    k.hi = vdupq_n_s16((int16_t)params->act_max);
    if (b_row_step == channels) { /* b has a's shape: one row of every element */
        channels *= rows;
        rows = 1;
    }
    if (k.j == 0) {
        q4_mul_rows(input_a, input_b, output, rows, channels, b_row_step, &k, 0);
    } else {
        q4_mul_rows(input_a, input_b, output, rows, channels, b_row_step, &k, 1);
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
