/*
 * q4_lut.h - table lookup for unary nonlinearities (sigmoid, tanh, hard-sigmoid, hard-swish,
 * leaky ReLU): y = table[x - input_min] (docs/integer-spec.md, lut). The table has one int8 entry
 * per input code (256 for an 8-bit input, 16 for a 4-bit one), already in the output's integer
 * domain, so the op is exact by construction.
 *
 * The code generator copies this header only for models that use the op. Include q4_packed.h
 * first to get the packed-activation form as well.
 */
#ifndef Q4_LUT_H
#define Q4_LUT_H

#include <stdint.h>

#include "q4_kernels.h"

void q4_lut_s8(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
               int8_t *output);

#ifdef Q4_PACKED_H
void q4_lut_p4(const int8_t *table, int32_t input_min, int32_t size, q4_src input, q4_dst output);
#endif

#endif /* Q4_LUT_H */
