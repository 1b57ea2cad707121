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

/* conv2d, DSP, 4-bit activations (input values in [-8, 7]): like q4_conv2d_s4_dsp, but two
 * output channels share each 16-bit weight (-w_a + w_b * 2^11), so one SMLAD does 4 MACs; the
 * low field is drained every 16 products. K > 16383 takes the 8-bit path. Scratch: 64 +
 * 25 * ceil8(K) bytes (K <= 16383). */
int32_t q4_conv2d_s4_a4_dsp_get_buffer_size(const q4_dims *filter_dims);
void q4_conv2d_s4_a4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                         const q4_dims *input_dims, const int8_t *input,
                         const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                         const q4_dims *output_dims, int8_t *output, int32_t *scratch);

/* conv2d, MVE: weights of up to 16 output channels unpacked once per call into int8 (z_x folded
 * into the bias), im2col of 4 output pixels (int8, padding = z_x), a 2-channel x 4-pixel
 * VMLADAVA kernel, requantization of 4 pixels per vector. With B = min(O rounded up to even,
 * 16), scratch: 16 * B + (B + 6) * ceil16(K) + 16 bytes. */
int32_t q4_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims, const q4_dims *output_dims);
void q4_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch);

/* add, DSP: 4 elements per step, SMLAWB/SMLAWT on int16 pairs (exact products), SMMLA for the
 * shift, USAT16 and a bytewise UQSUB8 clamp; when both inputs hold int4 values, a 256-byte table
 * indexed by the two nibbles. Scratch: 256 bytes (the table). */
int32_t q4_add_s8_dsp_get_buffer_size(void);
void q4_add_s8_dsp(const q4_add_params *params, int32_t size, const int8_t *input_a,
                   const int8_t *input_b, int8_t *output, int32_t *scratch);

/* add, MVE: 16 elements per step in int32 lanes (VMLA, VSHL, saturating narrows); when both
 * inputs hold int4 values, a 256-byte table indexed by the two nibbles (VSLI + byte gather).
 * Scratch: 256 bytes (the table). */
int32_t q4_add_s8_mve_get_buffer_size(void);
void q4_add_s8_mve(const q4_add_params *params, int32_t size, const int8_t *input_a,
                   const int8_t *input_b, int8_t *output, int32_t *scratch);

/* fully_connected, DSP: the input widened once to int16 pairs of x - z_x, 8 weights per packed
 * word unpacked by SXTB16 into 16 * w pairs, 4 SMLAD per 8 MACs. input_size <= Q4_OPT_MAX_K.
 * Scratch: 2 * ceil8(input_size) bytes. */
int32_t q4_fully_connected_s4_dsp_get_buffer_size(int32_t input_size);
void q4_fully_connected_s4_dsp(const q4_fc_params *params, const q4_quant_params *quant,
                               int32_t input_size, const int8_t *input, const uint8_t *filter,
                               const int32_t *bias, int32_t output_size, int8_t *output,
                               int32_t *scratch);

/* fully_connected, MVE: the input copied once, zero-padded; per row VMLADAVA over 32 weights per
 * vector load, z_x folded through the row sum (VADDVA). input_size <= Q4_OPT_MAX_K.
 * Scratch: ceil32(input_size) bytes. */
int32_t q4_fully_connected_s4_mve_get_buffer_size(int32_t input_size);
void q4_fully_connected_s4_mve(const q4_fc_params *params, const q4_quant_params *quant,
                               int32_t input_size, const int8_t *input, const uint8_t *filter,
                               const int32_t *bias, int32_t output_size, int8_t *output,
                               int32_t *scratch);

/* Multi-term fully_connected (any T = n_inputs * n_weights <= 4), MVE: the inputs copied once,
 * zero-padded; per row and 32 weights one VLD2 per input shared by the weight tensors, VMLADAVA
 * per term, VADDVA per tensor; the exact multi-term requantization. input_size <= Q4_OPT_MAX_K.
 * Scratch: 2 * ceil32(input_size) bytes. */
int32_t q4_fully_connected_s4_terms_mve_get_buffer_size(int32_t input_size);
void q4_fully_connected_s4_terms_mve(const q4_fc_params *params, const q4_terms_params *terms,
                                     int32_t input_size, const int8_t *const *inputs,
                                     const uint8_t *const *filters, const int32_t *bias,
                                     int32_t output_size, int8_t *output, int32_t *scratch);

/* depthwise_conv2d, DSP: 3x3 kernels with stride_w 1 into rows of > 4 pixels (or 2 into rows of
 * >= 8 pixels): input rows
 * widened once per 4 channels into per-channel int16 rows, SMLAD of tap pairs for two output
 * pixels, USAT requantization;
 * other kernels: weights unpacked once to int16 pairs of channels (c, c + 2), z_x folded into the
 * bias, per tap one word of 4 channels, SXTB16 and SMLABB/SMLATT. filter_dims->c = C.
 * Scratch: G = 4 * ceil4(C) + 8 * kh * kw + 2 * kh * kw * ceil4(C) bytes, or
 * max(G, 4 * ceil4(C) + 2008) when kh * kw = 9. */
int32_t q4_depthwise_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims);
void q4_depthwise_conv2d_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                                const q4_dims *input_dims, const int8_t *input,
                                const q4_dims *filter_dims, const uint8_t *filter,
                                const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                                int32_t *scratch);

/* depthwise_conv2d, MVE: weights unpacked once to int8 [tap][C], z_x folded into the bias,
 * 8 channels per step in int16 lanes (VMUL.I16 + VADD.I16 per tap, widened every 31 taps),
 * vector requantization; 3x3 layers (stride_w 1 or 2, unless rows are narrow, C >= 32 and every
 * shift is above 32): per-channel int16 input rows widened 8 channels at a time, VMLA by the 9
 * scalar weights over 8 output pixels.
 * Scratch: G = 12 * ceil8(C) + 8 * kh * kw + kh * kw * ceil8(C) bytes, or max(G, 7328) when
 * kh * kw = 9. */
int32_t q4_depthwise_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims);
void q4_depthwise_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                                const q4_dims *input_dims, const int8_t *input,
                                const q4_dims *filter_dims, const uint8_t *filter,
                                const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                                int32_t *scratch);

/* Multi-term conv2d (dual weights and/or residual input, q4_conv2d_s4_terms), DSP: the weight
 * tensors' rows of up to 32 (tensor, channel) pairs unpacked once per call into int16 pairs, z_i
 * folded per input, im2col of 4 pixels per input, the 2-row x 4-pixel SMLAD kernel once per
 * input, one SMULL/SMLAL requantization of the T accumulators. K <= Q4_OPT_MAX_K.
 * Scratch: 896 + 81 * ceil8(K) bytes. */
int32_t q4_conv2d_s4_terms_dsp_get_buffer_size(const q4_dims *filter_dims);
void q4_conv2d_s4_terms_dsp(const q4_conv_params *params, const q4_terms_params *terms,
                            const q4_dims *input_dims, const int8_t *const *inputs,
                            const q4_dims *filter_dims, const uint8_t *const *filters,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                            int32_t *scratch);

/* Multi-term conv2d, MVE: as the DSP variant with int8 rows, 16-byte interleaved columns and a
 * 2-row x 4-pixel VMLADAVA kernel. K <= Q4_OPT_MAX_K. Scratch: 896 + 41 * ceil16(K) bytes. */
int32_t q4_conv2d_s4_terms_mve_get_buffer_size(const q4_dims *filter_dims);
void q4_conv2d_s4_terms_mve(const q4_conv_params *params, const q4_terms_params *terms,
                            const q4_dims *input_dims, const int8_t *const *inputs,
                            const q4_dims *filter_dims, const uint8_t *const *filters,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                            int32_t *scratch);

/* Multi-term depthwise_conv2d (dual weights and/or residual input, q4_depthwise_conv2d_s4_terms,
 * channel multiplier 1), DSP: 3x3 kernels with stride_w 1 (or 2 into rows of >= 8 pixels) widen
 * each input's rows once per 4 channels into int16 rows and run the single-term kernel's fused
 * 4-output SMLAD groups once per term; other kernels SMLABB/SMLATT per tap and 4 channels (both
 * weight tensors from one activation load). One SMULL/SMLAL requantization of the T accumulators.
 * Scratch: G = 1920 + 136 * kh * kw bytes, or max(G, 5664) when kh * kw = 9. */
int32_t q4_depthwise_conv2d_s4_terms_dsp_get_buffer_size(const q4_dims *filter_dims);
void q4_depthwise_conv2d_s4_terms_dsp(const q4_conv_params *params, const q4_terms_params *terms,
                                      const q4_dims *input_dims, const int8_t *const *inputs,
                                      const q4_dims *filter_dims, const uint8_t *const *filters,
                                      const int32_t *bias, const q4_dims *output_dims,
                                      int8_t *output, int32_t *scratch);

/* Multi-term depthwise_conv2d, MVE: 3x3 kernels at stride 1 or 2 (both directions) widen each
 * input's pixels once per 8 channels and tile into int16 planes and run the single-term plane
 * filter once per term; other kernels (and rows of < 8 outputs) per pixel, 8 channels per step
 * in int16 lanes. Vector requantization of the T accumulators (VQDMULH, low-word carries by VHADD,
 * VRSHL). Scratch: G = 1408 + 8 * kh * kw + (36 + 2 * kh * kw) * ceil8(C) bytes, or
 * max(G, 9408) when kh * kw = 9. */
int32_t q4_depthwise_conv2d_s4_terms_mve_get_buffer_size(const q4_dims *filter_dims);
void q4_depthwise_conv2d_s4_terms_mve(const q4_conv_params *params, const q4_terms_params *terms,
                                      const q4_dims *input_dims, const int8_t *const *inputs,
                                      const q4_dims *filter_dims, const uint8_t *const *filters,
                                      const int32_t *bias, const q4_dims *output_dims,
                                      int8_t *output, int32_t *scratch);

/* ---- ARMv6-M (Cortex-M0/M0+): no DSP; plain C99 (inline assembly in the hot loop when built
 * for ARMv6-M), correct on any core; the generator also selects them for rv32imc, which has no
 * SIMD either. Names end in _armv6m; primitives in q4_armv6m.h. ---- */

/* conv2d, ARMv6-M: weights of 8 output channels unpacked once per call into packed pairs
 * w_a + w_b * 2^16 (z_x folded into the bias), im2col of one pixel as x + 128, one LDRB and 4
 * MULS per K-index (8 MACs), drained every 16 indices. Scratch: 32 + 17 * ceil16(K) bytes. */
int32_t q4_conv2d_s4_armv6m_get_buffer_size(const q4_dims *filter_dims);
void q4_conv2d_s4_armv6m(const q4_conv_params *params, const q4_quant_params *quant,
                         const q4_dims *input_dims, const int8_t *input,
                         const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                         const q4_dims *output_dims, int8_t *output, int32_t *scratch);

/* conv2d, ARMv6-M, 4-bit activations (input values in [-8, 7]): as q4_conv2d_s4_armv6m with the
 * column holding x + 8, so the packed halves are drained every 256 K-indices instead of 16.
 * Scratch: 32 + 17 * ceil16(K) bytes. */
int32_t q4_conv2d_s4_a4_armv6m_get_buffer_size(const q4_dims *filter_dims);
void q4_conv2d_s4_a4_armv6m(const q4_conv_params *params, const q4_quant_params *quant,
                            const q4_dims *input_dims, const int8_t *input,
                            const q4_dims *filter_dims, const uint8_t *filter,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                            int32_t *scratch);

/* depthwise_conv2d, ARMv6-M: weights unpacked once to int32 [C][kh * kw], z_x folded into the
 * bias of interior windows, taps read through a table of input offsets, requantization without
 * a long multiply. filter_dims->c = C. Scratch: 4 * C + 4 * kh * kw + 4 * kh * kw * C bytes. */
int32_t q4_depthwise_conv2d_s4_armv6m_get_buffer_size(const q4_dims *filter_dims);
void q4_depthwise_conv2d_s4_armv6m(const q4_conv_params *params, const q4_quant_params *quant,
                                   const q4_dims *input_dims, const int8_t *input,
                                   const q4_dims *filter_dims, const uint8_t *filter,
                                   const int32_t *bias, const q4_dims *output_dims,
                                   int8_t *output, int32_t *scratch);

/* fully_connected, ARMv6-M: weights read packed as offset binary (b ^ 0x88), the input prepared
 * once as int16 pairs (x'0, x'1 - 16 * x'0) with x' = x - z_x, so a weight byte costs two MULS;
 * two rows per input pass. Scratch: 4 * ceil(input_size / 2) bytes. */
int32_t q4_fully_connected_s4_armv6m_get_buffer_size(int32_t input_size);
void q4_fully_connected_s4_armv6m(const q4_fc_params *params, const q4_quant_params *quant,
                                  int32_t input_size, const int8_t *input,
                                  const uint8_t *filter, const int32_t *bias,
                                  int32_t output_size, int8_t *output, int32_t *scratch);

/* Multi-term fully_connected (any T = n_inputs * n_weights <= 4), DSP: each input widened once
 * to int16 pairs of x - z_x; per row and packed word of each weight tensor four AND-with-shift
 * unpacks shared by the inputs, SMLAD per (input, tensor); the exact multi-term requantization.
 * input_size <= Q4_OPT_MAX_K. Scratch: 4 * ceil8(input_size) bytes. */
int32_t q4_fully_connected_s4_terms_dsp_get_buffer_size(int32_t input_size);
void q4_fully_connected_s4_terms_dsp(const q4_fc_params *params, const q4_terms_params *terms,
                                     int32_t input_size, const int8_t *const *inputs,
                                     const uint8_t *const *filters, const int32_t *bias,
                                     int32_t output_size, int8_t *output, int32_t *scratch);

/* global_avgpool, DSP: per 8 (then 4) channels and pixel one word and two SXTAB16 into int16
 * pair sums, widened every 256 pixels; z_x subtracted once (pixels * z_x). The portable
 * signature; no scratch. */
void q4_global_avgpool_s8_dsp(const q4_pool_params *params, const q4_dims *input_dims,
                              const int8_t *input, int8_t *output);

/* conv_transpose (q4_conv_transpose.h), DSP: per output phase of the stride a stride-1
 * correlation with the phase's sub-kernel (K_p = ceil(kh / sh) * ceil(kw / sw) * I at most),
 * its weights gathered and unpacked per 16 output channels into int16 pairs (z_x folded into the
 * bias), im2col of 4 output pixels of a phase row, the 2-channel x 4-pixel SMLAD kernel of
 * conv2d. Scratch: 64 + 41 * ceil8(K) bytes. */
int32_t q4_conv_transpose_s4_dsp_get_buffer_size(const q4_dims *filter_dims);
void q4_conv_transpose_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                              const q4_dims *input_dims, const int8_t *input,
                              const q4_dims *filter_dims, const uint8_t *filter,
                              const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                              int32_t *scratch);

/* conv_transpose, Helium: the phases as in _dsp, weights unpacked to int8 per 16 output
 * channels, im2col of 4 pixels interleaved per vector, the 2-channel x 4-pixel VMLADAVA kernel
 * of conv2d, VQDMULH requantization. Scratch: 16 + 22 * ceil16(K) bytes. */
int32_t q4_conv_transpose_s4_mve_get_buffer_size(const q4_dims *filter_dims);
void q4_conv_transpose_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                              const q4_dims *input_dims, const int8_t *input,
                              const q4_dims *filter_dims, const uint8_t *filter,
                              const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                              int32_t *scratch);

/* ---- Pooling, lut, mul and concat (docs/kernels.md, "Pooling, lut, mul and concat
 * kernels"): the portable signatures (q4_lut_s8_a4_dsp adds a scratch buffer). ---- */
/* maxpool, DSP: the window clipped once per output pixel, channels in blocks of 32/16/8/4 held
 * in registers, per tap one word load and SSUB8 + SEL per 4 channels. No scratch. */
void q4_maxpool_s8_dsp(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output);
/* maxpool, MVE: as _dsp with blocks of 64/32/16 channels, VLDRB + VMAX.S8 per 16 channels and
 * tap, a tail-predicated vector for the last C % 16. No scratch. */
void q4_maxpool_s8_mve(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output);
/* avgpool, DSP: the window clipped once per output pixel, per tap and 4 channels one word and
 * two SXTAB16 into int16 pair sums, MLA + SMMLA + ASR + USAT requantization (19 <= shift <= 54,
 * windows of <= 256 taps; else portable). No scratch. */
void q4_avgpool_s8_dsp(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output);
/* avgpool, MVE: 8 channels per VLDRB.S16 + VADD per tap, VQDMULH + VRSHL requantization of the
 * widened lanes (shift >= 18, windows of <= 256 taps; else portable). No scratch. */
void q4_avgpool_s8_mve(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, const q4_dims *output_dims, int8_t *output);
/* lut, DSP: the table addressed from its entry of code 0, LDRSB + LDRB + STRB per element.
 * No scratch. */
void q4_lut_s8_dsp(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
                   int8_t *output);
/* lut, DSP, inputs of at most 4 bits: a table of 256 output pairs indexed by two nibbles built
 * in the scratch, two LDRH per 4 elements (tensors of >= 1024 elements; else as _dsp).
 * Scratch: 512 bytes. */
int32_t q4_lut_s8_a4_dsp_get_buffer_size(void);
void q4_lut_s8_a4_dsp(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
                      int8_t *output, int32_t *scratch);
/* lut, MVE: 16 elements per VLDRB, VADD (the index) and one byte gather. No scratch. */
void q4_lut_s8_mve(const int8_t *table, int32_t input_min, int32_t size, const int8_t *input,
                   int8_t *output);
/* concat, DSP: per input, a word copy (bytewise SSUB8/SEL clamp when narrower than int8) or
 * MLA + SMMLA + ASR + USAT requantization (10 <= shift <= 54; else portable). No scratch. */
void q4_concat_s8_dsp(const q4_concat_params *params, int32_t rows, const int8_t *const *inputs,
                      int8_t *output);
/* concat, MVE: per input, a 16-byte copy (VMAX/VMIN clamp) or VQDMULH + VRSHL requantization of
 * 4 int32 lanes (shift >= 10; else portable). No scratch. */
void q4_concat_s8_mve(const q4_concat_params *params, int32_t rows, const int8_t *const *inputs,
                      int8_t *output);
#ifdef Q4_ELEMENTWISE_H /* q4_mul_params: include q4_elementwise.h first */
/* mul, DSP: 4 elements per word, SXTAB16 pairs of x - z, SMULBB/SMULTT, SMMLA + ASR + USAT
 * requantization (33 <= shift <= 54; else portable), bytewise clamp. No scratch. */
void q4_mul_s8_dsp(const q4_mul_params *params, int32_t rows, int32_t channels,
                   int32_t b_row_step, const int8_t *input_a, const int8_t *input_b,
                   int8_t *output);
/* mul, MVE: 4 int32 lanes per step, VMUL, VQDMULH + VRSHL requantization (shift >= 32; else
 * portable), VMAX/VMIN, VSTRB.32. No scratch. */
void q4_mul_s8_mve(const q4_mul_params *params, int32_t rows, int32_t channels,
                   int32_t b_row_step, const int8_t *input_a, const int8_t *input_b,
                   int8_t *output);
#endif

/* ---- Gather (docs/kernels.md, "Gather (and copies)"): the portable signature, no scratch.
 * q4_gather_params: include q4_gather.h first. ---- */
#ifdef Q4_GATHER_H
/* gather, DSP: runs of consecutive indices copied by LDM/STM or words; ShuffleNet's two-way
 * interleave by UXTB16 + PKH repacking of two words; other tables 4 bytes per word from four
 * LDRB with offsets held across the outer slices. No scratch. */
void q4_gather_s8_dsp(const q4_gather_params *params, const int8_t *input, int8_t *output);
/* gather, MVE: short runs (or outputs of at most 64 bytes per slice) by byte gathers with offset
 * vectors built once per call, slices grouped so a group's output is a multiple of 16 bytes;
 * longer runs by whole vectors (128 bytes per step). No scratch. */
void q4_gather_s8_mve(const q4_gather_params *params, const int8_t *input, int8_t *output);
#endif

#ifdef __cplusplus
}
#endif

#endif /* Q4_KERNELS_OPT_H */
