/* q4_fully_connected_s4_terms.c - multi-term fully connected layer (dual INT4 weights and/or
 * residual-quantized input), int8 activations (reference). */
#include "q4_kernels.h"
#include "q4_fixedpoint.h"

void q4_fully_connected_s4_terms(const q4_fc_params *params, const q4_terms_params *terms,
                                 int32_t input_size, const int8_t *const *inputs,
                                 const uint8_t *const *filters, const int32_t *bias,
                                 int32_t output_size, int8_t *output)
{
    const int32_t row_bytes = (input_size + 1) / 2;
    const int32_t n_terms = terms->n_inputs * terms->n_weights;
    int32_t o, i, t;

    for (o = 0; o < output_size; ++o) {
        int32_t acc[4];
        for (t = 0; t < n_terms; ++t) {
            const int32_t in_index = t / terms->n_weights;
            const int8_t *input = inputs[in_index];
            const int32_t zp = terms->input_zp[in_index];
            const uint8_t *row = filters[t % terms->n_weights] + o * row_bytes;
            int32_t sum = t == 0 ? bias[o] : 0;
            for (i = 0; i < input_size; ++i) {
                sum += ((int32_t)input[i] - zp) * q4_int4_at(row, i);
            }
            acc[t] = sum;
        }
        output[o] = q4_requantize_terms_clamp(acc, n_terms, terms->multiplier + o, output_size,
                                              terms->shift[o], params->output_zp,
                                              params->act_min, params->act_max);
    }
}
