/*
 * q4_conv_transpose.h - 2-D transposed convolution (docs/integer-spec.md, conv_transpose), the
 * decoder's up-sampling layer, with INT4 weights stored and packed as conv2d's.
 *
 * The code generator copies this header only for models that use the op. Include q4_packed.h
 * first to get the packed-activation forms as well.
 */
#ifndef Q4_CONV_TRANSPOSE_H
#define Q4_CONV_TRANSPOSE_H

#include <stdint.h>

#include "q4_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Weights [O, kh, kw, I] packed per output channel (K = kh*kw*I), bias [O]; the q4_conv_params
 * fields as conv2d's (pad_top / pad_left crop the full output). Output pixel (oy, ox) reads input
 * (iy, ix) through tap (ky, kx) when oy + pad_top - ky = iy * stride_h (likewise for x) with
 * (iy, ix) inside the input; a pixel no tap reaches holds the requantized bias.
 * filter->h/w = kernel size, filter->c = I = input->c; output->c = O. */
void q4_conv_transpose_s4(const q4_conv_params *params, const q4_quant_params *quant,
                          const q4_dims *input_dims, const int8_t *input,
                          const q4_dims *filter_dims, const uint8_t *filter,
                          const int32_t *bias, const q4_dims *output_dims, int8_t *output);

/* Multi-term form (dual INT4 weights and/or a residual-quantized input), as q4_conv2d_s4_terms. */
void q4_conv_transpose_s4_terms(const q4_conv_params *params, const q4_terms_params *terms,
                                const q4_dims *input_dims, const int8_t *const *inputs,
                                const q4_dims *filter_dims, const uint8_t *const *filters,
                                const int32_t *bias, const q4_dims *output_dims, int8_t *output);

#ifdef Q4_PACKED_H
void q4_conv_transpose_s4_p4(const q4_conv_params *params, const q4_quant_params *quant,
                             const q4_dims *input_dims, q4_src input,
                             const q4_dims *filter_dims, const uint8_t *filter,
                             const int32_t *bias, const q4_dims *output_dims, q4_dst output);

void q4_conv_transpose_s4_terms_p4(const q4_conv_params *params, const q4_terms_params *terms,
                                   const q4_dims *input_dims, const q4_src *inputs,
                                   const q4_dims *filter_dims, const uint8_t *const *filters,
                                   const int32_t *bias, const q4_dims *output_dims,
                                   q4_dst output);
#endif

#ifdef __cplusplus
}
#endif

#endif /* Q4_CONV_TRANSPOSE_H */
