/*
 * q4_conv_dsp.h - building blocks shared by the conv2d kernels for the Arm DSP extension
 * (q4_conv2d_s4_dsp.c: _dsp and _a4_dsp; q4_conv2d_s4_terms_dsp.c). Private to those files:
 * include it only under __ARM_FEATURE_DSP.
 *
 * Layouts (docs/kernels.md): an im2col column holds, per block of 8 K-indices, the int16 pairs
 * (x0,x2) (x1,x3) (x4,x6) (x5,x7) widened by SXTB16, the columns of a group of Q4_DSP_PIXELS
 * output pixels interleaved by pair; weights unpack into the same pairs, times 16.
 */
#ifndef Q4_CONV_DSP_H
#define Q4_CONV_DSP_H

#include <stdint.h>

#include <arm_acle.h>

#include "q4_dsp.h"
#include "q4_kernels.h"

#define Q4_DSP_PIXELS 4 /* output pixels per im2col group */

#if defined(__GNUC__)
#define Q4_DSP_NOINLINE __attribute__((noinline))
#define Q4_DSP_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define Q4_DSP_NOINLINE
#define Q4_DSP_ALWAYS_INLINE inline
#endif

/* SXTB16 of v rotated right by 8: bytes 1 and 3 sign-extended to the two halfwords (one
 * instruction; GCC emits a separate rotation for the C form). */
static inline uint32_t q4_sxtb16_ror8(uint32_t v)
{
    uint32_t result;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(result) : "r"(v));
    return result;
}

/* Widens 8 activations (two words) to the pairs (x0,x2) (x1,x3) (x4,x6) (x5,x7), written
 * Q4_DSP_PIXELS words apart (the columns of a pixel group are interleaved by pair). */
static inline void q4_widen8(uint32_t a, uint32_t b, uint32_t *dst)
{
    dst[0] = q4_sxtb16(a);
    dst[Q4_DSP_PIXELS] = q4_sxtb16_ror8(a);
    dst[2 * Q4_DSP_PIXELS] = q4_sxtb16(b);
    dst[3 * Q4_DSP_PIXELS] = q4_sxtb16_ror8(b);
}

/* Widens n (a multiple of 8) activations from src into a column starting at dst. */
static Q4_DSP_HELPER void q4_widen_run(const int8_t *src, int32_t n, uint32_t *dst)
{
    for (; n > 0; n -= Q4_DSP_BLOCK, src += Q4_DSP_BLOCK, dst += 4 * Q4_DSP_PIXELS) {
        q4_widen8(q4_load_u32(src), q4_load_u32(src + 4), dst);
    }
}

/* n (a multiple of 8) positions of a column holding the zero point. */
static Q4_DSP_HELPER void q4_fill_run(uint32_t zp_pair, int32_t n, uint32_t *dst)
{
    for (; n > 0; n -= Q4_DSP_BLOCK, dst += 4 * Q4_DSP_PIXELS) {
        dst[0] = zp_pair;
        dst[Q4_DSP_PIXELS] = zp_pair;
        dst[2 * Q4_DSP_PIXELS] = zp_pair;
        dst[3 * Q4_DSP_PIXELS] = zp_pair;
    }
}

/* im2col of the window at input position (y0, x0) into the column at dst. When I is a
 * multiple of 8 every tap starts a block and is widened straight from the input; otherwise the
 * window is first gathered into the int8 staging row (K rounded up to 8, tail = z_x). */
static Q4_DSP_HELPER void q4_im2col(const q4_dims *input_dims, const int8_t *input,
                                    const q4_dims *filter_dims, int32_t y0, int32_t x0,
                                    int32_t zp, int8_t *stage, uint32_t *dst)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t k = k_h * k_w * in_c;
    const uint32_t zp_pair = ((uint32_t)zp & 0xFFFFu) * 0x10001u;
    int32_t ky, kx, i;

    if (in_c % Q4_DSP_BLOCK == 0) {
        const int32_t stride = in_c / Q4_DSP_BLOCK * 4 * Q4_DSP_PIXELS; /* words per tap */
        for (ky = 0; ky < k_h; ++ky) {
            const int32_t iy = y0 + ky;
            if (iy < 0 || iy >= in_h) {
                q4_fill_run(zp_pair, k_w * in_c, dst);
            } else if (x0 >= 0 && x0 + k_w <= in_w) { /* the whole kernel row is inside */
                q4_widen_run(input + (iy * in_w + x0) * in_c, k_w * in_c, dst);
            } else {
                for (kx = 0; kx < k_w; ++kx) {
                    const int32_t ix = x0 + kx;
                    if (ix < 0 || ix >= in_w) {
                        q4_fill_run(zp_pair, in_c, dst + kx * stride);
                    } else {
                        q4_widen_run(input + (iy * in_w + ix) * in_c, in_c, dst + kx * stride);
                    }
                }
            }
            dst += k_w * stride;
        }
        return;
    }
    {
        /* the staging row filled with z_x by words, then the taps inside the input copied in */
        const uint32_t zp4 = ((uint32_t)zp & 0xFFu) * 0x01010101u;
        const int32_t k_pad = q4_round_up8(k);
        volatile uint32_t *fill = (volatile uint32_t *)(void *)stage; /* not a memset call */
        for (i = 0; i < k_pad / 4; ++i) {
            fill[i] = zp4;
        }
        for (ky = 0, i = 0; ky < k_h; ++ky) {
            const int32_t iy = y0 + ky;
            if (iy < 0 || iy >= in_h) {
                i += k_w * in_c;
                continue;
            }
            for (kx = 0; kx < k_w; ++kx, i += in_c) {
                const int32_t ix = x0 + kx;
                if (ix >= 0 && ix < in_w) {
                    const int8_t *src = input + (iy * in_w + ix) * in_c;
                    int32_t c;
                    for (c = 0; c < in_c; ++c) {
                        stage[i + c] = src[c];
                    }
                }
            }
        }
        i = k_pad;
    }
    q4_widen_run(stage, i, dst);
}

/* im2col of the window at (y0, x0) into the column at dst, as q4_im2col, with a short path for
 * the usual case (I a multiple of 8, the window inside the input): per kernel row one run of
 * k_w * I bytes widened straight from the input, 2 loads, 4 SXTB16 and 4 stores per 8 bytes.
 * Out of line (one copy for the kernels of a file); the general function is called only at the
 * borders and for other I. */
static Q4_DSP_HELPER Q4_DSP_NOINLINE void q4_im2col_fast(const q4_dims *input_dims,
                                                         const int8_t *input,
                                                         const q4_dims *filter_dims, int32_t y0,
                                                         int32_t x0, int32_t zp, int8_t *stage,
                                                         uint32_t *dst)
{
    const int32_t in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    if (in_c % Q4_DSP_BLOCK == 0 && y0 >= 0 && x0 >= 0 && y0 + k_h <= input_dims->h &&
        x0 + k_w <= in_w) {
        const int32_t run = k_w * in_c, row_step = in_w * in_c;
        const int8_t *src = input + (y0 * in_w + x0) * in_c;
        int32_t ky, j;
        if (run % (2 * Q4_DSP_BLOCK) == 0) { /* two blocks per step (I a multiple of 16) */
            for (ky = 0; ky < k_h; ++ky, src += row_step) {
                const int8_t *s = src, *const end = src + run;
                for (; s != end; s += 2 * Q4_DSP_BLOCK, dst += 8 * Q4_DSP_PIXELS) {
                    q4_widen8(q4_load_u32(s), q4_load_u32(s + 4), dst);
                    q4_widen8(q4_load_u32(s + 8), q4_load_u32(s + 12), dst + 4 * Q4_DSP_PIXELS);
                }
            }
            return;
        }
        for (ky = 0; ky < k_h; ++ky, src += row_step) {
            for (j = 0; j < run; j += Q4_DSP_BLOCK, dst += 4 * Q4_DSP_PIXELS) {
                const uint32_t a = q4_load_u32(src + j), b = q4_load_u32(src + j + 4);
                dst[0] = q4_sxtb16(a);
                dst[Q4_DSP_PIXELS] = q4_sxtb16_ror8(a);
                dst[2 * Q4_DSP_PIXELS] = q4_sxtb16(b);
                dst[3 * Q4_DSP_PIXELS] = q4_sxtb16_ror8(b);
            }
        }
        return;
    }
    if (in_c == 3 && k_h == 3 && k_w == 3 && y0 >= 0 && x0 >= 0 && y0 + 3 <= input_dims->h &&
        x0 + 3 <= in_w) {
        /* the 3x3 window of a 3-channel input (an RGB first layer), K = 27: the 8 words of the
         * staging row (three 9-byte runs, 5 bytes of z_x) assembled in registers from loads
         * that stay inside each run, then widened */
        const int8_t *r0 = input + (y0 * in_w + x0) * 3;
        const int8_t *r1 = r0 + in_w * 3, *r2 = r1 + in_w * 3;
        const uint32_t zp8 = (uint32_t)zp & 0xFFu;
        const uint32_t s2 = (uint32_t)(uint8_t)r0[8] | q4_load_u32(r1) << 8;
        const uint32_t s4 = q4_load_u32(r1 + 5) >> 16 | q4_load_u32(r2) << 16;
        const uint32_t s6 = q4_load_u32(r2 + 5) >> 8 | zp8 << 24;
        q4_widen8(q4_load_u32(r0), q4_load_u32(r0 + 4), dst);
        q4_widen8(s2, q4_load_u32(r1 + 3), dst + 4 * Q4_DSP_PIXELS);
        q4_widen8(s4, q4_load_u32(r2 + 2), dst + 8 * Q4_DSP_PIXELS);
        q4_widen8(s6, zp8 * 0x01010101u, dst + 12 * Q4_DSP_PIXELS);
        return;
    }
    if (y0 >= 0 && x0 >= 0 && y0 + k_h <= input_dims->h && x0 + k_w <= in_w) {
        /* other I (the 3-channel first layer), the window inside: the k_h runs of k_w * I
         * bytes copied into the staging row by words, the tail set to z_x, then widened */
        const int32_t run = k_w * in_c, row_step = in_w * in_c;
        const int32_t k = k_h * run, k_pad = q4_round_up8(k);
        const int8_t *src = input + (y0 * in_w + x0) * in_c;
        const uint32_t zp4 = ((uint32_t)zp & 0xFFu) * 0x01010101u;
        int8_t *s = stage;
        int32_t ky, j;
        /* the tail first (the last 8 bytes: k_pad >= 8), then the runs over it */
        __builtin_memcpy(stage + k_pad - 8, &zp4, sizeof zp4);
        __builtin_memcpy(stage + k_pad - 4, &zp4, sizeof zp4);
        for (ky = 0; ky < k_h; ++ky, src += row_step, s += run) {
            for (j = 0; j + 4 <= run; j += 4) {
                const uint32_t v = q4_load_u32(src + j);
                __builtin_memcpy(s + j, &v, sizeof v);
            }
            for (; j < run; ++j) {
                s[j] = src[j];
            }
        }
        q4_widen_run(stage, k_pad, dst);
        return;
    }
    q4_im2col(input_dims, input, filter_dims, y0, x0, zp, stage, dst);
}

/* im2col of the Q4_DSP_PIXELS output pixels from p0 (n of them real: a missing last pixel
 * repeats the window before it, its outputs are dropped) into the interleaved columns at cols.
 * A 1x1 window with I a multiple of 8 and no top / left padding is the pixel's channels, widened
 * in place here; other windows go through q4_im2col_fast. One call per group. */
static Q4_DSP_HELPER Q4_DSP_NOINLINE void q4_im2col_group(
    const q4_dims *input_dims, const int8_t *input, const q4_dims *filter_dims,
    const q4_conv_params *params, int32_t zp, int32_t out_w, int32_t p0, int32_t n,
    int8_t *stage, uint32_t *cols)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t sh = params->stride_h, sw = params->stride_w;
    const int32_t pt = params->pad_top, pl = params->pad_left;
    const int32_t pointwise = filter_dims->h == 1 && filter_dims->w == 1 &&
                              in_c % Q4_DSP_BLOCK == 0 && pt == 0 && pl == 0;
    int32_t c;
    for (c = 0; c < Q4_DSP_PIXELS; ++c) {
        const int32_t p = p0 + (c < n ? c : n - 1);
        const int32_t y0 = p / out_w * sh - pt, x0 = p % out_w * sw - pl;
        if (pointwise && y0 < in_h && x0 < in_w) {
            q4_widen_run(input + (y0 * in_w + x0) * in_c, in_c, cols + c);
        } else {
            q4_im2col_fast(input_dims, input, filter_dims, y0, x0, zp, stage, cols + c);
        }
    }
}

/* Bytes 0 and 1 of v sign-extended to the two halfwords. */
static inline uint32_t q4_pair01(uint32_t v)
{
    return q4_sxtb16((v & 0xFFu) | ((v & 0xFF00u) << 8));
}

/* Unpacks the 8 weights of one packed word into 16 * w pairs (w0,w2) (w1,w3) (w4,w6) (w5,w7),
 * matching q4_widen8, written 2 words apart; returns 16 * their sum. SXTB16 of the even
 * nibbles times 16 gives (w0, w4), of them rotated by 8 (w2, w6); PKHBT / PKHTB regroup them
 * into (w0, w2), (w4, w6) (the odd nibbles alike); the pair sums (|16 w| <= 128) add as int16. */
static Q4_DSP_HELPER int32_t q4_unpack8(uint32_t w, uint32_t *dst)
{
    const uint32_t even = (w << 4) & 0xF0F0F0F0u; /* 16*w0 16*w2 16*w4 16*w6 as signed bytes */
    const uint32_t odd = w & 0xF0F0F0F0u;         /* 16*w1 16*w3 16*w5 16*w7 */
    const uint32_t e04 = q4_sxtb16(even), e26 = q4_sxtb16_ror8(even);
    const uint32_t o15 = q4_sxtb16(odd), o37 = q4_sxtb16_ror8(odd);
    dst[0] = (e04 & 0xFFFFu) | (e26 << 16);
    dst[2] = (o15 & 0xFFFFu) | (o37 << 16);
    dst[4] = (e26 & 0xFFFF0000u) | (e04 >> 16);
    dst[6] = (o37 & 0xFFFF0000u) | (o15 >> 16);
    const int32_t evens = __sadd16((int32_t)e04, (int32_t)e26);
    return __smuad(__sadd16(evens, __sadd16((int32_t)o15, (int32_t)o37)), 0x00010001);
}

/* Word b of a packed row of row_bytes bytes (bytes past the row read as 0). */
static Q4_DSP_HELPER uint32_t q4_row_word(const uint8_t *row, int32_t row_bytes, int32_t b)
{
    uint32_t w = 0;
    int32_t i;
    if (4 * b + 4 <= row_bytes) {
        return q4_load_u32(row + 4 * b);
    }
    for (i = 0; 4 * b + i < row_bytes; ++i) {
        w |= (uint32_t)row[4 * b + i] << (8 * i);
    }
    return w;
}

/* From this many blocks on, q4_dot_2x2 runs two blocks per loop step (below, one: the entry
 * test costs more than it saves) */
#define Q4_DOT_2X2_LONG 6

/* One block (4 K-pairs) of q4_dot_2x2 at column offset 0 / 64 bytes (text of its assembly). */
#define Q4_DOT_2X2_BLOCK0                  \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"    \
    "ldrd %[x0], %[x1], [%[c]]\n\t"        \
    "smlad %[a0], %[x0], %[wa], %[a0]\n\t" \
    "smlad %[a1], %[x1], %[wa], %[a1]\n\t" \
    "smlad %[b0], %[x0], %[wb], %[b0]\n\t" \
    "smlad %[b1], %[x1], %[wb], %[b1]\n\t" \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"    \
    "ldrd %[x0], %[x1], [%[c], #16]\n\t"   \
    "smlad %[a0], %[x0], %[wa], %[a0]\n\t" \
    "smlad %[a1], %[x1], %[wa], %[a1]\n\t" \
    "smlad %[b0], %[x0], %[wb], %[b0]\n\t" \
    "smlad %[b1], %[x1], %[wb], %[b1]\n\t" \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"    \
    "ldrd %[x0], %[x1], [%[c], #32]\n\t"   \
    "smlad %[a0], %[x0], %[wa], %[a0]\n\t" \
    "smlad %[a1], %[x1], %[wa], %[a1]\n\t" \
    "smlad %[b0], %[x0], %[wb], %[b0]\n\t" \
    "smlad %[b1], %[x1], %[wb], %[b1]\n\t" \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"    \
    "ldrd %[x0], %[x1], [%[c], #48]\n\t"   \
    "smlad %[a0], %[x0], %[wa], %[a0]\n\t" \
    "smlad %[a1], %[x1], %[wa], %[a1]\n\t" \
    "smlad %[b0], %[x0], %[wb], %[b0]\n\t" \
    "smlad %[b1], %[x1], %[wb], %[b1]\n\t"

#define Q4_DOT_2X2_BLOCK1                  \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"    \
    "ldrd %[x0], %[x1], [%[c], #64]\n\t"   \
    "smlad %[a0], %[x0], %[wa], %[a0]\n\t" \
    "smlad %[a1], %[x1], %[wa], %[a1]\n\t" \
    "smlad %[b0], %[x0], %[wb], %[b0]\n\t" \
    "smlad %[b1], %[x1], %[wb], %[b1]\n\t" \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"    \
    "ldrd %[x0], %[x1], [%[c], #80]\n\t"   \
    "smlad %[a0], %[x0], %[wa], %[a0]\n\t" \
    "smlad %[a1], %[x1], %[wa], %[a1]\n\t" \
    "smlad %[b0], %[x0], %[wb], %[b0]\n\t" \
    "smlad %[b1], %[x1], %[wb], %[b1]\n\t" \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"    \
    "ldrd %[x0], %[x1], [%[c], #96]\n\t"   \
    "smlad %[a0], %[x0], %[wa], %[a0]\n\t" \
    "smlad %[a1], %[x1], %[wa], %[a1]\n\t" \
    "smlad %[b0], %[x0], %[wb], %[b0]\n\t" \
    "smlad %[b1], %[x1], %[wb], %[b1]\n\t" \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"    \
    "ldrd %[x0], %[x1], [%[c], #112]\n\t"  \
    "smlad %[a0], %[x0], %[wa], %[a0]\n\t" \
    "smlad %[a1], %[x1], %[wa], %[a1]\n\t" \
    "smlad %[b0], %[x0], %[wb], %[b0]\n\t" \
    "smlad %[b1], %[x1], %[wb], %[b1]\n\t"

/* 16 * dot products of a pair of unpacked channels (w) with 2 of the group's columns (col: the
 * first one's words; the pixels of a pair are adjacent words), over `blocks` blocks:
 * acc[0], acc[1] for the first channel's 2 pixels, acc[2], acc[3] for the second's. GNU inline
 * assembly: GCC neither keeps the accumulators nor uses LDRD here (it spilled 2 of them and used
 * 24 single loads per 64 MACs). Per K-pair, one LDRD of the two channels' weight pairs, one LDRD
 * of the two pixels' activation pairs and 4 SMLAD, one block per loop step: 27 instructions
 * per 32 MACs (q4_dot_2x2: from Q4_DOT_2X2_LONG blocks on two per step, an odd one first: 51
 * per 64). Always inlined (the accumulators stay in registers). 11 registers, so it builds with a frame pointer and r9 reserved. */
static Q4_DSP_ALWAYS_INLINE void q4_dot_2x2_short(const uint32_t *w, const uint32_t *col,
                                                  int32_t blocks, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
    const uint32_t *const w_end = w + 8 * blocks;
    uint32_t wa, wb, x0, x1;
    __asm__ volatile(
        "1:\n\t" Q4_DOT_2X2_BLOCK0 "adds %[c], %[c], #64\n\t"
        "cmp %[w], %[end]\n\t"
        "bne 1b\n\t"
        : [a0] "+&r"(a0), [a1] "+&r"(a1), [b0] "+&r"(b0), [b1] "+&r"(b1), [w] "+&r"(w),
          [c] "+&r"(col), [wa] "=&r"(wa), [wb] "=&r"(wb), [x0] "=&r"(x0), [x1] "=&r"(x1)
        : [end] "r"(w_end)
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

/* q4_dot_2x2_short, with two blocks per loop step from Q4_DOT_2X2_LONG blocks on. */
static Q4_DSP_ALWAYS_INLINE void q4_dot_2x2(const uint32_t *w, const uint32_t *col,
                                            int32_t blocks, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
    const uint32_t *const w_end = w + 8 * blocks;
    uint32_t wa, wb, x0, x1;
    if (blocks < Q4_DOT_2X2_LONG) {
        q4_dot_2x2_short(w, col, blocks, acc);
        return;
    }
    __asm__ volatile(
        "subs %[wa], %[end], %[w]\n\t"
        "tst %[wa], #32\n\t" /* an odd number of blocks (32 bytes each) */
        "beq 1f\n\t" Q4_DOT_2X2_BLOCK0 "adds %[c], %[c], #64\n\t"
        "1:\n\t" Q4_DOT_2X2_BLOCK0 Q4_DOT_2X2_BLOCK1 "adds %[c], %[c], #128\n\t"
        "cmp %[w], %[end]\n\t"
        "bne 1b\n\t"
        : [a0] "+&r"(a0), [a1] "+&r"(a1), [b0] "+&r"(b0), [b1] "+&r"(b1), [w] "+&r"(w),
          [c] "+&r"(col), [wa] "=&r"(wa), [wb] "=&r"(wb), [x0] "=&r"(x0), [x1] "=&r"(x1)
        : [end] "r"(w_end)
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

#endif /* Q4_CONV_DSP_H */
