/*
 * q4_reduce_mean.h - the mean over adjacent axes of a channels-last tensor (docs/integer-spec.md,
 * reduce_mean). The tensor is viewed as [outer, n, inner]; the output is [outer, 1, inner] with
 * y[o, i] = clamp(output_zp + requantize(sum_j (x[o, j, i] - input_zp), multiplier, shift),
 * act_min, act_max); the divisor n is in the multiplier.
 *
 * The code generator copies this header only for models that use the op. Include q4_packed.h
 * first to get the packed-activation form as well.
 */
#ifndef Q4_REDUCE_MEAN_H
#define Q4_REDUCE_MEAN_H

#include <stdint.h>

#include "q4_kernels.h"

typedef struct {
    int32_t outer;
    int32_t n; /* n * 255 < 2^31 */
    int32_t inner;
    int32_t input_zp;
    int32_t output_zp;
    int32_t multiplier;
    int32_t shift;
    int32_t act_min;
    int32_t act_max;
} q4_reduce_mean_params;

void q4_reduce_mean_s8(const q4_reduce_mean_params *params, const int8_t *input, int8_t *output);

#ifdef Q4_PACKED_H
void q4_reduce_mean_p4(const q4_reduce_mean_params *params, q4_src input, q4_dst output);
#endif

#endif /* Q4_REDUCE_MEAN_H */
