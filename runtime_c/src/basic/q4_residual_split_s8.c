/* q4_residual_split_s8.c - one INT4 tensor (X1 or X2) of a residual-quantized activation, recoded
 * from its 8-bit fine-grid tensor F (reference; docs/integer-spec.md, residual_split). */
#include "q4_kernels.h"

void q4_residual_split_s8(const q4_split_params *params, int32_t size, const int8_t *input,
                          int8_t *output)
{
    int32_t i;

    for (i = 0; i < size; ++i) {
        output[i] = (int8_t)q4_residual_split_one(params, input[i]);
    }
}
