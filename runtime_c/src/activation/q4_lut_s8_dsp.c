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
 *    bytes 0 and 2), two UXTB, two LDRH and one ORR make the output word, one store; 8 elements
 *    per loop step. The table is built a word (two pairs) at a time (about 400 instructions);
 *    tensors of fewer than Q4_LUT_PAIRS_MIN elements and the last size % 8 take the byte path.
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
    const uint16_t *pairs = (const uint16_t *)scratch;
    uint32_t *words = (uint32_t *)scratch; /* pairs 2j, 2j + 1 of row hi: words[8 * hi + j] */
    uint32_t y[16], low[8];
    int32_t i, n, j;
    if (size < Q4_LUT_PAIRS_MIN || input_min < -8) {
        q4_lut_bytes(table - input_min, size, input, output);
        return;
    }
    /* y[n]: the output of the code whose low nibble is n (0 for codes outside the input's range,
     * never read); pairs[lo | hi << 4] = y[lo] | y[hi] << 8 */
    for (n = 0; n < 16; ++n) {
        const int32_t x = (n ^ 8) - 8;
        y[n] = x >= input_min && x < -input_min ? t0[x] : 0u;
    }
    for (j = 0; j < 8; ++j) {
        low[j] = y[2 * j] | y[2 * j + 1] << 16;
    }
    for (n = 0; n < 16; ++n) {
        const uint32_t high = (y[n] << 8) * 0x10001u;
        uint32_t *row = words + 8 * n;
        for (j = 0; j < 8; ++j) {
            row[j] = low[j] | high;
        }
    }
    __asm__ volatile("" ::: "memory"); /* the words are read back as halfwords below */
    for (i = 0; i + 8 <= size; i += 8) {
        const uint32_t n0 = q4_load_u32(input + i) & 0x0F0F0F0Fu;
        const uint32_t n1 = q4_load_u32(input + i + 4) & 0x0F0F0F0Fu;
        const uint32_t i0 = n0 | n0 >> 4, i1 = n1 | n1 >> 4; /* bytes 0, 2: lo | hi << 4 */
        const uint32_t w0 = (uint32_t)pairs[i0 & 0xFFu] | (uint32_t)pairs[(i0 >> 16) & 0xFFu]
                                                              << 16;
        const uint32_t w1 = (uint32_t)pairs[i1 & 0xFFu] | (uint32_t)pairs[(i1 >> 16) & 0xFFu]
                                                              << 16;
        __builtin_memcpy(output + i, &w0, sizeof w0);
        __builtin_memcpy(output + i + 4, &w1, sizeof w1);
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
