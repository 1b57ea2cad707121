/*
 * q4_fully_connected_s4_armv6m.c - fully connected layer, INT4 packed weights, int8 activations,
 * for ARMv6-M cores (Cortex-M0/M0+). Bit-exact with q4_fully_connected_s4; plain C99 for any core.
 *
 * Each weight is used once, so nothing is unpacked: a packed byte is read as offset binary,
 * c = b ^ 0x88 = u0 + 16 * u1 with u = w + 8 in [0, 15], and with x' = x - z_x
 *     x'0 * u0 + x'1 * u1 = x'0 * c + u1 * (x'1 - 16 * x'0),
 * so two MACs cost two MULS and one shift (u1 = c >> 4). The input is prepared once per call as
 * int16 pairs (x'0, x'1 - 16 * x'0), |x'| <= 255; sum(x' * w) = sum(x' * u) - 8 * sum(x'). Two
 * rows share each input pair. Sums are uint32 (modulo 2^32): exact once the result fits int32, which the
 * generator's accumulator bound guarantees.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_armv6m.h"

/* Scratch: the input pairs, 4 bytes per two inputs. */
int32_t q4_fully_connected_s4_armv6m_get_buffer_size(int32_t input_size)
{
    return 4 * ((input_size + 1) / 2);
}

static uint32_t q4_fc_row_pair(const uint8_t *row0, const uint8_t *row1, const int16_t *pairs,
                               int32_t n_bytes, uint32_t *sum1)
{
    uint32_t acc0 = 0u, acc1 = 0u;
    int32_t j;
    for (j = 0; j < n_bytes; ++j, pairs += 2) {
        const uint32_t c0 = row0[j] ^ 0x88u, c1 = row1[j] ^ 0x88u;
        const uint32_t x0 = (uint32_t)(int32_t)pairs[0], d = (uint32_t)(int32_t)pairs[1];
        acc0 += c0 * x0 + (c0 >> 4) * d;
        acc1 += c1 * x0 + (c1 >> 4) * d;
    }
    *sum1 = acc1;
    return acc0;
}

void q4_fully_connected_s4_armv6m(const q4_fc_params *params, const q4_quant_params *quant,
                                  int32_t input_size, const int8_t *input,
                                  const uint8_t *filter, const int32_t *bias,
                                  int32_t output_size, int8_t *output, int32_t *scratch)
{
    const int32_t row_bytes = (input_size + 1) / 2;
    int16_t *const pairs = (int16_t *)(void *)scratch;
    uint32_t offset = 0u; /* 8 * sum(x') */
    int32_t j, o;

    for (j = 0; j < row_bytes; ++j) {
        const int32_t x0 = input[2 * j] - params->input_zp;
        const int32_t x1 = 2 * j + 1 < input_size ? input[2 * j + 1] - params->input_zp : 0;
        pairs[2 * j] = (int16_t)x0;
        pairs[2 * j + 1] = (int16_t)(x1 - 16 * x0);
        offset += 8u * (uint32_t)(x0 + x1);
    }
    for (o = 0; o < output_size; o += 2) {
        const uint8_t *row0 = filter + o * row_bytes;
        const int32_t last = o + 1 == output_size; /* an odd last row pairs with itself */
        uint32_t sum1;
        const uint32_t sum0 = q4_fc_row_pair(row0, last ? row0 : row0 + row_bytes, pairs,
                                             row_bytes, &sum1);
        output[o] = q4_armv6m_requantize_clamp(
            q4_armv6m_int32((uint32_t)bias[o] + sum0 - offset), quant->multiplier[o],
            quant->shift[o], params->output_zp, params->act_min, params->act_max);
        if (!last) {
            output[o + 1] = q4_armv6m_requantize_clamp(
                q4_armv6m_int32((uint32_t)bias[o + 1] + sum1 - offset), quant->multiplier[o + 1],
                quant->shift[o + 1], params->output_zp, params->act_min, params->act_max);
        }
    }
}
