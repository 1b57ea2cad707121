/*
 * q4_softmax.h - softmax along one axis of a channels-last tensor (docs/integer-spec.md, softmax).
 * The tensor is viewed as [outer, n, inner]; along each line of n elements, with m = max_j x_j:
 *   e_j = table[m - x_j]       (table[d] = round(2^15 exp(-d S_x)), table[0] >= 1)
 *   y_j = clamp(output_zp + (e_j * steps + floor(sum_k e_k / 2)) / sum_k e_k, qmin, qmax)
 * in unsigned 32-bit arithmetic (e_j <= 2^15, steps < 2^16, n < 2^16: no overflow); steps is
 * round(1 / S_y), the output codes per unit of probability.
 *
 * The code generator copies this header only for models that use the op. Include q4_packed.h
 * first to get the packed-activation form as well.
 */
#ifndef Q4_SOFTMAX_H
#define Q4_SOFTMAX_H

#include <stdint.h>

#include "q4_kernels.h"

typedef struct {
    int32_t outer;
    int32_t n;
    int32_t inner;
    const int32_t *table; /* 2^input_bits entries */
    int32_t steps;
    int32_t output_zp;
    int32_t qmin;
    int32_t qmax;
} q4_softmax_params;

void q4_softmax_s8(const q4_softmax_params *params, const int8_t *input, int8_t *output);

#ifdef Q4_PACKED_H
void q4_softmax_p4(const q4_softmax_params *params, q4_src input, q4_dst output);
#endif

#endif /* Q4_SOFTMAX_H */
