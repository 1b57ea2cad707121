/*
 * q4_conv2d_s4_armv6m.c - conv2d, INT4 packed weights, int8 activations, for ARMv6-M cores
 * (Cortex-M0/M0+: no DSP, MULS only, 8 low registers). Bit-exact with q4_conv2d_s4; plain C99
 * that runs on any core (the inner loop is inline assembly only when built for ARMv6-M).
 *
 * Scheme (primitives in q4_armv6m.h):
 *  - Output channels go in blocks of 8. A block's weight rows are unpacked once per call into
 *    4 packed pairs per K-index (w_a + w_b * 2^16), and z_x is folded into the bias.
 *  - Per output pixel, im2col copies the receptive field into a byte column as x + 128
 *    (x ^ 0x80; window positions outside the input take z_x + 128), a word at a time where
 *    the input and column are aligned.
 *  - GEMM: one LDRB per K-index feeds 4 MULS (8 MACs); the packed halves are drained every 16
 *    indices into 32-bit accumulators.
 *  - q4_conv2d_s4_a4_armv6m, for 4-bit inputs (x in [-8, 7]): the column holds x + 8 in
 *    [0, 15] ((x ^ 8) & 15), so products stay within [-120, 105] and the halves are drained only
 *    every 256 indices.
 *  - Requantization without a long multiply for shift > 32 (q4_armv6m_requantize_clamp).
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_armv6m.h"

/* Scratch: the folded biases of a block, its packed weights (16 bytes per K-index) and the
 * im2col column. */
int32_t q4_conv2d_s4_armv6m_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k16 = q4_armv6m_round_up16(filter_dims->h * filter_dims->w * filter_dims->c);
    return 4 * Q4_ARMV6M_CHANNELS + 16 * k16 + k16;
}

/* The column's form of the inputs: byte (x ^ flip) & keep, which is x + 128 for 8-bit inputs
 * (flip 0x80, keep 0xFF) and x + 8 for 4-bit ones (flip 0x08, keep 0x0F). */
typedef struct {
    uint32_t flip; /* the byte pattern in all four bytes */
    uint32_t keep;
    int32_t offset; /* 128 or 8: col = x + offset */
    int32_t a4;     /* 1 for 4-bit inputs: drained every 256 K-indices, not 16 */
} q4_col_form;

/* A word that may alias the int8/uint8 buffers it is read from and written to. */
#if defined(__GNUC__)
typedef uint32_t q4_word __attribute__((may_alias));
#else
typedef uint32_t q4_word;
#endif

/* n bytes of (x ^ flip) & keep from src to dst; words when both are aligned. */
static void q4_copy_offset(uint8_t *dst, const int8_t *src, int32_t n, const q4_col_form *form)
{
    const uint32_t flip = form->flip, keep = form->keep;
    if ((((uintptr_t)dst | (uintptr_t)src) & 3u) == 0u) {
        q4_word *d = (q4_word *)(void *)dst;
        const q4_word *s = (const q4_word *)(const void *)src;
        if (keep == 0xFFFFFFFFu) { /* 8-bit inputs: one EORS per word */
            for (; n >= 4; n -= 4) {
                *d++ = *s++ ^ flip;
            }
        } else {
            for (; n >= 4; n -= 4) {
                *d++ = (*s++ ^ flip) & keep;
            }
        }
        dst = (uint8_t *)d;
        src = (const int8_t *)s;
    }
    for (; n > 0; --n) {
        *dst++ = (uint8_t)(((uint8_t)*src++ ^ flip) & keep);
    }
}

static void q4_fill(uint8_t *dst, uint8_t value, int32_t n)
{
    for (; n > 0; --n) {
        *dst++ = value;
    }
}

/* The receptive field of the output pixel whose window starts at (y0, x0). */
static void q4_im2col(const int8_t *input, int32_t in_h, int32_t in_w, int32_t in_c,
                      int32_t k_h, int32_t k_w, int32_t y0, int32_t x0, uint8_t pad,
                      const q4_col_form *form, uint8_t *col)
{
    const int32_t span = k_w * in_c;
    int32_t ky, kx;
    for (ky = 0; ky < k_h; ++ky, col += span) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h) {
            q4_fill(col, pad, span);
        } else if (x0 >= 0 && x0 + k_w <= in_w) {
            q4_copy_offset(col, input + (iy * in_w + x0) * in_c, span, form);
        } else {
            for (kx = 0; kx < k_w; ++kx) {
                const int32_t ix = x0 + kx;
                if (ix < 0 || ix >= in_w) {
                    q4_fill(col + kx * in_c, pad, in_c);
                } else {
                    q4_copy_offset(col + kx * in_c, input + (iy * in_w + ix) * in_c, in_c, form);
                }
            }
        }
    }
}

static void q4_conv2d_armv6m(const q4_conv_params *params, const q4_quant_params *quant,
                             const q4_dims *input_dims, const int8_t *input,
                             const q4_dims *filter_dims, const uint8_t *filter,
                             const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                             int32_t *scratch, const q4_col_form *form)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t k_size = k_h * k_w * in_c, k16 = q4_armv6m_round_up16(k_size);
    const int32_t output_zp = params->output_zp, act_min = params->act_min;
    const int32_t act_max = params->act_max;
    const uint8_t pad = (uint8_t)(params->input_zp + form->offset);
    uint32_t *const folded = (uint32_t *)scratch;
    uint32_t *const weights = folded + Q4_ARMV6M_CHANNELS;
    uint8_t *const col = (uint8_t *)(weights + 4 * k16);
    int32_t first, oy, ox, c;

    q4_fill(col + k_size, 0u, k16 - k_size); /* meets zero weights: keeps the sums exact */
    for (first = 0; first < out_c; first += Q4_ARMV6M_CHANNELS) {
        const int32_t nb = out_c - first < Q4_ARMV6M_CHANNELS ? out_c - first
                                                              : Q4_ARMV6M_CHANNELS;
        const int32_t *const multiplier = quant->multiplier + first;
        const int32_t *const shift = quant->shift + first;
        q4_armv6m_unpack_block(filter, bias, out_c, first, k_size,
                               params->input_zp + form->offset, weights, folded);
        for (oy = 0; oy < out_h; ++oy) {
            for (ox = 0; ox < out_w; ++ox) {
                uint32_t acc[Q4_ARMV6M_CHANNELS];
                int8_t *out = output + (oy * out_w + ox) * out_c + first;
                q4_im2col(input, in_h, in_w, in_c, k_h, k_w,
                          oy * params->stride_h - params->pad_top,
                          ox * params->stride_w - params->pad_left, pad, form, col);
                acc[0] = folded[0]; /* spelled out: a loop here becomes a memcpy call */
                acc[1] = folded[1];
                acc[2] = folded[2];
                acc[3] = folded[3];
                acc[4] = folded[4];
                acc[5] = folded[5];
                acc[6] = folded[6];
                acc[7] = folded[7];
                q4_armv6m_dot(col, weights, k16, form->a4, acc);
                for (c = 0; c < nb; ++c) {
                    out[c] = q4_armv6m_requantize_clamp(q4_armv6m_int32(acc[c]), multiplier[c],
                                                        shift[c], output_zp, act_min, act_max);
                }
            }
        }
    }
}

void q4_conv2d_s4_armv6m(const q4_conv_params *params, const q4_quant_params *quant,
                         const q4_dims *input_dims, const int8_t *input,
                         const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                         const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    static const q4_col_form form = {0x80808080u, 0xFFFFFFFFu, 128, 0};
    q4_conv2d_armv6m(params, quant, input_dims, input, filter_dims, filter, bias, output_dims,
                     output, scratch, &form);
}

int32_t q4_conv2d_s4_a4_armv6m_get_buffer_size(const q4_dims *filter_dims)
{
    return q4_conv2d_s4_armv6m_get_buffer_size(filter_dims);
}

void q4_conv2d_s4_a4_armv6m(const q4_conv_params *params, const q4_quant_params *quant,
                            const q4_dims *input_dims, const int8_t *input,
                            const q4_dims *filter_dims, const uint8_t *filter,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                            int32_t *scratch)
{
    static const q4_col_form form = {0x08080808u, 0x0F0F0F0Fu, 8, 1};
    q4_conv2d_armv6m(params, quant, input_dims, input, filter_dims, filter, bias, output_dims,
                     output, scratch, &form);
}
