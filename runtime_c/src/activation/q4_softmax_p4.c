/* q4_softmax_p4.c - softmax along one axis [outer, n, inner] by an exp table and one unsigned
 * division per element, activations in packed 4-bit (or int8) storage (reference). */
#include "q4_packed.h"
#include "q4_softmax.h"

void q4_softmax_p4(const q4_softmax_params *params, q4_src input, q4_dst output)
{
    const int32_t n = params->n, inner = params->inner;
    int32_t o, i, j;

    for (o = 0; o < params->outer; ++o) {
        const int32_t base = o * n * inner;
        for (i = 0; i < inner; ++i) {
            int32_t m = q4_act_get(input, base + i);
            uint32_t sum = 0;
            for (j = 1; j < n; ++j) {
                const int32_t v = q4_act_get(input, base + j * inner + i);
                if (v > m) {
                    m = v;
                }
            }
            for (j = 0; j < n; ++j) {
                sum += (uint32_t)params->table[m - q4_act_get(input, base + j * inner + i)];
            }
            for (j = 0; j < n; ++j) {
                const int32_t k = base + j * inner + i;
                const uint32_t e = (uint32_t)params->table[m - q4_act_get(input, k)];
                int32_t v = params->output_zp +
                            (int32_t)((e * (uint32_t)params->steps + sum / 2u) / sum);
                if (v > params->qmax) {
                    v = params->qmax;
                }
                if (v < params->qmin) {
                    v = params->qmin;
                }
                q4_act_set(output, k, v);
            }
        }
    }
}
