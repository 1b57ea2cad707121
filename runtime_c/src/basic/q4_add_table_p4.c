/* q4_add_table_p4.c - element-wise add of packed 4-bit tensors through a table.
 *
 * With both inputs and the output stored at 4 bits, the output is a function of the two input
 * nibbles: its 256 values are computed once per call with q4_add_s8's arithmetic (so the result
 * is bit-exact with it and with q4_add_p4) into two 256-byte tables in `scratch`, lo[i] = y & 15
 * and hi[i] = (y & 15) << 4, indexed by na | nb << 4. A byte pair (a, b) of packed inputs (two
 * elements each) gives the output byte lo[a & 15 | (b & 15) << 4] | hi[a >> 4 | (b & 0xF0)]: with
 * MVE 16 bytes per step (VSLI / VSRI build the indices, two byte gathers, VORR), otherwise 4
 * bytes per step. Any tensor at 8 bits: q4_add_p4.
 */
#include "q4_packed.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
#include <arm_mve.h>
#define Q4_TABLE_MVE 1
#else
#define Q4_TABLE_MVE 0

static uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void store_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
#endif

/* The add's value for a = v_a, b = v_b, as q4_add_s8 computes it. */
static int32_t add_one(const q4_add_params *params, int32_t a, int32_t b)
{
    const int32_t acc = (a - params->a_zp) * params->a_multiplier +
                        (b - params->b_zp) * params->b_multiplier;
    int32_t y = params->output_zp +
                q4_floor_shift32(acc + ((int32_t)1 << (params->shift - 1)), params->shift);
    y = y < params->act_min ? params->act_min : y;
    return y > params->act_max ? params->act_max : y;
}

void q4_add_table_p4(const q4_add_params *params, int32_t size, q4_src input_a, q4_src input_b,
                     q4_dst output, int32_t *scratch)
{
    uint8_t *const lo = (uint8_t *)scratch;
    uint8_t *const hi = lo + 256;
    const uint8_t *a = input_a.data, *b = input_b.data;
    uint8_t *y = output.data;
    const int32_t bytes = size >> 1;
    int32_t i = 0, k;

    if (input_a.bits != 4 || input_b.bits != 4 || output.bits != 4) {
        q4_add_p4(params, size, input_a, input_b, output);
        return;
    }
    for (k = 0; k < 256; ++k) {
        const uint32_t v = (uint32_t)add_one(params, (int32_t)((k & 15) ^ 8) - 8,
                                             (int32_t)((k >> 4) ^ 8) - 8) &
                           0xFu;
        lo[k] = (uint8_t)v;
        hi[k] = (uint8_t)(v << 4);
    }
#if Q4_TABLE_MVE
    for (; i + 16 <= bytes; i += 16) {
        const uint8x16_t va = vld1q_u8(a + i), vb = vld1q_u8(b + i);
        const uint8x16_t ilo = vsliq_n_u8(va, vb, 4); /* a & 15 | b << 4 */
        const uint8x16_t ihi = vsriq_n_u8(vb, va, 4); /* b & 0xF0 | a >> 4 */
        const uint8x16_t r = vorrq_u8(vldrbq_gather_offset_u8(lo, ilo),
                                      vldrbq_gather_offset_u8(hi, ihi));
        vst1q_u8(y + i, r);
    }
#else
    for (; i + 4 <= bytes; i += 4) {
        const uint32_t wa = load_u32(a + i), wb = load_u32(b + i);
        const uint32_t ilo = (wa & 0x0F0F0F0Fu) | ((wb << 4) & 0xF0F0F0F0u);
        const uint32_t ihi = ((wa >> 4) & 0x0F0F0F0Fu) | (wb & 0xF0F0F0F0u);
        store_u32(y + i,
                  (uint32_t)(lo[ilo & 0xFFu] | hi[ihi & 0xFFu]) |
                      ((uint32_t)(lo[(ilo >> 8) & 0xFFu] | hi[(ihi >> 8) & 0xFFu]) << 8) |
                      ((uint32_t)(lo[(ilo >> 16) & 0xFFu] | hi[(ihi >> 16) & 0xFFu]) << 16) |
                      ((uint32_t)(lo[ilo >> 24] | hi[ihi >> 24]) << 24));
    }
#endif
    for (; i < bytes; ++i) {
        y[i] = (uint8_t)(lo[(a[i] & 0xFu) | ((b[i] & 0xFu) << 4)] |
                         hi[(a[i] >> 4) | (b[i] & 0xF0u)]);
    }
    if (size & 1) {
        q4_nibble_set(y, size - 1, (int32_t)lo[(a[bytes] & 0xFu) | ((b[bytes] & 0xFu) << 4)]);
    }
}
