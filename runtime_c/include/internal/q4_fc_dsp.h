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
#include "q4_fixedpoint.h"

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

/* One 4-row pass: words [0, whole) of the rows at base + stride, base + 2 * stride,
 * base + 4 * stride and base (stride may be negative) against the pairs x; sum[k] += the dot
 * product of row k (in that order). The accumulators hold 4096 times the partial sums and are
 * drained (divided by 4096, exact) every Q4_FC_DRAIN_WORDS words. */
typedef struct {
    const uint32_t *x;
    const uint8_t *base;
    int32_t stride;
    const uint32_t *x_end; /* x + 4 * whole */
    int32_t sum[4];
} q4_fc_pass;

#if defined(__OPTIMIZE__) && defined(__GNUC__) && !defined(__clang__)
/* GNU inline assembly: 13 registers (4 accumulators, 4 activation pairs, weight word, unpacked
 * pair, mask, row pointer, stride). r9 is never touched (a platform may reserve it); r7, the
 * frame pointer of builds that keep one, is saved and restored by the assembly itself (nothing
 * in it addresses the frame), so it builds with -fno-omit-frame-pointer -ffixed-r9. The pairs
 * pointer, the chunk end and the pass's address sit on the stack. Per 8 inputs: the pairs
 * pointer loaded, one LDM of the 4 pairs, the pointer stored, per row one LDR and 4 AND + 4
 * SMLAD (q4_fc_dot8); two blocks per iteration (an odd count enters in the middle); per chunk of
 * at most 32 words the 4 drains (ADD with ASR #12) into pass->sum. Unoptimised builds use the C
 * loop below. */
static Q4_DSP_HELPER void q4_fc_rows4(q4_fc_pass *pass)
{
    register q4_fc_pass *p __asm__("r0") = pass;
#define Q4_FC_ROW4(load, acc)                 \
    load "\n\t"                               \
         "and r1, r4, r5, lsl #12\n\t"        \
         "smlad " acc ", r1, r6, " acc "\n\t" \
         "and r1, r4, r5, lsl #8\n\t"         \
         "smlad " acc ", r1, r7, " acc "\n\t" \
         "and r1, r4, r5, lsl #4\n\t"         \
         "smlad " acc ", r1, r8, " acc "\n\t" \
         "and r5, r5, r4\n\t"                 \
         "smlad " acc ", r5, r10, " acc "\n\t"
#define Q4_FC_ROWS4                               \
    Q4_FC_ROW4("ldr r5, [r2, r3]", "r11")         \
    Q4_FC_ROW4("ldr r5, [r2, r3, lsl #1]", "r12") \
    Q4_FC_ROW4("ldr r5, [r2, r3, lsl #2]", "lr")  \
    Q4_FC_ROW4("ldr r5, [r2], #4", "r0")
#define Q4_FC_PAIRS4                 \
    "ldr r1, [sp, #8]\n\t"           \
    "ldm r1!, {r6, r7, r8, r10}\n\t" \
    "str r1, [sp, #8]\n\t"
#define Q4_FC_DRAIN(acc, offset)       \
    "ldr r6, [r5, #" offset "]\n\t"    \
    "add r6, r6, " acc ", asr #12\n\t" \
    "str r6, [r5, #" offset "]\n\t"
    __asm__ volatile(
        "ldr r6, [r0, #0]\n\t"
        "ldr r2, [r0, #4]\n\t"
        "ldr r3, [r0, #8]\n\t"
        /* [sp]: the pass, [sp, #4]: the chunk end, [sp, #8]: the pairs pointer, then r7 */
        "push {r0, r5, r6, r7}\n\t"
        "mov r4, #0xF000F000\n"
        "3:\n\t"
        "ldr r5, [sp]\n\t"
        "ldr r6, [r5, #12]\n\t"
        "ldr r1, [sp, #8]\n\t"
        "add r7, r1, #512\n\t" /* Q4_FC_DRAIN_WORDS blocks of 16 bytes */
        "cmp r7, r6\n\t"
        "it lo\n\t"
        "movlo r6, r7\n\t"
        "str r6, [sp, #4]\n\t"
        "sub r6, r6, r1\n\t"
        "mov r11, #0\n\t"
        "mov r12, #0\n\t"
        "mov lr, #0\n\t"
        "mov r0, #0\n\t"
        "tst r6, #16\n\t"
        "bne 2f\n"
        "1:\n\t" Q4_FC_PAIRS4 Q4_FC_ROWS4 "2:\n\t" Q4_FC_PAIRS4
        /* the loop test; the rows below leave the flags alone */
        "ldr r5, [sp, #4]\n\t"
        "cmp r1, r5\n\t" Q4_FC_ROWS4 "bne 1b\n\t"
        "ldr r5, [sp]\n\t" Q4_FC_DRAIN("r11", "16") Q4_FC_DRAIN("r12", "20")
            Q4_FC_DRAIN("lr", "24") Q4_FC_DRAIN("r0", "28") "ldr r6, [r5, #12]\n\t"
                                                            "ldr r1, [sp, #8]\n\t"
                                                            "cmp r1, r6\n\t"
                                                            "bne 3b\n\t"
                                                            "pop {r0, r5, r6, r7}\n\t"
        : "+r"(p)
        :
        : "r1", "r2", "r3", "r4", "r5", "r6", "r8", "r10", "r11", "r12", "lr", "cc", "memory");
#undef Q4_FC_DRAIN
#undef Q4_FC_PAIRS4
#undef Q4_FC_ROWS4
#undef Q4_FC_ROW4
}
#else
static Q4_DSP_HELPER void q4_fc_rows4(q4_fc_pass *pass)
{
    const int32_t stride = pass->stride;
    const uint32_t *x = pass->x;
    const uint8_t *w = pass->base;
    while (x != pass->x_end) {
        const uint32_t *const end = pass->x_end - x > 4 * Q4_FC_DRAIN_WORDS
                                        ? x + 4 * Q4_FC_DRAIN_WORDS
                                        : pass->x_end;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (; x != end; x += 4, w += 4) {
            a0 = q4_fc_dot8(q4_load_u32(w + stride), x[0], x[1], x[2], x[3], a0);
            a1 = q4_fc_dot8(q4_load_u32(w + 2 * stride), x[0], x[1], x[2], x[3], a1);
            a2 = q4_fc_dot8(q4_load_u32(w + 4 * stride), x[0], x[1], x[2], x[3], a2);
            a3 = q4_fc_dot8(q4_load_u32(w), x[0], x[1], x[2], x[3], a3);
        }
        /* multiples of 4096: exact division */
        pass->sum[0] += q4_floor_shift32(a0, 12);
        pass->sum[1] += q4_floor_shift32(a1, 12);
        pass->sum[2] += q4_floor_shift32(a2, 12);
        pass->sum[3] += q4_floor_shift32(a3, 12);
    }
}
#endif

#endif /* Q4_FC_DSP_H */
