/*
 * q4_armv6m.h - primitives of the ARMv6-M (Cortex-M0/M0+) kernels (internal, header-only).
 *
 * ARMv6-M has MULS (32 x 32 -> low 32 bits) and no SMLAD, SXTB16, long multiply or unaligned
 * access. The kernels get two MACs out of each MULS by packing two output channels' weights into
 * one word, W = w_a + w_b * 2^16: x * W accumulates sum(x * w_a) in the low half and
 * sum(x * w_b) in the high half. With x in [0, 255] (activations offset by 128) and w in
 * [-8, 7] a product lies in [-2040, 1785], so 16 products keep each half inside int16; the pair
 * is then "drained" into two 32-bit accumulators.
 *
 * Everything here is plain C99 with the same result on any compiler and core; only the hot loop
 * (Q4_ARMV6M_MAC16) is inline assembly on ARMv6-M, where gcc spills the accumulators, and SXTH.
 */
#ifndef Q4_ARMV6M_H
#define Q4_ARMV6M_H

#include <stdint.h>

#include "q4_fixedpoint.h"

#define Q4_ARMV6M_PAIRS 4 /* packed channel pairs per block: 8 output channels */
#define Q4_ARMV6M_CHANNELS (2 * Q4_ARMV6M_PAIRS)
#define Q4_ARMV6M_DRAIN 16     /* K-indices per drain, col in [0, 255]: 16 * 2040 < 2^15 */
#define Q4_ARMV6M_DRAIN_A4 256 /* the same for 4-bit inputs, col in [0, 15]: 256 * 120 < 2^15 */

static inline int32_t q4_armv6m_round_up16(int32_t v)
{
    return (v + 15) & ~15;
}

/* v as int32 (two's complement), without the implementation-defined conversion. */
static inline int32_t q4_armv6m_int32(uint32_t v)
{
    return v <= 0x7FFFFFFFu ? (int32_t)v : -(int32_t)(~v) - 1;
}

/* The int16 value in the low half of v (two's complement): SXTH on ARMv6-M. */
static inline int32_t q4_armv6m_low16(uint32_t v)
{
#if defined(__GNUC__) && !defined(__clang__) && defined(__thumb__) && defined(__ARM_ARCH_6M__)
    int32_t r;
    __asm__(".syntax unified\n\tsxth %0, %1" : "=l"(r) : "l"(v));
    return r;
#else
    return (int32_t)((v ^ 0x8000u) & 0xFFFFu) - 0x8000;
#endif
}

/* 16 K-indices of packed MACs: p0..p3 += col[k] * w[k * 4 + 0..3]; col and w advance. The
 * assembly needs gcc (clang binds "r" to the low registers in Thumb-1: too few). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__thumb__) && defined(__ARM_ARCH_6M__)
/* Per K-index: LDRB, then LDR + MULS + ADD for each of the 4 pairs (13 instructions for 8 MACs);
 * 8 indices per half, immediate offsets up to 124. */
#define Q4_ARMV6M_PAIR(k, p)                    \
    "ldr %[t], [%[w], #" #k "*16+" #p "*4]\n\t" \
    "muls %[t], %[x], %[t]\n\t"                 \
    "add %[p" #p "], %[t]\n\t"
#define Q4_ARMV6M_INDEX(k)                                                       \
    "ldrb %[x], [%[col], #" #k "]\n\t" Q4_ARMV6M_PAIR(k, 0) Q4_ARMV6M_PAIR(k, 1) \
        Q4_ARMV6M_PAIR(k, 2) Q4_ARMV6M_PAIR(k, 3)
/* clang-format 14 does not settle on a layout for the next macro */
/* clang-format off */
#define Q4_ARMV6M_HALF                                                          \
    Q4_ARMV6M_INDEX(0) Q4_ARMV6M_INDEX(1) Q4_ARMV6M_INDEX(2) Q4_ARMV6M_INDEX(3) \
    Q4_ARMV6M_INDEX(4) Q4_ARMV6M_INDEX(5) Q4_ARMV6M_INDEX(6) Q4_ARMV6M_INDEX(7) \
    "adds %[col], #8\n\t"                                                      \
    "adds %[w], #128\n\t"
/* clang-format on */
#define Q4_ARMV6M_MAC16(col, w, p0, p1, p2, p3)                                              \
    do {                                                                                     \
        uint32_t x_, t_;                                                                     \
        __asm__(".syntax unified\n\t" Q4_ARMV6M_HALF Q4_ARMV6M_HALF                          \
                : [col] "+l"(col), [w] "+l"(w), [x] "=&l"(x_), [t] "=&l"(t_), [p0] "+r"(p0), \
                  [p1] "+r"(p1), [p2] "+r"(p2), [p3] "+r"(p3)                                \
                :                                                                            \
                : "cc", "memory");                                                           \
    } while (0)
#else
#define Q4_ARMV6M_MAC16(col, w, p0, p1, p2, p3) \
    do {                                        \
        int32_t k_;                             \
        for (k_ = 0; k_ < 16; ++k_) {           \
            const uint32_t x_ = (col)[k_];      \
            (p0) += x_ * (w)[4 * k_];           \
            (p1) += x_ * (w)[4 * k_ + 1];       \
            (p2) += x_ * (w)[4 * k_ + 2];       \
            (p3) += x_ * (w)[4 * k_ + 3];       \
        }                                       \
        (col) += 16;                            \
        (w) += 4 * 16;                          \
    } while (0)
#endif

/* acc[2j] += low half of pj, acc[2j + 1] += high half (each an int16 sum). */
#define Q4_ARMV6M_DRAIN_INTO(acc, p0, p1, p2, p3)                            \
    do {                                                                     \
        const int32_t l0_ = q4_armv6m_low16(p0), l1_ = q4_armv6m_low16(p1);  \
        const int32_t l2_ = q4_armv6m_low16(p2), l3_ = q4_armv6m_low16(p3);  \
        (acc)[0] += (uint32_t)l0_;                                           \
        (acc)[1] += (uint32_t)q4_armv6m_low16(((p0) - (uint32_t)l0_) >> 16); \
        (acc)[2] += (uint32_t)l1_;                                           \
        (acc)[3] += (uint32_t)q4_armv6m_low16(((p1) - (uint32_t)l1_) >> 16); \
        (acc)[4] += (uint32_t)l2_;                                           \
        (acc)[5] += (uint32_t)q4_armv6m_low16(((p2) - (uint32_t)l2_) >> 16); \
        (acc)[6] += (uint32_t)l3_;                                           \
        (acc)[7] += (uint32_t)q4_armv6m_low16(((p3) - (uint32_t)l3_) >> 16); \
    } while (0)

/*
 * acc[2p] += sum_k col[k] * w_a, acc[2p + 1] += sum_k col[k] * w_b over n K-indices
 * (n a multiple of 16), with w[k * 4 + p] = w_a + w_b * 2^16 the packed pair p of index k.
 * The halves are drained every 16 indices (col in [0, 255]: 16 * 2040 < 2^15), or, with
 * `a4` (col in [0, 15]), every 256 (256 * 120 < 2^15). The accumulators are uint32 (modulo
 * 2^32): the caller's sum is exact once it fits int32.
 */
static inline void q4_armv6m_dot(const uint8_t *col, const uint32_t *w, int32_t n, int32_t a4,
                                 uint32_t acc[Q4_ARMV6M_CHANNELS])
{
    const uint8_t *const end = col + n;
    if (!a4) {
        while (col != end) {
            uint32_t p0 = 0u, p1 = 0u, p2 = 0u, p3 = 0u;
            Q4_ARMV6M_MAC16(col, w, p0, p1, p2, p3);
            Q4_ARMV6M_DRAIN_INTO(acc, p0, p1, p2, p3);
        }
        return;
    }
    while (col != end) {
        uint32_t p0 = 0u, p1 = 0u, p2 = 0u, p3 = 0u;
        const uint8_t *const stop = end - col > Q4_ARMV6M_DRAIN_A4 ? col + Q4_ARMV6M_DRAIN_A4
                                                                   : end;
        while (col != stop) {
            Q4_ARMV6M_MAC16(col, w, p0, p1, p2, p3);
        }
        Q4_ARMV6M_DRAIN_INTO(acc, p0, p1, p2, p3);
    }
}

/* floor(a * m / 2^32) for 0 <= m < 2^31, from four 16 x 16 products (no long multiply):
 * a = ah * 2^16 + al, m = mh * 2^16 + ml; every partial sum below fits its type. For |a| < 2^15
 * two products do: floor((a * mh + floor(a * ml / 2^16)) / 2^16). */
static inline int32_t q4_armv6m_mulhi(int32_t a, int32_t m)
{
    const uint32_t mh = (uint32_t)m >> 16, ml = (uint32_t)m & 0xFFFFu;
    int32_t ah, u;
    uint32_t al, t;
    if ((uint32_t)a + 0x8000u < 0x10000u) {
        const int32_t lo = a * (int32_t)ml; /* |.| < 2^31 */
        return q4_floor_shift32(a * (int32_t)mh + q4_floor_shift32(lo, 16), 16);
    }
    ah = q4_floor_shift32(a, 16);
    al = (uint32_t)a & 0xFFFFu;
    t = ((al * ml) >> 16) + al * mh;               /* < 2^31 + 2^16 */
    u = ah * (int32_t)ml + (int32_t)(t & 0xFFFFu); /* in (-2^31, 2^31) */
    return ah * (int32_t)mh + (int32_t)(t >> 16) + q4_floor_shift32(u, 16);
}

/* q4_requantize_clamp without a 64-bit multiply for shift > 32 (the usual case):
 * floor((acc * m + 2^(s-1)) / 2^s) == floor((floor(acc * m / 2^32) + 2^(s-33)) / 2^(s-32)). */
static inline int8_t q4_armv6m_requantize_clamp(int32_t acc, int32_t multiplier, int32_t shift,
                                                int32_t output_zp, int32_t act_min,
                                                int32_t act_max)
{
    int32_t y;
    if (shift <= 32) {
        return q4_requantize_clamp(acc, multiplier, shift, output_zp, act_min, act_max);
    }
    y = output_zp +
        q4_floor_shift32(q4_armv6m_mulhi(acc, multiplier) + (1 << (shift - 33)), shift - 32);
    y = y < act_min ? act_min : y;
    y = y > act_max ? act_max : y;
    return (int8_t)y;
}

/* The signed 4-bit value in the low nibble of v. */
static inline int32_t q4_armv6m_int4(uint32_t v)
{
    return (int32_t)((v & 0xFu) ^ 8u) - 8;
}

/*
 * Unpacks the rows [first, first + 8) of a packed INT4 weight matrix (K weights per row, rows of
 * ceil(K / 2) bytes, `rows` in all) into w[k * 4 + p] = w_{2p} + w_{2p+1} * 2^16 for k < K16
 * (zero past K and for rows >= `rows`) and sets folded[c] = bias[c] - offset * sum_k w_c[k]
 * (modulo 2^32): the bias of a kernel that sums (x + offset - z_x) * w.
 */
static inline void q4_armv6m_unpack_block(const uint8_t *filter, const int32_t *bias,
                                          int32_t rows, int32_t first, int32_t k_size,
                                          int32_t offset, uint32_t *w, uint32_t *folded)
{
    const int32_t row_bytes = (k_size + 1) / 2, k16 = q4_armv6m_round_up16(k_size);
    const uint8_t zero_row[1] = {0u};
    int32_t p, j, k;
    for (p = 0; p < Q4_ARMV6M_PAIRS; ++p) {
        const int32_t ra = first + 2 * p, rb = ra + 1;
        /* a missing row reads zeros (its byte index stays 0) */
        const uint8_t *a = ra < rows ? filter + ra * row_bytes : zero_row;
        const uint8_t *b = rb < rows ? filter + rb * row_bytes : zero_row;
        const int32_t step_a = ra < rows, step_b = rb < rows;
        uint32_t *dst = w + p;
        int32_t sum_a = 0, sum_b = 0;
        for (j = 0; j < k_size / 2; ++j, dst += 8) {
            const uint32_t va = a[j * step_a], vb = b[j * step_b];
            const int32_t a0 = q4_armv6m_int4(va), a1 = q4_armv6m_int4(va >> 4);
            const int32_t b0 = q4_armv6m_int4(vb), b1 = q4_armv6m_int4(vb >> 4);
            dst[0] = (uint32_t)a0 + ((uint32_t)b0 << 16);
            dst[4] = (uint32_t)a1 + ((uint32_t)b1 << 16);
            sum_a += a0 + a1;
            sum_b += b0 + b1;
        }
        for (k = 2 * j; k < k16; ++k, dst += 4) { /* an odd last weight, then zeros */
            int32_t a0 = 0, b0 = 0;
            if (k < k_size) {
                a0 = q4_armv6m_int4(a[j * step_a]);
                b0 = q4_armv6m_int4(b[j * step_b]);
            }
            dst[0] = (uint32_t)a0 + ((uint32_t)b0 << 16);
            sum_a += a0;
            sum_b += b0;
        }
        folded[2 * p] = ra < rows ? (uint32_t)bias[ra] - (uint32_t)offset * (uint32_t)sum_a : 0u;
        folded[2 * p + 1] = rb < rows ? (uint32_t)bias[rb] - (uint32_t)offset * (uint32_t)sum_b
                                      : 0u;
    }
}

#endif /* Q4_ARMV6M_H */
