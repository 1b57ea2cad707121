/*
 * q4_conv2d_s4_dsp.c - conv2d, INT4 packed weights, int8-stored activations (4 or 8 bits), for
 * cores with the Arm DSP extension (Cortex-M4/M7/M33/M55). Bit-exact with q4_conv2d_s4.
 *
 * Scheme (docs/kernels.md):
 *  - Output channels go in blocks of Q4_DSP_CHANNELS. A block's weight rows are unpacked once
 *    per call into int16 pairs of 16 * w (`(w << 4) & 0xF0F0F0F0` and `w & 0xF0F0F0F0` hold the
 *    even and odd nibbles times 16 as signed bytes), two channels interleaved, and the input zero
 *    point is folded into the bias: acc = bias - z_x * sum(w) + sum(x * w).
 *  - im2col: 4 output pixels at a time, widened to int16 pairs by SXTB16 straight from the
 *    input (window positions outside it take z_x). Per block of 8 K-indices x0..x7 a column
 *    holds (x0,x2) (x1,x3) (x4,x6) (x5,x7), the weights the same pairs, interleaved by pair
 *    (cols[(block * 4 + pair) * 4 + pixel]), so LDRD loads two pixels or two channels.
 *  - GEMM: 2 output channels x 4 pixels, 8 SMLAD per 2 weight and 4 activation loads. The
 *    accumulator is 16 * sum(x * w), exact for K <= Q4_OPT_MAX_K; its shift by 4 is exact.
 *  - Requantization: for shift > 32 (the usual case) floor((acc * m + 2^(s-1)) / 2^s) equals
 *    floor((hi + 2^(s-33)) / 2^(s-32)) with hi = floor(acc * m / 2^32); other shifts use
 *    q4_requantize_clamp. For blocks whose shifts are all in (32, 53], each 2 x 2 tile is
 *    requantized by inline assembly right after its GEMM (q4_pair_fused_u8: ADD with the shift
 *    by 4 folded in, SMMLA, ASR, USAT #8, a per-byte minimum by USUB8 / SEL for other clamp
 *    widths, UADD8 of act_min) and stored as one halfword per pixel.
 *  - Tiles (docs/kernels.md, "Cortex-M4 conv, round 4"): for a whole group of 4 pixels and a block
 *    whose shifts are all in [32, 52], every channel pair is computed by one assembly function
 *    (q4_dsp_pairs*_u8*: per 2 K-pairs one LDM of the pair's weights, 2 LDRD, 8 SMLAD; the
 *    requantization of doubled sums with shift s + 1, q4_tile_prepare) that saves and restores
 *    its 13 registers itself (r9 untouched); the rest (a partial last group, other shifts, an odd
 *    last channel) takes the paths above. A pointwise layer's group is widened without window
 *    logic (q4_pointwise_group).
 *
 * q4_conv2d_s4_a4_dsp, for 4-bit activations (x in [-8, 7]), computes two output channels per
 * 16-bit product: a weight halfword holds h = -w_a + w_b * 2^11 (fits int16), so one SMLAD adds
 * -(x0 * w_a + x1 * w_a) in the low 11 bits and (x0 * w_b + x1 * w_b) * 2^11 above: 4 MACs per
 * instruction. Each -x * w_a lies in [-64, 56], so 16 products (8 SMLADs, two K blocks) stay in
 * [-1024, 896], a signed 11-bit field: after every two blocks the field is moved out (SBFX) into
 * a second accumulator and the high field keeps accumulating (exact while K * 64 < 2^20). The
 * GEMM computes 2 channel pairs x 2 pixels with the same im2col columns as above; whole groups run
 * in one assembly function per call (q4_dsp_quads_a4_*: the channel quads, the low fields drained
 * into int16 lane sums, the requantization and one word store per pixel).
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_conv_dsp.h"

#define Q4_DSP_CHANNELS 16 /* output channels per unpacked weight block (even) */

/* Scratch: folded biases of a channel block, its unpacked weights, the 4 im2col columns and an
 * int8 staging row. */
int32_t q4_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k = q4_round_up8(filter_dims->h * filter_dims->w * filter_dims->c);
    return 4 * Q4_DSP_CHANNELS + (Q4_DSP_CHANNELS + Q4_DSP_PIXELS) * 2 * k + k;
}

/* Unpacks nb rows (K weights each, from `rows`) into `dst`, two channels interleaved per K-pair:
 * [channel pair][block][K-pair][channel of the pair]; an odd last channel is paired with zeros. Writes
 * folded_bias[r] = bias[r] - z_x * sum(w). A partial last block reads only the row's own bytes. */
static void q4_unpack_rows(const uint8_t *rows, const int32_t *bias, int32_t nb, int32_t k,
                           int32_t zp, uint32_t *dst, int32_t *folded_bias)
{
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t blocks = q4_round_up8(k) / Q4_DSP_BLOCK;
    int32_t r, b, i;

    for (r = 0; r < nb + (nb & 1); ++r) {
        const uint8_t *row = rows + r * row_bytes;
        uint32_t *out = dst + (r / 2) * blocks * 8 + r % 2;
        int32_t sum16 = 0;
        for (b = 0; b < blocks; ++b, out += 8) {
            uint32_t w = 0;
            if (r >= nb) { /* the zero partner of an odd last channel */
                w = 0;
            } else if (4 * b + 4 <= row_bytes) {
                w = q4_load_u32(row + 4 * b);
            } else {
                for (i = 0; 4 * b + i < row_bytes; ++i) {
                    w |= (uint32_t)row[4 * b + i] << (8 * i);
                }
            }
            sum16 += q4_unpack8(w, out);
        }
        if (r < nb) {
            folded_bias[r] = bias[r] - zp * q4_floor_shift32(sum16, 4);
        }
    }
}

/* 16 * dot products of a pair of unpacked channels with the group's 4 columns: acc[0..3] for the
 * first channel's pixels, acc[4..7] for the second's. */
static inline void q4_dot_2x4(const uint32_t *w, const uint32_t *col, int32_t blocks, int32_t *acc)
{
    int32_t half[4];
    q4_dot_2x2(w, col, blocks, half);
    acc[0] = half[0];
    acc[1] = half[1];
    acc[4] = half[2];
    acc[5] = half[3];
    q4_dot_2x2(w, col + 2, blocks, half);
    acc[2] = half[0];
    acc[3] = half[1];
    acc[6] = half[2];
    acc[7] = half[3];
}

/* floor(a * b / 2^32): the high word of the 64-bit product (SMULL). */
static inline int32_t q4_mul_high(int32_t a, int32_t b)
{
    return (int32_t)(uint32_t)((uint64_t)((int64_t)a * b) >> 32);
}

/* Requantizes and stores the accumulators of one channel's n pixels (stride out_c); the
 * accumulators are 2^acc_shift * sum(x * w) (acc_shift 4 for the 16 * w weights, else 0). */
static inline void q4_store_channel(const int32_t *acc16, int32_t acc_shift, int32_t n,
                                    int32_t bias, int32_t multiplier, int32_t shift,
                                    const q4_conv_params *params, int8_t *out, int32_t out_c)
{
    /* locals: the int8 stores below could otherwise alias *params */
    const int32_t zp = params->output_zp, lo = params->act_min, hi = params->act_max;
    int32_t c;
    if (shift > 32) {
        const int32_t right = shift - 32, round = (int32_t)1 << (shift - 33);
        for (c = 0; c < n; ++c) {
            const int32_t acc = bias + q4_floor_shift32(acc16[c], acc_shift);
            int32_t y = zp + q4_floor_shift32(q4_mul_high(acc, multiplier) + round, right);
            y = y < lo ? lo : y;
            y = y > hi ? hi : y;
            out[c * out_c] = (int8_t)y;
        }
        return;
    }
    for (c = 0; c < n; ++c) {
        out[c * out_c] = q4_requantize_clamp(bias + q4_floor_shift32(acc16[c], acc_shift),
                                             multiplier, shift, zp, lo, hi);
    }
}

/* Per-channel requantization constants of a block (on the stack): the fast path when the
 * shift is in (32, 53], see q4_rq_prepare. */
typedef struct {
    int32_t bias;       /* the folded bias */
    int32_t multiplier; /* m */
    int32_t right;      /* shift - 32 */
    int32_t round;      /* 2^(right - 1) + (z_y - act_min) * 2^right */
} q4_rq_rec;

/* acc + floor(a * b / 2^32): SMMLA (the high word of (acc << 32) + a * b; its low word is
 * a * b's, so nothing is rounded). GCC does not emit SMMLA from C. */
static inline int32_t q4_smmla(int32_t a, int32_t b, int32_t acc)
{
    int32_t result;
    __asm__("smmla %0, %1, %2, %3" : "=r"(result) : "r"(a), "r"(b), "r"(acc));
    return result;
}

/* q4_rq_prepare's result for other clamp widths (with allow_min): USAT #8, then a minimum */
#define Q4_RQ_USAT8_MIN 9

/* Fills the block's records; returns the USAT width for the fast path (8 when act_max -
 * act_min = 255, 4 when it is 15; Q4_RQ_USAT8_MIN for other widths when allow_min), or 0 for
 * other ranges or when some channel's shift is outside (32, 53] (q4_store_channel then). */
static int32_t q4_rq_prepare(const int32_t *folded_bias, const q4_quant_params *quant,
                             int32_t oc0, int32_t nb, const q4_conv_params *params,
                             int32_t allow_min, q4_rq_rec *rec)
{
    const int32_t width = params->act_max - params->act_min;
    const int32_t offset = params->output_zp - params->act_min;
    int32_t c;
    if (width != 255 && width != 15 && (!allow_min || width < 0 || width > 255)) {
        return 0;
    }
    for (c = 0; c < nb; ++c) {
        const int32_t shift = quant->shift[oc0 + c];
        if (shift <= 32 || shift > 53) {
            return 0;
        }
        rec[c].bias = folded_bias[c];
        rec[c].multiplier = quant->multiplier[oc0 + c];
        rec[c].right = shift - 32;
        /* |hi| < 2^30 and (offset + 1) * 2^right <= 2^29: the sum stays exact in int32 */
        rec[c].round = ((int32_t)1 << (shift - 33)) + offset * ((int32_t)1 << (shift - 32));
    }
    return width == 255 ? 8 : (width == 15 ? 4 : Q4_RQ_USAT8_MIN);
}

/* Requantizes, clamps and stores the n pixels of two adjacent channels (accumulators acc[p] and
 * acc[Q4_DSP_PIXELS + p], 2^acc_shift * sum(x * w); records r[0], r[1]) at out, pixel stride
 * out_c: USAT, the two bytes of a pixel one halfword store with act_min added to both by
 * UADD8. One function per clamp (CLAMP(u): USAT #8 or #4), kept out of line so that its 8
 * constants stay in registers. */
#define Q4_RQ_PAIR(name, CLAMP)                                                                  \
    static Q4_RQ_NOINLINE void name(const int32_t *acc, int32_t acc_shift, const q4_rq_rec *r,   \
                                    int32_t n, uint32_t lo2, int8_t *out, int32_t out_c)         \
    {                                                                                            \
        const int32_t ba = r[0].bias, ma = r[0].multiplier, sa = r[0].right, ca = r[0].round;    \
        const int32_t bb = r[1].bias, mb = r[1].multiplier, sb = r[1].right, cb = r[1].round;    \
        int32_t p;                                                                               \
        for (p = 0; p < n; ++p, out += out_c) {                                                  \
            int32_t ua = q4_floor_shift32(                                                       \
                q4_smmla(ba + q4_floor_shift32(acc[p], acc_shift), ma, ca), sa);                 \
            int32_t ub = q4_floor_shift32(                                                       \
                q4_smmla(bb + q4_floor_shift32(acc[Q4_DSP_PIXELS + p], acc_shift), mb, cb), sb); \
            uint16_t pair;                                                                       \
            ua = CLAMP(ua);                                                                      \
            ub = CLAMP(ub);                                                                      \
            pair = (uint16_t)__uadd8((uint32_t)ua | (uint32_t)ub << 8, lo2);                     \
            __builtin_memcpy(out, &pair, sizeof pair);                                           \
        }                                                                                        \
    }
#if defined(__GNUC__)
#define Q4_RQ_NOINLINE __attribute__((noinline))
#else
#define Q4_RQ_NOINLINE
#endif
#define Q4_RQ_USAT8(u) ((int32_t)__usat((u), 8))
#define Q4_RQ_USAT4(u) ((int32_t)__usat((u), 4))
Q4_RQ_PAIR(q4_rq_pair_u8, Q4_RQ_USAT8)
Q4_RQ_PAIR(q4_rq_pair_u4, Q4_RQ_USAT4)

/* The pair store for q4_rq_prepare's usat (8 or 4). */
static inline void q4_rq_store_pair(const int32_t *acc, int32_t acc_shift, const q4_rq_rec *r,
                                    int32_t n, int32_t usat, const q4_conv_params *params,
                                    int8_t *out, int32_t out_c)
{
    const uint32_t lo2 = ((uint32_t)params->act_min & 0xFFu) * 0x0101u;
    if (usat == 8) {
        q4_rq_pair_u8(acc, acc_shift, r, n, lo2, out, out_c);
    } else {
        q4_rq_pair_u4(acc, acc_shift, r, n, lo2, out, out_c);
    }
}

#if defined(__OPTIMIZE__)
/* Two channels (records r[0], r[1]) x two pixels of the GEMM's 16 * sums d = {a0, a1, b0, b1}
 * (q4_dot_2x2's order) requantized in one block of GNU inline assembly, as q4_rq_pair: per
 * output ADD (bias + sum / 16, the shift folded into the operand), SMMLA, ASR, USAT; the two
 * channels' bytes of a pixel packed and act_min added by UADD8: pair[p] is pixel p's halfword.
 * 10 registers. Only with optimisation (at -O0 the C below). */
#define Q4_RQ_2X2(name, SAT)                                                                  \
    static Q4_DSP_ALWAYS_INLINE void name(const int32_t *d, const q4_rq_rec *r, uint32_t lo2, \
                                          uint32_t *pair)                                     \
    {                                                                                         \
        uint32_t a0 = (uint32_t)d[0], a1 = (uint32_t)d[1], b0 = (uint32_t)d[2],               \
                 b1 = (uint32_t)d[3], t0, t1, t2, t3;                                         \
        __asm__("ldrd %[t0], %[t1], [%[r]]\n\t"                                               \
                "ldrd %[t2], %[t3], [%[r], #8]\n\t"                                           \
                "add %[a0], %[t0], %[a0], asr #4\n\t"                                         \
                "add %[a1], %[t0], %[a1], asr #4\n\t"                                         \
                "smmla %[a0], %[a0], %[t1], %[t3]\n\t"                                        \
                "smmla %[a1], %[a1], %[t1], %[t3]\n\t"                                        \
                "asr %[a0], %[a0], %[t2]\n\t"                                                 \
                "asr %[a1], %[a1], %[t2]\n\t"                                                 \
                "usat %[a0], #" #SAT ", %[a0]\n\t"                                            \
                "usat %[a1], #" #SAT ", %[a1]\n\t"                                            \
                "ldrd %[t0], %[t1], [%[r], #16]\n\t"                                          \
                "ldrd %[t2], %[t3], [%[r], #24]\n\t"                                          \
                "add %[b0], %[t0], %[b0], asr #4\n\t"                                         \
                "add %[b1], %[t0], %[b1], asr #4\n\t"                                         \
                "smmla %[b0], %[b0], %[t1], %[t3]\n\t"                                        \
                "smmla %[b1], %[b1], %[t1], %[t3]\n\t"                                        \
                "asr %[b0], %[b0], %[t2]\n\t"                                                 \
                "asr %[b1], %[b1], %[t2]\n\t"                                                 \
                "usat %[b0], #" #SAT ", %[b0]\n\t"                                            \
                "usat %[b1], #" #SAT ", %[b1]\n\t"                                            \
                "orr %[a0], %[a0], %[b0], lsl #8\n\t"                                         \
                "orr %[a1], %[a1], %[b1], lsl #8\n\t"                                         \
                "uadd8 %[a0], %[a0], %[lo2]\n\t"                                              \
                "uadd8 %[a1], %[a1], %[lo2]\n\t"                                              \
                : [a0] "+&r"(a0), [a1] "+&r"(a1), [b0] "+&r"(b0), [b1] "+&r"(b1),             \
                  [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3)              \
                : [r] "r"(r), [lo2] "r"(lo2)                                                  \
                : "memory");                                                                  \
        pair[0] = a0;                                                                         \
        pair[1] = a1;                                                                         \
    }
Q4_RQ_2X2(q4_rq_2x2_u8, 8)
#else
static void q4_rq_2x2_c(const int32_t *d, const q4_rq_rec *r, uint32_t lo2, uint32_t *pair,
                        int32_t sat)
{
    const int32_t top = ((int32_t)1 << sat) - 1;
    int32_t p, c;
    for (p = 0; p < 2; ++p) {
        uint32_t bytes = 0;
        for (c = 0; c < 2; ++c) {
            int32_t u = q4_floor_shift32(q4_smmla(r[c].bias + q4_floor_shift32(d[2 * c + p], 4),
                                                  r[c].multiplier, r[c].round),
                                         r[c].right);
            u = u < 0 ? 0 : (u > top ? top : u);
            bytes |= (uint32_t)u << (8 * c);
        }
        pair[p] = __uadd8(bytes, lo2);
    }
}
static void q4_rq_2x2_u8(const int32_t *d, const q4_rq_rec *r, uint32_t lo2, uint32_t *pair)
{
    q4_rq_2x2_c(d, r, lo2, pair, 8);
}
#endif

/* A channel pair (unpacked rows at w, records r) for the group's n pixels, GEMM and
 * requantization fused (q4_dot_2x2, q4_rq_2x2_u8: 8-bit outputs; a 4-bit clamp, rare with an
 * input wider than 4 bits, takes q4_rq_store_pair), one halfword store per pixel. */
static Q4_RQ_NOINLINE void q4_pair_fused_u8(const uint32_t *w, const uint32_t *cols,
                                            int32_t blocks, const q4_rq_rec *r, int32_t n,
                                            uint32_t add2, const uint32_t *min_lo, int8_t *out,
                                            int32_t out_c)
{
    int32_t d[4], p;
    uint32_t pair[Q4_DSP_PIXELS];
    q4_dot_2x2(w, cols, blocks, d);
    q4_rq_2x2_u8(d, r, add2, pair);
    q4_dot_2x2(w, cols + 2, blocks, d);
    q4_rq_2x2_u8(d, r, add2, pair + 2);
    if (min_lo != 0) { /* per byte min(u, width) (USUB8 sets GE where u >= width, SEL), + lo */
        const uint32_t wid2 = min_lo[0], lo2 = min_lo[1];
        for (p = 0; p < Q4_DSP_PIXELS; ++p) {
            uint32_t t;
            __asm__("usub8 %[t], %[u], %[wid]\n\t"
                    "sel %[u], %[wid], %[u]\n\t"
                    "uadd8 %[u], %[u], %[lo]\n\t"
                    : [t] "=&r"(t), [u] "+&r"(pair[p])
                    : [wid] "r"(wid2), [lo] "r"(lo2)
                    : "cc");
            (void)t;
        }
    }
    for (p = 0; p < n; ++p, out += out_c) {
        const uint16_t h = (uint16_t)pair[p];
        __builtin_memcpy(out, &h, sizeof h);
    }
}

/* Whether the layer is a 1x1 convolution whose windows are its input pixels (no top / left
 * padding, every window inside the input) with I a multiple of 8: q4_pointwise_group then. */
static int32_t q4_is_pointwise(const q4_conv_params *params, const q4_dims *input_dims,
                               const q4_dims *filter_dims, const q4_dims *output_dims)
{
    return filter_dims->h == 1 && filter_dims->w == 1 && input_dims->c % Q4_DSP_BLOCK == 0 &&
           params->pad_top == 0 && params->pad_left == 0 &&
           (output_dims->h - 1) * params->stride_h < input_dims->h &&
           (output_dims->w - 1) * params->stride_w < input_dims->w;
}

/* The im2col group of a pointwise layer (q4_is_pointwise): the 4 pixels' channels widened
 * straight into the interleaved columns (no window logic, one loop over the blocks of 8
 * channels for the 4 pixels); a missing last pixel repeats the one before it. With stride 1
 * the pixels are consecutive in the input. */
static void q4_pointwise_group(const int8_t *input, const q4_dims *input_dims,
                               const q4_conv_params *params, int32_t out_w, int32_t p0,
                               int32_t n, uint32_t *cols)
{
    const int32_t in_c = input_dims->c;
    const int8_t *src[Q4_DSP_PIXELS];
    const int8_t *s0, *s1, *s2, *s3;
    int32_t c, b;
    for (c = 0; c < Q4_DSP_PIXELS; ++c) {
        const int32_t p = p0 + (c < n ? c : n - 1);
        if (params->stride_h == 1 && params->stride_w == 1 && out_w == input_dims->w) {
            src[c] = input + p * in_c;
        } else {
            const int32_t y = p / out_w, x = p - y * out_w;
            src[c] = input + (y * params->stride_h * input_dims->w + x * params->stride_w) * in_c;
        }
    }
    s0 = src[0];
    s1 = src[1];
    s2 = src[2];
    s3 = src[3];
    for (b = 0; b < in_c; b += Q4_DSP_BLOCK, cols += 4 * Q4_DSP_PIXELS) {
        q4_widen8(q4_load_u32(s0 + b), q4_load_u32(s0 + b + 4), cols);
        q4_widen8(q4_load_u32(s1 + b), q4_load_u32(s1 + b + 4), cols + 1);
        q4_widen8(q4_load_u32(s2 + b), q4_load_u32(s2 + b + 4), cols + 2);
        q4_widen8(q4_load_u32(s3 + b), q4_load_u32(s3 + b + 4), cols + 3);
    }
}

#if defined(__GNUC__)
#define Q4_DSP_TILE_ASM 1

/* ------------------------------------------------- the channel-pair tile loop in assembly */

/* Arguments of q4_dsp_pairs_u8 (read once by one LDM; the field order is the assembly's). */
typedef struct {
    int32_t wbytes;       /* bytes of one channel pair's unpacked weights: 32 * blocks */
    int32_t pairs;        /* channel pairs to compute (>= 1) */
    const q4_rq_rec *rec; /* records of the first pair's two channels */
    int8_t *out;          /* the first pair's output for the group's first pixel */
    int32_t out_c;        /* output pixel stride in bytes */
    uint32_t lo2;  /* act_min in both bytes of a halfword (_a4: in the 4 bytes of a word) */
    uint32_t wid4; /* _a4: act_max - act_min in the 4 bytes of a word */
} q4_tile_args;

/* For `pairs` channel pairs (unpacked rows from w, one after another) and the 4 pixels of a whole
 * group (cols): the GEMM of q4_dot_2x2 per pixel pair, the requantization of q4_rq_2x2_u8 (full
 * 8-bit clamp) and one halfword store per pixel, in one assembly function that keeps its 13
 * registers itself (r0-r8, r10-r12, lr; r7 saved and restored here, r9 never touched: it builds
 * the same with a frame pointer, r9 reserved and at -O0). Per 2 K-pairs the GEMM is one LDM of
 * both channels' weight pairs, two LDRD of the pixels' activation pairs and 8 SMLAD: 24
 * instructions per 32 MACs with the loop (q4_dot_2x2: 27). Per pixel pair the set-up, the
 * requantization and the stores are ~40 instructions, with no call per channel pair. */
void q4_dsp_pairs_u8(const uint32_t *w, const uint32_t *cols, const q4_tile_args *args);
/* The same with two blocks per loop step (an even number of blocks): 46 instructions per 64 MACs */
void q4_dsp_pairs2_u8(const uint32_t *w, const uint32_t *cols, const q4_tile_args *args);
/* The same two for other clamp widths (USAT #8, then a per-byte minimum of the width) */
void q4_dsp_pairs_u8min(const uint32_t *w, const uint32_t *cols, const q4_tile_args *args);
void q4_dsp_pairs2_u8min(const uint32_t *w, const uint32_t *cols, const q4_tile_args *args);

/* One block (4 K-pairs) of the GEMM: r0 = weights (LDM, advanced 32 bytes), r1 = the pixel
 * pair's column words (advanced 64 bytes), accumulators r3 r4 (first channel, pixels 0 1) and
 * r5 r6 (second channel); weights in r8 r10 r11 r12, activations in r7 lr. */
#define Q4_TILE_BLOCK                    \
    "ldmia r0!, {r8, r10, r11, r12}\n\t" \
    "ldrd r7, lr, [r1, #16]\n\t"         \
    "smlad r3, r7, r11, r3\n\t"          \
    "smlad r4, lr, r11, r4\n\t"          \
    "smlad r5, r7, r12, r5\n\t"          \
    "smlad r6, lr, r12, r6\n\t"          \
    "ldrd r7, lr, [r1], #64\n\t"         \
    "smlad r3, r7, r8, r3\n\t"           \
    "smlad r4, lr, r8, r4\n\t"           \
    "smlad r5, r7, r10, r5\n\t"          \
    "smlad r6, lr, r10, r6\n\t"          \
    "ldmia r0!, {r8, r10, r11, r12}\n\t" \
    "ldrd r7, lr, [r1, #-32]\n\t"        \
    "smlad r3, r7, r8, r3\n\t"           \
    "smlad r4, lr, r8, r4\n\t"           \
    "smlad r5, r7, r10, r5\n\t"          \
    "smlad r6, lr, r10, r6\n\t"          \
    "ldrd r7, lr, [r1, #-16]\n\t"        \
    "smlad r3, r7, r11, r3\n\t"          \
    "smlad r4, lr, r11, r4\n\t"          \
    "smlad r5, r7, r12, r5\n\t"          \
    "smlad r6, lr, r12, r6\n\t"

/* clang-format off */
/* The GEMM of one pixel pair (column words from cols; COLS: the instruction that adds the pair's
 * offset, 8 bytes for pixels 2 and 3) over the pair's weights ([sp, #32] to r2; LOOP: one or two
 * blocks per loop step), then its requantization (records at [sp, #12]: ADD of the bias with the
 * shift by 4, SMMLA, ASR, USAT #8, the channels' bytes packed, UADD8 of act_min) into r3 (first
 * pixel) and r4 (second pixel). LABEL: a local label number for the loop. */
#define Q4_TILE_HALF(COLS, LABEL, LOOP, MIN)  \
    "ldr r0, [sp, #32]\n\t"              \
    "ldr r1, [sp, #0]\n\t"               \
    "movs r3, #0\n\t"                    \
    "movs r4, #0\n\t"                    \
    "movs r5, #0\n\t"                    \
    "movs r6, #0\n\t"                    \
    COLS                                 \
    LABEL ":\n\t"                        \
    LOOP                                 \
    "cmp r0, r2\n\t"                     \
    "bne " LABEL "b\n\t"                 \
    "ldr r1, [sp, #12]\n\t"              \
    "ldmia r1!, {r7, r8, r10, r11}\n\t"  \
    "add r3, r7, r3, asr #3\n\t"         \
    "add r4, r7, r4, asr #3\n\t"         \
    "smmla r3, r3, r8, r11\n\t"          \
    "smmla r4, r4, r8, r11\n\t"          \
    "asr r3, r3, r10\n\t"                \
    "asr r4, r4, r10\n\t"                \
    "usat r3, #8, r3\n\t"                \
    "usat r4, #8, r4\n\t"                \
    "ldm r1, {r7, r8, r10, r11}\n\t"     \
    "add r5, r7, r5, asr #3\n\t"         \
    "add r6, r7, r6, asr #3\n\t"         \
    "smmla r5, r5, r8, r11\n\t"          \
    "smmla r6, r6, r8, r11\n\t"          \
    "asr r5, r5, r10\n\t"                \
    "asr r6, r6, r10\n\t"                \
    "usat r5, #8, r5\n\t"                \
    "usat r6, #8, r6\n\t"                \
    "ldr r12, [sp, #24]\n\t"             \
    "orr r3, r3, r5, lsl #8\n\t"         \
    "orr r4, r4, r6, lsl #8\n\t"         \
    MIN                                  \
    "uadd8 r3, r3, r12\n\t"              \
    "uadd8 r4, r4, r12\n\t"

/* The per-byte minimum of the two pixels' bytes (r3, r4) and the clamp width (in both bytes of
 * [sp, #28]): USUB8 sets GE where u >= width, SEL. */
#define Q4_TILE_MIN              \
    "ldr r8, [sp, #28]\n\t"     \
    "usub8 r10, r3, r8\n\t"     \
    "sel r3, r8, r3\n\t"        \
    "usub8 r10, r4, r8\n\t"     \
    "sel r4, r8, r4\n\t"

/* The function NAME with LOOP as its GEMM loop step and MIN (Q4_TILE_MIN or nothing) after the
 * USAT. Stack frame (40 bytes below the 8 saved registers): [sp] cols, [sp, #4] wbytes, [sp, #8]
 * the end of the last pair's weights, [sp, #12] rec, [sp, #16] out, [sp, #20] out_c, [sp, #24]
 * lo2, [sp, #28] the clamp width, [sp, #32] the current pair's weights. */
#define Q4_PAIRS_FUNCTION(NAME, LOOP, MIN)                                 \
    __asm__(".pushsection .text." #NAME ",\"ax\",%progbits\n\t"        \
            ".syntax unified\n\t"                                      \
            ".thumb\n\t"                                               \
            ".p2align 2\n\t"                                           \
            ".global " #NAME "\n\t"                                    \
            ".hidden " #NAME "\n\t"                                    \
            ".type " #NAME ", %function\n\t"                           \
            ".thumb_func\n"                                            \
            #NAME ":\n\t"                                              \
            "push {r4, r5, r6, r7, r8, r10, r11, lr}\n\t"              \
            "sub sp, sp, #40\n\t"                                      \
            "ldm r2, {r3, r4, r5, r6, r7, r8, r10}\n\t"                 \
            "mla r4, r4, r3, r0\n\t"                                   \
            "stm sp, {r1, r3, r4, r5, r6, r7, r8, r10}\n"                 \
            "1:\n\t"                                                   \
            "str r0, [sp, #32]\n\t"                                    \
            "adds r2, r0, r3\n\t"                                      \
            Q4_TILE_HALF("", "2", LOOP, MIN)                                \
            "ldr r1, [sp, #16]\n\t"                                    \
            "ldr r12, [sp, #20]\n\t"                                   \
            "strh r3, [r1]\n\t"                                        \
            "strh r4, [r1, r12]\n\t"                                   \
            Q4_TILE_HALF("adds r1, r1, #8\n\t", "3", LOOP, MIN)             \
            "ldrd r1, r12, [sp, #16]\n\t"                              \
            "add r1, r1, r12, lsl #1\n\t"                              \
            "strh r3, [r1]\n\t"                                        \
            "strh r4, [r1, r12]\n\t"                                   \
            "ldrd r3, r1, [sp, #8]\n\t"                                \
            "adds r1, r1, #32\n\t"                                     \
            "str r1, [sp, #12]\n\t"                                    \
            "ldr r1, [sp, #16]\n\t"                                    \
            "adds r1, r1, #2\n\t"                                      \
            "str r1, [sp, #16]\n\t"                                    \
            "cmp r0, r3\n\t"                                           \
            "ldr r3, [sp, #4]\n\t"                                     \
            "bne 1b\n\t"                                               \
            "add sp, sp, #40\n\t"                                      \
            "pop {r4, r5, r6, r7, r8, r10, r11, pc}\n\t"               \
            ".size " #NAME ", .-" #NAME "\n\t"                         \
            ".popsection")
Q4_PAIRS_FUNCTION(q4_dsp_pairs_u8, Q4_TILE_BLOCK, "");
Q4_PAIRS_FUNCTION(q4_dsp_pairs2_u8, Q4_TILE_BLOCK Q4_TILE_BLOCK, "");
Q4_PAIRS_FUNCTION(q4_dsp_pairs_u8min, Q4_TILE_BLOCK, Q4_TILE_MIN);
Q4_PAIRS_FUNCTION(q4_dsp_pairs2_u8min, Q4_TILE_BLOCK Q4_TILE_BLOCK, Q4_TILE_MIN);
/* clang-format on */
/* Records of the tile functions, for a block whose shifts are all in [32, 52]: the sums are
 * doubled and requantized with s + 1 (floor((2 acc m + 2^s) / 2^(s+1)) is the same value), so a
 * shift of 32 needs no other path: {2 bias, m, s - 31, 2^(s-32) + (z_y - act_min) 2^(s-31)}; the
 * _a4 tiles (a4) take {-bias, -m, ...} for a quad's even channels, whose sums they hold negated
 * (SMMLA(-2 acc, -m, round) = SMMLA(2 acc, m, round)). Requires |bias| < 2^29 (|2 acc| < 2^31
 * and |hi| + round < 2^31). Returns the USAT kind as q4_rq_prepare, or 0 (the C paths). */
static int32_t q4_tile_prepare(const int32_t *folded_bias, const q4_quant_params *quant,
                               int32_t oc0, int32_t nb, const q4_conv_params *params,
                               int32_t a4, q4_rq_rec *rec)
{
    const int32_t width = params->act_max - params->act_min;
    const int32_t offset = params->output_zp - params->act_min;
    int32_t c;
    if (width < 0 || width > 255) {
        return 0;
    }
    for (c = 0; c < nb; ++c) {
        const int32_t shift = quant->shift[oc0 + c], m = quant->multiplier[oc0 + c];
        const int32_t b = folded_bias[c];
        const int32_t negate = a4 && c % 2 == 0;
        if (shift < 32 || shift > 52 || m < 0 || b <= -(1 << 29) || b >= (1 << 29)) {
            return 0;
        }
        rec[c].bias = negate ? -b : 2 * b;
        rec[c].multiplier = negate ? -m : m;
        rec[c].right = shift - 31;
        rec[c].round = ((int32_t)1 << (shift - 32)) + offset * ((int32_t)1 << (shift - 31));
    }
    return width == 255 ? 8 : (width == 15 ? 4 : Q4_RQ_USAT8_MIN);
}
#endif /* __GNUC__ */

void q4_conv2d_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k_pad = q4_round_up8(k);
    const int32_t blocks = k_pad / Q4_DSP_BLOCK;
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t out_w = output_dims->w, out_c = output_dims->c;
    const int32_t pixels = output_dims->h * out_w;
    /* scratch: folded biases and unpacked weights of one channel block, the 4 columns, the int8
     * staging row (used only when I is not a multiple of 8) */
    int32_t *folded_bias = scratch;
    uint32_t *weights = (uint32_t *)(scratch + Q4_DSP_CHANNELS);
    uint32_t *cols = weights + Q4_DSP_CHANNELS * (k_pad / 2);
    int8_t *stage = (int8_t *)(cols + Q4_DSP_PIXELS * (k_pad / 2));
    q4_rq_rec rec[Q4_DSP_CHANNELS];
#if defined(Q4_DSP_TILE_ASM)
    q4_rq_rec rec_t[Q4_DSP_CHANNELS]; /* q4_tile_prepare's */
    int32_t tile;
#endif
    /* the clamp width and act_min in both bytes of a halfword (Q4_RQ_USAT8_MIN) */
    const int32_t pointwise = q4_is_pointwise(params, input_dims, filter_dims, output_dims);
    const uint32_t min_lo[2] = {((uint32_t)(params->act_max - params->act_min) & 0xFFu) * 0x0101u,
                                ((uint32_t)params->act_min & 0xFFu) * 0x0101u};
    int32_t oc0, p0, oc, usat;

    for (oc0 = 0; oc0 < out_c; oc0 += Q4_DSP_CHANNELS) {
        const int32_t nb = out_c - oc0 < Q4_DSP_CHANNELS ? out_c - oc0 : Q4_DSP_CHANNELS;
        q4_unpack_rows(filter + oc0 * row_bytes, bias + oc0, nb, k, params->input_zp, weights,
                       folded_bias);
        usat = q4_rq_prepare(folded_bias, quant, oc0, nb, params, 1, rec);
#if defined(Q4_DSP_TILE_ASM)
        tile = nb >= 2 ? q4_tile_prepare(folded_bias, quant, oc0, nb, params, 0, rec_t) : 0;
#endif
        for (p0 = 0; p0 < pixels; p0 += Q4_DSP_PIXELS) {
            const int32_t n = pixels - p0 < Q4_DSP_PIXELS ? pixels - p0 : Q4_DSP_PIXELS;
            if (pointwise) {
                q4_pointwise_group(input, input_dims, params, out_w, p0, n, cols);
            } else {
                q4_im2col_group(input_dims, input, filter_dims, params, params->input_zp, out_w,
                                p0, n, stage, cols);
            }
            oc = 0;
#if defined(Q4_DSP_TILE_ASM)
            if (tile && n == Q4_DSP_PIXELS) { /* every pair: one call */
                const q4_tile_args args = {
                    blocks * 32, nb / 2,    rec_t,    output + p0 * out_c + oc0,
                    out_c,       min_lo[1], min_lo[0]};
                if (tile == 8) {
                    if (blocks % 2 == 0) {
                        q4_dsp_pairs2_u8(weights, cols, &args);
                    } else {
                        q4_dsp_pairs_u8(weights, cols, &args);
                    }
                } else if (blocks % 2 == 0) { /* USAT #8 and a minimum (width 15 too) */
                    q4_dsp_pairs2_u8min(weights, cols, &args);
                } else {
                    q4_dsp_pairs_u8min(weights, cols, &args);
                }
                oc = nb & ~1;
            }
#endif
            for (; oc < nb; oc += 2) {
                int32_t acc[2 * Q4_DSP_PIXELS];
                int8_t *out = output + p0 * out_c + oc0 + oc;
                if (usat != 0 && oc + 1 < nb) { /* usat 4 too: USAT #8 and a minimum of 15 */
                    /* USAT #8 adds act_min itself, or the minimum's step does */
                    q4_pair_fused_u8(weights + oc * (k_pad / 2), cols, blocks, rec + oc, n,
                                     usat == 8 ? min_lo[1] : 0u, usat == 8 ? 0 : min_lo, out,
                                     out_c);
                    continue;
                }
                /* other channels (a 4-bit clamp: rare with an 8-bit input; q4_rq_store_pair
                 * stays specialised for _a4_dsp's sums) */
                q4_dot_2x4(weights + oc * (k_pad / 2), cols, blocks, acc);
                q4_store_channel(acc, 4, n, folded_bias[oc], quant->multiplier[oc0 + oc],
                                 quant->shift[oc0 + oc], params, out, out_c);
                if (oc + 1 < nb) {
                    q4_store_channel(acc + Q4_DSP_PIXELS, 4, n, folded_bias[oc + 1],
                                     quant->multiplier[oc0 + oc + 1],
                                     quant->shift[oc0 + oc + 1], params, out + 1, out_c);
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- 4-bit activations */

#define Q4_A4_CHANNELS 16 /* output channels per packed weight block (a multiple of 4) */
#define Q4_A4_SPACING 11  /* bit position of the second channel's field */
#define Q4_A4_MAX_K 16383 /* |sum(x * w_b)| * 2^11 <= 64 * K * 2^11 < 2^31 */

/* Scratch: folded biases of a channel block, its packed weights (4 * ceil8(K) bytes per channel
 * pair), the 4 im2col columns and the int8 staging row. K > Q4_A4_MAX_K uses the 8-bit path. */
int32_t q4_conv2d_s4_a4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k = q4_round_up8(filter_dims->h * filter_dims->w * filter_dims->c);
    if (filter_dims->h * filter_dims->w * filter_dims->c > Q4_A4_MAX_K) {
        return q4_conv2d_s4_dsp_get_buffer_size(filter_dims);
    }
    return 4 * Q4_A4_CHANNELS + (Q4_A4_CHANNELS + 2 * Q4_DSP_PIXELS + 1) * k;
}

/* UXTB16 of v rotated right by 8: bytes 1 and 3 zero-extended to the two halfwords. */
static inline uint32_t q4_uxtb16_ror8(uint32_t v)
{
    uint32_t result;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(result) : "r"(v));
    return result;
}

/* Packs nb rows into channel pairs (-w_a + w_b * 2^11 per halfword, the K pairs of q4_widen8),
 * two pairs interleaved per K-pair: [quad][block][K-pair][pair of the quad]; missing channels
 * have zero weights. Writes folded_bias[r] = bias[r] - z_x * sum(w). Per packed word of each row
 * (8 weights): with u = n ^ 8 (so w = u - 8) the halfword is (15 - u_a) + 2048 u_b - 16391; the
 * nibbles of a and b are combined in place (~u_a in bits 0-3, u_b in bits 11-14 of a lane, UXTB16
 * of the even / odd nibbles gives the lanes (k0, k4) and (k2, k6)), regrouped into (k0, k2) and
 * (k4, k6) and offset by one SADD16; the sums of u (USADA8) give sum(w). */
static void q4_pack_pairs(const uint8_t *rows, const int32_t *bias, int32_t nb, int32_t k,
                          int32_t zp, uint32_t *dst, int32_t *folded_bias)
{
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t blocks = q4_round_up8(k) / Q4_DSP_BLOCK;
    const uint32_t nib = 0x0F0F0F0Fu, offset = 0xBFF9BFF9u; /* -16391 in both lanes */
    int32_t r, b;

    for (r = 0; r < nb; r += 2) {
        const uint8_t *row_a = rows + r * row_bytes;
        const uint8_t *row_b = row_a + row_bytes;
        const int has_b = r + 1 < nb;
        uint32_t *out = dst + (r / 4) * blocks * 8 + (r / 2) % 2;
        uint32_t sum_na = 0, sum_ub = 0; /* sums of 15 - u_a and of u_b */
        for (b = 0; b < blocks; ++b, out += 8) {
            const uint32_t xa = q4_row_word(row_a, row_bytes, b) ^ 0x77777777u; /* 15 - u_a */
            const uint32_t xb = (has_b ? q4_row_word(row_b, row_bytes, b) : 0u) ^ 0x88888888u;
            const uint32_t ea = xa & nib, oa = (xa >> 4) & nib, eb = xb & nib,
                           ob = (xb >> 4) & nib;
            const uint32_t e04 = __uxtb16(ea) | __uxtb16(eb) << 11; /* lanes (k0, k4) */
            const uint32_t e26 = q4_uxtb16_ror8(ea) | q4_uxtb16_ror8(eb) << 11;
            const uint32_t o15 = __uxtb16(oa) | __uxtb16(ob) << 11;
            const uint32_t o37 = q4_uxtb16_ror8(oa) | q4_uxtb16_ror8(ob) << 11;
            out[0] = (uint32_t)__sadd16((int32_t)((e04 & 0xFFFFu) | (e26 << 16)),
                                        (int32_t)offset);
            out[2] = (uint32_t)__sadd16((int32_t)((o15 & 0xFFFFu) | (o37 << 16)),
                                        (int32_t)offset);
            out[4] = (uint32_t)__sadd16((int32_t)((e26 & 0xFFFF0000u) | (e04 >> 16)),
                                        (int32_t)offset);
            out[6] = (uint32_t)__sadd16((int32_t)((o37 & 0xFFFF0000u) | (o15 >> 16)),
                                        (int32_t)offset);
            sum_na = __usada8(oa, 0, __usada8(ea, 0, sum_na));
            sum_ub = __usada8(ob, 0, __usada8(eb, 0, sum_ub));
        }
        /* sum(w_a) = sum(7 - (15 - u_a)), sum(w_b) = sum(u_b - 8) over 8 * blocks weights */
        folded_bias[r] = bias[r] - zp * (56 * blocks - (int32_t)sum_na);
        if (has_b) {
            folded_bias[r + 1] = bias[r + 1] - zp * ((int32_t)sum_ub - 64 * blocks);
        }
    }
    for (; r < 4 * ((nb + 3) / 4); r += 2) { /* zero pairs completing the last quad */
        uint32_t *out = dst + (r / 4) * blocks * 8 + (r / 2) % 2;
        for (b = 0; b < blocks; ++b, out += 8) {
            out[0] = 0;
            out[2] = 0;
            out[4] = 0;
            out[6] = 0;
        }
    }
}

/* Moves the low field of acc (the first channel's -sum, signed 11 bits) into low. The
 * arithmetic right shift (SBFX) is what gcc and clang do for a negative int32_t on Arm. */
#define Q4_A4_DRAIN(acc, low)                                                    \
    do {                                                                         \
        const int32_t f_ = (int32_t)((uint32_t)(acc) << (32 - Q4_A4_SPACING)) >> \
                           (32 - Q4_A4_SPACING);                                 \
        (low) += f_;                                                             \
        (acc) -= f_;                                                             \
    } while (0)

/* One K-pair step of the 2-pair x 2-pixel kernel: weight words w[2j] (first pair) and
 * w[2j + 1] (second pair), the two pixels' words col[4j] and col[4j + 1] (LDRD each). */
#define Q4_A4_STEP(w, col, j)                                      \
    do {                                                           \
        const uint32_t wa_ = (w)[2 * (j)], wb_ = (w)[2 * (j) + 1]; \
        const uint32_t x0_ = (col)[Q4_DSP_PIXELS * (j)];           \
        const uint32_t x1_ = (col)[Q4_DSP_PIXELS * (j) + 1];       \
        a0 = q4_smlad(x0_, wa_, a0);                               \
        a1 = q4_smlad(x1_, wa_, a1);                               \
        b0 = q4_smlad(x0_, wb_, b0);                               \
        b1 = q4_smlad(x1_, wb_, b1);                               \
    } while (0)

/* One block (4 K-pairs). */
#define Q4_A4_BLOCK(w, col)    \
    do {                       \
        Q4_A4_STEP(w, col, 0); \
        Q4_A4_STEP(w, col, 1); \
        Q4_A4_STEP(w, col, 2); \
        Q4_A4_STEP(w, col, 3); \
    } while (0)

/* Dot products of a quad of packed channels (two pairs at w) with two pixel columns (words col
 * and col + 1 of each pair row) over `blocks` blocks. out[pair * 2 + pixel] = {first channel, second channel}. */
static inline void q4_dot_a4(const uint32_t *w, const uint32_t *col, int32_t blocks,
                             int32_t out[4][2])
{
    int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0, la0 = 0, la1 = 0, lb0 = 0, lb1 = 0;
    const uint32_t *const w_end = w + 8 * (blocks & ~1);
    for (; w != w_end; w += 16, col += 8 * Q4_DSP_PIXELS) { /* two blocks: 16 products */
        Q4_A4_BLOCK(w, col);
        Q4_A4_BLOCK(w + 8, col + 4 * Q4_DSP_PIXELS);
        Q4_A4_DRAIN(a0, la0);
        Q4_A4_DRAIN(a1, la1);
        Q4_A4_DRAIN(b0, lb0);
        Q4_A4_DRAIN(b1, lb1);
    }
    if (blocks & 1) {
        Q4_A4_BLOCK(w, col);
        Q4_A4_DRAIN(a0, la0);
        Q4_A4_DRAIN(a1, la1);
        Q4_A4_DRAIN(b0, lb0);
        Q4_A4_DRAIN(b1, lb1);
    }
    /* acc = sum_b * 2^11 exactly; low = -sum_a */
    out[0][0] = -la0;
    out[0][1] = q4_floor_shift32(a0, Q4_A4_SPACING);
    out[1][0] = -la1;
    out[1][1] = q4_floor_shift32(a1, Q4_A4_SPACING);
    out[2][0] = -lb0;
    out[2][1] = q4_floor_shift32(b0, Q4_A4_SPACING);
    out[3][0] = -lb1;
    out[3][1] = q4_floor_shift32(b1, Q4_A4_SPACING);
}

/* clang-format off */
#if defined(Q4_DSP_TILE_ASM)
/* For `pairs` (here: quads) channel quads (packed weights from w, one quad after another) and the
 * 4 pixels of a whole group (cols): the GEMM of q4_dot_a4 per pixel pair, its requantization (clamp
 * USAT #4 for the width 15, or USAT #8 and a per-byte minimum of `wid` for any other width up to
 * 255; act_min added by UADD8) and one word store per pixel (the quad's 4 bytes), in one
 * assembly function keeping its 13 registers itself (as q4_dsp_pairs_u8: r7 saved here, r9
 * untouched). Per K-pair one LDRD of the two pair words, one LDRD of the two pixels and 4 SMLAD
 * (16 MACs); every 2 blocks the 11-bit low fields are drained (SBFX, SUB) into two registers of
 * int16 lane sums (PKHBT, SADD16: |sum| <= 64 * 496 < 2^15 over a chunk of at most 62 blocks,
 * added to 32-bit sums on the stack after each chunk). The records of the quad's even channels
 * hold -bias and -m (q4_tile_prepare): their sums are kept negated (the low fields hold
 * -sum(x * w_a)) and doubled before the SMMLA, the odd channels' high fields are shifted by 10
 * instead of 11. */
void q4_dsp_quads_a4_u4(const uint32_t *w, const uint32_t *cols, const q4_tile_args *args);
void q4_dsp_quads_a4_u8min(const uint32_t *w, const uint32_t *cols, const q4_tile_args *args);

/* K-pair J of a block of the 4-bit GEMM (column words at r1 + 16 J; weights post-incremented). */
#define Q4_A4_KPAIR(J)                         \
    "ldrd r8, r10, [r0], #8\n\t"               \
    "ldrd r7, lr, [r1, #" #J "]\n\t"           \
    "smlad r3, r7, r8, r3\n\t"                 \
    "smlad r4, lr, r8, r4\n\t"                 \
    "smlad r5, r7, r10, r5\n\t"                \
    "smlad r6, lr, r10, r6\n\t"

/* The low fields of r3 r4 (pair A) and r5 r6 (pair B) moved into the int16 lane sums r11, r12. */
#define Q4_A4_ASM_DRAIN            \
    "sbfx r7, r3, #0, #11\n\t"     \
    "sbfx lr, r4, #0, #11\n\t"     \
    "sub r3, r3, r7\n\t"           \
    "sub r4, r4, lr\n\t"           \
    "pkhbt r7, r7, lr, lsl #16\n\t" \
    "sadd16 r11, r11, r7\n\t"      \
    "sbfx r7, r5, #0, #11\n\t"     \
    "sbfx lr, r6, #0, #11\n\t"     \
    "sub r5, r5, r7\n\t"           \
    "sub r6, r6, lr\n\t"           \
    "pkhbt r7, r7, lr, lsl #16\n\t" \
    "sadd16 r12, r12, r7\n\t"

/* The lane sums added to the 32-bit sums on the stack ([sp, #40]: pair A pixels 0 1, [sp, #48]:
 * pair B), then cleared. */
#define Q4_A4_ASM_FLUSH                  \
    "ldrd r7, lr, [sp, #40]\n\t"         \
    "sxtah r7, r7, r11\n\t"              \
    "sxtah lr, lr, r11, ror #16\n\t"     \
    "strd r7, lr, [sp, #40]\n\t"         \
    "ldrd r7, lr, [sp, #48]\n\t"         \
    "sxtah r7, r7, r12\n\t"              \
    "sxtah lr, lr, r12, ror #16\n\t"     \
    "strd r7, lr, [sp, #48]\n\t"         \
    "mov r11, #0\n\t"                    \
    "mov r12, #0\n\t"

/* Requantization of the next channel of the quad (its record read from r0 by LDMIA, in channel
 * order) for pixels 0 and 1 in registers RA, RB, from -acc (EVEN: the stack sums at OFF) or from
 * the high field of the pair accumulators. */
#define Q4_A4_RQ_EVEN(RA, RB, OFF, SAT) \
    "ldrd " RA ", " RB ", [sp, #" OFF "]\n\t" \
    "lsl " RA ", " RA ", #1\n\t"             \
    "lsl " RB ", " RB ", #1\n\t"             \
    "ldmia r0!, {r7, r8, r10, lr}\n\t"      \
    "smmla " RA ", " RA ", r8, lr\n\t"        \
    "smmla " RB ", " RB ", r8, lr\n\t"        \
    "asr " RA ", " RA ", r10\n\t"             \
    "asr " RB ", " RB ", r10\n\t"             \
    "usat " RA ", #" SAT ", " RA "\n\t"       \
    "usat " RB ", #" SAT ", " RB "\n\t"
#define Q4_A4_RQ_ODD(RA, RB, SAT)            \
    "ldmia r0!, {r7, r8, r10, lr}\n\t"           \
    "add " RA ", r7, " RA ", asr #10\n\t"          \
    "add " RB ", r7, " RB ", asr #10\n\t"          \
    "smmla " RA ", " RA ", r8, lr\n\t"             \
    "smmla " RB ", " RB ", r8, lr\n\t"             \
    "asr " RA ", " RA ", r10\n\t"                  \
    "asr " RB ", " RB ", r10\n\t"                  \
    "usat " RA ", #" SAT ", " RA "\n\t"            \
    "usat " RB ", #" SAT ", " RB "\n\t"

/* One pixel pair of a quad (COLS: the instruction adding its column offset; L: a label prefix
 * digit pair) into r1 (first pixel's 4 bytes) and r2 (second's). Frame: [sp] cols, [4] wbytes,
 * [8] the end of the last quad's weights, [12] rec, [16] out, [20] out_c, [24] lo4, [28] wid4,
 * [32] the end of the quad's weights, [36] their start, [40] [44] [48] [52] the negated sums of
 * channels 0 and 2 (MIN: the instructions of the per-byte minimum, wid4 in r8, or none). */
#define Q4_A4_HALF(COLS, LODD, LCHUNK, LLOOP, LDONE, SAT, MIN)                                     \
    "ldr r1, [sp, #12]\n\t"                                                                   \
    "ldr r7, [r1]\n\t"                                                                        \
    "ldr lr, [r1, #32]\n\t"                                                                   \
    "strd r7, r7, [sp, #40]\n\t"                                                              \
    "strd lr, lr, [sp, #48]\n\t"                                                              \
    "ldr r0, [sp, #36]\n\t"                                                                   \
    "ldr r1, [sp, #0]\n\t" COLS "movs r3, #0\n\t"                                             \
    "movs r4, #0\n\t"                                                                         \
    "movs r5, #0\n\t"                                                                         \
    "movs r6, #0\n\t"                                                                         \
    "mov r11, #0\n\t"                                                                         \
    "mov r12, #0\n\t"                                                                         \
    "ldr r7, [sp, #4]\n\t"                                                                    \
    "tst r7, #32\n\t"                                                                         \
    "beq " LODD "f\n\t" Q4_A4_KPAIR(0) Q4_A4_KPAIR(16) Q4_A4_KPAIR(32) Q4_A4_KPAIR(48)        \
    "adds r1, r1, #64\n\t" Q4_A4_ASM_DRAIN Q4_A4_ASM_FLUSH LODD ":\n\t" LCHUNK ":\n\t"         \
    "ldr r2, [sp, #32]\n\t"                                                                   \
    "cmp r0, r2\n\t"                                                                          \
    "beq " LDONE "f\n\t"                                                                      \
    "addw r7, r0, #1984\n\t"                                                                  \
    "cmp r7, r2\n\t"                                                                          \
    "it lo\n\t"                                                                               \
    "movlo r2, r7\n" LLOOP ":\n\t" Q4_A4_KPAIR(0) Q4_A4_KPAIR(16) Q4_A4_KPAIR(32)             \
        Q4_A4_KPAIR(48) Q4_A4_KPAIR(64) Q4_A4_KPAIR(80) Q4_A4_KPAIR(96) Q4_A4_KPAIR(112)      \
    "adds r1, r1, #128\n\t" Q4_A4_ASM_DRAIN "cmp r0, r2\n\t"                                  \
    "bne " LLOOP "b\n\t" Q4_A4_ASM_FLUSH "b " LCHUNK "b\n" LDONE ":\n\t"                      \
    "ldr r0, [sp, #12]\n\t" Q4_A4_RQ_EVEN("r1", "r2", "40", SAT)                          \
        Q4_A4_RQ_ODD("r3", "r4", SAT) "orr r1, r1, r3, lsl #8\n\t"                      \
    "orr r2, r2, r4, lsl #8\n\t" Q4_A4_RQ_EVEN("r3", "r4", "48", SAT)                    \
    "orr r1, r1, r3, lsl #16\n\t"                                                             \
    "orr r2, r2, r4, lsl #16\n\t" Q4_A4_RQ_ODD("r5", "r6", SAT)                          \
    "orr r1, r1, r5, lsl #24\n\t"                                                             \
    "orr r2, r2, r6, lsl #24\n\t"                                                             \
    "ldrd r7, r8, [sp, #24]\n\t" MIN                                                          \
    "uadd8 r1, r1, r7\n\t"                                                                    \
    "uadd8 r2, r2, r7\n\t"

#define Q4_A4_TILE_FUNCTION(NAME, SAT, MIN)                                                     \
    __asm__(".pushsection .text." #NAME ",\"ax\",%progbits\n\t"                             \
            ".syntax unified\n\t"                                                          \
            ".thumb\n\t"                                                                   \
            ".p2align 2\n\t"                                                               \
            ".global " #NAME "\n\t"                                                        \
            ".hidden " #NAME "\n\t"                                                        \
            ".type " #NAME ", %function\n\t"                                               \
            ".thumb_func\n" #NAME ":\n\t"                                                  \
            "push {r4, r5, r6, r7, r8, r10, r11, lr}\n\t"                                  \
            "sub sp, sp, #64\n\t"                                                          \
            "ldm r2, {r3, r4, r5, r6, r7, r8, r10}\n\t"                                    \
            "mla r4, r4, r3, r0\n\t"                                                       \
            "stm sp, {r1, r3, r4, r5, r6, r7, r8, r10}\n"                                       \
            "1:\n\t"                                                                       \
            "str r0, [sp, #36]\n\t"                                                        \
            "adds r2, r0, r3\n\t"                                                          \
            "str r2, [sp, #32]\n\t" Q4_A4_HALF("", "2", "3", "4", "5", SAT, MIN)                \
            "ldr r0, [sp, #16]\n\t"                                                        \
            "ldr r3, [sp, #20]\n\t"                                                        \
            "str r1, [r0]\n\t"                                                             \
            "str r2, [r0, r3]\n\t" Q4_A4_HALF("adds r1, r1, #8\n\t", "6", "7", "8", "9", SAT, MIN) \
            "ldrd r0, r3, [sp, #16]\n\t"                                                   \
            "add r0, r0, r3, lsl #1\n\t"                                                   \
            "str r1, [r0]\n\t"                                                             \
            "str r2, [r0, r3]\n\t"                                                         \
            "ldrd r3, r1, [sp, #8]\n\t"                                                    \
            "adds r1, r1, #64\n\t"                                                         \
            "str r1, [sp, #12]\n\t"                                                        \
            "ldr r1, [sp, #16]\n\t"                                                        \
            "adds r1, r1, #4\n\t"                                                          \
            "str r1, [sp, #16]\n\t"                                                        \
            "ldr r0, [sp, #32]\n\t"                                                        \
            "cmp r0, r3\n\t"                                                               \
            "ldr r3, [sp, #4]\n\t"                                                         \
            "bne 1b\n\t"                                                                   \
            "add sp, sp, #64\n\t"                                                          \
            "pop {r4, r5, r6, r7, r8, r10, r11, pc}\n\t"                                   \
            ".size " #NAME ", .-" #NAME "\n\t"                                             \
            ".popsection")
/* per byte min(u, width) (USUB8 sets GE where u >= width, SEL) */
#define Q4_A4_ASM_MIN          \
    "usub8 r10, r1, r8\n\t" \
    "sel r1, r8, r1\n\t"    \
    "usub8 r10, r2, r8\n\t" \
    "sel r2, r8, r2\n\t"
Q4_A4_TILE_FUNCTION(q4_dsp_quads_a4_u4, "4", "");
Q4_A4_TILE_FUNCTION(q4_dsp_quads_a4_u8min, "8", Q4_A4_ASM_MIN);

/* clang-format on */
#endif

void q4_conv2d_s4_a4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                         const q4_dims *input_dims, const int8_t *input,
                         const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                         const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k_pad = q4_round_up8(k);
    const int32_t blocks = k_pad / Q4_DSP_BLOCK;
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t out_w = output_dims->w, out_c = output_dims->c;
    const int32_t pixels = output_dims->h * out_w;
    /* scratch: folded biases and packed weights of one channel block, the 4 columns, the int8
     * staging row (used only when I is not a multiple of 8) */
    int32_t *folded_bias = scratch;
    uint32_t *weights = (uint32_t *)(scratch + Q4_A4_CHANNELS);
    uint32_t *cols = weights + Q4_A4_CHANNELS * (k_pad / 4);
    int8_t *stage = (int8_t *)(cols + Q4_DSP_PIXELS * (k_pad / 2));
    const int32_t pointwise = q4_is_pointwise(params, input_dims, filter_dims, output_dims);
    q4_rq_rec rec[Q4_A4_CHANNELS];
    int32_t oc0, p0, c, oc, usat;
#if defined(Q4_DSP_TILE_ASM)
    q4_rq_rec rec_a4[Q4_A4_CHANNELS]; /* q4_tile_prepare's */
    int32_t tile;
#endif

    if (k > Q4_A4_MAX_K) {
        q4_conv2d_s4_dsp(params, quant, input_dims, input, filter_dims, filter, bias,
                         output_dims, output, scratch);
        return;
    }
    for (oc0 = 0; oc0 < out_c; oc0 += Q4_A4_CHANNELS) {
        const int32_t nb = out_c - oc0 < Q4_A4_CHANNELS ? out_c - oc0 : Q4_A4_CHANNELS;
        q4_pack_pairs(filter + oc0 * row_bytes, bias + oc0, nb, k, params->input_zp, weights,
                      folded_bias);
        usat = q4_rq_prepare(folded_bias, quant, oc0, nb, params, 1, rec);
#if defined(Q4_DSP_TILE_ASM)
        tile = nb >= 4 ? q4_tile_prepare(folded_bias, quant, oc0, nb, params, 1, rec_a4) : 0;
#endif
        if (usat == Q4_RQ_USAT8_MIN) { /* the C path below: the per-channel requantization */
            usat = 0;
        }
        for (p0 = 0; p0 < pixels; p0 += Q4_DSP_PIXELS) {
            const int32_t n = pixels - p0 < Q4_DSP_PIXELS ? pixels - p0 : Q4_DSP_PIXELS;
            if (pointwise) {
                q4_pointwise_group(input, input_dims, params, out_w, p0, n, cols);
            } else {
                q4_im2col_group(input_dims, input, filter_dims, params, params->input_zp, out_w,
                                p0, n, stage, cols);
            }
            oc = 0;
#if defined(Q4_DSP_TILE_ASM)
            if (tile && n == Q4_DSP_PIXELS) { /* every whole quad: one call */
                const q4_tile_args args = {
                    blocks * 32,
                    nb / 4,
                    rec_a4,
                    output + p0 * out_c + oc0,
                    out_c,
                    ((uint32_t)params->act_min & 0xFFu) * 0x01010101u,
                    ((uint32_t)(params->act_max - params->act_min) & 0xFFu) * 0x01010101u};
                if (tile == 4) {
                    q4_dsp_quads_a4_u4(weights, cols, &args);
                } else {
                    q4_dsp_quads_a4_u8min(weights, cols, &args);
                }
                oc = nb & ~3;
            }
#endif
            for (; oc < nb; oc += 4) {
                const uint32_t *w = weights + oc * (k_pad / 4);
                int32_t half, acc[4][Q4_DSP_PIXELS]; /* [channel of the quad][pixel] */
                for (half = 0; half < Q4_DSP_PIXELS; half += 2) {
                    int32_t d[4][2];
                    q4_dot_a4(w, cols + half, blocks, d);
                    acc[0][half] = d[0][0];
                    acc[0][half + 1] = d[1][0];
                    acc[1][half] = d[0][1];
                    acc[1][half + 1] = d[1][1];
                    acc[2][half] = d[2][0];
                    acc[2][half + 1] = d[3][0];
                    acc[3][half] = d[2][1];
                    acc[3][half + 1] = d[3][1];
                }
                for (c = 0; c < 4 && oc + c < nb; ++c) {
                    if (usat != 0 && oc + c + 1 < nb) {
                        q4_rq_store_pair(acc[c], 0, rec + oc + c, n, usat, params,
                                         output + p0 * out_c + oc0 + oc + c, out_c);
                        ++c;
                        continue;
                    }
                    q4_store_channel(acc[c], 0, n, folded_bias[oc + c],
                                     quant->multiplier[oc0 + oc + c], quant->shift[oc0 + oc + c],
                                     params, output + p0 * out_c + oc0 + oc + c, out_c);
                }
            }
        }
    }
}

#else /* no DSP extension: the portable kernel (scratch unused) */

int32_t q4_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_conv2d_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                      const q4_dims *input_dims, const int8_t *input,
                      const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                      const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_conv2d_s4(params, quant, input_dims, input, filter_dims, filter, bias, output_dims,
                 output);
}

int32_t q4_conv2d_s4_a4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_conv2d_s4_a4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                         const q4_dims *input_dims, const int8_t *input,
                         const q4_dims *filter_dims, const uint8_t *filter, const int32_t *bias,
                         const q4_dims *output_dims, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_conv2d_s4(params, quant, input_dims, input, filter_dims, filter, bias, output_dims,
                 output);
}

#endif
