/*
 * q4_add_s8_mve.c - element-wise add of two int8 tensors, for cores with Helium (MVE,
 * Cortex-M55/M85). Bit-exact with q4_add_s8.
 *
 * Scheme (docs/kernels.md), 16 elements per step:
 *  - General path: four widening VLDRB.S32 per input (elements 4j .. 4j + 3 as int32 lanes).
 *    v = (2^(s-1) - z_a m_a - z_b m_b) + a m_a + b m_b is one VMLAS and one VMLA (exact,
 *    |v| < 2^31); VSHL by -s is floor(v / 2^s). Saturating narrows (VQMOVNB/VQMOVNT) make two
 *    int16 vectors, VQADD adds z_y - act_min, unsigned saturating narrows (VQMOVUNB/VQMOVUNT)
 *    give u in [0, 255], and the clamp is act_min + min(u, act_max - act_min) by a saturating
 *    and a modular byte add with scalars. One byte scatter store (VSTRB with an offset vector)
 *    undoes the lane interleaving of the narrows. Saturation cannot change a clamped result.
 *  - 4-bit path: when both inputs hold values in [-8, 7] (the int4 activations of a W4A4 model),
 *    the output is a function of the two low nibbles. A 256-byte table of it is built with the
 *    general arithmetic (16 rows); then a block is two loads, one VSLI (the index
 *    a & 15 | b << 4), one byte gather from the table and one store. The range is checked on the
 *    fly (VMAX/VMIN accumulators, reduced per chunk of 256); a chunk with a value outside
 *    [-8, 7] is redone, with the rest of the tensor, by the general path. The table lives in the
 *    caller's scratch (256 bytes) and is built for tensors of at least 512 elements.
 *  - The last size % 16 elements: the general path with predicated 4-lane vectors.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#define Q4_MVE_TABLE_BYTES 256
#define Q4_MVE_CHUNK 256 /* elements between two range checks of the 4-bit path */

int32_t q4_add_s8_mve_get_buffer_size(void)
{
    return Q4_MVE_TABLE_BYTES;
}

/* Per-call constants of the general path. */
typedef struct {
    int32x4_t ma; /* a_multiplier in every lane */
    int32_t mb;
    int32_t offset; /* 2^(s-1) - z_a m_a - z_b m_b */
    int32_t neg_shift;
    int32_t base;  /* z_y - act_min */
    uint32_t room; /* 255 - (act_max - act_min) */
    int32_t top;   /* act_max - 255 */
} q4_add_consts;

/* floor(v / 2^s) of the 4 lanes a, b (int32). */
static inline int32x4_t q4_add_lanes(int32x4_t a, int32x4_t b, const q4_add_consts *k)
{
    const int32x4_t t = vmlasq_n_s32(a, k->ma, k->offset);
    return vshlq_r_s32(vmlaq_n_s32(t, b, k->mb), k->neg_shift);
}

/* The clamped results of u = saturate_u8(z_y - act_min + floor(v / 2^s)): act_min + min(u, W)
 * with W = act_max - act_min, computed as (u +sat (255 - W)) + (act_max - 255) modulo 256. */
static inline int8x16_t q4_add_clamp(uint8x16_t u, const q4_add_consts *k)
{
    return vreinterpretq_s8_u8(vaddq_n_u8(vqaddq_n_u8(u, (uint8_t)k->room), (uint8_t)k->top));
}

/* Saturating narrow of two int32 vectors into one int16 vector: x's lanes to the even lanes,
 * y's to the odd ones. (y, reinterpreted, is the vector VQMOVNB writes into: its other lanes are
 * overwritten by VQMOVNT, so no register has to be initialised.) */
static inline int16x8_t q4_narrow32(int32x4_t x, int32x4_t y)
{
    return vqmovntq_s32(vqmovnbq_s32(vreinterpretq_s16_s32(y), x), y);
}

/* Unsigned saturating narrow of two int16 vectors: x to the even bytes, y to the odd ones. */
static inline uint8x16_t q4_narrow16(int16x8_t x, int16x8_t y)
{
    return vqmovuntq_s16(vqmovunbq_s16(vreinterpretq_u8_s16(y), x), y);
}

/* 16 results from the 16 elements at a, b, in the byte order of q4_add_order (the lanes of
 * the four contiguous int32 loads, interleaved by the narrows). */
static inline int8x16_t q4_add_block(const int8_t *a, const int8_t *b, const q4_add_consts *k)
{
    const int16x8_t lo = q4_narrow32(q4_add_lanes(vldrbq_s32(a), vldrbq_s32(b), k),
                                     q4_add_lanes(vldrbq_s32(a + 4), vldrbq_s32(b + 4), k));
    const int16x8_t hi = q4_narrow32(q4_add_lanes(vldrbq_s32(a + 8), vldrbq_s32(b + 8), k),
                                     q4_add_lanes(vldrbq_s32(a + 12), vldrbq_s32(b + 12), k));
    return q4_add_clamp(
        q4_narrow16(vqaddq_n_s16(lo, (int16_t)k->base), vqaddq_n_s16(hi, (int16_t)k->base)), k);
}

/* Where byte i of q4_add_block's result goes: elements 0..7 (lo) are the even bytes, 8..15
 * the odd ones, each half as lanes 0, 4, 1, 5, 2, 6, 3, 7 of its two loads. */
static const uint8_t q4_add_order[16] = {0, 8, 4, 12, 1, 9, 5, 13, 2, 10, 6, 14, 3, 11, 7, 15};

/* The general path for elements [from, size). */
static void q4_add_general(const q4_add_consts *consts, int32_t from, int32_t size,
                           const int8_t *input_a, const int8_t *input_b, int8_t *output)
{
    const q4_add_consts local = *consts, *const k = &local; /* no aliasing with the stores */
    const uint8x16_t order = vld1q_u8(q4_add_order);
    const int8_t *a = input_a + from, *b = input_b + from;
    int8_t *out = output + from;
    int32_t n = size - from;

    for (; n >= 16; n -= 16, a += 16, b += 16, out += 16) {
        vstrbq_scatter_offset_s8(out, order, q4_add_block(a, b, k));
    }
    for (; n > 0; n -= 4, a += 4, b += 4, out += 4) {
        const mve_pred16_t p = vctp32q((uint32_t)n);
        int16x8_t y16 = vdupq_n_s16(0);
        uint8x16_t u = vdupq_n_u8(0);
        y16 = vqmovnbq_s32(y16, q4_add_lanes(vldrbq_z_s32(a, p), vldrbq_z_s32(b, p), k));
        u = vqmovunbq_s16(u, vqaddq_n_s16(y16, (int16_t)k->base));
        /* byte 4i of the result is lane i */
        vstrbq_p_s32(out, vreinterpretq_s32_s8(q4_add_clamp(u, k)), p);
    }
}

/* Table row for b = sx4(j): the 16 results for a = 0..7, -8..-1 (the b term is a constant). */
static void q4_add_table_row(const q4_add_consts *k, int32_t b, int8_t *row)
{
    static const int8_t a[16] = {0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1};
    const int32_t offset = k->offset + b * k->mb;
    const int32_t shift = k->neg_shift;
    const int16x8_t lo = q4_narrow32(
        vshlq_r_s32(vmlasq_n_s32(vldrbq_s32(a), k->ma, offset), shift),
        vshlq_r_s32(vmlasq_n_s32(vldrbq_s32(a + 4), k->ma, offset), shift));
    const int16x8_t hi = q4_narrow32(
        vshlq_r_s32(vmlasq_n_s32(vldrbq_s32(a + 8), k->ma, offset), shift),
        vshlq_r_s32(vmlasq_n_s32(vldrbq_s32(a + 12), k->ma, offset), shift));
    const uint8x16_t u = q4_narrow16(vqaddq_n_s16(lo, (int16_t)k->base),
                                     vqaddq_n_s16(hi, (int16_t)k->base));
    vstrbq_scatter_offset_s8(row, vld1q_u8(q4_add_order), q4_add_clamp(u, k));
}

/* The 4-bit path from element 0; returns the index where it stopped (the start of a chunk
 * holding a value outside [-8, 7], or the end of the last whole block). */
static int32_t q4_add_nibbles(int32_t size, const int8_t *input_a, const int8_t *input_b,
                              int8_t *output, const int8_t *table)
{
    const uint8_t *const lut = (const uint8_t *)table;
    int32_t done = 0;
    while (size - done >= 16) {
        const int32_t n = size - done < Q4_MVE_CHUNK ? (size - done) & ~15 : Q4_MVE_CHUNK;
        const int8_t *a = input_a + done, *b = input_b + done;
        const int8_t *const a_end = a + n;
        uint8_t *out = (uint8_t *)output + done;
        int8x16_t max = vdupq_n_s8(-8), min = vdupq_n_s8(7);
        for (; a != a_end; a += 16, b += 16, out += 16) {
            const int8x16_t va = vld1q_s8(a), vb = vld1q_s8(b);
            max = vmaxq_s8(vmaxq_s8(max, va), vb);
            min = vminq_s8(vminq_s8(min, va), vb);
            vst1q_u8(out,
                     vldrbq_gather_offset_u8(lut, vreinterpretq_u8_s8(vsliq_n_s8(va, vb, 4))));
        }
        if (vmaxvq_s8(INT8_MIN, max) > 7 || vminvq_s8(INT8_MAX, min) < -8) {
            return done;
        }
        done += n;
    }
    return done;
}

void q4_add_s8_mve(const q4_add_params *params, int32_t size, const int8_t *input_a,
                   const int8_t *input_b, int8_t *output, int32_t *scratch)
{
    q4_add_consts k;
    int32_t done = 0;
    k.ma = vdupq_n_s32(params->a_multiplier);
    k.mb = params->b_multiplier;
    /* |z| <= 128, |m| < 2^21: every term below 2^29, the sum below 2^31 */
    k.offset = ((int32_t)1 << (params->shift - 1)) - params->a_zp * params->a_multiplier -
               params->b_zp * params->b_multiplier;
    k.neg_shift = -params->shift;
    k.base = params->output_zp - params->act_min;
    k.room = (uint32_t)(255 - (params->act_max - params->act_min));
    k.top = params->act_max - 255;

    if (size >= 2 * Q4_MVE_TABLE_BYTES) { /* the table pays for itself */
        int8_t *table = (int8_t *)scratch;
        int32_t j;
        for (j = 0; j < 16; ++j) { /* row j: b = j as a signed nibble */
            q4_add_table_row(&k, j < 8 ? j : j - 16, table + 16 * j);
        }
        done = q4_add_nibbles(size, input_a, input_b, output, table);
    }
    q4_add_general(&k, done, size, input_a, input_b, output);
}

#else /* no MVE: the portable kernel (scratch unused) */

int32_t q4_add_s8_mve_get_buffer_size(void)
{
    return 0;
}

void q4_add_s8_mve(const q4_add_params *params, int32_t size, const int8_t *input_a,
                   const int8_t *input_b, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_add_s8(params, size, input_a, input_b, output);
}

#endif
