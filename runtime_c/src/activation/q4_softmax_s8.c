/* q4_softmax_s8.c - softmax along one axis [outer, n, inner] by an exp table and one unsigned
 * division per element (reference). */
#include "q4_kernels.h"
#include "q4_softmax.h"

void q4_softmax_s8(const q4_softmax_params *params, const int8_t *input, int8_t *output)
{
    const int32_t n = params->n, inner = params->inner;
    int32_t o, i, j;

    for (o = 0; o < params->outer; ++o) {
        const int8_t *x = input + o * n * inner;
        int8_t *y = output + o * n * inner;
        for (i = 0; i < inner; ++i) {
            int32_t m = x[i];
            uint32_t sum = 0;
            for (j = 1; j < n; ++j) {
                if (x[j * inner + i] > m) {
                    m = x[j * inner + i];
                }
            }
            for (j = 0; j < n; ++j) {
                sum += (uint32_t)params->table[m - x[j * inner + i]];
            }
            for (j = 0; j < n; ++j) {
                const uint32_t e = (uint32_t)params->table[m - x[j * inner + i]];
                int32_t v = params->output_zp +
                            (int32_t)((e * (uint32_t)params->steps + sum / 2u) / sum);
                if (v > params->qmax) {
                    v = params->qmax;
                }
                if (v < params->qmin) {
                    v = params->qmin;
                }
                y[j * inner + i] = (int8_t)v;
            }
        }
    }
}
