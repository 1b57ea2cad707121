/*
 * q4_packed.h - activations stored packed at 4 bits (two per byte) and the portable kernels that
 * read and write them.
 *
 * Freestanding C99, allocates nothing. Storage of one tensor (docs/integer-spec.md, "Packed
 * activation storage"): its elements in channels-last flat order; with 4-bit storage element i
 * lives in byte i >> 1, the LOW nibble first (the order of the packed INT4 weights), as the low 4
 * bits of its two's complement value, and reads back sign-extended (every q4 activation is held in
 * [-2^(bits-1), 2^(bits-1) - 1], so 2- to 4-bit tensors fit a nibble). A tensor of n elements takes
 * ceil(n / 2) bytes; the high nibble of the last byte of an odd-sized tensor is never read. With
 * 8-bit storage element i is the int8 in byte i, as in q4_kernels.h.
 *
 * Every kernel here has the semantics of the q4_kernels.h kernel of the same name without the
 * "_p4" suffix; each tensor operand is a q4_src (read) or q4_dst (written) that carries its own
 * storage width, so a packed layer may write an 8-bit tensor (e.g. the logits). Writing a 4-bit
 * element rewrites only its nibble: the other nibble of the byte is kept. Inputs and outputs must
 * not overlap.
 */
#ifndef Q4_PACKED_H
#define Q4_PACKED_H

#include <stdint.h>

#include "q4_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor read by a kernel: `bits` = 4 (two elements per byte) or 8 (one int8 per byte). */
typedef struct {
    const uint8_t *data;
    int32_t bits;
} q4_src;

/* A tensor written by a kernel, with the same storage widths as q4_src. */
typedef struct {
    uint8_t *data;
    int32_t bits;
} q4_dst;

/* Element i of a packed buffer, sign-extended from its nibble. */
static inline int32_t q4_nibble_get(const uint8_t *data, int32_t i)
{
    uint32_t b = data[i >> 1];
    uint32_t nibble = (i & 1) ? (b >> 4) : (b & 0xFu);
    return (int32_t)(nibble ^ 8u) - 8;
}

/* Stores the low 4 bits of v as element i of a packed buffer, keeping the other nibble. */
static inline void q4_nibble_set(uint8_t *data, int32_t i, int32_t v)
{
    uint32_t nibble = (uint32_t)v & 0xFu;
    uint8_t *b = data + (i >> 1);
    *b = (i & 1) ? (uint8_t)((*b & 0x0Fu) | (nibble << 4)) : (uint8_t)((*b & 0xF0u) | nibble);
}

/* An int8 element from its byte (no implementation-defined conversion). */
static inline int32_t q4_byte_get(const uint8_t *data, int32_t i)
{
    return (int32_t)((uint32_t)data[i] ^ 0x80u) - 128;
}

/* Element i of a tensor of either storage width. */
static inline int32_t q4_act_get(q4_src src, int32_t i)
{
    return src.bits == 4 ? q4_nibble_get(src.data, i) : q4_byte_get(src.data, i);
}

/* Writes element i (v already within the tensor's range) of a tensor of either storage width. */
static inline void q4_act_set(q4_dst dst, int32_t i, int32_t v)
{
    if (dst.bits == 4) {
        q4_nibble_set(dst.data, i, v);
    } else {
        dst.data[i] = (uint8_t)((uint32_t)v & 0xFFu);
    }
}

/* sum_{j < n} (x[start + j] - zp) * w[k + j]: a run of n consecutive activations against n
 * consecutive INT4 weights of a packed row. When both runs start on a byte boundary the packed
 * loop takes two elements per byte. */
static inline int32_t q4_dot_run(q4_src src, int32_t start, int32_t n, int32_t zp,
                                 const uint8_t *row, int32_t k)
{
    int32_t sum = 0, j;
    if (src.bits != 4) {
        const uint8_t *x = src.data + start;
        for (j = 0; j < n; ++j) {
            sum += (q4_byte_get(x, j) - zp) * q4_nibble_get(row, k + j);
        }
    } else if (((start | k) & 1) == 0) {
        const uint8_t *x = src.data + (start >> 1);
        const uint8_t *w = row + (k >> 1);
        const int32_t pairs = n >> 1;
        for (j = 0; j < pairs; ++j) {
            const uint32_t xb = x[j], wb = w[j];
            sum += ((int32_t)((xb & 0xFu) ^ 8u) - 8 - zp) * ((int32_t)((wb & 0xFu) ^ 8u) - 8) +
                   ((int32_t)((xb >> 4) ^ 8u) - 8 - zp) * ((int32_t)((wb >> 4) ^ 8u) - 8);
        }
        if (n & 1) {
            sum += (q4_nibble_get(src.data, start + n - 1) - zp) * q4_nibble_get(row, k + n - 1);
        }
    } else {
        for (j = 0; j < n; ++j) {
            sum += (q4_nibble_get(src.data, start + j) - zp) * q4_nibble_get(row, k + j);
        }
    }
    return sum;
}

/* Boundary conversions of the generated entry points: int8 elements <-> packed storage. */
static inline void q4_pack4(const int8_t *src, int32_t n, uint8_t *dst)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        q4_nibble_set(dst, i, src[i]);
    }
}

static inline void q4_unpack4(const uint8_t *src, int32_t n, int8_t *dst)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        dst[i] = (int8_t)q4_nibble_get(src, i);
    }
}

void q4_conv2d_s4_p4(const q4_conv_params *params, const q4_quant_params *quant,
                     const q4_dims *input_dims, q4_src input, const q4_dims *filter_dims,
                     const uint8_t *filter, const int32_t *bias, const q4_dims *output_dims,
                     q4_dst output);

void q4_depthwise_conv2d_s4_p4(const q4_conv_params *params, const q4_quant_params *quant,
                               const q4_dims *input_dims, q4_src input,
                               const q4_dims *filter_dims, const uint8_t *filter,
                               const int32_t *bias, const q4_dims *output_dims, q4_dst output);

void q4_fully_connected_s4_p4(const q4_fc_params *params, const q4_quant_params *quant,
                              int32_t input_size, q4_src input, const uint8_t *filter,
                              const int32_t *bias, int32_t output_size, q4_dst output);

void q4_conv2d_s4_terms_p4(const q4_conv_params *params, const q4_terms_params *terms,
                           const q4_dims *input_dims, const q4_src *inputs,
                           const q4_dims *filter_dims, const uint8_t *const *filters,
                           const int32_t *bias, const q4_dims *output_dims, q4_dst output);

void q4_depthwise_conv2d_s4_terms_p4(const q4_conv_params *params, const q4_terms_params *terms,
                                     const q4_dims *input_dims, const q4_src *inputs,
                                     const q4_dims *filter_dims, const uint8_t *const *filters,
                                     const int32_t *bias, const q4_dims *output_dims,
                                     q4_dst output);

void q4_fully_connected_s4_terms_p4(const q4_fc_params *params, const q4_terms_params *terms,
                                    int32_t input_size, const q4_src *inputs,
                                    const uint8_t *const *filters, const int32_t *bias,
                                    int32_t output_size, q4_dst output);

void q4_add_p4(const q4_add_params *params, int32_t size, q4_src input_a, q4_src input_b,
               q4_dst output);

void q4_concat_p4(const q4_concat_params *params, int32_t rows, const q4_src *inputs,
                  q4_dst output);

void q4_avgpool_p4(const q4_pool_params *params, const q4_dims *input_dims, q4_src input,
                   const q4_dims *output_dims, q4_dst output);

void q4_global_avgpool_p4(const q4_pool_params *params, const q4_dims *input_dims, q4_src input,
                          q4_dst output);

void q4_maxpool_p4(const q4_pool_params *params, const q4_dims *input_dims, q4_src input,
                   const q4_dims *output_dims, q4_dst output);

void q4_clamp_p4(int32_t act_min, int32_t act_max, int32_t size, q4_src input, q4_dst output);

void q4_residual_split_p4(const q4_split_params *params, int32_t size, q4_src input,
                          q4_dst output);

void q4_pad_p4(const q4_pad_params *params, const q4_dims *input_dims, q4_src input,
               const q4_dims *output_dims, q4_dst output);

/* Packed layers at the speed of the int8 kernels (q4_band_p4.c): an optimised int8 kernel of
 * q4_kernels_opt.h (the portable signature plus int32_t *scratch) run on bands of output rows,
 * their input rows unpacked into int8 staging and their output packed back. The kernel's scratch
 * is the first kernel_scratch_bytes (a multiple of 4) of `scratch`; the staging follows:
 * q4_conv_band_p4_get_buffer_size(...) bytes for `band_rows` output rows, where n_packed_inputs
 * counts the inputs stored at 4 bits and output_packed is 1 when the output is. Bit-exact with
 * the kernel on whole tensors. */
typedef void (*q4_conv_s8_kernel)(const q4_conv_params *params, const q4_quant_params *quant,
                                  const q4_dims *input_dims, const int8_t *input,
                                  const q4_dims *filter_dims, const uint8_t *filter,
                                  const int32_t *bias, const q4_dims *output_dims,
                                  int8_t *output, int32_t *scratch);
typedef void (*q4_conv_terms_s8_kernel)(const q4_conv_params *params,
                                        const q4_terms_params *terms, const q4_dims *input_dims,
                                        const int8_t *const *inputs, const q4_dims *filter_dims,
                                        const uint8_t *const *filters, const int32_t *bias,
                                        const q4_dims *output_dims, int8_t *output,
                                        int32_t *scratch);
typedef void (*q4_fc_s8_kernel)(const q4_fc_params *params, const q4_quant_params *quant,
                                int32_t input_size, const int8_t *input, const uint8_t *filter,
                                const int32_t *bias, int32_t output_size, int8_t *output,
                                int32_t *scratch);

/* Elements [start, start + n) of packed storage -> n int8, and back (other nibbles kept). */
void q4_unpack4_run(const uint8_t *src, int32_t start, int32_t n, int8_t *dst);
void q4_pack4_run(const int8_t *src, int32_t n, uint8_t *dst, int32_t start);

int32_t q4_conv_band_p4_get_buffer_size(const q4_conv_params *params, const q4_dims *input_dims,
                                        const q4_dims *filter_dims, const q4_dims *output_dims,
                                        int32_t n_packed_inputs, int32_t output_packed,
                                        int32_t band_rows);

/* conv2d or depthwise_conv2d (kernel: a single-term variant of either). */
void q4_conv_band_p4(const q4_conv_params *params, const q4_quant_params *quant,
                     const q4_dims *input_dims, q4_src input, const q4_dims *filter_dims,
                     const uint8_t *filter, const int32_t *bias, const q4_dims *output_dims,
                     q4_dst output, int32_t *scratch, q4_conv_s8_kernel kernel,
                     int32_t band_rows, int32_t kernel_scratch_bytes);

/* multi-term conv2d (kernel: a *_terms_* variant); each packed input has its own staging rows. */
void q4_conv_terms_band_p4(const q4_conv_params *params, const q4_terms_params *terms,
                           const q4_dims *input_dims, const q4_src *inputs,
                           const q4_dims *filter_dims, const uint8_t *const *filters,
                           const int32_t *bias, const q4_dims *output_dims, q4_dst output,
                           int32_t *scratch, q4_conv_terms_s8_kernel kernel, int32_t band_rows,
                           int32_t kernel_scratch_bytes);

/* fully_connected: the whole input and output are one band. */
int32_t q4_fc_band_p4_get_buffer_size(int32_t input_size, int32_t output_size,
                                      int32_t input_packed, int32_t output_packed);
void q4_fc_band_p4(const q4_fc_params *params, const q4_quant_params *quant, int32_t input_size,
                   q4_src input, const uint8_t *filter, const int32_t *bias,
                   int32_t output_size, q4_dst output, int32_t *scratch, q4_fc_s8_kernel kernel,
                   int32_t kernel_scratch_bytes);

/* add of packed tensors (q4_add_table_p4.c) through a 512-byte table in `scratch` (two nibbles
 * -> output nibble), bit-exact with q4_add_p4, which it calls when any tensor is at 8 bits. */
#define Q4_ADD_TABLE_P4_SCRATCH 512
void q4_add_table_p4(const q4_add_params *params, int32_t size, q4_src input_a, q4_src input_b,
                     q4_dst output, int32_t *scratch);

#ifdef __cplusplus
}
#endif

#endif /* Q4_PACKED_H */
