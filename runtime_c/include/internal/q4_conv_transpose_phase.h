/*
 * q4_conv_transpose_phase.h - a transposed convolution as stride-1 correlations, one per output
 * phase; shared by q4_conv_transpose_s4_dsp.c and q4_conv_transpose_s4_mve.c (private to them).
 *
 * With stride s, output row oy reads the kernel rows ky = r, r + s, r + 2s, ... with
 * r = (oy + pad_top) mod s (the row's phase) from the input rows iy = a - j for ky = r + j * s,
 * a = (oy + pad_top) div s. So the output rows of one phase (every s-th row from the first one
 * with that phase) form an ordinary stride-1 correlation of the input with the phase's sub-kernel,
 * whose row j' = 0 .. n - 1 is the kernel row r + (n - 1 - j') * s (n = ceil((kh - r) / s) rows,
 * none when r >= kh), window top a - n + 1, one row further down per phase row. Columns alike.
 * Window positions outside the input hold z_x: with z_x folded into the bias their products
 * vanish, as the portable kernel skips them. The int32 sums are the same products in another
 * order, hence exact; each kernel requantizes with the oracle's rule.
 */
#ifndef Q4_CONV_TRANSPOSE_PHASE_H
#define Q4_CONV_TRANSPOSE_PHASE_H

#include <stdint.h>

#include "q4_fixedpoint.h"
#include "q4_kernels.h"

#if defined(__GNUC__)
#define Q4_CT_HELPER __attribute__((unused))
#else
#define Q4_CT_HELPER
#endif

/* One axis of one phase: its sub-kernel taps, its output rows (or columns) and their windows. */
typedef struct {
    int32_t taps;  /* n: kernel rows of the phase (0: its outputs are the requantized bias) */
    int32_t first; /* the first output row of the phase */
    int32_t count; /* its output rows: first, first + s, ... */
    int32_t base;  /* window top of the first one (a - n + 1); the next ones 1, 2, ... lower */
} q4_ct_axis;

/* The phase r (0 <= r < s) of an axis with kernel size k, stride s, pad and output size out. */
static Q4_CT_HELPER void q4_ct_axis_init(int32_t r, int32_t k, int32_t s, int32_t pad,
                                         int32_t out, q4_ct_axis *axis)
{
    axis->taps = r < k ? (k - r + s - 1) / s : 0;
    axis->first = ((r - pad) % s + s) % s;
    axis->count = axis->first < out ? (out - axis->first + s - 1) / s : 0;
    axis->base = (axis->first + pad) / s - axis->taps + 1;
}

/* The packed sub-kernel row of phase (ry, rx) of a packed kernel row (kh x kw x I nibbles):
 * taps (ry + (ny - 1 - j) * sh, rx + (nx - 1 - l) * sw) for j < ny, l < nx, I nibbles each.
 * Returns a pointer into the kernel row when it is one tap of an even I (nothing copied), else
 * gathers the row into dst and returns dst: even I by byte runs (words when I is a multiple of
 * 8), odd I by nibbles, an odd count leaving the last high nibble 0. */
static Q4_CT_HELPER const uint8_t *q4_ct_sub_row(const uint8_t *row, int32_t k_w, int32_t in_c,
                                                 int32_t ry, int32_t rx, int32_t sh, int32_t sw,
                                                 int32_t ny, int32_t nx, uint8_t *dst)
{
    int32_t j, l, c, n = 0;
    if (ny * nx == 1 && (in_c & 1) == 0) {
        return row + (ry * k_w + rx) * in_c / 2;
    }
    for (j = ny - 1; j >= 0; --j) {
        for (l = nx - 1; l >= 0; --l) {
            const int32_t tap = ((ry + j * sh) * k_w + rx + l * sw) * in_c;
            if ((in_c & 7) == 0) {
                const uint8_t *src = row + tap / 2;
                uint8_t *out = dst + n / 2;
                for (c = 0; c < in_c / 2; c += 4) {
                    uint32_t v;
                    __builtin_memcpy(&v, src + c, sizeof v);
                    __builtin_memcpy(out + c, &v, sizeof v);
                }
                n += in_c;
                continue;
            }
            if ((in_c & 1) == 0) {
                const uint8_t *src = row + tap / 2;
                uint8_t *out = dst + n / 2;
                for (c = 0; c < in_c / 2; ++c) {
                    out[c] = src[c];
                }
                n += in_c;
                continue;
            }
            for (c = 0; c < in_c; ++c, ++n) {
                const uint32_t b = row[(tap + c) >> 1];
                const uint32_t nibble = ((tap + c) & 1) ? b >> 4 : b & 0xFu;
                if (n & 1) {
                    dst[n >> 1] = (uint8_t)(dst[n >> 1] | (nibble << 4));
                } else {
                    dst[n >> 1] = (uint8_t)nibble;
                }
            }
        }
    }
    return dst;
}

/* The outputs of a phase without taps (kernel smaller than the stride): the requantized bias. */
static Q4_CT_HELPER void q4_ct_bias_only(const q4_conv_params *params,
                                         const q4_quant_params *quant, const int32_t *bias,
                                         const q4_ct_axis *ay, const q4_ct_axis *ax,
                                         int32_t out_w, int32_t out_c, int8_t *output)
{
    const int32_t sh = params->stride_h, sw = params->stride_w;
    int32_t i, j, oc;
    for (i = 0; i < ay->count; ++i) {
        for (j = 0; j < ax->count; ++j) {
            int8_t *out = output + ((ay->first + i * sh) * out_w + ax->first + j * sw) * out_c;
            for (oc = 0; oc < out_c; ++oc) {
                out[oc] = q4_requantize_clamp(bias[oc], quant->multiplier[oc], quant->shift[oc],
                                              params->output_zp, params->act_min,
                                              params->act_max);
            }
        }
    }
}

#endif /* Q4_CONV_TRANSPOSE_PHASE_H */
