/*
 * q4_gather.h - copy slices of a tensor along one axis by a constant index table: channel
 * shuffle, Slice, Split and Gather (docs/integer-spec.md, gather). The tensor (channels-last) is
 * viewed as [outer, axis_size, inner]; the output is [outer, n_index, inner] with
 * y[o, j, i] = x[o, index[j], i]. The output keeps the input's quantization, so this is a copy.
 *
 * The code generator copies this header only for models that use the op. Include q4_packed.h
 * first to get the packed-activation form as well.
 */
#ifndef Q4_GATHER_H
#define Q4_GATHER_H

#include <stdint.h>

#include "q4_kernels.h"

typedef struct {
    int32_t outer;
    int32_t axis_size;
    int32_t inner;
    int32_t n_index;
    const int32_t *index; /* each in [0, axis_size) */
} q4_gather_params;

void q4_gather_s8(const q4_gather_params *params, const int8_t *input, int8_t *output);

#ifdef Q4_PACKED_H
void q4_gather_p4(const q4_gather_params *params, q4_src input, q4_dst output);
#endif

#endif /* Q4_GATHER_H */
