/*
 * q4_conv_mve.h - what the Helium convolutions (q4_conv2d_s4_mve.c, q4_conv2d_s4_terms_mve.c)
 * share: the weight unpacking, the 2-row x 4-pixel GEMM (GNU inline assembly, 8 accumulators in
 * general registers) and the im2col of 4 output pixels interleaved per 16-byte vector
 * (docs/kernels.md, "_mve (Helium)"). Private to those files; include only where
 * __ARM_FEATURE_MVE is set.
 */
#ifndef Q4_CONV_MVE_H
#define Q4_CONV_MVE_H

#include <arm_mve.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define Q4_MVE_HELPER __attribute__((unused))
#define Q4_MVE_OUTLINE __attribute__((unused, noinline)) /* kept out of the group loops */
#define Q4_MVE_INLINE __attribute__((unused, always_inline)) inline
#else
#define Q4_MVE_HELPER
#define Q4_MVE_OUTLINE
#define Q4_MVE_INLINE inline
#endif

#define Q4_MVE_PIXELS 4                                    /* output pixels per im2col group */
#define Q4_MVE_LANES 16                                    /* int8 lanes per vector */
#define Q4_MVE_GROUP_STRIDE (Q4_MVE_PIXELS * Q4_MVE_LANES) /* bytes per K-vector of a group */

static Q4_MVE_HELPER int32_t q4_round_up16(int32_t k)
{
    return (k + Q4_MVE_LANES - 1) & ~(Q4_MVE_LANES - 1);
}

/* Sign-extended weights 16 * b .. 16 * b + 15 of a packed row of row_bytes bytes (0 past it):
 * 8 bytes widened to 16-bit lanes 0x00HL become 0xHLL0 (VSHL #4, then VSLI #8 inserts the byte
 * above it), whose bytes L0 and HL shifted right by 4 as signed bytes are L and H. */
static inline int8x16_t q4_mve_unpack16(const uint8_t *row, int32_t row_bytes, int32_t b)
{
    const int32_t left = row_bytes - b * (Q4_MVE_LANES / 2);
    const uint16x8_t raw = vldrbq_z_u16(row + b * (Q4_MVE_LANES / 2), vctp16q((uint32_t)left));
    const uint16x8_t nibbles = vsliq_n_u16(vshlq_n_u16(raw, 4), raw, 8);
    return vshrq_n_s8(vreinterpretq_s8_u16(nibbles), 4);
}

/* A packed row (row_bytes bytes) unpacked as q4_mve_unpack16 does, its k16 / 16 vectors at dst,
 * dst + 32, ... (the pair layout); returns the sum of its weights. The vectors with 8 bytes of
 * the row behind them load without predication. */
static inline int32_t q4_mve_unpack_row(const uint8_t *row, int32_t row_bytes, int32_t k16,
                                        int8_t *dst)
{
    const int32_t vectors = k16 / Q4_MVE_LANES, whole = row_bytes / (Q4_MVE_LANES / 2);
    int32_t sum = 0, b;
    for (b = 0; b < whole; ++b, row += Q4_MVE_LANES / 2, dst += 2 * Q4_MVE_LANES) {
        const uint16x8_t raw = vldrbq_u16(row);
        const uint16x8_t nibbles = vsliq_n_u16(vshlq_n_u16(raw, 4), raw, 8);
        const int8x16_t v = vshrq_n_s8(vreinterpretq_s8_u16(nibbles), 4);
        sum = vaddvaq_s8(sum, v);
        vst1q_s8(dst, v);
    }
    for (; b < vectors; ++b, dst += 2 * Q4_MVE_LANES) {
        const int8x16_t v = q4_mve_unpack16(row - b * (Q4_MVE_LANES / 2), row_bytes, b);
        sum = vaddvaq_s8(sum, v);
        vst1q_s8(dst, v);
    }
    return sum;
}

/* One step of the 2-channel x 4-pixel GEMM: 16 K-indices, 2 weight and 4 column loads (post-
 * incremented), 8 VMLADAV[A].S8 (`op`). */
#define Q4_MVE_GEMM_STEP(op)                                                      \
    "vldrb.8 q0, [%[w]], #16\n\t"                                                 \
    "vldrb.8 q1, [%[w]], #16\n\t"                                                 \
    "vldrb.8 q2, [%[x]], #16\n\t" op " %[a0], q2, q0\n\t" op " %[b0], q2, q1\n\t" \
    "vldrb.8 q3, [%[x]], #16\n\t" op " %[a1], q3, q0\n\t" op " %[b1], q3, q1\n\t" \
    "vldrb.8 q2, [%[x]], #16\n\t" op " %[a2], q2, q0\n\t" op " %[b2], q2, q1\n\t" \
    "vldrb.8 q3, [%[x]], #16\n\t" op " %[a3], q3, q0\n\t" op " %[b3], q3, q1\n\t"

/* The GEMM over n >= 1 steps (the first one starts the sums), the sums then moved to q0
 * (channel a) and q1 (channel b). The steps after the first run as 1, 2, then 4 at a time. */
#define Q4_MVE_GEMM                                                                                    \
    Q4_MVE_GEMM_STEP("vmladav.s8")                                                                     \
    "subs %[n], %[n], #1\n\t"                                                                          \
    "lsrs %[n], %[n], #1\n\t" /* carry: bit 0 of the steps left */                                     \
    "bcc 1f\n\t" Q4_MVE_GEMM_STEP(                                                                     \
        "vmladava.s8") "1:\n\t"                                                                        \
                       "lsrs %[n], %[n], #1\n\t" /* carry: bit 1 */                                    \
                       "bcc 2f\n\t" Q4_MVE_GEMM_STEP("vmladava.s8") Q4_MVE_GEMM_STEP(                  \
                           "vmladava.s8") "2:\n\t"                                                     \
                                          "beq 4f\n\t" /* flags of the second LSRS: no steps left */   \
                                          "3:\n\t" Q4_MVE_GEMM_STEP(                                   \
                                              "vmladava.s8") Q4_MVE_GEMM_STEP("vmladava.s8")           \
                                              Q4_MVE_GEMM_STEP("vmladava.s8") Q4_MVE_GEMM_STEP(        \
                                                  "vmladava.s8") "subs %[n], %[n], #1\n\t"             \
                                                                 "bne 3b\n\t"                          \
                                                                 "4:\n\t"                              \
                                                                 "vmov q0[2], q0[0], %[a0], %[a2]\n\t" \
                                                                 "vmov q0[3], q0[1], %[a1], %[a3]\n\t" \
                                                                 "vmov q1[2], q1[0], %[b0], %[b2]\n\t" \
                                                                 "vmov q1[3], q1[1], %[b1], %[b3]\n\t"

/* The GEMM for a fixed count of 1 or 2 steps (K <= 32: first layers, narrow 1x1 layers): no
 * step-count logic; the sums then in q0 and q1 as after Q4_MVE_GEMM. */
#define Q4_MVE_SUMS_TO_Q                  \
    "vmov q0[2], q0[0], %[a0], %[a2]\n\t" \
    "vmov q0[3], q0[1], %[a1], %[a3]\n\t" \
    "vmov q1[2], q1[0], %[b0], %[b2]\n\t" \
    "vmov q1[3], q1[1], %[b1], %[b3]\n\t"
#define Q4_MVE_GEMM_1 Q4_MVE_GEMM_STEP("vmladav.s8") Q4_MVE_SUMS_TO_Q
#define Q4_MVE_GEMM_2 \
    Q4_MVE_GEMM_STEP("vmladav.s8") Q4_MVE_GEMM_STEP("vmladava.s8") Q4_MVE_SUMS_TO_Q

/* The GEMM of 3 .. Q4_MVE_CHAIN_STEPS steps as one straight chain of steps, entered so that
 * exactly `steps` run: the first step (VMLADAV), then a branch past (Q4_MVE_CHAIN_STEPS - steps)
 * of the chain's Q4_MVE_CHAIN_STEPS - 1 VMLADAVA steps (each 14 32-bit instructions, 56 bytes;
 * ADR finds the chain, which needs the section 4-byte aligned: .p2align 2 makes it so);
 * %[skip] holds that offset + 1 (the Thumb bit). 4 instructions of step-count logic instead of
 * 7-23 for the loop of Q4_MVE_GEMM. */
#define Q4_MVE_CHAIN_STEPS 36
#define Q4_MVE_STEP_BYTES 56
#define Q4_MVE_ACC_STEPS5           \
    Q4_MVE_GEMM_STEP("vmladava.s8") \
    Q4_MVE_GEMM_STEP("vmladava.s8") \
    Q4_MVE_GEMM_STEP("vmladava.s8") \
    Q4_MVE_GEMM_STEP("vmladava.s8") Q4_MVE_GEMM_STEP("vmladava.s8")
#define Q4_MVE_GEMM_CHAIN                                                                              \
    "adr %[n], 5f\n\t"                                                                                 \
    "ldr %[a0], %[skip]\n\t"                                                                           \
    "add %[n], %[n], %[a0]\n\t" Q4_MVE_GEMM_STEP(                                                      \
        "vmladav.s8") "bx %[n]\n\t"                                                                    \
                      ".p2align 2\n\t"                                                                 \
                      "5:\n\t" Q4_MVE_ACC_STEPS5 Q4_MVE_ACC_STEPS5 Q4_MVE_ACC_STEPS5 Q4_MVE_ACC_STEPS5 \
                          Q4_MVE_ACC_STEPS5 Q4_MVE_ACC_STEPS5 Q4_MVE_ACC_STEPS5 Q4_MVE_SUMS_TO_Q

/* %[skip] of Q4_MVE_GEMM_CHAIN for 3 <= steps <= Q4_MVE_CHAIN_STEPS. */
static Q4_MVE_HELPER uint32_t q4_mve_chain_skip(int32_t steps)
{
    return (uint32_t)((Q4_MVE_CHAIN_STEPS - steps) * Q4_MVE_STEP_BYTES + 1);
}

/* The accumulators: VMLADAVA accumulates into an even general register, and the compiler does
 * not keep 8 such accumulators in a loop without moves and spills, hence inline assembly. */
#define Q4_MVE_ACCUMULATORS             \
    register int32_t a0 __asm__("r0");  \
    register int32_t a1 __asm__("r2");  \
    register int32_t a2 __asm__("r4");  \
    register int32_t a3 __asm__("r6");  \
    register int32_t b0 __asm__("r8");  \
    register int32_t b1 __asm__("r10"); \
    register int32_t b2 __asm__("r12"); \
    register int32_t b3 __asm__("lr")

#define Q4_MVE_ACC_OPERANDS                                                         \
    [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [b0] "=&r"(b0), \
        [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3)

/* Where the im2col reads from. */
typedef struct {
    const int8_t *input;
    int32_t in_h, in_w, in_c, k_h, k_w, k, k16;
    int32_t stride_h, stride_w, pad_top, pad_left, out_w;
    int8x16_t zp; /* z_x in every lane */
} q4_mve_geometry;

/* Writes n vectors (16 bytes) to dst, dst + 64, ...: copies of src, src + 16, ... or fills. */
static inline int8_t *q4_mve_put_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n > 0; --n, src += Q4_MVE_LANES, dst += Q4_MVE_GROUP_STRIDE) {
        vst1q_s8(dst, vld1q_s8(src));
    }
    return dst;
}

static inline int8_t *q4_mve_put_fill(int8_t *dst, int32_t n, int8x16_t value)
{
    for (; n > 0; --n, dst += Q4_MVE_GROUP_STRIDE) {
        vst1q_s8(dst, value);
    }
    return dst;
}

/* One column (window top-left (y0, x0)) into the group's interleaved columns at dst, when every
 * tap is whole vectors (I a multiple of 16): per kernel row, z_x vectors for the taps left of
 * the input, copies of the taps inside, z_x vectors right of it. (Fields are read into locals
 * first: the int8 stores could alias *g.) */
static Q4_MVE_HELPER void q4_mve_column_vectors(const q4_mve_geometry *g, int32_t y0,
                                                int32_t x0, int8_t *dst)
{
    const int8_t *const input = g->input;
    const int32_t in_h = g->in_h, in_w = g->in_w, in_c = g->in_c, k_h = g->k_h, k_w = g->k_w;
    const int8x16_t zp = g->zp;
    const int32_t vpt = in_c / Q4_MVE_LANES; /* vectors per tap */
    const int32_t left = x0 < 0 ? (-x0 < k_w ? -x0 : k_w) : 0;
    const int32_t over = x0 + k_w - in_w;
    const int32_t right = over <= 0 ? 0 : (over < k_w - left ? over : k_w - left);
    const int32_t inside = k_w - left - right;
    int32_t ky;
    for (ky = 0; ky < k_h; ++ky) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h) {
            dst = q4_mve_put_fill(dst, k_w * vpt, zp);
        } else {
            dst = q4_mve_put_fill(dst, left * vpt, zp);
            dst = q4_mve_put_copy(dst, input + (iy * in_w + x0 + left) * in_c, inside * vpt);
            dst = q4_mve_put_fill(dst, right * vpt, zp);
        }
    }
}

/* Copies n > 0 bytes in whole vectors; up to 15 bytes past dst + n are overwritten (garbage
 * that a later write or a zero weight makes harmless). The source is read only below src + n. */
static inline void q4_mve_copy_spill(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n > 0; n -= Q4_MVE_LANES, src += Q4_MVE_LANES, dst += Q4_MVE_LANES) {
        vst1q_s8(dst, vldrbq_z_s8(src, vctp8q((uint32_t)n)));
    }
}

static inline void q4_mve_fill_spill(int8_t *dst, int32_t n, int8x16_t value)
{
    for (; n > 0; n -= Q4_MVE_LANES, dst += Q4_MVE_LANES) {
        vst1q_s8(dst, value);
    }
}

/* One column of any geometry into dst (interleaved): gathered in natural order into staging
 * (k16 + 16 bytes; z_x where the window leaves the input), then copied. Taps of at most 16
 * bytes are one predicated load (or z_x) and one store each. */
static Q4_MVE_HELPER void q4_mve_column_staged(const q4_mve_geometry *g, int32_t y0, int32_t x0,
                                               int8_t *staging, int8_t *dst)
{
    const int8_t *const input = g->input;
    const int32_t in_h = g->in_h, in_w = g->in_w, in_c = g->in_c, k_h = g->k_h, k_w = g->k_w;
    const int32_t run = k_w * in_c, vectors = g->k16 / Q4_MVE_LANES;
    const int8x16_t zp = g->zp;
    const int32_t left = x0 < 0 ? (-x0 < k_w ? -x0 : k_w) : 0;
    const int32_t over = x0 + k_w - in_w;
    const int32_t right = over <= 0 ? 0 : (over < k_w - left ? over : k_w - left);
    const int32_t inside = k_w - left - right;
    int8_t *col = staging;
    int32_t ky, kx;
    for (ky = 0; ky < k_h; ++ky, col += run) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h || inside == 0) {
            q4_mve_fill_spill(col, run, zp);
        } else if (in_c <= Q4_MVE_LANES) {
            const mve_pred16_t tap = vctp8q((uint32_t)in_c);
            const int8_t *src = input + (iy * in_w + x0) * in_c;
            for (kx = 0; kx < k_w; ++kx, src += in_c) {
                const int8x16_t v = kx >= left && kx < left + inside ? vldrbq_z_s8(src, tap) : zp;
                vst1q_s8(col + kx * in_c, v);
            }
        } else {
            q4_mve_fill_spill(col, left * in_c, zp);
            q4_mve_copy_spill(col + left * in_c, input + (iy * in_w + x0 + left) * in_c,
                              inside * in_c);
            q4_mve_fill_spill(col + (left + inside) * in_c, right * in_c, zp);
        }
    }
    q4_mve_put_copy(dst, staging, vectors);
}

/* The 4 columns of a group of consecutive output pixels in one row whose windows lie inside
 * `rows` (k_h rows row_bytes apart, window i starting step * i bytes in), taps of whole vectors:
 * per kernel row and vector, 4 loads and 4 stores. */
static Q4_MVE_HELPER void q4_mve_group_copy(const int8_t *rows, int32_t row_bytes, int32_t step,
                                            int32_t k_h, int32_t run, int8_t *dst)
{
    /* per vector 4 post-incremented loads, 3 stores at fixed offsets and one post-incremented:
     * inline assembly, as GCC's loop spent more on pointer set-up than on the copies */
    const int32_t next = row_bytes - run * Q4_MVE_LANES;
    const int8_t *s0 = rows, *s1 = rows + step, *s2 = rows + 2 * step, *s3 = rows + 3 * step;
    int32_t ky;
    for (ky = k_h; ky > 0; --ky) {
        int32_t n = run;
        __asm__ volatile(
            "1:\n\t"
            "vldrb.u8 q0, [%[s0]], #16\n\t"
            "vldrb.u8 q1, [%[s1]], #16\n\t"
            "vldrb.u8 q2, [%[s2]], #16\n\t"
            "vldrb.u8 q3, [%[s3]], #16\n\t"
            "vstrb.8 q1, [%[d], #16]\n\t"
            "vstrb.8 q2, [%[d], #32]\n\t"
            "vstrb.8 q3, [%[d], #48]\n\t"
            "vstrb.8 q0, [%[d]], #64\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [d] "+r"(dst), [n] "+r"(n)
            :
            : "q0", "q1", "q2", "q3", "cc", "memory");
        s0 += next;
        s1 += next;
        s2 += next;
        s3 += next;
    }
}

/* Writes n vectors to dst, dst + 16, ...: copies of src, src + 16, ... or fills. */
static inline int8_t *q4_mve_copy_vectors(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n > 0; --n, src += Q4_MVE_LANES, dst += Q4_MVE_LANES) {
        vst1q_s8(dst, vld1q_s8(src));
    }
    return dst;
}

static inline int8_t *q4_mve_fill_vectors(int8_t *dst, int32_t n, int8x16_t value)
{
    for (; n > 0; --n, dst += Q4_MVE_LANES) {
        vst1q_s8(dst, value);
    }
    return dst;
}

/* The input area under a group whose windows leave the input (top-left (y0, x0), k_h rows of
 * `span` taps of whole vectors), copied into patch with z_x outside the input. */
static Q4_MVE_HELPER void q4_mve_patch(const q4_mve_geometry *g, int32_t y0, int32_t x0,
                                       int32_t span, int8_t *patch)
{
    const int8_t *const input = g->input;
    const int32_t in_h = g->in_h, in_w = g->in_w, in_c = g->in_c, k_h = g->k_h;
    const int8x16_t zp = g->zp;
    const int32_t vpt = in_c / Q4_MVE_LANES;
    const int32_t left = x0 < 0 ? (-x0 < span ? -x0 : span) : 0;
    const int32_t over = x0 + span - in_w;
    const int32_t right = over <= 0 ? 0 : (over < span - left ? over : span - left);
    const int32_t inside = span - left - right;
    int32_t ky;
    for (ky = 0; ky < k_h; ++ky) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h || inside == 0) {
            patch = q4_mve_fill_vectors(patch, span * vpt, zp);
        } else {
            patch = q4_mve_fill_vectors(patch, left * vpt, zp);
            patch = q4_mve_copy_vectors(patch, input + (iy * in_w + x0 + left) * in_c,
                                        inside * vpt);
            patch = q4_mve_fill_vectors(patch, right * vpt, zp);
        }
    }
}

/* The columns of a group of 4 pixels in one output row (window of pixel 0 at (y, x)) whose
 * windows leave the input, when the gather offsets apply: per K-vector and pixel one byte gather
 * predicated on the lanes whose tap lies inside the input, z_x in the others. A lane's tap row
 * and the byte offset within it (r) follow from its offset o = ky * W * I + r (r < W * I); lanes
 * past K (offset 0) take tap (0, 0), harmless before their zero weights. With cols2 (else NULL)
 * the same for a second input of the same shape (input2, zero point zp2), sharing the
 * predicates. */
static Q4_MVE_INLINE void q4_mve_gather_border(const q4_mve_geometry *g, int32_t y, int32_t x,
                                               const uint8_t *offsets, int8_t *cols,
                                               const int8_t *input2, int8x16_t zp2, int8_t *cols2)
{
    const int32_t in_c = g->in_c, in_w = g->in_w, k_h = g->k_h, k_w = g->k_w;
    const int32_t pitch = in_w * in_c, vectors = g->k16 / Q4_MVE_LANES;
    const int32_t top = y < 0 ? -y : 0, bottom = g->in_h - y < k_h ? g->in_h - y : k_h;
    const int8x16_t zp = g->zp;
    int32_t col_lo[Q4_MVE_PIXELS], col_hi[Q4_MVE_PIXELS], inside[Q4_MVE_PIXELS];
    const int8_t *base[Q4_MVE_PIXELS];
    const uintptr_t delta2 = (uintptr_t)input2 - (uintptr_t)g->input; /* input2 - input */
    int32_t p, v, j;
    for (p = 0; p < Q4_MVE_PIXELS; ++p) {
        const int32_t xp = x + p * g->stride_w;
        const int32_t left = xp < 0 ? -xp : 0, right = in_w - xp < k_w ? in_w - xp : k_w;
        col_lo[p] = left * in_c;  /* r >= col_lo */
        col_hi[p] = right * in_c; /* r < col_hi (checked when below k_w * I) */
        inside[p] = left < right && top < bottom;
        /* the window's origin may lie outside the input; only lanes inside are read */
        base[p] = (const int8_t *)((uintptr_t)g->input +
                                   (uintptr_t)(intptr_t)((y * in_w + xp) * in_c));
    }
    for (v = 0; v < vectors; ++v, cols += Q4_MVE_GROUP_STRIDE, cols2 += Q4_MVE_GROUP_STRIDE) {
        const uint8x16_t o = vld1q_u8(offsets + v * Q4_MVE_LANES);
        uint8x16_t r = o;
        mve_pred16_t rows = 0xFFFF;
        for (j = 1; j < k_h; ++j) { /* (k_h - 1) * W * I <= 255: the table exists */
            r = vsubq_m_n_u8(r, r, (uint8_t)pitch, vcmpcsq_n_u8(o, (uint8_t)(j * pitch)));
        }
        if (top > 0 && top < k_h) {
            rows = vcmpcsq_n_u8(o, (uint8_t)(top * pitch));
        }
        if (bottom < k_h && bottom > 0) {
            rows &= (mve_pred16_t)~vcmpcsq_n_u8(o, (uint8_t)(bottom * pitch));
        }
        for (p = 0; p < Q4_MVE_PIXELS; ++p) {
            mve_pred16_t lanes = rows;
            if (!inside[p]) {
                vst1q_s8(cols + p * Q4_MVE_LANES, zp);
                if (input2 != NULL) {
                    vst1q_s8(cols2 + p * Q4_MVE_LANES, zp2);
                }
                continue;
            }
            if (col_lo[p] > 0) {
                lanes &= vcmpcsq_n_u8(r, (uint8_t)col_lo[p]);
            }
            if (col_hi[p] < k_w * in_c) {
                lanes &= (mve_pred16_t)~vcmpcsq_n_u8(r, (uint8_t)col_hi[p]);
            }
            vst1q_s8(cols + p * Q4_MVE_LANES,
                     vpselq_s8(vldrbq_gather_offset_z_s8(base[p], o, lanes), zp, lanes));
            if (input2 != NULL) {
                const int8_t *const base2 = (const int8_t *)((uintptr_t)base[p] + delta2);
                vst1q_s8(cols2 + p * Q4_MVE_LANES,
                         vpselq_s8(vldrbq_gather_offset_z_s8(base2, o, lanes), zp2, lanes));
            }
        }
    }
}

/* Fills the group's interleaved columns for output pixels first .. first + 3 (each clamped to
 * the last pixel). offsets: the gather offsets, or NULL when they do not fit 8 bits. */
static Q4_MVE_HELPER void q4_mve_im2col(const q4_mve_geometry *g, int32_t first, int32_t pixels,
                                        const uint8_t *offsets, int8_t *staging, int8_t *cols)
{
    const int8_t *const input = g->input;
    const int32_t in_h = g->in_h, in_w = g->in_w, in_c = g->in_c, k_h = g->k_h, k_w = g->k_w;
    const int32_t stride_h = g->stride_h, stride_w = g->stride_w, out_w = g->out_w;
    const int32_t vectors = g->k16 / Q4_MVE_LANES;
    const int32_t whole = in_c % Q4_MVE_LANES == 0;
    const int32_t span = (Q4_MVE_PIXELS - 1) * stride_w + k_w; /* taps under a group's row */
    const int32_t patch_bytes = 2 * g->k16 + Q4_MVE_LANES;     /* staging and offsets table */
    int32_t oy = first / out_w, ox = first - oy * out_w, px, v;
    int32_t y = oy * stride_h - g->pad_top, x = ox * stride_w - g->pad_left;
    if (first + Q4_MVE_PIXELS <= pixels && ox + Q4_MVE_PIXELS <= out_w && y >= 0 &&
        y + k_h <= in_h && x >= 0 && x + (Q4_MVE_PIXELS - 1) * stride_w + k_w <= in_w) {
        if (whole) {
            q4_mve_group_copy(input + (y * in_w + x) * in_c, in_w * in_c, stride_w * in_c, k_h,
                              k_w * in_c / Q4_MVE_LANES, cols);
            return;
        }
        if (offsets != NULL) { /* per K-vector, 4 byte gathers with the same offsets */
            const int8_t *base = input + (y * in_w + x) * in_c;
            const int32_t step = stride_w * in_c;
            for (v = 0; v < vectors; ++v, cols += Q4_MVE_GROUP_STRIDE) {
                const uint8x16_t off = vld1q_u8(offsets + v * Q4_MVE_LANES);
                vst1q_s8(cols, vldrbq_gather_offset_s8(base, off));
                vst1q_s8(cols + Q4_MVE_LANES, vldrbq_gather_offset_s8(base + step, off));
                vst1q_s8(cols + 2 * Q4_MVE_LANES, vldrbq_gather_offset_s8(base + 2 * step, off));
                vst1q_s8(cols + 3 * Q4_MVE_LANES, vldrbq_gather_offset_s8(base + 3 * step, off));
            }
            return;
        }
    }
    if (offsets != NULL && first + Q4_MVE_PIXELS <= pixels && ox + Q4_MVE_PIXELS <= out_w) {
        /* windows partly outside */
        q4_mve_gather_border(g, y, x, offsets, cols, NULL, g->zp, cols);
        return;
    }
    if (whole && first + Q4_MVE_PIXELS <= pixels && ox + Q4_MVE_PIXELS <= out_w &&
        k_h * span * in_c <= patch_bytes) { /* windows partly outside: through a padded patch */
        q4_mve_patch(g, y, x, span, staging);
        q4_mve_group_copy(staging, span * in_c, stride_w * in_c, k_h, k_w * in_c / Q4_MVE_LANES,
                          cols);
        return;
    }
    for (px = 0; px < Q4_MVE_PIXELS; ++px, cols += Q4_MVE_LANES) {
        if (whole) {
            q4_mve_column_vectors(g, y, x, cols);
        } else if (offsets != NULL && y >= 0 && y + k_h <= in_h && x >= 0 && x + k_w <= in_w) {
            const int8_t *base = input + (y * in_w + x) * in_c;
            int8_t *dst = cols;
            for (v = 0; v < vectors; ++v, dst += Q4_MVE_GROUP_STRIDE) {
                vst1q_s8(dst, vldrbq_gather_offset_s8(base, vld1q_u8(offsets + v * 16)));
            }
        } else {
            q4_mve_column_staged(g, y, x, staging, cols);
        }
        if (first + px + 1 < pixels) { /* else the last pixel again */
            x += stride_w;
            if (++ox == out_w) {
                ox = 0;
                x = -g->pad_left;
                y += stride_h;
            }
        }
    }
}

/* The byte-gather im2col of a group (4 pixels in one output row) for two inputs of the same
 * shape (g's input and input2 with zero point zp2 in every lane; columns cols and cols2),
 * sharing the offsets and the border predicates; 0 when the group is not in one row (then
 * q4_mve_im2col per input). */
static Q4_MVE_OUTLINE int32_t q4_mve_gather_pair(const q4_mve_geometry *g, const int8_t *input2,
                                                 const int8x16_t *zp2, int32_t first,
                                                 int32_t pixels, const uint8_t *offsets,
                                                 int8_t *cols, int8_t *cols2)
{
    const int32_t in_w = g->in_w, in_c = g->in_c, out_w = g->out_w;
    const int32_t oy = first / out_w, ox = first - oy * out_w;
    const int32_t y = oy * g->stride_h - g->pad_top, x = ox * g->stride_w - g->pad_left;
    int32_t v;
    if (first + Q4_MVE_PIXELS > pixels || ox + Q4_MVE_PIXELS > out_w) {
        return 0;
    }
    if (y >= 0 && y + g->k_h <= g->in_h && x >= 0 &&
        x + (Q4_MVE_PIXELS - 1) * g->stride_w + g->k_w <= in_w) {
        const int32_t step = g->stride_w * in_c, at = (y * in_w + x) * in_c;
        const int8_t *const a = g->input + at, *const b = input2 + at;
        for (v = 0; v < g->k16 / Q4_MVE_LANES;
             ++v, cols += Q4_MVE_GROUP_STRIDE, cols2 += Q4_MVE_GROUP_STRIDE) {
            const uint8x16_t off = vld1q_u8(offsets + v * Q4_MVE_LANES);
            vst1q_s8(cols, vldrbq_gather_offset_s8(a, off));
            vst1q_s8(cols + Q4_MVE_LANES, vldrbq_gather_offset_s8(a + step, off));
            vst1q_s8(cols + 2 * Q4_MVE_LANES, vldrbq_gather_offset_s8(a + 2 * step, off));
            vst1q_s8(cols + 3 * Q4_MVE_LANES, vldrbq_gather_offset_s8(a + 3 * step, off));
            vst1q_s8(cols2, vldrbq_gather_offset_s8(b, off));
            vst1q_s8(cols2 + Q4_MVE_LANES, vldrbq_gather_offset_s8(b + step, off));
            vst1q_s8(cols2 + 2 * Q4_MVE_LANES, vldrbq_gather_offset_s8(b + 2 * step, off));
            vst1q_s8(cols2 + 3 * Q4_MVE_LANES, vldrbq_gather_offset_s8(b + 3 * step, off));
        }
        return 1;
    }
    q4_mve_gather_border(g, y, x, offsets, cols, input2, *zp2, cols2);
    return 1;
}

/* The gather offsets of a window inside the input (0 past K), or NULL if one exceeds 255. */
static Q4_MVE_HELPER const uint8_t *q4_mve_gather_offsets(const q4_mve_geometry *g,
                                                          uint8_t *offsets)
{
    const int32_t run = g->k_w * g->in_c;
    int32_t k;
    if (((g->k_h - 1) * g->in_w + g->k_w) * g->in_c > 256) {
        return NULL;
    }
    for (k = 0; k < g->k16; ++k) { /* k = ky * run + r: offset ky * W * I + r */
        offsets[k] = (uint8_t)(k < g->k ? (k / run) * g->in_w * g->in_c + k % run : 0);
    }
    return offsets;
}

#endif /* Q4_CONV_MVE_H */
