/*
 * q4_kernels_opt.h - architecture-optimised variants of the q4sdk kernels.
 *
 * Every variant has the signature of its portable kernel (q4_kernels.h) plus a scratch buffer,
 * and produces the same bits (docs/integer-spec.md). Names end in the instruction set used:
 *   _dsp  Arm DSP extension (SIMD32: SMLAD, SXTB16; Cortex-M4, M7, M33, M55)
 *   _mve  Arm M-profile Vector Extension, Helium (Cortex-M55, M85)
 * A variant compiled for a core without its extension falls back to the portable kernel, so
 * every symbol links everywhere; docs/kernels.md gives the dispatch rule.
 *
 * Scratch: the caller passes `scratch`, 4-byte aligned, of at least *_get_buffer_size() bytes,
 * used only during the call (it may be shared with other layers' scratch). Nothing allocates.
 * The input and filter may be unaligned (the cores' default unaligned word access is used).
 *
 * Limits beyond those of q4_kernels.h: K = kh * kw * I <= Q4_OPT_MAX_K (the accumulators hold
 * 16 * sum(x * w) exactly); larger layers must use the portable kernel. The dispatch rule is in
 * docs/kernels.md.
 */
#ifndef Q4_KERNELS_OPT_H
#define Q4_KERNELS_OPT_H

#include <stdint.h>

#include "q4_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest K = kh * kw * I the optimised convolutions accept. They accumulate x * (16 * w) with
 * raw activations (z_x is folded into the bias): |x| <= 128 and |16 * w| <= 128, so the
 * accumulator stays below 2^14 * K < 2^31. */
#define Q4_OPT_MAX_K 65536

/* conv2d, DSP: weights of 16 output channels unpacked once per call into int16 pairs (z_x folded
 * into the bias), im2col of 4 output pixels widened to int16, a 2-channel x 4-pixel SMLAD
 * kernel. Scratch: 64 + 41 * ceil8(K) bytes. */
int32_t q4_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims);
void q4_conv2d_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch);

/* conv2d, MVE: im2col of 4 output pixels (int8, padding = z_x), VMLADAVA over 32 weights
 * unpacked per vector load, z_x folded into a per-channel bias, requantization of 4 channels
 * per vector. Scratch: 4 * O + 4 * ceil32(K) bytes. */
int32_t q4_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims,
                                         const q4_dims *output_dims);
void q4_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch);

#ifdef __cplusplus
}
#endif

#endif /* Q4_KERNELS_OPT_H */
