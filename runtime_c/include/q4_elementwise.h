/*
 * q4_elementwise.h - element-wise ops of two tensors and per-channel tables
 * (docs/integer-spec.md, mul, addsub, lut_channel).
 *
 * The tensors are channels-last: `rows` rows (pixels) of `channels` elements. The second operand b
 * of mul / addsub has the shape of a (b_row_step = channels) or holds one value per channel, read
 * for every row (b_row_step = 0: a squeeze-excite gate, a (1, 1, C) bias).
 *
 * The code generator copies this header only for models that use one of these ops. Include
 * q4_packed.h first to get the packed-activation forms as well.
 */
#ifndef Q4_ELEMENTWISE_H
#define Q4_ELEMENTWISE_H

#include <stdint.h>

#include "q4_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* mul: y = clamp(zy + requantize((a - za) * (b - zb), multiplier, shift)). */
typedef struct {
    int32_t a_zp;
    int32_t b_zp;
    int32_t output_zp;
    int32_t multiplier;
    int32_t shift;
    int32_t act_min;
    int32_t act_max;
} q4_mul_params;

void q4_mul_s8(const q4_mul_params *params, int32_t rows, int32_t channels, int32_t b_row_step,
               const int8_t *input_a, const int8_t *input_b, int8_t *output);

/* addsub: as q4_add_s8 (q4_add_params), with signed multipliers (|m| < 2^21). */
void q4_addsub_s8(const q4_add_params *params, int32_t rows, int32_t channels, int32_t b_row_step,
                  const int8_t *input_a, const int8_t *input_b, int8_t *output);

/* lut_channel: y = table[c * table_size + x - input_min] for channel c; table_size = 2^bits. */
void q4_lut_channel_s8(const int8_t *table, int32_t input_min, int32_t table_size, int32_t rows,
                       int32_t channels, const int8_t *input, int8_t *output);

#ifdef Q4_PACKED_H
void q4_mul_p4(const q4_mul_params *params, int32_t rows, int32_t channels, int32_t b_row_step,
               q4_src input_a, q4_src input_b, q4_dst output);

void q4_addsub_p4(const q4_add_params *params, int32_t rows, int32_t channels,
                  int32_t b_row_step, q4_src input_a, q4_src input_b, q4_dst output);

void q4_lut_channel_p4(const int8_t *table, int32_t input_min, int32_t table_size, int32_t rows,
                       int32_t channels, q4_src input, q4_dst output);
#endif

#ifdef __cplusplus
}
#endif

#endif /* Q4_ELEMENTWISE_H */
