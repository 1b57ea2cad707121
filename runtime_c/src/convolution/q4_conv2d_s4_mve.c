/*
 * q4_conv2d_s4_mve.c - conv2d, INT4 packed weights, int8-stored activations (4 or 8 bits), for
 * cores with Helium (MVE, Cortex-M55/M85). Bit-exact with q4_conv2d_s4.
 *
 * Scheme (docs/kernels.md):
 *  - Output channels in blocks (q4_mve_block_channels: at least Q4_MVE_BLOCK_CHANNELS, more
 *    while the block's weights fit Q4_MVE_BLOCK_BYTES, so the im2col is redone for fewer
 *    blocks), taken as pairs: a block's packed rows are unpacked once into int8 (zero-padded to
 *    a multiple of 16 K-indices, the pair's two rows interleaved per 16-weight vector), and each
 *    pair gets its requantization record with the input zero point folded into the bias:
 *    acc = bias - z_x * sum(w) + sum(x * w), padded window positions holding z_x. An odd last
 *    channel is paired with its neighbour (computed twice, written twice with the same bytes).
 *  - im2col, 4 output pixels at a time, interleaved per 16-byte vector (pixel 0's k 0..15,
 *    pixel 1's, ..., then k 16..31), so one pointer reaches all four. The last group overlaps
 *    the one before it (or repeats the last pixel), so every group is whole.
 *  - GEMM: 2 channels x 4 pixels, 8 accumulators in general registers; per 16 K-indices 2 weight
 *    loads, 4 column loads and 8 VMLADAVA.S8 (128 MACs). GNU inline assembly (the only part of
 *    the file that is not C99 with ACLE intrinsics): see Q4_MVE_ACCUMULATORS. 1 or 2 steps run
 *    straight, 3..36 as a chain entered by a computed branch (Q4_MVE_GEMM_CHAIN), more in a loop.
 *  - Direct GEMM (no im2col) for 3-row kernels whose rows are 3, 6 or 12 whole vectors and whose
 *    4 pixels are 16, 32 or 64 bytes apart: the loads use immediate offsets from one pointer
 *    (pixel p at p * S), which reads the input itself when the windows lie inside it, else the
 *    group's border patch (the input area with z_x around it).
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

#include "q4_conv_mve.h"

#if defined(__GNUC__) /* kept out of the group loop, which they slowed when inlined */
#define Q4_MVE_NOINLINE __attribute__((noinline))
#else
#define Q4_MVE_NOINLINE
#endif

#define Q4_MVE_BLOCK_CHANNELS 16 /* output channels unpacked at a time, at least (even) */
#define Q4_MVE_BLOCK_BYTES 9216  /* or more while their weights fit this (16 x K = 576) */
#define Q4_MVE_RECORD 8          /* int32 words of a pair's requantization record */

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

/* Channels per block: the output channels rounded up to even, at most the larger of
 * Q4_MVE_BLOCK_CHANNELS and the even count whose unpacked weights fit Q4_MVE_BLOCK_BYTES. */
static int32_t q4_mve_block_channels(int32_t out_c, int32_t k16)
{
    const int32_t even = out_c + (out_c & 1);
    int32_t most = (Q4_MVE_BLOCK_BYTES / k16) & ~1;
    most = most > Q4_MVE_BLOCK_CHANNELS ? most : Q4_MVE_BLOCK_CHANNELS;
    return even < most ? even : most;
}

int32_t q4_conv2d_s4_mve_get_buffer_size(const q4_dims *filter_dims, const q4_dims *output_dims)
{
    const int32_t k16 = q4_round_up16(filter_dims->h * filter_dims->w * filter_dims->c);
    const int32_t block = q4_mve_block_channels(output_dims->c, k16);
    /* pair records, unpacked weights, 4 interleaved columns, staging column, gather offsets */
    return 2 * Q4_MVE_RECORD * block + block * k16 + Q4_MVE_PIXELS * k16 + k16 + k16 +
           Q4_MVE_LANES;
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
    int32_t c, half, fast = 1;
    for (c = 0; c < n_ch; c += 2, records += Q4_MVE_RECORD) {
        const int32_t a = c + 2 <= n_ch ? c : (n_ch >= 2 ? n_ch - 2 : 0);
        for (half = 0; half < 2; ++half) {
            const int32_t ch = c0 + (n_ch >= 2 ? a + half : a);
            const uint8_t *row = filter + ch * row_bytes;
            const int32_t sum = q4_mve_unpack_row(row, row_bytes, k16,
                                                  w + c * k16 + half * Q4_MVE_LANES);
            int32_t *rec = records + (Q4_MVE_BIAS_B - Q4_MVE_BIAS_A) * half;
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

/* Every 2-channel x 4-pixel tile of a block for one group, requantized and stored: per pair,
 * `steps` GEMM steps over its weights (w, contiguous pairs) and the group's columns (cols), then
 * its record requantizes (records .. records_end, one per pair); out: the group's first pixel,
 * first pair's channel a; lo, hi: the clamp; zp: z_y; offsets: the pixels' byte offsets.
 * The values used once per pair stay in memory (stack operands): the loop needs only 4 general
 * registers besides the accumulators, so it builds with a frame pointer (-O0) and a fixed r9. */
#define Q4_MVE_DEFINE_TILES_RUN(name, gemm)                                                    \
    static inline void name(const int8_t *cols, uint32_t steps, const int32_t *records,        \
                            const int32_t *records_end, const int8_t *w, int8_t *out,          \
                            int32x4_t lo, int32x4_t hi, int32x4_t zp, uint32x4_t offsets)      \
    {                                                                                          \
        Q4_MVE_ACCUMULATORS;                                                                   \
        const int8_t *x;                                                                       \
        uint32_t n;                                                                            \
        __asm__ volatile(                                                                      \
            "0:\n\t"                                                                           \
            "ldr %[x], %[cols]\n\t" gemm "ldr %[n], %[rec]\n\t"                                \
            "ldm %[n]!, {%[a0], %[a1], %[a2], %[a3], %[b0], %[b1], %[b2], %[b3]}\n\t"          \
            "str %[n], %[rec]\n\t"                                                             \
            "vadd.i32 q0, q0, %[a0]\n\t" /* + folded bias */                                   \
            "vadd.i32 q1, q1, %[a3]\n\t"                                                       \
            "vqdmulh.s32 q0, q0, %[a1]\n\t" /* floor(acc * m / 2^31) */                        \
            "vqdmulh.s32 q1, q1, %[b0]\n\t"                                                    \
            "vrshl.s32 q0, %[a2]\n\t" /* rounding shift right by s - 31 */                     \
            "vrshl.s32 q1, %[b1]\n\t"                                                          \
            "vadd.i32 q0, q0, %q[zp]\n\t"                                                      \
            "vadd.i32 q1, q1, %q[zp]\n\t"                                                      \
            "vmax.s32 q0, q0, %q[lo]\n\t"                                                      \
            "vmax.s32 q1, q1, %q[lo]\n\t"                                                      \
            "vmin.s32 q0, q0, %q[hi]\n\t"                                                      \
            "vmin.s32 q1, q1, %q[hi]\n\t"                                                      \
            "vstrb.32 q0, [%[out], %q[off]]\n\t"                                               \
            "add %[b2], %[b2], %[out]\n\t"                                                     \
            "vstrb.32 q1, [%[b2], %q[off]]\n\t"                                                \
            "add %[out], %[out], %[b3]\n\t"                                                    \
            "ldr %[a0], %[end]\n\t"                                                            \
            "cmp %[n], %[a0]\n\t"                                                              \
            "bne 0b\n\t"                                                                       \
            : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "=&r"(x), [n] "=&r"(n), [out] "+r"(out),   \
              [rec] "+m"(records)                                                              \
            : [cols] "m"(cols), [steps] "m"(steps), [skip] "m"(steps), [end] "m"(records_end), \
              [lo] "w"(lo), [hi] "w"(hi), [zp] "w"(zp), [off] "w"(offsets)                     \
            : "q0", "q1", "q2", "q3", "cc", "memory");                                         \
    }

/* The GEMM with `steps` steps, or a fixed 1 or 2 (K <= 32) without the step-count logic. */
Q4_MVE_DEFINE_TILES_RUN(q4_mve_tiles_run, "ldr %[n], %[steps]\n\t" Q4_MVE_GEMM)
Q4_MVE_DEFINE_TILES_RUN(q4_mve_tiles_run1, Q4_MVE_GEMM_1)
Q4_MVE_DEFINE_TILES_RUN(q4_mve_tiles_run2, Q4_MVE_GEMM_2)
/* 3 .. Q4_MVE_CHAIN_STEPS steps (K <= 576): steps holds q4_mve_chain_skip(steps) */
Q4_MVE_DEFINE_TILES_RUN(q4_mve_tiles_run_chain, Q4_MVE_GEMM_CHAIN)

/* Without im2col: a group of 4 pixels in one output row whose windows lie inside the input, in
 * a 3-row kernel whose rows are 3 or 6 whole vectors (I = 16 or 32) and whose pixels are S = 16
 * or 32 bytes apart (stride_w * I): the GEMM reads the input itself, pixel p at [x, #p * S]
 * (immediate offsets), x advancing 16 bytes per step and %[skip] bytes (to the next input row)
 * after each kernel row. */
#define Q4_MVE_DIRECT_STEP(op, ld, s1, s2, s3)                                             \
    "vldrb.8 q0, [%[w]], #16\n\t"                                                          \
    "vldrb.8 q1, [%[w]], #16\n\t" ld " q2, [%[x], #" s1 "]\n\t" op " %[a1], q2, q0\n\t" op \
    " %[b1], q2, q1\n\t" ld " q3, [%[x], #" s2 "]\n\t" op " %[a2], q3, q0\n\t" op          \
    " %[b2], q3, q1\n\t" ld " q2, [%[x], #" s3 "]\n\t" op " %[a3], q2, q0\n\t" op          \
    " %[b3], q2, q1\n\t" ld " q3, [%[x]], #16\n\t" op " %[a0], q3, q0\n\t" op              \
    " %[b0], q3, q1\n\t"
#define Q4_MVE_DIRECT_NEXT_ROW "add %[x], %[x], %[n]\n\t" /* n: the skip, loaded once */
#define Q4_MVE_DIRECT_3(ld, s1, s2, s3)               \
    Q4_MVE_DIRECT_STEP("vmladava.s8", ld, s1, s2, s3) \
    Q4_MVE_DIRECT_STEP("vmladava.s8", ld, s1, s2, s3) \
    Q4_MVE_DIRECT_STEP("vmladava.s8", ld, s1, s2, s3)
/* the first 3 steps of the first kernel row (the first one starts the sums), after loading
 * the row skip into n */
#define Q4_MVE_DIRECT_FIRST_3(ld, s1, s2, s3)                                \
    "ldr %[n], %[skip]\n\t" Q4_MVE_DIRECT_STEP("vmladav.s8", ld, s1, s2, s3) \
        Q4_MVE_DIRECT_STEP("vmladava.s8", ld, s1, s2, s3)                    \
            Q4_MVE_DIRECT_STEP("vmladava.s8", ld, s1, s2, s3)
/* 3 kernel rows of 3, 6 or 12 vectors (I = 16, 32, 64 with 3 taps) */
#define Q4_MVE_GEMM_DIRECT_3(ld, s1, s2, s3)               \
    Q4_MVE_DIRECT_FIRST_3(ld, s1, s2, s3)                  \
    Q4_MVE_DIRECT_NEXT_ROW Q4_MVE_DIRECT_3(ld, s1, s2, s3) \
    Q4_MVE_DIRECT_NEXT_ROW Q4_MVE_DIRECT_3(ld, s1, s2, s3) Q4_MVE_SUMS_TO_Q
#define Q4_MVE_DIRECT_ROW_6(ld, s1, s2, s3) \
    Q4_MVE_DIRECT_3(ld, s1, s2, s3) Q4_MVE_DIRECT_3(ld, s1, s2, s3)
#define Q4_MVE_GEMM_DIRECT_6(ld, s1, s2, s3)                                                   \
    Q4_MVE_DIRECT_FIRST_3(ld, s1, s2, s3)                                                      \
    Q4_MVE_DIRECT_3(ld, s1, s2, s3) Q4_MVE_DIRECT_NEXT_ROW Q4_MVE_DIRECT_ROW_6(ld, s1, s2, s3) \
    Q4_MVE_DIRECT_NEXT_ROW                                                                     \
    Q4_MVE_DIRECT_ROW_6(ld, s1, s2, s3) Q4_MVE_SUMS_TO_Q
#define Q4_MVE_GEMM_DIRECT_12(ld, s1, s2, s3)                      \
    Q4_MVE_DIRECT_FIRST_3(ld, s1, s2, s3)                          \
    Q4_MVE_DIRECT_3(ld, s1, s2, s3)                                \
    Q4_MVE_DIRECT_ROW_6(ld, s1, s2, s3)                            \
    Q4_MVE_DIRECT_NEXT_ROW Q4_MVE_DIRECT_ROW_6(ld, s1, s2, s3)     \
        Q4_MVE_DIRECT_ROW_6(ld, s1, s2, s3) Q4_MVE_DIRECT_NEXT_ROW \
        Q4_MVE_DIRECT_ROW_6(ld, s1, s2, s3) Q4_MVE_DIRECT_ROW_6(ld, s1, s2, s3) Q4_MVE_SUMS_TO_Q

/* cols: the group's first window (pixel 0's top-left tap); steps: the row skip in bytes.
 * Pixels 64 bytes apart (offsets up to 192) load with VLDRH (immediates up to 254, 2-byte
 * aligned): used on the border patch only, which lies in the scratch. */
Q4_MVE_DEFINE_TILES_RUN(q4_mve_tiles_direct_1, Q4_MVE_GEMM_DIRECT_3("vldrb.8", "16", "32", "48"))
Q4_MVE_DEFINE_TILES_RUN(q4_mve_tiles_direct_2, Q4_MVE_GEMM_DIRECT_3("vldrb.8", "32", "64", "96"))
Q4_MVE_DEFINE_TILES_RUN(q4_mve_tiles_direct_3, Q4_MVE_GEMM_DIRECT_6("vldrb.8", "32", "64", "96"))
Q4_MVE_DEFINE_TILES_RUN(q4_mve_tiles_direct_4,
                        Q4_MVE_GEMM_DIRECT_12("vldrh.16", "64", "128", "192"))

/* Which direct GEMM a layer can use (0: none): 1, 2, 3: pixels S = 16, 32, 32 bytes apart,
 * kernel rows of 3, 3, 6 vectors (read from the input or the patch); 4: S = 64, rows of 12
 * vectors (I = 64, stride 1; the patch only). */
static int32_t q4_mve_direct_kind(const q4_mve_geometry *g)
{
    const int32_t s = g->stride_w * g->in_c, run = g->k_w * g->in_c;
    if (g->in_c % Q4_MVE_LANES != 0 || g->k_h != 3) {
        return 0;
    }
    if (s == 16 || s == 32) {
        return run == 48 ? s / 16 : (s == 32 && run == 96 ? 3 : 0);
    }
    return s == 64 && run == 192 ? 4 : 0;
}

/* The 4-pixel tiles of a block for one group through the direct GEMM of `kind`. */
static Q4_MVE_NOINLINE void q4_mve_direct_run(int32_t kind, const int8_t *base, uint32_t skip,
                                              const int32_t *records, const int32_t *records_end,
                                              const int8_t *weights, int8_t *out, int32x4_t lo,
                                              int32x4_t hi, int32x4_t zp, uint32x4_t offsets)
{
    if (kind == 1) {
        q4_mve_tiles_direct_1(base, skip, records, records_end, weights, out, lo, hi, zp,
                              offsets);
    } else if (kind == 2) {
        q4_mve_tiles_direct_2(base, skip, records, records_end, weights, out, lo, hi, zp,
                              offsets);
    } else if (kind == 3) {
        q4_mve_tiles_direct_3(base, skip, records, records_end, weights, out, lo, hi, zp,
                              offsets);
    } else {
        q4_mve_tiles_direct_4(base, skip, records, records_end, weights, out, lo, hi, zp,
                              offsets);
    }
}

/* The first window of the group at output pixel `first`, when the group takes the direct GEMM:
 * 4 pixels in one output row, every window inside the input; else NULL. */
static const int8_t *q4_mve_direct_base(const q4_mve_geometry *g, int32_t first, int32_t pixels)
{
    const int32_t oy = first / g->out_w, ox = first - oy * g->out_w;
    const int32_t y = oy * g->stride_h - g->pad_top, x = ox * g->stride_w - g->pad_left;
    if (first + Q4_MVE_PIXELS <= pixels && ox + Q4_MVE_PIXELS <= g->out_w && y >= 0 &&
        y + g->k_h <= g->in_h && x >= 0 &&
        x + (Q4_MVE_PIXELS - 1) * g->stride_w + g->k_w <= g->in_w) {
        return g->input + (y * g->in_w + x) * g->in_c;
    }
    return NULL;
}

/* For a group of 4 pixels in one output row whose windows leave the input (its input area, 3
 * kernel rows of (3 * stride_w + k_w) taps, fitting the patch: checked once per call): copies
 * it into patch (z_x outside the input) and returns 1; 0 when the group is not in one row. The patch's rows are then (3 * stride_w + k_w) * I bytes
 * long: the direct GEMM skips (3 * stride_w) * I bytes after each kernel row. */
static Q4_MVE_NOINLINE int32_t q4_mve_patch_group(const q4_mve_geometry *g, int32_t first,
                                                  int32_t pixels, int8_t *patch)
{
    const int32_t oy = first / g->out_w, ox = first - oy * g->out_w;
    const int32_t span = (Q4_MVE_PIXELS - 1) * g->stride_w + g->k_w;
    if (first + Q4_MVE_PIXELS > pixels || ox + Q4_MVE_PIXELS > g->out_w) {
        return 0;
    }
    q4_mve_patch(g, oy * g->stride_h - g->pad_top, ox * g->stride_w - g->pad_left, span, patch);
    return 1;
}

/* The same tile for a block with a shift below 32: the sums are requantized one by one.
 * shifts_ab: the two channels' shifts; last: the index of the last pixel (< 4 when fewer). */
static Q4_MVE_NOINLINE void q4_mve_tile_scalar(const int8_t **w, const int8_t *cols,
                                               int32_t steps, const int32_t *rec,
                                               const int32_t *shifts_ab, int32_t last,
                                               int8_t *out, int32_t out_c,
                                               const q4_conv_params *params)
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

void q4_conv2d_s4_mve(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k16 = q4_round_up16(k), steps = k16 / Q4_MVE_LANES;
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t out_c = output_dims->c, pixels = output_dims->h * output_dims->w;
    const int32_t block = q4_mve_block_channels(out_c, k16);
    const uint32_t skip = steps >= 3 && steps <= Q4_MVE_CHAIN_STEPS ? q4_mve_chain_skip(steps)
                                                                    : 0;
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
    int32_t c0, direct_kind, patch_fits;
    uint32_t row_skip, patch_skip;

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
    direct_kind = q4_mve_direct_kind(&g);
    row_skip = (uint32_t)((g.in_w - g.k_w) * g.in_c);
    patch_skip = (uint32_t)((Q4_MVE_PIXELS - 1) * g.stride_w * g.in_c);
    patch_fits = g.k_h * ((Q4_MVE_PIXELS - 1) * g.stride_w + g.k_w) * g.in_c <=
                 2 * k16 + Q4_MVE_LANES;
    q4_mve_fill_spill(staging, k16, vdupq_n_s8(0)); /* the bytes past K stay defined */
    for (c0 = 0; c0 < out_c; c0 += block) {
        const int32_t n_ch = out_c - c0 < block ? out_c - c0 : block;
        const int32_t fast = q4_mve_unpack_block(filter, row_bytes, k16, c0, n_ch, bias, quant,
                                                 params->input_zp, weights, records);
        const int32_t *const records_end = records + Q4_MVE_RECORD * ((n_ch + 1) / 2);
        const int32_t direct = fast ? direct_kind : 0;
        const int32_t patch_direct = direct != 0 && patch_fits;
        int32_t p0;
        for (p0 = 0; p0 < pixels; p0 += Q4_MVE_PIXELS) {
            /* the last group overlaps the one before: every group is whole */
            const int32_t first = p0 + Q4_MVE_PIXELS <= pixels || pixels < Q4_MVE_PIXELS
                                      ? p0
                                      : pixels - Q4_MVE_PIXELS;
            int8_t *out = output + first * out_c + c0;
            const int8_t *const base = direct != 0 && direct < 4
                                           ? q4_mve_direct_base(&g, first, pixels)
                                           : NULL;
            if (base != NULL) { /* no im2col */
                q4_mve_direct_run(direct, base, row_skip, records, records_end, weights, out,
                                  lo, hi, zp, offsets);
                continue;
            }
            if (patch_direct && q4_mve_patch_group(&g, first, pixels, staging)) {
                /* windows partly outside: the direct GEMM on the padded patch */
                q4_mve_direct_run(direct, staging, patch_skip, records, records_end, weights,
                                  out, lo, hi, zp, offsets);
                continue;
            }
            q4_mve_im2col(&g, first, pixels, gather, staging, cols);
            if (fast) {
                if (steps > Q4_MVE_CHAIN_STEPS) {
                    q4_mve_tiles_run(cols, (uint32_t)steps, records, records_end, weights, out,
                                     lo, hi, zp, offsets);
                } else if (steps > 2) {
                    q4_mve_tiles_run_chain(cols, skip, records, records_end, weights, out, lo,
                                           hi, zp, offsets);
                } else if (steps == 2) {
                    q4_mve_tiles_run2(cols, 2, records, records_end, weights, out, lo, hi, zp,
                                      offsets);
                } else {
                    q4_mve_tiles_run1(cols, 1, records, records_end, weights, out, lo, hi, zp,
                                      offsets);
                }
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
