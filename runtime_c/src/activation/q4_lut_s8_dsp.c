/*
 * q4_lut_s8_dsp.c - y = table[x - input_min] element-wise, for cores with the Arm DSP extension
 * (Cortex-M4/M7/M33/M55). Bit-exact with q4_lut_s8 (a table lookup is exact by construction).
 *
 * Scheme (docs/kernels.md, "Pooling, lut, mul and concat kernels"):
 *  - q4_lut_s8_dsp, any input width: the table is addressed from the entry of x = 0
 *    (table - input_min), so a signed byte load of x is its offset: per element LDRSB, LDRB
 *    (register offset) and STRB, 8 elements per loop step. Scratch: none.
 *  - q4_lut_s8_a4_dsp, inputs of at most 4 bits (x in [-8, 7], a table of at most 16 entries):
 *    the output of two adjacent elements is a function of their two nibbles, so a table of
 *    256 output pairs (halfwords) indexed by lo | hi << 4 is built in the scratch (512 bytes,
 *    entries for codes outside the input's range are never read). Per 4 elements: one word
 *    load, one AND (the four low nibbles), one ORR with a shifted operand (two indices in
 *    bytes 0 and 2), two UXTB, two LDRH and one ORR make the output word, one store. Tensors
 *    of fewer than Q4_LUT_PAIRS_MIN elements (the table costs about 1,000 instructions) and
 *    the last size % 4 elements take the byte path.
 */
#include "q4_lut.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"

#define Q4_LUT_PAIRS_BYTES 512 /* 256 halfword pairs */
#define Q4_LUT_PAIRS_MIN 1024  /* elements below which the pair table does not pay */

/* output[i] = t0[input[i]] for i < size, with t0 the table's entry of code 0. */
static void q4_lut_bytes(const int8_t *t0, int32_t size, const int8_t *input, int8_t *output)
{
    const uint8_t *t = (const uint8_t *)t0;
    uint8_t *y = (uint8_t *)output;
    int32_t i = 0;
    for (; i + 8 <= size; i += 8) {
        const int32_t x0 = input[i], x1 = input[i + 1], x2 = input[i + 2], x3 = input[i + 3];
        const int32_t x4 = input[i + 4], x5 = input[i + 5], x6 = input[i + 6];
        const int32_t x7 = input[i + 7];
        y[i] = t[x0];
        y[i + 1] = t[x1];
        y[i + 2] = t[x2];
        y[i + 3] = t[x3];
        y[i + 4] = t[x4];
        y[i + 5] = t[x5];
        y[i + 6] = t[x6];
        y[i + 7] = t[x7];
    }
    for (; i < size; ++i) {
        y[i] = t[input[i]];
    }
}

void q4_lut_s8_dsp(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
                   int8_t *output)
{
    q4_lut_bytes(table - input_min, size, input, output);
}

int32_t q4_lut_s8_a4_dsp_get_buffer_size(void)
{
    return Q4_LUT_PAIRS_BYTES;
}

void q4_lut_s8_a4_dsp(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
                      int8_t *output, int32_t *scratch)
{
    const uint8_t *t0 = (const uint8_t *)(table - input_min);
    uint16_t *pairs = (uint16_t *)scratch;
    int32_t i, lo, hi;
    if (size < Q4_LUT_PAIRS_MIN || input_min < -8) {
        q4_lut_bytes(table - input_min, size, input, output);
        return;
    }
    /* pairs[lo | hi << 4] = the outputs of the codes whose low nibbles are lo, hi */
    for (lo = 0; lo < 16; ++lo) {
        const int32_t xl = (lo ^ 8) - 8;
        const uint32_t yl = xl >= input_min && xl < -input_min ? t0[xl] : 0u;
        for (hi = 0; hi < 16; ++hi) {
            const int32_t xh = (hi ^ 8) - 8;
            const uint32_t yh = xh >= input_min && xh < -input_min ? t0[xh] : 0u;
            pairs[lo | hi << 4] = (uint16_t)(yl | yh << 8);
        }
    }
    for (i = 0; i + 4 <= size; i += 4) {
        const uint32_t n = q4_load_u32(input + i) & 0x0F0F0F0Fu;
        const uint32_t idx = n | n >> 4; /* bytes 0 and 2: lo | hi << 4 of each pair */
        const uint32_t y = (uint32_t)pairs[idx & 0xFFu] | (uint32_t)pairs[(idx >> 16) & 0xFFu]
                                                              << 16;
        __builtin_memcpy(output + i, &y, sizeof y);
    }
    q4_lut_bytes(table - input_min, size - i, input + i, output + i);
}

#else /* no DSP extension: the portable kernel */

void q4_lut_s8_dsp(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
                   int8_t *output)
{
    q4_lut_s8(table, input_min, size, input, output);
}

int32_t q4_lut_s8_a4_dsp_get_buffer_size(void)
{
    return 0;
}

void q4_lut_s8_a4_dsp(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
                      int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_lut_s8(table, input_min, size, input, output);
}

#endif
