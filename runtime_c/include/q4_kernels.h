/*
 * q4_kernels.h - public interface of the q4sdk portable reference kernels.
 *
 * Freestanding C99: needs only <stdint.h> and <stddef.h>, allocates nothing, uses no libc.
 * The integer semantics are those of docs/integer-spec.md; every kernel is bit-exact with the
 * q4sdk numpy oracle.
 *
 * Conventions shared by all kernels:
 *  - Activations are int8 elements (one per byte, also for 4-bit activations), channels-last
 *    (H, W, C), one sample per call. Input and output buffers must not overlap.
 *  - INT4 weights are packed two per byte, the lower index in the LOW nibble; every output-channel
 *    row starts on a byte boundary (row stride = ceil(K / 2) bytes).
 *  - Padding on the bottom/right is implied by the output dimensions: window elements that fall
 *    outside the input are treated as padding.
 *  - The caller (the generated code) guarantees the parameter ranges of the spec: multipliers in
 *    {0} U [2^30, 2^31), shifts in [1, 62], |bias| + K * 2040 < 2^31 so int32 accumulators cannot
 *    overflow, add multipliers below 2^21 with a shift in [1, 30].
 */
#ifndef Q4_KERNELS_H
#define Q4_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Shape of one feature map (channels-last), or of a convolution kernel (h, w = kernel size,
 * c = input channels). */
typedef struct {
    int32_t h;
    int32_t w;
    int32_t c;
} q4_dims;

/* Convolution (regular and depthwise) parameters. */
typedef struct {
    int32_t input_zp;  /* input zero point; padding takes this value */
    int32_t output_zp; /* output zero point */
    int32_t stride_h;
    int32_t stride_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t act_min; /* final clamp, output integer domain */
    int32_t act_max;
} q4_conv_params;

/* Per-output-channel requantization: y = requantize(acc, multiplier[o], shift[o]). */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
} q4_quant_params;

/* Fully connected parameters. */
typedef struct {
    int32_t input_zp;
    int32_t output_zp;
    int32_t act_min;
    int32_t act_max;
} q4_fc_params;

/* Pooling parameters (avgpool, global_avgpool, maxpool). The multiplier has the window size
 * folded in; maxpool uses only the window fields. Global pooling uses only the quantization
 * fields. */
typedef struct {
    int32_t kernel_h;
    int32_t kernel_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t input_zp;
    int32_t output_zp;
    int32_t multiplier;
    int32_t shift;
    int32_t act_min;
    int32_t act_max;
} q4_pool_params;

/* Element-wise add: y = clamp(zy + floor((da*ma + db*mb + 2^(s-1)) / 2^s)). */
typedef struct {
    int32_t a_zp;
    int32_t b_zp;
    int32_t output_zp;
    int32_t a_multiplier;
    int32_t b_multiplier;
    int32_t shift;
    int32_t act_min;
    int32_t act_max;
} q4_add_params;

/* concat: n_inputs tensors of `rows` rows (pixels) of channels[i] elements each; input i is
 * requantized to the output: y = clamp(output_zp + requantize(x - input_zp[i], multiplier[i],
 * shift[i]), act_min, act_max). An input with multiplier 2^30, shift 30 and the output's zero
 * point is copied (clamped to [act_min, act_max]). */
typedef struct {
    int32_t n_inputs;
    const int32_t *channels;
    const int32_t *input_zp;
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t output_zp;
    int32_t act_min;
    int32_t act_max;
} q4_concat_params;

/* Spatial padding with a constant fill value (the tensor's zero point). */
typedef struct {
    int32_t pad_top;
    int32_t pad_left;
    int32_t fill;
} q4_pad_params;

/* Multi-term layers: dual INT4 weights and/or a residual-quantized input (two int8 tensors of the
 * same shape whose reals add up). There are T = n_inputs * n_weights accumulators, term
 * k = input * n_weights + weight, each computed like the single-term kernel with that input's
 * zero point and that weight tensor; the bias goes into term 0 only. One rounding:
 *     y = clamp(zy + floor((sum_k acc_k * multiplier[k][o] + 2^(shift[o]-1)) / 2^shift[o]))
 * with |multiplier| < 2^29 (it may be negative) and T <= 4, so the int64 sum cannot overflow. */
typedef struct {
    int32_t n_inputs;          /* 1 or 2 */
    int32_t n_weights;         /* 1 or 2 */
    int32_t input_zp[2];       /* zero point of each input (params->input_zp is not used) */
    const int32_t *multiplier; /* [T][O], row-major */
    const int32_t *shift;      /* [O] */
} q4_terms_params;

/* conv2d: weights [O, kh, kw, I] packed per output channel (K = kh*kw*I); bias [O].
 * filter->h/w = kernel size, filter->c = I = input->c; output->c = O. */
void q4_conv2d_s4(const q4_conv_params *params, const q4_quant_params *quant,
                  const q4_dims *input_dims, const int8_t *input, const q4_dims *filter_dims,
                  const uint8_t *filter, const int32_t *bias, const q4_dims *output_dims,
                  int8_t *output);

/* depthwise_conv2d (channel multiplier 1): weights [C, kh, kw] packed per channel (K = kh*kw). */
void q4_depthwise_conv2d_s4(const q4_conv_params *params, const q4_quant_params *quant,
                            const q4_dims *input_dims, const int8_t *input,
                            const q4_dims *filter_dims, const uint8_t *filter,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output);

/* fully_connected: weights [O, I] packed per output row; bias [O]. */
void q4_fully_connected_s4(const q4_fc_params *params, const q4_quant_params *quant,
                           int32_t input_size, const int8_t *input, const uint8_t *filter,
                           const int32_t *bias, int32_t output_size, int8_t *output);

/* Multi-term variants: inputs[n_inputs] share input_dims, filters[n_weights] share the layout of
 * the single-term kernel. */
void q4_conv2d_s4_terms(const q4_conv_params *params, const q4_terms_params *terms,
                        const q4_dims *input_dims, const int8_t *const *inputs,
                        const q4_dims *filter_dims, const uint8_t *const *filters,
                        const int32_t *bias, const q4_dims *output_dims, int8_t *output);
void q4_depthwise_conv2d_s4_terms(const q4_conv_params *params, const q4_terms_params *terms,
                                  const q4_dims *input_dims, const int8_t *const *inputs,
                                  const q4_dims *filter_dims, const uint8_t *const *filters,
                                  const int32_t *bias, const q4_dims *output_dims,
                                  int8_t *output);
void q4_fully_connected_s4_terms(const q4_fc_params *params, const q4_terms_params *terms,
                                 int32_t input_size, const int8_t *const *inputs,
                                 const uint8_t *const *filters, const int32_t *bias,
                                 int32_t output_size, int8_t *output);

/* add of two equally shaped tensors of `size` elements. */
void q4_add_s8(const q4_add_params *params, int32_t size, const int8_t *input_a,
               const int8_t *input_b, int8_t *output);

/* concat on the channel (last) axis: each output row is the inputs' rows side by side. */
void q4_concat_s8(const q4_concat_params *params, int32_t rows, const int8_t *const *inputs,
                  int8_t *output);

/* avgpool: padded elements contribute zero (x - zp); the divisor kh*kw is in the multiplier. */
void q4_avgpool_s8(const q4_pool_params *params, const q4_dims *input_dims, const int8_t *input,
                   const q4_dims *output_dims, int8_t *output);

/* global_avgpool: (H, W, C) -> (1, 1, C); the divisor H*W is in the multiplier. */
void q4_global_avgpool_s8(const q4_pool_params *params, const q4_dims *input_dims,
                          const int8_t *input, int8_t *output);

/* maxpool: maximum over the window elements inside the input (padding never wins). Every window
 * must contain at least one input element (pads smaller than the kernel). */
void q4_maxpool_s8(const q4_pool_params *params, const q4_dims *input_dims, const int8_t *input,
                   const q4_dims *output_dims, int8_t *output);

/* clamp: y = min(max(x, act_min), act_max). */
void q4_clamp_s8(int32_t act_min, int32_t act_max, int32_t size, const int8_t *input,
                 int8_t *output);

/* residual_split: one of the two INT4 tensors of a residual-quantized activation, from the 8-bit
 * tensor F on the fine grid S_F (docs/integer-spec.md, residual_split). With d = F - input_zp:
 *   c  = clamp(floor((d + 8) / 16) + coarse_zp, -8, 7)                    (part 0 writes X1 = c)
 *   X2 = clamp(d - 16 * (c - coarse_zp) + output_zp, -8, 7)               (part 1)
 * The floor is ((d + 8 + 256) >> 4) - 16: d >= -255, so nothing negative is shifted. */
typedef struct {
    int32_t part;      /* 0: coarse tensor X1, 1: residual tensor X2 */
    int32_t input_zp;  /* z_F */
    int32_t coarse_zp; /* z1 */
    int32_t output_zp; /* zero point of the tensor written (z1 for part 0) */
} q4_split_params;

static inline int32_t q4_residual_split_one(const q4_split_params *params, int32_t f)
{
    const int32_t d = f - params->input_zp;
    int32_t c = (((d + 8 + 256) >> 4) - 16) + params->coarse_zp;
    int32_t v;

    c = c < -8 ? -8 : (c > 7 ? 7 : c);
    if (params->part == 0) {
        return c;
    }
    v = d - 16 * (c - params->coarse_zp) + params->output_zp;
    return v < -8 ? -8 : (v > 7 ? 7 : v);
}

void q4_residual_split_s8(const q4_split_params *params, int32_t size, const int8_t *input,
                          int8_t *output);

/* pad: copies the input into the output at (pad_top, pad_left) and fills the rest. */
void q4_pad_s8(const q4_pad_params *params, const q4_dims *input_dims, const int8_t *input,
               const q4_dims *output_dims, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* Q4_KERNELS_H */
