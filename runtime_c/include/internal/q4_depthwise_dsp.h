/* Private helper of the DSP depthwise kernels (q4_depthwise_conv2d_s4_dsp.c and its multi-term
 * form q4_depthwise_conv2d_s4_terms_dsp.c): the int16 row layout of the 3x3 row path and the
 * widening of one input row into it. Included only on cores with the DSP extension, after
 * q4_dsp.h. */
#ifndef Q4_DEPTHWISE_DSP_H
#define Q4_DEPTHWISE_DSP_H

#include <stdint.h>

#include "q4_dsp.h"

/* A channel's row holds the tile's input span widened to int16 in two phase rows (even / odd
 * pixels, stride 2) of Q4_DW3_PHASE elements: the tile plus the 3 the pair loads read past it. */
#define Q4_DW3_PHASE 36
#define Q4_DW3_ROW (2 * Q4_DW3_PHASE)

/* Widens input row iy, pixels ix0 .. ix0 + span - 1 (z_x outside the input), of channels
 * c0 .. c0 + n - 1 into rows[i * Q4_DW3_ROW + (p % s) * Q4_DW3_PHASE + p / s] (p = ix - ix0).
 * Inside the input, 4 channels and two pixels of one phase per step: two word loads, SXTB16 of
 * them and of them shifted by 8, and PKHBT/PKHTB pairs for 4 word stores. */
static void q4_dw3_widen_row(int16_t *rows, const int8_t *input, int32_t iy, int32_t ix0,
                             int32_t span, int32_t s, int32_t in_w, int32_t ch, int32_t c0,
                             int32_t n, int32_t in_zp)
{
    const int8_t *const src = input + iy * in_w * ch + c0;
    int32_t f, i, j;
    for (f = 0; f < s; ++f) {
        int16_t *const dst = rows + f * Q4_DW3_PHASE;
        const int32_t len = (span - f + s - 1) / s; /* pixels p = f + s * j < span */
        /* j inside the input: 0 <= ix0 + f + s * j < in_w */
        int32_t j_lo = ix0 + f >= 0 ? 0 : (-(ix0 + f) + s - 1) / s;
        int32_t j_hi = ix0 + f + s * (len - 1) < in_w ? len : (in_w - (ix0 + f) + s - 1) / s;
        if (j_hi < j_lo) {
            j_hi = j_lo;
        }
        for (j = 0; j < j_lo; ++j) {
            for (i = 0; i < n; ++i) {
                dst[i * Q4_DW3_ROW + j] = (int16_t)in_zp;
            }
        }
        j = j_lo;
        if (n == 4) {
            const int8_t *a = src + (ix0 + f + s * j) * ch;
            const int32_t step = s * ch;
            if (j & 1) { /* word-align the pair stores */
                for (i = 0; i < 4; ++i) {
                    dst[i * Q4_DW3_ROW + j] = a[i];
                }
                ++j;
                a += step;
            }
            for (; j + 2 <= j_hi; j += 2, a += 2 * step) {
                const uint32_t wa = q4_load_u32(a), wb = q4_load_u32(a + step);
                const uint32_t a02 = q4_sxtb16(wa), b02 = q4_sxtb16(wb);
                const uint32_t a13 = q4_sxtb16(wa >> 8), b13 = q4_sxtb16(wb >> 8);
                uint32_t *const d = (uint32_t *)(void *)(dst + j);
                d[0] = (a02 & 0xFFFFu) | (b02 << 16);
                d[Q4_DW3_ROW / 2] = (a13 & 0xFFFFu) | (b13 << 16);
                d[Q4_DW3_ROW] = (a02 >> 16) | (b02 & 0xFFFF0000u);
                d[3 * Q4_DW3_ROW / 2] = (a13 >> 16) | (b13 & 0xFFFF0000u);
            }
        }
        for (; j < j_hi; ++j) {
            const int8_t *const a = src + (ix0 + f + s * j) * ch;
            for (i = 0; i < n; ++i) {
                dst[i * Q4_DW3_ROW + j] = a[i];
            }
        }
        for (; j < len; ++j) {
            for (i = 0; i < n; ++i) {
                dst[i * Q4_DW3_ROW + j] = (int16_t)in_zp;
            }
        }
    }
}

#endif /* Q4_DEPTHWISE_DSP_H */
