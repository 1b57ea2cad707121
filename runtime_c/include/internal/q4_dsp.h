/*
 * q4_dsp.h - the few Arm DSP-extension primitives every _dsp kernel uses: an unaligned 32-bit
 * load, SXTB16, SMLAD and the rounding of K up to a block of 8. Private to the _dsp kernels:
 * include it only under __ARM_FEATURE_DSP.
 */
#ifndef Q4_DSP_H
#define Q4_DSP_H

#include <stdint.h>

#include <arm_acle.h>

#define Q4_DSP_BLOCK \
    8 /* K-indices per block: 4 int16 pairs, or the 8 weights of a packed word */

/* Every including file uses all but a few of these. */
#if defined(__GNUC__)
#define Q4_DSP_HELPER __attribute__((unused))
#else
#define Q4_DSP_HELPER
#endif

static inline uint32_t q4_load_u32(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

/* SXTB16: bytes 0 and 2 of x sign-extended to the two halfwords. */
static inline uint32_t q4_sxtb16(uint32_t x)
{
    return (uint32_t)__sxtb16((int32_t)x);
}

/* acc + the two halfword products of the pairs a and w. */
static inline int32_t q4_smlad(uint32_t a, uint32_t w, int32_t acc)
{
    return __smlad((int32_t)a, (int32_t)w, acc);
}

static Q4_DSP_HELPER int32_t q4_round_up8(int32_t k)
{
    return (k + Q4_DSP_BLOCK - 1) & ~(Q4_DSP_BLOCK - 1);
}

#endif /* Q4_DSP_H */
