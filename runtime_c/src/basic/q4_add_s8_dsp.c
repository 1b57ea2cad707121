/*
 * q4_add_s8_dsp.c - element-wise add of two int8 tensors, for cores with the Arm DSP extension
 * (Cortex-M4/M7/M33/M55). Bit-exact with q4_add_s8.
 *
 * Scheme (docs/kernels.md), 4 elements per step:
 *  - One word of each input; `(x << 8) & 0xFF00FF00` and `x & 0xFF00FF00` hold the even and odd
 *    elements times 256 as int16 pairs. SMLAWB/SMLAWT with the multiplier times 256 give
 *    floor(256 m * 256 x / 2^16) = m * x exactly, so
 *        v = (2^(s-1) - z_a m_a - z_b m_b) + a m_a + b m_b
 *    takes two instructions per element and equals the spec's acc + 2^(s-1) (|v| < 2^31).
 *  - The shift: SMMLA(v, 2^(32-s), z_y - act_min) = z_y - act_min + floor(v / 2^s) (s >= 2).
 *    These fit int16 unless the input/output scale ratios exceed ~60; PKHBT packs them in
 *    pairs, USAT16 saturates both to [0, 255], one ORR makes the 4 bytes, and the upper clamp
 *    is bytewise: y = act_max - UQSUB8(act_max - act_min, u), exact as act_max - act_min <= 255.
 *  - shift == 1, scale ratios beyond that bound and the last size % 4 elements use the
 *    portable arithmetic.
 *  - 4-bit path: when both inputs hold values in [-8, 7] (the int4 activations of a W4A4 model)
 *    the output is a function of (a + 8, b + 8). A 256-byte table of it (in the caller's scratch)
 *    is built by the path above; then 4 elements are two loads, two UADD8 (+8 per byte), one
 *    ORR for the 4 indices, 4 byte look-ups and one store (inline assembly, 8 per iteration). The OR of every a + 8 and b + 8 is
 *    kept: a chunk of 256 elements holding a value outside [-8, 7] is redone, with the rest of
 *    the tensor, by the general path.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include <arm_acle.h>

#include "q4_dsp.h"

#define Q4_DSP_TABLE_BYTES 256
#define Q4_DSP_CHUNK 256 /* elements between two range checks of the 4-bit path */

static inline void q4_store_u32(void *p, uint32_t v)
{
    __builtin_memcpy(p, &v, sizeof v);
}

/* acc + floor(a * b / 2^32): SMMLA (ACLE has no intrinsic for it; C would need a 64-bit
 * product and a shift of a negative number). */
static inline int32_t q4_smmla(int32_t a, int32_t b, int32_t acc)
{
    int32_t result;
    __asm__("smmla %0, %1, %2, %3" : "=r"(result) : "r"(a), "r"(b), "r"(acc));
    return result;
}

/* Both int16 halves of x saturated to [0, 255] (USAT16; GCC's __usat16 macro trips
 * -Wsign-conversion). */
static inline uint32_t q4_usat16_8(uint32_t x)
{
    uint32_t result;
    __asm__("usat16 %0, #8, %1" : "=r"(result) : "r"(x));
    return result;
}

/* The low halfword of lo with the low halfword of hi above it (PKHBT). */
static inline uint32_t q4_pack16(int32_t lo, int32_t hi)
{
    uint32_t result;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(result) : "r"(lo), "r"(hi));
    return result;
}

/* The portable arithmetic for elements [from, size). */
static void q4_add_tail(const q4_add_params *params, int32_t from, int32_t size,
                        const int8_t *input_a, const int8_t *input_b, int8_t *output)
{
    const int32_t round = (int32_t)1 << (params->shift - 1);
    int32_t i;
    for (i = from; i < size; ++i) {
        const int32_t acc = ((int32_t)input_a[i] - params->a_zp) * params->a_multiplier +
                            ((int32_t)input_b[i] - params->b_zp) * params->b_multiplier;
        int32_t y = params->output_zp + q4_floor_shift32(acc + round, params->shift);
        y = y < params->act_min ? params->act_min : y;
        y = y > params->act_max ? params->act_max : y;
        output[i] = (int8_t)y;
    }
}

/* The 4-wide SIMD path for elements [from, size), the portable arithmetic where it does not
 * apply (shift 1, scale ratios beyond ~60, the last size % 4 elements). */
static void q4_add_words(const q4_add_params *params, int32_t from, int32_t size,
                         const int8_t *input_a, const int8_t *input_b, int8_t *output)
{
    const int32_t shift = params->shift;
    const int32_t ma = params->a_multiplier, mb = params->b_multiplier;
    /* |z| <= 128, |m| < 2^21: every term below 2^29, the sum below 2^31 */
    const int32_t offset = ((int32_t)1 << (shift - 1)) - params->a_zp * ma - params->b_zp * mb;
    const int32_t ma256 = ma * 256, mb256 = mb * 256;
    const int32_t scale = (int32_t)((uint32_t)1 << (32 - shift)); /* used for shift >= 2 */
    const int32_t base = params->output_zp - params->act_min;
    const uint32_t width = (uint32_t)(params->act_max - params->act_min) * 0x01010101u;
    const uint32_t top = ((uint32_t)params->act_max & 0xFFu) * 0x01010101u;
    const uint32_t mask = 0xFF00FF00u;
    /* 255 (|m_a| + |m_b|) < 2^30 bounds |v|: then |base + floor(v / 2^s)| < 2^15 */
    const int32_t reach = (255 * ((ma < 0 ? -ma : ma) + (mb < 0 ? -mb : mb))) >> shift;
    int32_t i = from;

    if (shift >= 2 && reach < 32000) {
        for (; i + 4 <= size; i += 4) {
            const uint32_t a = q4_load_u32(input_a + i), b = q4_load_u32(input_b + i);
            const int32_t a_even = (int32_t)((a << 8) & mask), a_odd = (int32_t)(a & mask);
            const int32_t b_even = (int32_t)((b << 8) & mask), b_odd = (int32_t)(b & mask);
            const int32_t v0 = __smlawb(mb256, b_even, __smlawb(ma256, a_even, offset));
            const int32_t v1 = __smlawb(mb256, b_odd, __smlawb(ma256, a_odd, offset));
            const int32_t v2 = __smlawt(mb256, b_even, __smlawt(ma256, a_even, offset));
            const int32_t v3 = __smlawt(mb256, b_odd, __smlawt(ma256, a_odd, offset));
            /* the int16 pairs (y0, y2) and (y1, y3) of y = base + floor(v / 2^s), each lane
             * saturated to [0, 255] by USAT16 */
            const uint32_t y02 = q4_pack16(q4_smmla(v0, scale, base), q4_smmla(v2, scale, base));
            const uint32_t y13 = q4_pack16(q4_smmla(v1, scale, base), q4_smmla(v3, scale, base));
            const uint32_t u = q4_usat16_8(y02) | (q4_usat16_8(y13) << 8);
            q4_store_u32(output + i, (uint32_t)__usub8(top, __uqsub8(width, u)));
        }
    }
    q4_add_tail(params, i, size, input_a, input_b, output);
}

/* table[(b + 8) << 4 | (a + 8)] for a, b in [-8, 7], by the SIMD path (one row per b). */
static void q4_add_build_table(const q4_add_params *params, uint8_t *table)
{
    static const int8_t a[16] = {-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7};
    int8_t b[16];
    int32_t j, i;
    for (j = 0; j < 16; ++j) {
        for (i = 0; i < 16; ++i) {
            b[i] = (int8_t)(j - 8);
        }
        q4_add_words(params, 0, 16, a, b, (int8_t *)table + 16 * j);
    }
}

/* Elements [i, end) of the 4-bit path (end - i a multiple of 8); returns the OR of every a + 8
 * and b + 8 (a high nibble flags a value outside [-8, 7]). */
#if defined(__OPTIMIZE__) && defined(__GNUC__) && !defined(__clang__)
/* GNU inline assembly, 8 elements per iteration (GCC's version spent 23 instructions on 4):
 * per word of each input LDR + UADD8, one ORR for the 4 indices, two ORRs for the range flag,
 * per element UXTB (with ROR) + LDRB + ORR into the output word, one STR. */
static uint32_t q4_add_nibble_run(const int8_t *input_a, const int8_t *input_b, int8_t *output,
                                  const uint8_t *lut, int32_t i, int32_t end)
{
    const int8_t *pa = input_a + i, *pb = input_b + i;
    const int8_t *const stop = input_a + end;
    int8_t *po = output + i;
    uint32_t seen = 0, a, b, index, t, u;
#define Q4_ADD_NIBBLE_WORD                 \
    "ldr %[a], [%[pa]], #4\n\t"            \
    "ldr %[b], [%[pb]], #4\n\t"            \
    "uadd8 %[a], %[a], %[eight]\n\t"       \
    "uadd8 %[b], %[b], %[eight]\n\t"       \
    "orr %[t], %[a], %[b]\n\t"             \
    "orr %[seen], %[seen], %[t]\n\t"       \
    "orr %[index], %[a], %[b], lsl #4\n\t" \
    "uxtb %[t], %[index]\n\t"              \
    "ldrb %[t], [%[lut], %[t]]\n\t"        \
    "uxtb %[u], %[index], ror #8\n\t"      \
    "ldrb %[u], [%[lut], %[u]]\n\t"        \
    "orr %[t], %[t], %[u], lsl #8\n\t"     \
    "uxtb %[u], %[index], ror #16\n\t"     \
    "ldrb %[u], [%[lut], %[u]]\n\t"        \
    "orr %[t], %[t], %[u], lsl #16\n\t"    \
    "lsr %[u], %[index], #24\n\t"          \
    "ldrb %[u], [%[lut], %[u]]\n\t"        \
    "orr %[t], %[t], %[u], lsl #24\n\t"    \
    "str %[t], [%[po]], #4\n\t"
    __asm__ volatile("1:\n\t" Q4_ADD_NIBBLE_WORD Q4_ADD_NIBBLE_WORD "cmp %[pa], %[stop]\n\t"
                     "bne 1b"
                     : [pa] "+r"(pa), [pb] "+r"(pb), [po] "+r"(po), [seen] "+r"(seen),
                       [a] "=&r"(a), [b] "=&r"(b), [index] "=&r"(index), [t] "=&r"(t), [u] "=&r"(u)
                     : [stop] "r"(stop), [eight] "r"(0x08080808u), [lut] "r"(lut)
                     : "cc", "memory");
#undef Q4_ADD_NIBBLE_WORD
    return seen;
}
#else
static uint32_t q4_add_nibble_run(const int8_t *input_a, const int8_t *input_b, int8_t *output,
                                  const uint8_t *lut, int32_t i, int32_t end)
{
    const uint32_t eight = 0x08080808u;
    uint32_t seen = 0;
    for (; i < end; i += 4) {
        const uint32_t a8 = __uadd8(q4_load_u32(input_a + i), eight);
        const uint32_t b8 = __uadd8(q4_load_u32(input_b + i), eight);
        const uint32_t index = a8 | (b8 << 4);
        seen |= a8 | b8;
        q4_store_u32(output + i, lut[index & 0xFFu] | ((uint32_t)lut[(index >> 8) & 0xFFu] << 8) |
                                     ((uint32_t)lut[(index >> 16) & 0xFFu] << 16) |
                                     ((uint32_t)lut[index >> 24] << 24));
    }
    return seen;
}
#endif

/* The 4-bit path from element 0, by chunks; returns where it stopped (the start of a chunk
 * holding a value outside [-8, 7], or the end of the last 8 whole elements). */
static int32_t q4_add_nibbles(int32_t size, const int8_t *input_a, const int8_t *input_b,
                              int8_t *output, const uint8_t *lut)
{
    int32_t done = 0;
    while (size - done >= 8) {
        const int32_t end = size - done < Q4_DSP_CHUNK ? size & ~7 : done + Q4_DSP_CHUNK;
        if (q4_add_nibble_run(input_a, input_b, output, lut, done, end) & 0xF0F0F0F0u) {
            return done;
        }
        done = end;
    }
    return done;
}

int32_t q4_add_s8_dsp_get_buffer_size(void)
{
    return Q4_DSP_TABLE_BYTES;
}

void q4_add_s8_dsp(const q4_add_params *params, int32_t size, const int8_t *input_a,
                   const int8_t *input_b, int8_t *output, int32_t *scratch)
{
    int32_t done = 0;
    if (size >= 8 * Q4_DSP_TABLE_BYTES) { /* the table pays for itself */
        uint8_t *table = (uint8_t *)scratch;
        q4_add_build_table(params, table);
        done = q4_add_nibbles(size, input_a, input_b, output, table);
    }
    q4_add_words(params, done, size, input_a, input_b, output);
}

#else /* no DSP extension: the portable kernel (scratch unused) */

int32_t q4_add_s8_dsp_get_buffer_size(void)
{
    return 0;
}

void q4_add_s8_dsp(const q4_add_params *params, int32_t size, const int8_t *input_a,
                   const int8_t *input_b, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_add_s8(params, size, input_a, input_b, output);
}

#endif
