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

/* The 8 int8 values of the words lo, hi as the int16 pairs (x0,x4) (x1,x5) (x2,x6) (x3,x7) of
 * x + n (n = (-zp, -zp)) in dst[0..3]: SXTAB16 (with ROR #8 for the odd bytes) then PKHBT /
 * PKHTB; GCC emits neither SXTAB16 with a rotation nor the packs from C. */
static inline Q4_DSP_HELPER void q4_fc_widen8(uint32_t lo, uint32_t hi, uint32_t n, uint32_t *dst)
{
    uint32_t l02, l13, h02, h13, p0, p1, p2, p3;
    __asm__("sxtab16 %0, %4, %5\n\t"
            "sxtab16 %1, %4, %5, ror #8\n\t"
            "sxtab16 %2, %4, %6\n\t"
            "sxtab16 %3, %4, %6, ror #8"
            : "=&r"(l02), "=&r"(l13), "=&r"(h02), "=&r"(h13)
            : "r"(n), "r"(lo), "r"(hi));
    __asm__("pkhbt %0, %4, %6, lsl #16\n\t"
            "pkhbt %1, %5, %7, lsl #16\n\t"
            "pkhtb %2, %6, %4, asr #16\n\t"
            "pkhtb %3, %7, %5, asr #16"
            : "=&r"(p0), "=&r"(p1), "=&r"(p2), "=&r"(p3)
            : "r"(l02), "r"(l13), "r"(h02), "r"(h13));
    dst[0] = p0;
    dst[1] = p1;
    dst[2] = p2;
    dst[3] = p3;
}

/* The input widened into ceil8(size) / 2 words of int16 pairs of x - zp (exact: |x - zp| <=
 * 255), per block of 8 in the order (x0,x4) (x1,x5) (x2,x6) (x3,x7), zero past the input. */
static inline Q4_DSP_HELPER void q4_fc_widen(const int8_t *input, int32_t size, int32_t zp,
                                             uint32_t *pairs)
{
    const uint32_t minus_zp = ((uint32_t)-zp & 0xFFFFu) * 0x10001u;
    const int32_t blocks = q4_round_up8(size) / Q4_DSP_BLOCK;
    const int8_t *const end = input + (size & ~(Q4_DSP_BLOCK - 1));
    const int8_t *in = input;
    uint32_t *dst = pairs;
    int32_t b, j;
    for (; in != end; in += Q4_DSP_BLOCK, dst += 4) {
        q4_fc_widen8(q4_load_u32(in), q4_load_u32(in + 4), minus_zp, dst);
    }
    for (b = size / Q4_DSP_BLOCK; b < blocks; ++b) { /* the partial last block */
        for (j = 0; j < 4; ++j) {
            const int32_t k = Q4_DSP_BLOCK * b + j;
            pairs[4 * b + j] = q4_fc_centred(input, k, size, zp) |
                               (q4_fc_centred(input, k + 4, size, zp) << 16);
        }
    }
}

#endif /* Q4_FC_DSP_H */
