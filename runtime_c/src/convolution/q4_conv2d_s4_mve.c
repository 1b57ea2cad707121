/*
 * q4_conv2d_s4_mve.c - conv2d, INT4 packed weights, int8-stored activations (4 or 8 bits), for
 * cores with Helium (MVE, Cortex-M55/M85). Bit-exact with q4_conv2d_s4.
 *
 * Scheme (docs/kernels.md):
 *  - Output channels in blocks of up to Q4_MVE_BLOCK_CHANNELS, taken as pairs: a block's packed
 *    rows are unpacked once into int8 (zero-padded to a multiple of 16 K-indices, the pair's two
 *    rows interleaved per 16-weight vector), and each pair gets its requantization record with
 *    the input zero point folded into the bias: acc = bias - z_x * sum(w) + sum(x * w), padded
 *    window positions holding z_x. An odd last channel is paired with its neighbour (computed
 *    twice, written twice with the same bytes).
 *  - im2col, 4 output pixels at a time, interleaved per 16-byte vector (pixel 0's k 0..15,
 *    pixel 1's, ..., then k 16..31), so one pointer reaches all four. The last group overlaps
 *    the one before it (or repeats the last pixel), so every group is whole.
 *  - GEMM: 2 channels x 4 pixels, 8 accumulators in general registers; per 16 K-indices 2 weight
 *    loads, 4 column loads and 8 VMLADAVA.S8 (128 MACs). GNU inline assembly (the only part of
 *    the file that is not C99 with ACLE intrinsics): see Q4_MVE_ACCUMULATORS.
 *  - Requantization of one channel's 4 pixels per vector: for shift >= 32,
 *    floor((acc * m + 2^(s-1)) / 2^s) = rounding_shift_right(VQDMULH(acc, m), s - 31), then
 *    + z_y, clamp, and one scatter VSTRB.32 (the 4 pixels are O bytes apart). A block with a
 *    shift below 32 requantizes with q4_requantize_clamp per output.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>
#include <stddef.h>

#define Q4_MVE_PIXELS 4          /* output pixels per im2col group */
#define Q4_MVE_BLOCK_CHANNELS 16 /* output channels unpacked at a time (even) */
#define Q4_MVE_LANES 16          /* int8 lanes per vector */
#define Q4_MVE_GROUP_STRIDE (Q4_MVE_PIXELS * Q4_MVE_LANES) /* bytes per K-vector of a group */
#define Q4_MVE_RECORD 8 /* int32 words of a pair's requantization record */

/* A pair's requantization record, in the order the GEMM loads it (one LDM). */
enum {
    Q4_MVE_BIAS_A,
    Q4_MVE_MULT_A,
    Q4_MVE_RSHIFT_A, /* folded bias, multiplier, 31 - shift */
    Q4_MVE_BIAS_B,
    Q4_MVE_MULT_B,
    Q4_MVE_RSHIFT_B,
    Q4_MVE_DELTA_B,
    Q4_MVE_NEXT /* channel b - channel a (1 or 0); next
                                                     * pair's channel a - this channel a */
};

static int32_t q4_round_up16(int32_t k)
{
    return (k + Q4_MVE_LANES - 1) & ~(Q4_MVE_LANES - 1);
}

/* Channels per block: the output channels rounded up to even, at most Q4_MVE_BLOCK_CHANNELS. */
static int32_t q4_mve_block_channels(int32_t out_c)
{
    const int32_t even = out_c + (out_c & 1);
    return even < Q4_MVE_BLOCK_CHANNELS ? even : Q4_MVE_BLOCK_CHANNELS;
}

int32_t q4_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims, const q4_dims *output_dims)
{
    const int32_t k16 = q4_round_up16(filter_dims->h * filter_dims->w * filter_dims->c);
    const int32_t block = q4_mve_block_channels(output_dims->c);
    /* pair records, unpacked weights, 4 interleaved columns, staging column, gather offsets */
    return 2 * Q4_MVE_RECORD * block + block * k16 + Q4_MVE_PIXELS * k16 + k16 + k16 +
           Q4_MVE_LANES;
}

/* Sign-extended weights 16 * b .. 16 * b + 15 of a packed row of row_bytes bytes (0 past it):
 * 8 bytes widened to 16-bit lanes hi:lo become the bytes (lo << 4, hi << 4), shifted back. */
static inline int8x16_t q4_mve_unpack16(const uint8_t *row, int32_t row_bytes, int32_t b)
{
    const int32_t left = row_bytes - b * (Q4_MVE_LANES / 2);
    const uint16x8_t raw = vldrbq_z_u16(row + b * (Q4_MVE_LANES / 2), vctp16q((uint32_t)left));
    const uint16x8_t nibbles = vsliq_n_u16(vshlq_n_u16(raw, 4), vbicq_n_u16(raw, 0xF), 8);
    return vshrq_n_s8(vreinterpretq_s8_u16(nibbles), 4);
}

/* Unpacks the block of channels [c0, c0 + n_ch) as pairs (pair p: channels a = min(2p, n_ch - 2)
 * and a + 1, or 0 and 0 when n_ch == 1) into w, pair p's vector b of channel a at
 * w + p * 2 * k16 + b * 32 and of channel b 16 bytes further, and writes the pairs' records.
 * Returns 1 when every shift of the block is at least 32 (the vector requantization applies). */
static int32_t q4_mve_unpack_block(const uint8_t *filter, int32_t row_bytes, int32_t k16,
                                   int32_t c0, int32_t n_ch, const int32_t *bias,
                                   const q4_quant_params *quant, int32_t in_zp, int8_t *w,
                                   int32_t *records)
{
    int32_t c, half, b, fast = 1;
    for (c = 0; c < n_ch; c += 2, records += Q4_MVE_RECORD) {
        const int32_t a = c + 2 <= n_ch ? c : (n_ch >= 2 ? n_ch - 2 : 0);
        for (half = 0; half < 2; ++half) {
            const int32_t ch = c0 + (n_ch >= 2 ? a + half : a);
            const uint8_t *row = filter + ch * row_bytes;
            int32_t sum = 0;
            int32_t *rec = records + (Q4_MVE_BIAS_B - Q4_MVE_BIAS_A) * half;
            for (b = 0; b < k16 / Q4_MVE_LANES; ++b) {
                const int8x16_t v = q4_mve_unpack16(row, row_bytes, b);
                sum = vaddvaq_s8(sum, v);
                vst1q_s8(w + (c * k16) + b * 2 * Q4_MVE_LANES + half * Q4_MVE_LANES, v);
            }
            /* modulo 2^32: with the dot product it fits int32 (docs/integer-spec.md) */
            rec[Q4_MVE_BIAS_A] = (int32_t)((uint32_t)bias[ch] - (uint32_t)in_zp * (uint32_t)sum);
            rec[Q4_MVE_MULT_A] = quant->multiplier[ch];
            rec[Q4_MVE_RSHIFT_A] = 31 - quant->shift[ch];
            fast &= quant->shift[ch] >= 32;
        }
        records[Q4_MVE_DELTA_B] = n_ch >= 2 ? 1 : 0;
        /* the last pair may overlap the one before it */
        records[Q4_MVE_NEXT] = c + 4 <= n_ch ? 2 : (n_ch >= 2 ? n_ch - 2 - a : 0);
    }
    return fast;
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

/* Every 2-channel x 4-pixel tile of a block for one group, requantized and stored: per pair,
 * `steps` GEMM steps over its weights (w, contiguous pairs) and the group's columns (cols), then
 * its record requantizes (records .. records_end, one per pair); out: the group's first pixel,
 * first pair's channel a; lo, hi: the clamp; zp: z_y; offsets: the pixels' byte offsets.
 * The values used once per pair stay in memory (stack operands): the loop needs only 4 general
 * registers besides the accumulators, so it builds with a frame pointer (-O0) and a fixed r9. */
static inline void q4_mve_tiles_run(const int8_t *cols, uint32_t steps, const int32_t *records,
                                    const int32_t *records_end, const int8_t *w, int8_t *out,
                                    int32x4_t lo, int32x4_t hi, int32x4_t zp, uint32x4_t offsets)
{
    Q4_MVE_ACCUMULATORS;
    const int8_t *x;
    uint32_t n;
    __asm__ volatile(
        "0:\n\t"
        "ldr %[x], %[cols]\n\t"
        "ldr %[n], %[steps]\n\t" Q4_MVE_GEMM "ldr %[n], %[rec]\n\t"
        "ldm %[n]!, {%[a0], %[a1], %[a2], %[a3], %[b0], %[b1], %[b2], %[b3]}\n\t"
        "str %[n], %[rec]\n\t"
        "vadd.i32 q0, q0, %[a0]\n\t" /* + folded bias */
        "vadd.i32 q1, q1, %[a3]\n\t"
        "vqdmulh.s32 q0, q0, %[a1]\n\t" /* floor(acc * m / 2^31) */
        "vqdmulh.s32 q1, q1, %[b0]\n\t"
        "vrshl.s32 q0, %[a2]\n\t" /* rounding shift right by s - 31 */
        "vrshl.s32 q1, %[b1]\n\t"
        "vadd.i32 q0, q0, %q[zp]\n\t"
        "vadd.i32 q1, q1, %q[zp]\n\t"
        "vmax.s32 q0, q0, %q[lo]\n\t"
        "vmax.s32 q1, q1, %q[lo]\n\t"
        "vmin.s32 q0, q0, %q[hi]\n\t"
        "vmin.s32 q1, q1, %q[hi]\n\t"
        "vstrb.32 q0, [%[out], %q[off]]\n\t"
        "add %[b2], %[b2], %[out]\n\t"
        "vstrb.32 q1, [%[b2], %q[off]]\n\t"
        "add %[out], %[out], %[b3]\n\t"
        "ldr %[a0], %[end]\n\t"
        "cmp %[n], %[a0]\n\t"
        "bne 0b\n\t"
        : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "=&r"(x), [n] "=&r"(n), [out] "+r"(out), [rec] "+m"(records)
        : [cols] "m"(cols), [steps] "m"(steps), [end] "m"(records_end), [lo] "w"(lo),
          [hi] "w"(hi), [zp] "w"(zp), [off] "w"(offsets)
        : "q0", "q1", "q2", "q3", "cc", "memory");
}

/* The same tile for a block with a shift below 32: the sums are requantized one by one.
 * shifts_ab: the two channels' shifts; last: the index of the last pixel (< 4 when fewer). */
static void q4_mve_tile_scalar(const int8_t **w, const int8_t *cols, int32_t steps,
                               const int32_t *rec, const int32_t *shifts_ab, int32_t last,
                               int8_t *out, int32_t out_c, const q4_conv_params *params)
{
    Q4_MVE_ACCUMULATORS;
    const int8_t *wp = *w;
    uint32_t n = (uint32_t)steps;
    int32_t sums[2 * Q4_MVE_PIXELS], half, p;
    __asm__ volatile(Q4_MVE_GEMM "vstrw.32 q0, [%[sums]]\n\t"
                                 "vstrw.32 q1, [%[sums], #16]\n\t"
                     : Q4_MVE_ACC_OPERANDS, [w] "+r"(wp), [x] "+r"(cols), [n] "+r"(n)
                     : [sums] "r"(sums)
                     : "q0", "q1", "q2", "q3", "cc", "memory");
    *w = wp;
    for (half = 0; half < 2; ++half) {
        const int32_t *r = rec + (Q4_MVE_BIAS_B - Q4_MVE_BIAS_A) * half;
        int8_t *o = out + half * rec[Q4_MVE_DELTA_B];
        for (p = 0; p < Q4_MVE_PIXELS; ++p) {
            const uint32_t acc = (uint32_t)sums[half * Q4_MVE_PIXELS + p] +
                                 (uint32_t)r[Q4_MVE_BIAS_A];
            o[(p < last ? p : last) * out_c] = q4_requantize_clamp(
                (int32_t)acc, r[Q4_MVE_MULT_A], shifts_ab[half], params->output_zp,
                params->act_min, params->act_max);
        }
    }
}

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
static void q4_mve_column_vectors(const q4_mve_geometry *g, int32_t y0, int32_t x0, int8_t *dst)
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
static void q4_mve_column_staged(const q4_mve_geometry *g, int32_t y0, int32_t x0,
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
static void q4_mve_group_copy(const int8_t *rows, int32_t row_bytes, int32_t step, int32_t k_h,
                              int32_t run, int8_t *dst)
{
    int32_t ky, v;
    for (ky = 0; ky < k_h; ++ky, rows += row_bytes) {
        const int8_t *s0 = rows, *s1 = rows + step, *s2 = rows + 2 * step, *s3 = rows + 3 * step;
        for (v = run; v > 0; --v, dst += Q4_MVE_GROUP_STRIDE) {
            vst1q_s8(dst, vld1q_s8(s0));
            vst1q_s8(dst + Q4_MVE_LANES, vld1q_s8(s1));
            vst1q_s8(dst + 2 * Q4_MVE_LANES, vld1q_s8(s2));
            vst1q_s8(dst + 3 * Q4_MVE_LANES, vld1q_s8(s3));
            s0 += Q4_MVE_LANES;
            s1 += Q4_MVE_LANES;
            s2 += Q4_MVE_LANES;
            s3 += Q4_MVE_LANES;
        }
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
static void q4_mve_patch(const q4_mve_geometry *g, int32_t y0, int32_t x0, int32_t span,
                         int8_t *patch)
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

/* Fills the group's interleaved columns for output pixels first .. first + 3 (each clamped to
 * the last pixel). offsets: the gather offsets, or NULL when they do not fit 8 bits. */
static void q4_mve_im2col(const q4_mve_geometry *g, int32_t first, int32_t pixels,
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

/* The gather offsets of a window inside the input (0 past K), or NULL if one exceeds 255. */
static const uint8_t *q4_mve_gather_offsets(const q4_mve_geometry *g, uint8_t *offsets)
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

void q4_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k16 = q4_round_up16(k), steps = k16 / Q4_MVE_LANES;
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t out_c = output_dims->c, pixels = output_dims->h * output_dims->w;
    const int32_t block = q4_mve_block_channels(out_c);
    /* scratch: pair records, unpacked weights, columns, staging column, gather offsets */
    int32_t *records = scratch;
    int8_t *weights = (int8_t *)(scratch + Q4_MVE_RECORD * (block / 2));
    int8_t *cols = weights + block * k16;
    int8_t *staging = cols + Q4_MVE_PIXELS * k16; /* also the patch (2 * k16 + 16 bytes) */
    uint8_t *offset_table = (uint8_t *)(staging + k16 + Q4_MVE_LANES);
    const int32x4_t lo = vdupq_n_s32(params->act_min), hi = vdupq_n_s32(params->act_max);
    /* the pixels' output offsets; fewer than 4 pixels repeat the last one */
    const uint32x4_t offsets = vmulq_n_u32(
        vminq_u32(vidupq_n_u32(0, 1), vdupq_n_u32((uint32_t)(pixels - 1))), (uint32_t)out_c);
    const int32x4_t zp = vdupq_n_s32(params->output_zp);
    const uint8_t *gather;
    q4_mve_geometry g;
    int32_t c0;

    g.input = input;
    g.in_h = input_dims->h;
    g.in_w = input_dims->w;
    g.in_c = input_dims->c;
    g.k_h = filter_dims->h;
    g.k_w = filter_dims->w;
    g.k = k;
    g.k16 = k16;
    g.stride_h = params->stride_h;
    g.stride_w = params->stride_w;
    g.pad_top = params->pad_top;
    g.pad_left = params->pad_left;
    g.out_w = output_dims->w;
    g.zp = vdupq_n_s8((int8_t)params->input_zp);
    gather = g.in_c % Q4_MVE_LANES ? q4_mve_gather_offsets(&g, offset_table) : NULL;
    q4_mve_fill_spill(staging, k16, vdupq_n_s8(0)); /* the bytes past K stay defined */
    for (c0 = 0; c0 < out_c; c0 += block) {
        const int32_t n_ch = out_c - c0 < block ? out_c - c0 : block;
        const int32_t fast = q4_mve_unpack_block(filter, row_bytes, k16, c0, n_ch, bias, quant,
                                                 params->input_zp, weights, records);
        const int32_t *const records_end = records + Q4_MVE_RECORD * ((n_ch + 1) / 2);
        int32_t p0;
        for (p0 = 0; p0 < pixels; p0 += Q4_MVE_PIXELS) {
            /* the last group overlaps the one before: every group is whole */
            const int32_t first = p0 + Q4_MVE_PIXELS <= pixels || pixels < Q4_MVE_PIXELS
                                      ? p0
                                      : pixels - Q4_MVE_PIXELS;
            int8_t *out = output + first * out_c + c0;
            q4_mve_im2col(&g, first, pixels, gather, staging, cols);
            if (fast) {
                q4_mve_tiles_run(cols, (uint32_t)steps, records, records_end, weights, out, lo,
                                 hi, zp, offsets);
            } else {
                const int8_t *w = weights;
                const int32_t *rec = records;
                int32_t c;
                for (c = 0; c < n_ch; c += 2, rec += Q4_MVE_RECORD) {
                    const int32_t a = c + 2 <= n_ch ? c : (n_ch >= 2 ? n_ch - 2 : 0);
                    const int32_t shifts_ab[2] = {quant->shift[c0 + a],
                                                  quant->shift[c0 + a + rec[Q4_MVE_DELTA_B]]};
                    q4_mve_tile_scalar(&w, cols, steps, rec, shifts_ab, pixels - 1 - first,
                                       out + a, out_c, params);
                }
            }
        }
    }
}

#else /* no MVE: the portable kernel (scratch unused) */

int32_t q4_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims, const q4_dims *output_dims)
{
    (void)filter_dims;
    (void)output_dims;
    return 0;
}

void q4_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_conv2d_s4(params, quant, input_dims, input, filter_dims, filter, bias, output_dims,
                 output);
}

#endif
