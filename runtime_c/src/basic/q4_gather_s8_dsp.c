/*
 * q4_gather_s8_dsp.c - slices along one axis copied by a constant index table, for cores with
 * the Arm DSP extension (Cortex-M4/M7/M33/M55). Bit-exact with q4_gather_s8 (a copy).
 *
 * Scheme (docs/kernels.md, "Gather (and copies)"). Per outer slice the output is the bytes
 * x[index[j] * inner + i] for j < n_index, i < inner: runs of consecutive indices are runs of
 * contiguous bytes. The index table is read once per call to count them; then
 *  - runs of 8 bytes or more on average (slices, splits, any inner >= 8): each run is found
 *    once and copied in every outer slice in turn, up to 32 bytes by a fixed number of unaligned
 *    word pairs, the last ending at the run's end (it may overlap the one before: the same bytes
 *    are written twice), longer runs by LDM/STM of 16 bytes when source and destination share
 *    their alignment mod 4, else by words; an identity table (a whole copy) is one run;
 *  - the two-way interleave of ShuffleNet's channel shuffle and of the halves a Split takes of it
 *    (inner = 1, index[2k] = a + k, index[2k + 1] = b + k, at least 4 pairs): per 8 output bytes
 *    two word loads (4 bytes of each run), four UXTB16, two ORR and two PKH repack them as
 *    a0 b0 a1 b1 | a2 b2 a3 b3, two word stores; the last group ends at the slice's end;
 *  - any other table: per 4 output bytes their four source offsets are held in registers and
 *    the word is assembled from four LDRB for every outer slice in turn (at least 4 slices;
 *    fewer: the runs are copied as above when they average 4 bytes or more, else the portable
 *    kernel runs).
 * Every path copies bytes, so repeated and out-of-order indices are exact. Scratch: none.
 */
#include "q4_kernels.h"
#include "q4_gather.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"

static inline void q4_store_u32(void *p, uint32_t v)
{
    __builtin_memcpy(p, &v, sizeof v);
}

/* UXTB16 with ROR #8: bytes 1 and 3 of x zero-extended into the two halfwords. */
static inline uint32_t q4_uxtb16_ror8(uint32_t x)
{
    uint32_t result;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(result) : "r"(x));
    return result;
}

/* dst[0 .. n) = src[0 .. n) (not overlapping). */
static void q4_copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    if (n >= 32 && (((uintptr_t)dst ^ (uintptr_t)src) & 3u) == 0) {
        while (((uintptr_t)dst & 3u) != 0) {
            *dst++ = *src++;
            --n;
        }
        if (n >= 16) {
            int32_t blocks = n >> 4;
            n &= 15;
            __asm__ volatile("1:\n\t"
                             "ldmia %0!, {r4, r5, r6, r8}\n\t"
                             "stmia %1!, {r4, r5, r6, r8}\n\t"
                             "subs %2, %2, #1\n\t"
                             "bne 1b"
                             : "+r"(src), "+r"(dst), "+r"(blocks)
                             :
                             : "r4", "r5", "r6", "r8", "cc", "memory");
        }
    }
    for (; n >= 8; n -= 8, src += 8, dst += 8) {
        const uint32_t w0 = q4_load_u32(src), w1 = q4_load_u32(src + 4);
        q4_store_u32(dst, w0);
        q4_store_u32(dst + 4, w1);
    }
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
}

/* 8 bytes: two unaligned words. */
static inline void q4_copy8(int8_t *dst, const int8_t *src)
{
    const uint32_t w0 = q4_load_u32(src), w1 = q4_load_u32(src + 4);
    q4_store_u32(dst, w0);
    q4_store_u32(dst + 4, w1);
}

/* One run of len bytes in each of count outer slices: dst[o * out_step + i] =
 * src[o * in_step + i] for i < len. Runs of 4 to 32 bytes by words, the last 4 (or 8) bytes
 * ending at the run's end (they may overlap the ones before: the same bytes are written twice);
 * shorter ones by bytes, longer ones by q4_copy_bytes. */
static void q4_copy_run(int8_t *dst, const int8_t *src, int32_t len, int32_t count,
                        int32_t in_step, int32_t out_step)
{
    const int32_t last = len - 8;
    int32_t o, i;
    if (len > 32) {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            q4_copy_bytes(dst, src, len);
        }
    } else if (len < 4) {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            for (i = 0; i < len; ++i) {
                dst[i] = src[i];
            }
        }
    } else if (len < 8) {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            const uint32_t w0 = q4_load_u32(src), w1 = q4_load_u32(src + len - 4);
            q4_store_u32(dst, w0);
            q4_store_u32(dst + len - 4, w1);
        }
    } else if (len == 8) {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            q4_copy8(dst, src);
        }
    } else if (len <= 16) {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            q4_copy8(dst, src);
            q4_copy8(dst + last, src + last);
        }
    } else if (len <= 24) {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            q4_copy8(dst, src);
            q4_copy8(dst + 8, src + 8);
            q4_copy8(dst + last, src + last);
        }
    } else {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            q4_copy8(dst, src);
            q4_copy8(dst + 8, src + 8);
            q4_copy8(dst + 16, src + 16);
            q4_copy8(dst + last, src + last);
        }
    }
}

/* PKHBT lo, hi, LSL #16: the low halfword of lo, the low halfword of hi above it. */
static inline uint32_t q4_pkhbt16(uint32_t lo, uint32_t hi)
{
    uint32_t result;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(result) : "r"(lo), "r"(hi));
    return result;
}

/* PKHTB hi, lo, ASR #16: the high halfword of lo below the high halfword of hi. */
static inline uint32_t q4_pkhtb16(uint32_t hi, uint32_t lo)
{
    uint32_t result;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(result) : "r"(hi), "r"(lo));
    return result;
}

/* dst[0 .. 8) = pa[0], pb[0], pa[1], pb[1], .., pa[3], pb[3]. */
static inline void q4_interleave8(const int8_t *pa, const int8_t *pb, int8_t *dst)
{
    const uint32_t va = q4_load_u32(pa), vb = q4_load_u32(pb);
    const uint32_t x02 = __uxtb16(va) | (__uxtb16(vb) << 8);             /* b2 a2 b0 a0 */
    const uint32_t x13 = q4_uxtb16_ror8(va) | (q4_uxtb16_ror8(vb) << 8); /* b3 a3 b1 a1 */
    q4_store_u32(dst, q4_pkhbt16(x02, x13));                             /* b1 a1 b0 a0 */
    q4_store_u32(dst + 4, q4_pkhtb16(x13, x02));                         /* b3 a3 b2 a2 */
}

/* inner = 1, index[2k] = a + k and index[2k + 1] = b + k for k < half (half >= 4): groups of 4
 * pairs, the last one ending at the slice's end (it may overlap the one before). */
static void q4_gather_interleave(int32_t outer, int32_t axis_size, int32_t half, int32_t a,
                                 int32_t b, const int8_t *input, int8_t *output)
{
    const int32_t last = half - 4;
    int32_t o, k;
    for (o = 0; o < outer; ++o) {
        const int8_t *pa = input + o * axis_size + a, *pb = input + o * axis_size + b;
        int8_t *dst = output + o * 2 * half;
        for (k = 0; k < last; k += 4) {
            q4_interleave8(pa + k, pb + k, dst + 2 * k);
        }
        q4_interleave8(pa + last, pb + last, dst + 2 * last);
    }
}

/* The source offset (within one outer slice) of output byte t. */
static inline int32_t q4_gather_offset(const int32_t *index, int32_t inner, int32_t t)
{
    return inner == 1 ? index[t] : index[t / inner] * inner + t % inner;
}

/* Any table: 4 output bytes at a time for every outer slice. */
static void q4_gather_words(int32_t outer, int32_t in_span, int32_t out_span, int32_t inner,
                            const int32_t *index, const int8_t *input, int8_t *output)
{
    int32_t t, o;
    for (t = 0; t + 4 <= out_span; t += 4) {
        const int32_t f0 = q4_gather_offset(index, inner, t);
        const int32_t f1 = q4_gather_offset(index, inner, t + 1);
        const int32_t f2 = q4_gather_offset(index, inner, t + 2);
        const int32_t f3 = q4_gather_offset(index, inner, t + 3);
        const uint8_t *src = (const uint8_t *)input;
        int8_t *dst = output + t;
        for (o = 0; o < outer; ++o, src += in_span, dst += out_span) {
            q4_store_u32(dst, (uint32_t)src[f0] | (uint32_t)src[f1] << 8 |
                                  (uint32_t)src[f2] << 16 | (uint32_t)src[f3] << 24);
        }
    }
    for (; t < out_span; ++t) {
        const int32_t f = q4_gather_offset(index, inner, t);
        for (o = 0; o < outer; ++o) {
            output[o * out_span + t] = input[o * in_span + f];
        }
    }
}

/* True when index[2k] = index[0] + k and index[2k + 1] = index[1] + k for every k < n / 2. */
static int q4_is_interleave(const int32_t *index, int32_t n)
{
    int32_t k;
    if (n < 8 || (n & 1) != 0) {
        return 0;
    }
    for (k = 1; k < n / 2; ++k) {
        if (index[2 * k] != index[0] + k || index[2 * k + 1] != index[1] + k) {
            return 0;
        }
    }
    return 1;
}

void q4_gather_s8_dsp(const q4_gather_params *params, const int8_t *input, int8_t *output)
{
    const int32_t outer = params->outer, axis_size = params->axis_size, inner = params->inner;
    const int32_t n = params->n_index, *index = params->index;
    const int32_t in_span = axis_size * inner, out_span = n * inner;
    int32_t runs = 1, j;

    if (outer <= 0 || n <= 0 || inner <= 0) {
        return;
    }
    for (j = 1; j < n; ++j) {
        runs += index[j] != index[j - 1] + 1;
    }
    if (runs == 1 && index[0] == 0 && n == axis_size) { /* identity: one copy */
        q4_copy_bytes(output, input, outer * in_span);
    } else if (out_span >= 8 * runs ||
               (outer < 4 && out_span >= 4 * runs)) { /* each run across all outer slices */
        int32_t start = 0, out_at = 0;
        for (j = 1; j <= n; ++j) {
            if (j == n || index[j] != index[j - 1] + 1) {
                const int32_t len = (j - start) * inner;
                q4_copy_run(output + out_at, input + index[start] * inner, len, outer, in_span,
                            out_span);
                out_at += len;
                start = j;
            }
        }
    } else if (inner == 1 && q4_is_interleave(index, n)) {
        q4_gather_interleave(outer, axis_size, n / 2, index[0], index[1], input, output);
    } else if (outer >= 4) {
        q4_gather_words(outer, in_span, out_span, inner, index, input, output);
    } else { /* a few slices of short runs: offsets not worth computing */
        q4_gather_s8(params, input, output);
    }
}

#else

void q4_gather_s8_dsp(const q4_gather_params *params, const int8_t *input, int8_t *output)
{
    q4_gather_s8(params, input, output);
}

#endif
