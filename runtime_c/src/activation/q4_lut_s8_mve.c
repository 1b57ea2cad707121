/*
 * q4_lut_s8_mve.c - y = table[x - input_min] element-wise, for cores with Helium (MVE,
 * Cortex-M55/M85). Bit-exact with q4_lut_s8 (a table lookup is exact by construction).
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"): 16 elements per step, one
 * VLDRB.U8, one VADD.I8 of -input_min (the index x - input_min modulo 256, which is the index
 * itself: it lies in [0, 2^bits)), one byte gather from the table (VLDRB.U8 with an offset
 * vector) and one VSTRB.8. The last size % 16 elements are one tail-predicated step. Scratch:
 * none.
 */
#include "q4_lut.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

void q4_lut_s8_mve(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
                   int8_t *output)
{
    const uint8_t *t = (const uint8_t *)table;
    const uint8_t *x = (const uint8_t *)input;
    uint8_t *y = (uint8_t *)output;
    const uint8_t bias = (uint8_t)(-input_min);
    int32_t i = 0;
    for (; i + 16 <= size; i += 16) {
        const uint8x16_t idx = vaddq_n_u8(vldrbq_u8(x + i), bias);
        vstrbq_u8(y + i, vldrbq_gather_offset_u8(t, idx));
    }
    if (i < size) {
        const mve_pred16_t p = vctp8q((uint32_t)(size - i));
        const uint8x16_t idx = vaddq_n_u8(vldrbq_z_u8(x + i, p), bias);
        vstrbq_p_u8(y + i, vldrbq_gather_offset_z_u8(t, idx, p), p);
    }
}

#else /* no MVE: the portable kernel */

void q4_lut_s8_mve(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
                   int8_t *output)
{
    q4_lut_s8(table, input_min, size, input, output);
}

#endif
