/* Private helper of the Helium depthwise kernels (q4_depthwise_conv2d_s4_mve.c and its
 * multi-term form q4_depthwise_conv2d_s4_terms_mve.c): the 3x3 plane path's 9-tap filter over a
 * plane of int16 rows with pitch P, and the pitch for a row of outputs. Included only on cores
 * with Helium, after <arm_mve.h>. */
#ifndef Q4_DEPTHWISE_MVE_H
#define Q4_DEPTHWISE_MVE_H

#include <stdint.h>

#include <arm_mve.h>

/* sums[j] = sum of the 9 taps at r[j + ky * P + kx] for j < 8 * n (byte offsets of taps 1..8
 * as literals; tap 0 by the post-incremented load): per 8 pixels 9 VLDRH, VMUL + 8 VMLA.S16 by
 * the weights held in registers, one VSTRH; a low-overhead loop (LE) on lr. */
#define Q4_DWP_ASM(o1, o2, o3, o4, o5, o6, o7, o8)                                       \
    __asm__ volatile(                                                                    \
        "ldr lr, %[n]\n\t"                                                               \
        "dls lr, lr\n\t"                                                                 \
        "1:\n\t"                                                                         \
        "vldrh.16 q0, [%[r], #" #o1 "]\n\t"                                              \
        "vmul.i16 q3, q0, %[w1]\n\t"                                                     \
        "vldrh.16 q1, [%[r], #" #o2 "]\n\t"                                              \
        "vmla.s16 q3, q1, %[w2]\n\t"                                                     \
        "vldrh.16 q2, [%[r], #" #o3 "]\n\t"                                              \
        "vmla.s16 q3, q2, %[w3]\n\t"                                                     \
        "vldrh.16 q0, [%[r], #" #o4 "]\n\t"                                              \
        "vmla.s16 q3, q0, %[w4]\n\t"                                                     \
        "vldrh.16 q1, [%[r], #" #o5 "]\n\t"                                              \
        "vmla.s16 q3, q1, %[w5]\n\t"                                                     \
        "vldrh.16 q2, [%[r], #" #o6 "]\n\t"                                              \
        "vmla.s16 q3, q2, %[w6]\n\t"                                                     \
        "vldrh.16 q0, [%[r], #" #o7 "]\n\t"                                              \
        "vmla.s16 q3, q0, %[w7]\n\t"                                                     \
        "vldrh.16 q1, [%[r], #" #o8 "]\n\t"                                              \
        "vmla.s16 q3, q1, %[w8]\n\t"                                                     \
        "vldrh.16 q2, [%[r]], #16\n\t"                                                   \
        "vmla.s16 q3, q2, %[w0]\n\t"                                                     \
        "vstrh.16 q3, [%[s]], #16\n\t"                                                   \
        "le lr, 1b\n\t"                                                                  \
        : [r] "+&r"(r), [s] "+&r"(sums)                                                  \
        : [n] "m"(n), [w0] "r"(w[0]), [w1] "r"(w[1]), [w2] "r"(w[2]), [w3] "r"(w[3]),    \
          [w4] "r"(w[4]), [w5] "r"(w[5]), [w6] "r"(w[6]), [w7] "r"(w[7]), [w8] "r"(w[8]) \
        : "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "lr", "cc", "memory")

/* The 9-tap filter over n >= 1 vectors of a plane with pitch P (6, 10, 18 or 34: taps at
 * ky * P + kx) or -P (10, 18 or 34, stride 2: each row holds the even input columns, then the
 * odd ones from P / 2 on, so the taps are at ky * P + 0, P / 2, 1). Without optimisation GCC
 * cannot allocate the assembly's 11 registers: intrinsics instead. */
static __attribute__((noinline)) void q4_dwp_filter(const int16_t *r, int16_t *sums, int32_t n,
                                                    int32_t pitch, const int32_t *w)
{
#if defined(__OPTIMIZE__)
    if (pitch == 6) {
        Q4_DWP_ASM(2, 4, 12, 14, 16, 24, 26, 28);
    } else if (pitch == 10) {
        Q4_DWP_ASM(2, 4, 20, 22, 24, 40, 42, 44);
    } else if (pitch == 18) {
        Q4_DWP_ASM(2, 4, 36, 38, 40, 72, 74, 76);
    } else if (pitch == 34) {
        Q4_DWP_ASM(2, 4, 68, 70, 72, 136, 138, 140);
    } else if (pitch == -10) { /* stride 2: half rows of 5 (even, then odd input columns) */
        Q4_DWP_ASM(10, 2, 20, 30, 22, 40, 50, 42);
    } else if (pitch == -18) {
        Q4_DWP_ASM(18, 2, 36, 54, 38, 72, 90, 74);
    } else {
        Q4_DWP_ASM(34, 2, 68, 102, 70, 136, 170, 138);
    }
#else
    const int32_t p = pitch < 0 ? -pitch : pitch;
    /* the column offsets of taps kx = 0, 1, 2 */
    const int32_t col1 = pitch < 0 ? p / 2 : 1, col2 = pitch < 0 ? 1 : 2;
    for (; n > 0; --n, r += 8, sums += 8) {
        int16x8_t acc = vdupq_n_s16(0);
        int32_t t;
        for (t = 0; t < 9; ++t) {
            const int32_t kx = t % 3, at = (t / 3) * p + (kx == 1 ? col1 : kx == 2 ? col2 : 0);
            acc = vmlaq_n_s16(acc, vld1q_s16(r + at), (int16_t)w[t]);
        }
        vst1q_s16(sums, acc);
    }
#endif
}

/* The pitch for output rows of out_w pixels: at stride 1 the smallest of 6, 10, 18, 34 above
 * min(out_w, 32) + 1, at stride 2 the smallest of 10, 18, 34 above 2 * min(out_w, 16) + 1. */
static int32_t q4_dwp_pitch(int32_t out_w, int32_t stride)
{
    if (stride == 2) {
        return out_w <= 4 ? 10 : out_w <= 8 ? 18 : 34;
    }
    return out_w <= 4 ? 6 : out_w <= 8 ? 10 : out_w <= 16 ? 18 : 34;
}

#endif /* Q4_DEPTHWISE_MVE_H */
