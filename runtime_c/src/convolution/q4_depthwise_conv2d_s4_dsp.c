/*
 * q4_depthwise_conv2d_s4_dsp.c - depthwise 2-D convolution (channel multiplier 1), INT4 packed
 * weights, int8-stored activations (4 or 8 bits), for cores with the Arm DSP extension
 * (Cortex-M4/M7/M33/M55). Bit-exact with q4_depthwise_conv2d_s4.
 *
 * Scheme (docs/kernels.md):
 *  - Once per call the weights are unpacked into the scratch as int16 pairs per tap and group of
 *    4 channels, (w_c0, w_c2) and (w_c1, w_c3), zeros past C; the input zero point is folded into
 *    a per-channel bias (bias - z_x * sum(w)); the byte offset of every tap in the window is
 *    tabulated.
 *  - Per output pixel the input offset of each tap is listed (-1 outside the input). Per group
 *    of 4 channels and tap: one word of activations (z_x in every byte outside the input),
 *    SXTB16 of it and of it shifted by 8 give (x_c0, x_c2) and (x_c1, x_c3), and SMLABB/SMLATT
 *    accumulate the 4 channels. The last C % 4 channels are read byte by byte.
 *  - Requantization per channel: for shift > 32, floor((acc * m + 2^(s-1)) / 2^s) equals
 *    floor((hi + 2^(s-33)) / 2^(s-32)) with hi = floor(acc * m / 2^32); other shifts use
 *    q4_requantize_clamp.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"
#include "q4_depthwise_dsp.h"

static int32_t q4_round_up4(int32_t c)
{
    return (c + 3) & ~3;
}

/* The weight pairs of the tap path, weights[(t * groups + g) * 2 + j] = (w_c, w_(c+2)) as int16
 * halves for channel c = 4g + j (j = 0, 1), zero past C, and folded_bias[c] = bias[c] - z_x *
 * sum(w_c) (0 past C). Per group of 4 channels and packed byte (2 taps): 4 byte loads, the
 * nibbles sign-extended by a shift pair (SBFX) and packed in registers, 4 word stores (the
 * per-nibble read-modify-write of the scratch it replaces cost about 4 times as much, the whole
 * set-up of a call on a 2x2 map). */
#define Q4_DW_NIBBLE(b, hi) ((int32_t)((uint32_t)(b) << (28 - 4 * (hi))) >> 28)
static void q4_dw_pair_weights(const uint8_t *filter, int32_t row_bytes, int32_t taps,
                               int32_t ch, const int32_t *bias, int32_t in_zp,
                               uint32_t *weights, int32_t *folded_bias)
{
    const int32_t groups = q4_round_up4(ch) / 4, step = 2 * groups;
    int32_t g, t, i;
    for (g = 0; g < groups; ++g) {
        const int32_t c = 4 * g, n = ch - c < 4 ? ch - c : 4;
        const uint8_t *r[4];
        int32_t sum[4] = {0, 0, 0, 0}, mask[4];
        uint32_t *w = weights + 2 * g;
        for (i = 0; i < 4; ++i) { /* past C: channel c's row, weights masked to 0 */
            r[i] = filter + (c + (i < n ? i : 0)) * row_bytes;
            mask[i] = i < n ? -1 : 0;
        }
        for (t = 0; t < taps; t += 2, w += 2 * step) {
            const int32_t j = t >> 1;
            const int32_t b0 = r[0][j], b1 = r[1][j] & mask[1];
            const int32_t b2 = r[2][j] & mask[2], b3 = r[3][j] & mask[3];
            int32_t v0 = Q4_DW_NIBBLE(b0, 0), v1 = Q4_DW_NIBBLE(b1, 0);
            int32_t v2 = Q4_DW_NIBBLE(b2, 0), v3 = Q4_DW_NIBBLE(b3, 0);
            w[0] = ((uint32_t)v0 & 0xFFFFu) | ((uint32_t)v2 << 16);
            w[1] = ((uint32_t)v1 & 0xFFFFu) | ((uint32_t)v3 << 16);
            sum[0] += v0;
            sum[1] += v1;
            sum[2] += v2;
            sum[3] += v3;
            if (t + 1 < taps) {
                v0 = Q4_DW_NIBBLE(b0, 1);
                v1 = Q4_DW_NIBBLE(b1, 1);
                v2 = Q4_DW_NIBBLE(b2, 1);
                v3 = Q4_DW_NIBBLE(b3, 1);
                w[step] = ((uint32_t)v0 & 0xFFFFu) | ((uint32_t)v2 << 16);
                w[step + 1] = ((uint32_t)v1 & 0xFFFFu) | ((uint32_t)v3 << 16);
                sum[0] += v0;
                sum[1] += v1;
                sum[2] += v2;
                sum[3] += v3;
            }
        }
        for (i = 0; i < 4; ++i) {
            folded_bias[c + i] = i < n ? bias[c + i] - in_zp * sum[i] : 0;
        }
    }
}
#undef Q4_DW_NIBBLE

/* The 3x3 path: row tiles of up to Q4_DW3_TILE output pixels; per channel a row holds the
 * tile's input span widened to int16 in two phase rows (even / odd pixels, stride 2) of
 * Q4_DW3_PHASE elements (the tile plus the 3 the pair loads read past it). A ring of 3 input
 * rows x 4 channels and one row of z_x follow the folded biases. */
#define Q4_DW3_TILE 32
#define Q4_DW3_RING_BYTES (4 * (Q4_DW3_TILE + 2) + (3 * 4 + 1) * Q4_DW3_ROW * 2)

int32_t q4_depthwise_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k = filter_dims->h * filter_dims->w, c4 = q4_round_up4(filter_dims->c);
    const int32_t general = 4 * c4 + 8 * k + 2 * k * c4;
    /* sized from kh * kw only (the generator knows K and C): 9 taps may take the 3x3 path */
    if (k == 9 && 4 * c4 + Q4_DW3_RING_BYTES > general) {
        return 4 * c4 + Q4_DW3_RING_BYTES;
    }
    return general;
}

/* floor(a * b / 2^32): the high word of the 64-bit product. */
static inline int32_t q4_mul_high(int32_t a, int32_t b)
{
    return (int32_t)(uint32_t)((uint64_t)((int64_t)a * b) >> 32);
}

/* Per-call output constants (locals: the int8 stores could otherwise alias *params, *quant). */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t output_zp;
    int32_t act_min;
    int32_t act_max;
} q4_dw_out;

static inline int8_t q4_dw_requantize(int32_t acc, int32_t c, const q4_dw_out *q)
{
    const int32_t shift = q->shift[c];
    int32_t y;
    if (shift <= 32) {
        return q4_requantize_clamp(acc, q->multiplier[c], shift, q->output_zp, q->act_min,
                                   q->act_max);
    }
    y = q->output_zp +
        q4_floor_shift32(q4_mul_high(acc, q->multiplier[c]) + ((int32_t)1 << (shift - 33)),
                         shift - 32);
    y = y < q->act_min ? q->act_min : y;
    return (int8_t)(y > q->act_max ? q->act_max : y);
}

/* acc[ox] = fb + the sum over the 3 kernel rows of one channel, ox = 0 .. tw - 1 (tw rounded up
 * to 4): row r holds a tap pair at r[ox], r[ox + 1] and a single tap at r[so + ox]. pair_k =
 * (w_a, w_b) of kernel row k, singles = (single_0, single_1), single2 = (single_2, -). */
#define Q4_DW3_TWO_OUTPUTS(o)                                    \
    do {                                                         \
        uint32_t q = q4_load_u32(r0 + so + (o));                 \
        int32_t a0 = __smlabb((int32_t)q, (int32_t)singles, fb); \
        int32_t a1 = __smlatb((int32_t)q, (int32_t)singles, fb); \
        a0 = q4_smlad(q4_load_u32(r0 + (o)), pair0, a0);         \
        a1 = q4_smlad(q4_load_u32(r0 + (o) + 1), pair0, a1);     \
        q = q4_load_u32(r1 + so + (o));                          \
        a0 = __smlabt((int32_t)q, (int32_t)singles, a0);         \
        a1 = __smlatt((int32_t)q, (int32_t)singles, a1);         \
        a0 = q4_smlad(q4_load_u32(r1 + (o)), pair1, a0);         \
        a1 = q4_smlad(q4_load_u32(r1 + (o) + 1), pair1, a1);     \
        q = q4_load_u32(r2 + so + (o));                          \
        a0 = __smlabb((int32_t)q, (int32_t)single2, a0);         \
        a1 = __smlatb((int32_t)q, (int32_t)single2, a1);         \
        a0 = q4_smlad(q4_load_u32(r2 + (o)), pair2, a0);         \
        a1 = q4_smlad(q4_load_u32(r2 + (o) + 1), pair2, a1);     \
        acc[(o)] = a0;                                           \
        acc[(o) + 1] = a1;                                       \
    } while (0)

static inline __attribute__((always_inline)) void q4_dw3_macs(
    const int16_t *r0, const int16_t *r1, const int16_t *r2, int32_t so, uint32_t pair0,
    uint32_t pair1, uint32_t pair2, uint32_t singles, uint32_t single2, int32_t fb,
    int32_t *acc, int32_t tw)
{
    int32_t *const end = acc + tw;
    for (; acc < end; acc += 4, r0 += 4, r1 += 4, r2 += 4) {
        Q4_DW3_TWO_OUTPUTS(0);
        Q4_DW3_TWO_OUTPUTS(2);
    }
}

/* out[ox * stride] = requantized acc[ox], ox = 0 .. tw - 1. */
static __attribute__((noinline)) void q4_dw3_requantize(const int32_t *acc, int32_t tw,
                                                        int32_t m, int32_t sh, int32_t out_zp,
                                                        int32_t act_min, int32_t act_max,
                                                        int8_t *out, int32_t stride)
{
    const int32_t *const end = acc + tw;
    const int32_t k = sh - 32, range = act_max - act_min;
    if (sh > 32 && k <= 21) {
        /* floor((hi + 2^(k-1) + (z_y - act_min) * 2^k) / 2^k): |hi| < 2^30, so no overflow for
         * k <= 21; USAT #b clamps to [0, range] when range = 2^b - 1 (b = 8, 7, 4, 3), else
         * USAT #8 and a minimum */
        const int32_t rnd = ((int32_t)1 << (k - 1)) + (out_zp - act_min) * ((int32_t)1 << k);
#define Q4_DW3_USAT(bits, clamp)                                                           \
    for (; acc < end; ++acc, out += stride) {                                              \
        const int32_t u = (int32_t)__usat(q4_floor_shift32(q4_mul_high(*acc, m) + rnd, k), \
                                          bits);                                           \
        *out = (int8_t)((clamp) + act_min);                                                \
    }
        if (range == 255) {
            Q4_DW3_USAT(8, u)
        } else if (range == 127) {
            Q4_DW3_USAT(7, u)
        } else if (range == 15) {
            Q4_DW3_USAT(4, u)
        } else if (range == 7) {
            Q4_DW3_USAT(3, u)
        } else {
            Q4_DW3_USAT(8, u < range ? u : range)
        }
#undef Q4_DW3_USAT
    } else if (sh > 32) {
        const int32_t rnd = (int32_t)1 << (k - 1);
        for (; acc < end; ++acc, out += stride) {
            int32_t y = out_zp + q4_floor_shift32(q4_mul_high(*acc, m) + rnd, k);
            y = y < act_min ? act_min : y;
            *out = (int8_t)(y > act_max ? act_max : y);
        }
    } else {
        for (; acc < end; ++acc, out += stride) {
            *out = q4_requantize_clamp(*acc, m, sh, out_zp, act_min, act_max);
        }
    }
}

/* acc + floor(a * b / 2^32): SMMLA (exact: the high word of (acc << 32) + a * b). GCC does not
 * emit SMMLA from C. */
static inline int32_t q4_dw_smmla(int32_t a, int32_t b, int32_t acc)
{
    int32_t result;
    __asm__("smmla %0, %1, %2, %3" : "=r"(result) : "r"(a), "r"(b), "r"(acc));
    return result;
}

/* The 3 kernel rows of the first channel of a group for q4_dw3_row_*: channel i's row k starts
 * at row[k] + i * step[k] (step 0 for the row of z_x outside the input). */
typedef struct {
    const int16_t *row[3];
    int32_t step[3];
} q4_dw3_rows;

/* The requantization constants of one channel for q4_dw3_row_s1 (shift in (32, 53]). */
typedef struct {
    int32_t bias;       /* folded bias */
    int32_t multiplier; /* m */
    int32_t right;      /* shift - 32 */
    int32_t round;      /* 2^(right - 1) + (z_y - act_min) * 2^right */
    int32_t act_min;
    int32_t width; /* act_max - act_min */
} q4_dw3_rq;

/* One channel's output row, stride 1, multiply-accumulates and requantization fused: per 4
 * outputs Q4_DW3_S1_ROW for the 3 kernel rows (w: p01, p12, s02 per row), then per output
 * u = floor((SMMLA(acc, m, round)) / 2^right) clamped by CLAMP, y = u + act_min (|hi| < 2^30
 * and (width + 1) * 2^right <= 2^29: exact in int32). Only the tw outputs are written. One
 * function per clamp (USAT #8, USAT #4, USAT #8 and a minimum). */
#define Q4_DW3_S1(name, CLAMP, ROW, s)                                                     \
    static __attribute__((noinline)) void name(const q4_dw3_rows *rows, const uint32_t *w, \
                                               const q4_dw3_rq *q, int32_t n, int8_t *out, \
                                               int32_t stride, int32_t tw)                 \
    {                                                                                      \
        int32_t i;                                                                         \
        for (i = 0; i < n; ++i, w += 9, ++q, ++out) {                                      \
            const int16_t *r0 = rows->row[0] + i * rows->step[0];                          \
            const int16_t *r1 = rows->row[1] + i * rows->step[1];                          \
            const int16_t *r2 = rows->row[2] + i * rows->step[2];                          \
            const int32_t m = q->multiplier, right = q->right, round = q->round;           \
            const int32_t lo = q->act_min, width = q->width;                               \
            int8_t *o_out = out;                                                           \
            int32_t o;                                                                     \
            (void)width;                                                                   \
            for (o = 0; o < tw; o += 4, r0 += 4, r1 += 4, r2 += 4) {                       \
                int32_t a0 = q->bias, a1 = a0, a2 = a0, a3 = a0, u;                        \
                Q4_DW3_GROUP(ROW, s, r0, r1, r2, w, a0, a1, a2, a3);                       \
                u = q4_floor_shift32(q4_dw_smmla(a0, m, round), right);                    \
                o_out[0] = (int8_t)(CLAMP(u) + lo);                                        \
                if (tw - o < 4) { /* the last, partial group */                            \
                    if (tw - o > 1) {                                                      \
                        u = q4_floor_shift32(q4_dw_smmla(a1, m, round), right);            \
                        o_out[stride] = (int8_t)(CLAMP(u) + lo);                           \
                    }                                                                      \
                    if (tw - o > 2) {                                                      \
                        u = q4_floor_shift32(q4_dw_smmla(a2, m, round), right);            \
                        o_out[2 * stride] = (int8_t)(CLAMP(u) + lo);                       \
                    }                                                                      \
                    break;                                                                 \
                }                                                                          \
                u = q4_floor_shift32(q4_dw_smmla(a1, m, round), right);                    \
                o_out[stride] = (int8_t)(CLAMP(u) + lo);                                   \
                u = q4_floor_shift32(q4_dw_smmla(a2, m, round), right);                    \
                o_out[2 * stride] = (int8_t)(CLAMP(u) + lo);                               \
                u = q4_floor_shift32(q4_dw_smmla(a3, m, round), right);                    \
                o_out[3 * stride] = (int8_t)(CLAMP(u) + lo);                               \
                o_out += 4 * stride;                                                       \
            }                                                                              \
        }                                                                                  \
    }
#define Q4_DW3_USAT8(u) ((int32_t)__usat((u), 8))
#define Q4_DW3_USAT4(u) ((int32_t)__usat((u), 4))
#define Q4_DW3_USAT_MIN(u) (Q4_DW3_USAT8(u) < width ? Q4_DW3_USAT8(u) : width)
Q4_DW3_S1(q4_dw3_row_s1_u8, Q4_DW3_USAT8, Q4_DW3_S1_ROW_ASM, 1)
Q4_DW3_S1(q4_dw3_row_s1_u4, Q4_DW3_USAT4, Q4_DW3_S1_ROW_ASM, 1)
Q4_DW3_S1(q4_dw3_row_s1_min, Q4_DW3_USAT_MIN, Q4_DW3_S1_ROW_ASM, 1)
Q4_DW3_S1(q4_dw3_row_s2_u8, Q4_DW3_USAT8, Q4_DW3_S2_ROW_ASM, 2)
Q4_DW3_S1(q4_dw3_row_s2_u4, Q4_DW3_USAT4, Q4_DW3_S2_ROW_ASM, 2)
Q4_DW3_S1(q4_dw3_row_s2_min, Q4_DW3_USAT_MIN, Q4_DW3_S2_ROW_ASM, 2)

/* 3x3 kernels, horizontal stride 1 or 2 (any vertical stride), per block of 4 channels and row
 * tile of up to Q4_DW3_TILE output pixels: each input row is widened once into per-channel
 * int16 rows (a ring of 3), then per channel and output row q4_dw3_macs and
 * q4_dw3_requantize. */
static void q4_dw3_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                       const q4_dims *input_dims, const int8_t *input, const uint8_t *filter,
                       const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                       int32_t *scratch)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t in_zp = params->input_zp, s = params->stride_w, stride_h = params->stride_h;
    int32_t *const folded_bias = scratch;
    int32_t *const acc = scratch + q4_round_up4(ch);
    int16_t *const ring = (int16_t *)(void *)(acc + Q4_DW3_TILE + 2);
    int16_t *const zp_row = ring + 3 * 4 * Q4_DW3_ROW;
    int32_t c0, ox0, oy, i, t;

    for (i = 0; i < Q4_DW3_ROW; ++i) {
        zp_row[i] = (int16_t)in_zp;
    }
    for (c0 = 0; c0 < ch; ++c0) {
        int32_t sum = 0;
        for (t = 0; t < 9; ++t) {
            sum += q4_int4_at(filter + c0 * 5, t);
        }
        folded_bias[c0] = bias[c0] - in_zp * sum;
    }
    for (c0 = 0; c0 < ch; c0 += 4) {
        const int32_t n = ch - c0 < 4 ? ch - c0 : 4;
        uint32_t pair_w[4][3], single_w[4][2], s1_w[4][9];
        q4_dw3_rq s1_q[4];
        int32_t fused = 1; /* every channel's shift in (32, 53] */
        for (i = 0; i < n; ++i) {
            const uint8_t *const row = filter + (c0 + i) * 5;
            const int32_t fb = folded_bias[c0 + i], shift = quant->shift[c0 + i];
            /* shift 32: the fused rows accumulate 2 * acc (weights and bias doubled) and shift
             * by 1: floor((floor(2 acc m / 2^32) + 1) / 2) = floor((acc m + 2^31) / 2^32), and
             * |2 acc| < 2^31 while |fb| < 2^29 (|sum x * w| <= 9216) */
            const int32_t dbl = shift == 32 && fb > -((int32_t)1 << 29) &&
                                fb < ((int32_t)1 << 29);
            int32_t ky, single[3], wv[9];
            for (ky = 0; ky < 9; ++ky) {
                wv[ky] = q4_int4_at(row, ky);
            }
            for (ky = 0; ky < 3; ++ky) {
                const int32_t w0 = wv[3 * ky], w1 = wv[3 * ky + 1], w2 = wv[3 * ky + 2];
                const uint32_t d0 = (uint32_t)(w0 * (1 + dbl)) & 0xFFFFu;
                const uint32_t d1 = (uint32_t)(w1 * (1 + dbl)) & 0xFFFFu;
                const uint32_t d2 = (uint32_t)(w2 * (1 + dbl)) << 16;
                pair_w[i][ky] = ((uint32_t)w0 & 0xFFFFu) | ((uint32_t)(s == 1 ? w1 : w2) << 16);
                single[ky] = s == 1 ? w2 : w1;
                s1_w[i][3 * ky] = d0 | d1 << 16;
                s1_w[i][3 * ky + 1] = d1 | d2;
                s1_w[i][3 * ky + 2] = d0 | d2;
            }
            single_w[i][0] = ((uint32_t)single[0] & 0xFFFFu) | ((uint32_t)single[1] << 16);
            single_w[i][1] = (uint32_t)single[2] & 0xFFFFu;
            s1_q[i].bias = fb * (1 + dbl);
            s1_q[i].multiplier = quant->multiplier[c0 + i];
            s1_q[i].right = shift - 32 + dbl;
            s1_q[i].round = s1_q[i].right > 0 && s1_q[i].right <= 21
                                ? ((int32_t)1 << (s1_q[i].right - 1)) +
                                      (params->output_zp - params->act_min) *
                                          ((int32_t)1 << s1_q[i].right)
                                : 0;
            s1_q[i].act_min = params->act_min;
            s1_q[i].width = params->act_max - params->act_min;
            fused &= s1_q[i].right > 0 && s1_q[i].right <= 21;
        }
        for (ox0 = 0; ox0 < out_w; ox0 += Q4_DW3_TILE) {
            const int32_t tw = out_w - ox0 < Q4_DW3_TILE ? out_w - ox0 : Q4_DW3_TILE;
            const int32_t ix0 = ox0 * s - params->pad_left, span = (tw - 1) * s + 3;
            int32_t next_row = -params->pad_top; /* first input row not yet widened */
            for (oy = 0; oy < out_h; ++oy) {
                const int32_t y0 = oy * stride_h - params->pad_top;
                const int16_t *rows[3];
                int32_t ky;
                if (next_row < y0) {
                    next_row = y0;
                }
                for (; next_row < y0 + 3; ++next_row) {
                    if (next_row >= 0 && next_row < in_h) {
                        q4_dw3_widen_row(ring + (next_row % 3) * 4 * Q4_DW3_ROW, input,
                                         next_row, ix0, span, s, in_w, ch, c0, n, in_zp);
                    }
                }
                for (ky = 0; ky < 3; ++ky) {
                    const int32_t iy = y0 + ky;
                    rows[ky] = iy >= 0 && iy < in_h ? ring + (iy % 3) * 4 * Q4_DW3_ROW : 0;
                }
                if (fused) { /* every channel of the group on the fused path */
                    q4_dw3_rows rr;
                    int8_t *const out = output + (oy * out_w + ox0) * ch + c0;
                    for (ky = 0; ky < 3; ++ky) {
                        rr.row[ky] = rows[ky] ? rows[ky] : zp_row;
                        rr.step[ky] = rows[ky] ? Q4_DW3_ROW : 0;
                    }
                    if (s == 1 && s1_q[0].width == 255) {
                        q4_dw3_row_s1_u8(&rr, s1_w[0], s1_q, n, out, ch, tw);
                    } else if (s == 1 && s1_q[0].width == 15) {
                        q4_dw3_row_s1_u4(&rr, s1_w[0], s1_q, n, out, ch, tw);
                    } else if (s == 1) {
                        q4_dw3_row_s1_min(&rr, s1_w[0], s1_q, n, out, ch, tw);
                    } else if (s1_q[0].width == 255) {
                        q4_dw3_row_s2_u8(&rr, s1_w[0], s1_q, n, out, ch, tw);
                    } else if (s1_q[0].width == 15) {
                        q4_dw3_row_s2_u4(&rr, s1_w[0], s1_q, n, out, ch, tw);
                    } else {
                        q4_dw3_row_s2_min(&rr, s1_w[0], s1_q, n, out, ch, tw);
                    }
                    continue;
                }
                for (i = 0; i < n; ++i) {
                    const int32_t c = c0 + i;
                    const int16_t *const r0 = rows[0] ? rows[0] + i * Q4_DW3_ROW : zp_row;
                    const int16_t *const r1 = rows[1] ? rows[1] + i * Q4_DW3_ROW : zp_row;
                    const int16_t *const r2 = rows[2] ? rows[2] + i * Q4_DW3_ROW : zp_row;
                    if (s == 1) {
                        q4_dw3_macs(r0, r1, r2, 2, pair_w[i][0], pair_w[i][1], pair_w[i][2],
                                    single_w[i][0], single_w[i][1], folded_bias[c], acc, tw);
                    } else {
                        q4_dw3_macs(r0, r1, r2, Q4_DW3_PHASE, pair_w[i][0], pair_w[i][1],
                                    pair_w[i][2], single_w[i][0], single_w[i][1],
                                    folded_bias[c], acc, tw);
                    }
                    q4_dw3_requantize(acc, tw, quant->multiplier[c], quant->shift[c],
                                      params->output_zp, params->act_min, params->act_max,
                                      output + (oy * out_w + ox0) * ch + c, ch);
                }
            }
        }
    }
}

/* One tap of 4 channels: x holds their 4 int8 activations, w their weight pairs (w_c0, w_c2)
 * and (w_c1, w_c3); SXTB16 of x and of x >> 8 give (x_c0, x_c2) and (x_c1, x_c3). */
#define Q4_DW_TAP4(x, w, a0, a1, a2, a3)                                                      \
    do {                                                                                      \
        const int32_t x_even_ = (int32_t)q4_sxtb16(x), x_odd_ = (int32_t)q4_sxtb16((x) >> 8); \
        a0 = __smlabb(x_even_, (int32_t)(w)[0], a0);                                          \
        a2 = __smlatt(x_even_, (int32_t)(w)[0], a2);                                          \
        a1 = __smlabb(x_odd_, (int32_t)(w)[1], a1);                                           \
        a3 = __smlatt(x_odd_, (int32_t)(w)[1], a3);                                           \
    } while (0)

void q4_depthwise_conv2d_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                                const q4_dims *input_dims, const int8_t *input,
                                const q4_dims *filter_dims, const uint8_t *filter,
                                const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                                int32_t *scratch)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, ch = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, taps = k_h * k_w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t row_bytes = (taps + 1) / 2, c4 = q4_round_up4(ch), groups = c4 / 4;
    const int32_t in_zp = params->input_zp;
    const int32_t stride_h = params->stride_h, stride_w = params->stride_w;
    const int32_t pad_top = params->pad_top, pad_left = params->pad_left;
    const uint32_t zp_word = ((uint32_t)in_zp & 0xFFu) * 0x01010101u;
    const q4_dw_out q = {quant->multiplier, quant->shift, params->output_zp, params->act_min,
                         params->act_max};
    /* scratch: folded biases [C4], tap offsets in the window [taps], tap offsets in the input for
     * the current pixel [taps], weight pairs [taps][groups][2] */
    int32_t *const folded_bias = scratch;
    int32_t *const tap_offset = scratch + c4;
    int32_t *const tap_at = tap_offset + taps;
    uint32_t *const weights = (uint32_t *)(tap_at + taps);
    int32_t oy, ox, c, t, g;

    /* the row path, except into rows of at most 4 pixels at stride 1 or fewer than 8 at stride
     * 2: its per-channel, per-row set-up then costs more than it saves (Cortex-M4, 32 and 96
     * channels, docs/kernels.md "Small feature maps": 2x2 maps 23.9 against 11.8 instructions
     * per MAC, 4x4 9.7 against 9.2; stride 2, 4x4 out, 13.4 against 10.4 before the tap path's
     * set-up was cut, 9.0 now) */
    if (k_h == 3 && k_w == 3 &&
        ((stride_w == 1 && output_dims->w > 4) || (stride_w == 2 && output_dims->w >= 8))) {
        q4_dw3_dsp(params, quant, input_dims, input, filter, bias, output_dims, output, scratch);
        return;
    }
    q4_dw_pair_weights(filter, row_bytes, taps, ch, bias, in_zp, weights, folded_bias);
    for (t = 0; t < taps; ++t) {
        tap_offset[t] = ((t / k_w) * in_w + t % k_w) * ch;
    }
    for (oy = 0; oy < out_h; ++oy) {
        const int32_t y0 = oy * stride_h - pad_top;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t x0 = ox * stride_w - pad_left;
            const int32_t inside = y0 >= 0 && y0 + k_h <= in_h && x0 >= 0 && x0 + k_w <= in_w;
            const int32_t window = (y0 * in_w + x0) * ch; /* may be negative: an offset only */
            int8_t *const out = output + (oy * out_w + ox) * ch;
            const int32_t *offsets = tap_offset; /* tap t reads input + base + offsets[t] */
            int32_t base = window;
            if (!inside) { /* list the taps, -1 for those outside the input */
                int32_t ky, kx;
                for (ky = 0, t = 0; ky < k_h; ++ky) {
                    for (kx = 0; kx < k_w; ++kx, ++t) {
                        const int32_t iy = y0 + ky, ix = x0 + kx;
                        tap_at[t] = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w
                                        ? window + tap_offset[t]
                                        : -1;
                    }
                }
                offsets = tap_at;
                base = 0;
            }
            for (g = 0, c = 0; g < groups; ++g, c += 4) {
                const int32_t n = ch - c < 4 ? ch - c : 4;
                const uint32_t *w = weights + 2 * g;
                int32_t a0 = folded_bias[c], a1 = folded_bias[c + 1];
                int32_t a2 = folded_bias[c + 2], a3 = folded_bias[c + 3];
                if (n == 4) {
                    /* one pointer to the group's channels; inside the input no tap is checked */
                    const int8_t *const src = input + base + c;
                    const int32_t *at = offsets, *const at_end = offsets + taps;
                    if (inside) {
                        for (; at < at_end; ++at, w += 2 * groups) {
                            const uint32_t x = q4_load_u32(src + *at);
                            Q4_DW_TAP4(x, w, a0, a1, a2, a3);
                        }
                    } else {
                        for (; at < at_end; ++at, w += 2 * groups) {
                            const uint32_t x = *at >= 0 ? q4_load_u32(src + *at) : zp_word;
                            Q4_DW_TAP4(x, w, a0, a1, a2, a3);
                        }
                    }
                } else { /* the last C % 4 channels: read byte by byte, never past the pixel */
                    for (t = 0; t < taps; ++t, w += 2 * groups) {
                        const int32_t at = offsets[t];
                        uint32_t x = zp_word;
                        int32_t i, x_even, x_odd;
                        if (at >= 0) {
                            for (x = 0, i = 0; i < n; ++i) {
                                x |= ((uint32_t)input[base + at + c + i] & 0xFFu) << (8 * i);
                            }
                        }
                        x_even = (int32_t)q4_sxtb16(x);
                        x_odd = (int32_t)q4_sxtb16(x >> 8);
                        a0 = __smlabb(x_even, (int32_t)w[0], a0);
                        a2 = __smlatt(x_even, (int32_t)w[0], a2);
                        a1 = __smlabb(x_odd, (int32_t)w[1], a1);
                        a3 = __smlatt(x_odd, (int32_t)w[1], a3);
                    }
                }
                out[c] = q4_dw_requantize(a0, c, &q);
                if (n > 1) {
                    out[c + 1] = q4_dw_requantize(a1, c + 1, &q);
                }
                if (n > 2) {
                    out[c + 2] = q4_dw_requantize(a2, c + 2, &q);
                }
                if (n > 3) {
                    out[c + 3] = q4_dw_requantize(a3, c + 3, &q);
                }
            }
        }
    }
}

#else /* no DSP extension: the portable kernel (scratch unused) */

int32_t q4_depthwise_conv2d_s4_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_depthwise_conv2d_s4_dsp(const q4_conv_params *params, const q4_quant_params *quant,
                                const q4_dims *input_dims, const int8_t *input,
                                const q4_dims *filter_dims, const uint8_t *filter,
                                const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                                int32_t *scratch)
{
    (void)scratch;
    q4_depthwise_conv2d_s4(params, quant, input_dims, input, filter_dims, filter, bias,
                           output_dims, output);
}

#endif
