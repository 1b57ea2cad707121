/* Private helper of the DSP depthwise kernels (q4_depthwise_conv2d_s4_dsp.c and its multi-term
 * form q4_depthwise_conv2d_s4_terms_dsp.c): the int16 row layout of the 3x3 row path and the
 * widening of one input row into it. Included only on cores with the DSP extension, after
 * q4_dsp.h. */
#ifndef Q4_DEPTHWISE_DSP_H
#define Q4_DEPTHWISE_DSP_H

#include <stdint.h>

#include "q4_dsp.h"

/* A channel's row holds the tile's input span widened to int16 in two phase rows (even / odd
 * pixels, stride 2) of Q4_DW3_PHASE elements: the tile plus the 3 the pair loads read past it. */
#define Q4_DW3_PHASE 36
#define Q4_DW3_ROW (2 * Q4_DW3_PHASE)

/* Widens input row iy, pixels ix0 .. ix0 + span - 1 (z_x outside the input), of channels
 * c0 .. c0 + n - 1 into rows[i * Q4_DW3_ROW + (p % s) * Q4_DW3_PHASE + p / s] (p = ix - ix0).
 * Inside the input, 4 channels and two pixels of one phase per step: two word loads, SXTB16 of
 * them and of them shifted by 8, and PKHBT/PKHTB pairs for 4 word stores. */
static void q4_dw3_widen_row(int16_t *rows, const int8_t *input, int32_t iy, int32_t ix0,
                             int32_t span, int32_t s, int32_t in_w, int32_t ch, int32_t c0,
                             int32_t n, int32_t in_zp)
{
    const int8_t *const src = input + iy * in_w * ch + c0;
    int32_t f, i, j;
    for (f = 0; f < s; ++f) {
        int16_t *const dst = rows + f * Q4_DW3_PHASE;
        const int32_t len = (span - f + s - 1) / s; /* pixels p = f + s * j < span */
        /* j inside the input: 0 <= ix0 + f + s * j < in_w */
        int32_t j_lo = ix0 + f >= 0 ? 0 : (-(ix0 + f) + s - 1) / s;
        int32_t j_hi = ix0 + f + s * (len - 1) < in_w ? len : (in_w - (ix0 + f) + s - 1) / s;
        if (j_hi < j_lo) {
            j_hi = j_lo;
        }
        for (j = 0; j < j_lo; ++j) {
            for (i = 0; i < n; ++i) {
                dst[i * Q4_DW3_ROW + j] = (int16_t)in_zp;
            }
        }
        j = j_lo;
        if (n == 4) {
            const int8_t *a = src + (ix0 + f + s * j) * ch;
            const int32_t step = s * ch;
            if (j & 1) { /* word-align the pair stores */
                for (i = 0; i < 4; ++i) {
                    dst[i * Q4_DW3_ROW + j] = a[i];
                }
                ++j;
                a += step;
            }
            for (; j + 2 <= j_hi; j += 2, a += 2 * step) {
                const uint32_t wa = q4_load_u32(a), wb = q4_load_u32(a + step);
                const uint32_t a02 = q4_sxtb16(wa), b02 = q4_sxtb16(wb);
                const uint32_t a13 = q4_sxtb16(wa >> 8), b13 = q4_sxtb16(wb >> 8);
                uint32_t *const d = (uint32_t *)(void *)(dst + j);
                d[0] = (a02 & 0xFFFFu) | (b02 << 16);
                d[Q4_DW3_ROW / 2] = (a13 & 0xFFFFu) | (b13 << 16);
                d[Q4_DW3_ROW] = (a02 >> 16) | (b02 & 0xFFFF0000u);
                d[3 * Q4_DW3_ROW / 2] = (a13 >> 16) | (b13 & 0xFFFF0000u);
            }
        }
        for (; j < j_hi; ++j) {
            const int8_t *const a = src + (ix0 + f + s * j) * ch;
            for (i = 0; i < n; ++i) {
                dst[i * Q4_DW3_ROW + j] = a[i];
            }
        }
        for (; j < len; ++j) {
            for (i = 0; i < n; ++i) {
                dst[i * Q4_DW3_ROW + j] = (int16_t)in_zp;
            }
        }
    }
}

/* The 4 stride-1 outputs o .. o + 3 of one channel over the 3 kernel rows r[0..2] (r[k][0] =
 * input pixel o of kernel row k), added to a[0..3]. Per row, v0, v1, v2 = (r[0], r[1]),
 * (r[2], r[3]), (r[4], r[5]); with p01 = (w0, w1), p12 = (w1, w2) and s02 = (w0, w2) (w[3k],
 * w[3k + 1], w[3k + 2]) output o takes SMLAD(v0, p01) + r[2] * w2 (SMLABT(v1, s02)), output
 * o + 1 SMLAD(v1, p12) + r[1] * w0 (SMLATB(v0, s02)), and o + 2, o + 3 the same one word on:
 * 3 activation and 3 weight loads and 8 multiply-accumulates for 12 MACs. GNU inline assembly:
 * GCC kept the 9 weights and the requantization constants in registers and spilled (110
 * instructions per 4 outputs); 11 registers (v2 reuses v0's): it builds with a frame pointer and
 * r9 reserved; at -O0 (no __OPTIMIZE__, too few free registers) the same sums in C. */
#define Q4_DW3_S1_ROW_ASM(k)                \
    "ldr %[v0], [%[r" #k "]]\n\t"           \
    "ldr %[v1], [%[r" #k "], #4]\n\t"       \
    "ldr %[wt], [%[w], #" #k "*12]\n\t"     \
    "smlad %[a0], %[v0], %[wt], %[a0]\n\t"  \
    "smlad %[a2], %[v1], %[wt], %[a2]\n\t"  \
    "ldr %[wt], [%[w], #" #k "*12+8]\n\t"   \
    "smlatb %[a1], %[v0], %[wt], %[a1]\n\t" \
    "smlabt %[a0], %[v1], %[wt], %[a0]\n\t" \
    "smlatb %[a3], %[v1], %[wt], %[a3]\n\t" \
    "ldr %[v0], [%[r" #k "], #8]\n\t"       \
    "smlabt %[a2], %[v0], %[wt], %[a2]\n\t" \
    "ldr %[wt], [%[w], #" #k "*12+4]\n\t"   \
    "smlad %[a1], %[v1], %[wt], %[a1]\n\t"  \
    "smlad %[a3], %[v0], %[wt], %[a3]\n\t"

/* The same for horizontal stride 2: r[k] is the even phase row (r[k][j] = input pixel o + 2j
 * ... of kernel row k) and r[k] + Q4_DW3_PHASE the odd one. Output o takes SMLAD(e01, s02) +
 * odd[0] * w1 (SMLABB with p12 = (w1, w2)), output o + 1 e1 * w0 + e2 * w2 + odd[1] * w1
 * (SMLATB(e01, s02), SMLABT(e23, s02), SMLATB(o01, p12)), and o + 2, o + 3 the same one word
 * on: 5 activation and 2 weight loads and 10 multiply-accumulates for 12 MACs. */
#define Q4_DW3_TEXT_(x) #x
#define Q4_DW3_TEXT(x) Q4_DW3_TEXT_(x) /* a macro's value as text for the assembly */
#define Q4_DW3_S2_ROW_ASM(k)                                                    \
    "ldr %[v0], [%[r" #k "]]\n\t"                                               \
    "ldr %[v1], [%[r" #k "], #4]\n\t"                                           \
    "ldr %[wt], [%[w], #" #k "*12+8]\n\t"                                       \
    "smlad %[a0], %[v0], %[wt], %[a0]\n\t"                                      \
    "smlatb %[a1], %[v0], %[wt], %[a1]\n\t"                                     \
    "smlabt %[a1], %[v1], %[wt], %[a1]\n\t"                                     \
    "smlad %[a2], %[v1], %[wt], %[a2]\n\t"                                      \
    "smlatb %[a3], %[v1], %[wt], %[a3]\n\t"                                     \
    "ldr %[v0], [%[r" #k "], #8]\n\t"                                           \
    "smlabt %[a3], %[v0], %[wt], %[a3]\n\t"                                     \
    "ldr %[wt], [%[w], #" #k "*12+4]\n\t"                                       \
    "ldr %[v0], [%[r" #k "], #2*" Q4_DW3_TEXT(                                  \
        Q4_DW3_PHASE) "]\n\t"                                                   \
                      "ldr %[v1], [%[r" #k "], #2*" Q4_DW3_TEXT(                \
                          Q4_DW3_PHASE) "+4]\n\t"                               \
                                        "smlabb %[a0], %[v0], %[wt], %[a0]\n\t" \
                                        "smlatb %[a1], %[v0], %[wt], %[a1]\n\t" \
                                        "smlabb %[a2], %[v1], %[wt], %[a2]\n\t" \
                                        "smlatb %[a3], %[v1], %[wt], %[a3]\n\t"

/* The 4 outputs of one channel added to a0 .. a3: ROW is Q4_DW3_S1_ROW_ASM or
 * Q4_DW3_S2_ROW_ASM (s the horizontal stride). */
#if defined(__OPTIMIZE__)
#define Q4_DW3_GROUP(ROW, s, r0, r1, r2, w, a0, a1, a2, a3)                                    \
    do {                                                                                       \
        uint32_t v0_, v1_, wt_; /* v0_ also holds the third word once the first is used */     \
        __asm__(ROW(0) ROW(1) ROW(2)                                                           \
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [v0] "=&r"(v0_), \
                  [v1] "=&r"(v1_), [wt] "=&r"(wt_)                                             \
                : [r0] "r"(r0), [r1] "r"(r1), [r2] "r"(r2), [w] "r"(w)                         \
                : "memory");                                                                   \
    } while (0)
#else /* -O0 finds no 11 free registers: the same sums in C */
#define Q4_DW3_GROUP(ROW, s, r0, r1, r2, w, a0, a1, a2, a3)                             \
    do {                                                                                \
        int32_t k_;                                                                     \
        for (k_ = 0; k_ < 3; ++k_) {                                                    \
            const int16_t *const r_ = k_ == 0 ? (r0) : k_ == 1 ? (r1) : (r2);           \
            const uint32_t *const w_ = (w) + 3 * k_;                                    \
            const int32_t v0_ = (int32_t)q4_load_u32(r_);                               \
            const int32_t v1_ = (int32_t)q4_load_u32(r_ + 2);                           \
            const int32_t v2_ = (int32_t)q4_load_u32(r_ + 4);                           \
            if ((s) == 1) {                                                             \
                a0 = __smlabt(v1_, (int32_t)w_[2], __smlad(v0_, (int32_t)w_[0], a0));   \
                a1 = __smlatb(v0_, (int32_t)w_[2], __smlad(v1_, (int32_t)w_[1], a1));   \
                a2 = __smlabt(v2_, (int32_t)w_[2], __smlad(v1_, (int32_t)w_[0], a2));   \
                a3 = __smlatb(v1_, (int32_t)w_[2], __smlad(v2_, (int32_t)w_[1], a3));   \
            } else {                                                                    \
                const int32_t o01_ = (int32_t)q4_load_u32(r_ + Q4_DW3_PHASE);           \
                const int32_t o23_ = (int32_t)q4_load_u32(r_ + Q4_DW3_PHASE + 2);       \
                a0 = __smlabb(o01_, (int32_t)w_[1], __smlad(v0_, (int32_t)w_[2], a0));  \
                a1 = __smlatb(o01_, (int32_t)w_[1], __smlatb(v0_, (int32_t)w_[2], a1)); \
                a1 = __smlabt(v1_, (int32_t)w_[2], a1);                                 \
                a2 = __smlabb(o23_, (int32_t)w_[1], __smlad(v1_, (int32_t)w_[2], a2));  \
                a3 = __smlatb(o23_, (int32_t)w_[1], __smlatb(v1_, (int32_t)w_[2], a3)); \
                a3 = __smlabt(v2_, (int32_t)w_[2], a3);                                 \
            }                                                                           \
        }                                                                               \
    } while (0)
#endif

#endif /* Q4_DEPTHWISE_DSP_H */
