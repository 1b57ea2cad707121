/* q4_fully_connected_s4_terms_p4.c - multi-term fully connected layer (dual INT4 weights and/or
 * residual-quantized input), activations in packed 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_fixedpoint.h"

void q4_fully_connected_s4_terms_p4(const q4_fc_params *params, const q4_terms_params *terms,
                                    int32_t input_size, const q4_src *inputs,
                                    const uint8_t *const *filters, const int32_t *bias,
                                    int32_t output_size, q4_dst output)
{
    const int32_t row_bytes = (input_size + 1) / 2;
    const int32_t n_terms = terms->n_inputs * terms->n_weights;
    int32_t o, t;

    for (o = 0; o < output_size; ++o) {
        int32_t acc[4];
        for (t = 0; t < n_terms; ++t) {
            const int32_t in_index = t / terms->n_weights;
            const uint8_t *row = filters[t % terms->n_weights] + o * row_bytes;
            acc[t] = (t == 0 ? bias[o] : 0) + q4_dot_run(inputs[in_index], 0, input_size,
                                                         terms->input_zp[in_index], row, 0);
        }
        q4_act_set(output, o,
                   q4_requantize_terms_clamp(acc, n_terms, terms->multiplier + o, output_size,
                                             terms->shift[o], params->output_zp,
                                             params->act_min, params->act_max));
    }
}
