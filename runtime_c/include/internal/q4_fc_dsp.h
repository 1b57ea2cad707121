/*
 * q4_fc_dsp.h - the pieces the fully connected _dsp kernels (single- and multi-term) share: the
 * input widened to int16 pairs of x - z_x, and the dot product of one packed INT4 word with
 * four such pairs. Private to those kernels: include it only under __ARM_FEATURE_DSP, after
 * q4_dsp.h.
 */
#ifndef Q4_FC_DSP_H
#define Q4_FC_DSP_H

#include <stdint.h>

#include <arm_acle.h>

#include "q4_dsp.h"

#define Q4_FC_DRAIN_WORDS 32 /* packed words between drains: 4096 * 2040 * 256 < 2^31 */

/* mask & (w << n) in one instruction (GCC emits LSL + AND). */
#define Q4_AND_LSL(mask, w, n, out) \
    __asm__("and %0, %1, %2, lsl %3" : "=r"(out) : "r"(mask), "r"(w), "I"(n))

/* acc + 4096 * the dot product of the 8 weights of packed word w (nibbles n0..n7) with the
 * pairs x0 = (x0, x4), x1 = (x1, x5), x2 = (x2, x6), x3 = (x3, x7): (w << (12 - 4i)) &
 * 0xF000F000 leaves nibbles i and i + 4 in the top bits of the two halfwords, i.e. the signed
 * halfwords (4096 * w_i, 4096 * w_(i+4)): one AND (with a shifted operand) per SMLAD. */
static inline Q4_DSP_HELPER int32_t q4_fc_dot8(uint32_t w, uint32_t x0, uint32_t x1,
                                               uint32_t x2, uint32_t x3, int32_t acc)
{
    const uint32_t top = 0xF000F000u;
    uint32_t t0, t1, t2;
    Q4_AND_LSL(top, w, 12, t0);
    Q4_AND_LSL(top, w, 8, t1);
    Q4_AND_LSL(top, w, 4, t2);
    acc = q4_smlad(t0, x0, acc);
    acc = q4_smlad(t1, x1, acc);
    acc = q4_smlad(t2, x2, acc);
    return q4_smlad(w & top, x3, acc);
}

/* Packed word b of a row of row_bytes bytes (bytes past the row read as 0). */
static inline Q4_DSP_HELPER uint32_t q4_fc_word(const uint8_t *row, int32_t row_bytes, int32_t b)
{
    uint32_t w = 0;
    int32_t j;
    if (4 * b + 4 <= row_bytes) {
        return q4_load_u32(row + 4 * b);
    }
    for (j = 0; 4 * b + j < row_bytes; ++j) {
        w |= (uint32_t)row[4 * b + j] << (8 * j);
    }
    return w;
}

/* x[k] - zp as an int16 halfword, 0 past the input. */
static inline Q4_DSP_HELPER uint32_t q4_fc_centred(const int8_t *x, int32_t k, int32_t size,
                                                   int32_t zp)
{
    return k < size ? (uint32_t)((int32_t)x[k] - zp) & 0xFFFFu : 0u;
}

/* The input widened into ceil8(size) / 2 words of int16 pairs of x - zp (exact: |x - zp| <=
 * 255), per block of 8 in the order (x0,x4) (x1,x5) (x2,x6) (x3,x7), zero past the input:
 * SXTB16 of two words, paired by PKHBT/PKHTB, minus (zp, zp). */
static inline Q4_DSP_HELPER void q4_fc_widen(const int8_t *input, int32_t size, int32_t zp,
                                             uint32_t *pairs)
{
    const uint32_t zp_pair = ((uint32_t)zp & 0xFFFFu) * 0x10001u;
    const int32_t blocks = q4_round_up8(size) / Q4_DSP_BLOCK;
    int32_t b, j;
    for (b = 0; b < size / Q4_DSP_BLOCK; ++b) {
        const uint32_t lo = q4_load_u32(input + Q4_DSP_BLOCK * b);
        const uint32_t hi = q4_load_u32(input + Q4_DSP_BLOCK * b + 4);
        const uint32_t l02 = q4_sxtb16(lo), h02 = q4_sxtb16(hi);
        const uint32_t l13 = q4_sxtb16(lo >> 8), h13 = q4_sxtb16(hi >> 8);
        uint32_t *const dst = pairs + 4 * b;
        dst[0] = (uint32_t)__ssub16((int32_t)((l02 & 0xFFFFu) | (h02 << 16)), (int32_t)zp_pair);
        dst[1] = (uint32_t)__ssub16((int32_t)((l13 & 0xFFFFu) | (h13 << 16)), (int32_t)zp_pair);
        dst[2] = (uint32_t)__ssub16((int32_t)((l02 >> 16) | (h02 & 0xFFFF0000u)),
                                    (int32_t)zp_pair);
        dst[3] = (uint32_t)__ssub16((int32_t)((l13 >> 16) | (h13 & 0xFFFF0000u)),
                                    (int32_t)zp_pair);
    }
    for (; b < blocks; ++b) { /* the partial last block */
        for (j = 0; j < 4; ++j) {
            const int32_t k = Q4_DSP_BLOCK * b + j;
            pairs[4 * b + j] = q4_fc_centred(input, k, size, zp) |
                               (q4_fc_centred(input, k + 4, size, zp) << 16);
        }
    }
}

#endif /* Q4_FC_DSP_H */
