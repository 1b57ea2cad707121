/*
 * q4_conv2d_s4_terms_dsp.c - multi-term conv2d (dual INT4 weights and/or a residual-quantized
 * input), int8-stored activations (4 or 8 bits), for cores with the Arm DSP extension
 * (Cortex-M4/M7/M33/M55). Bit-exact with q4_conv2d_s4_terms.
 *
 * Scheme (docs/kernels.md, "Multi-term conv2d"):
 *  - The weight tensors are read as one list of "rows": row r of a block is channel
 *    oc0 + r / n_weights of weight tensor r % n_weights, so a dual layer's two tensors of one
 *    channel are neighbours and one 2-row GEMM tile computes both of its weight terms.
 *    Q4_TERMS_ROWS rows are unpacked per block into int16 pairs of 16 * w (as q4_conv2d_s4_dsp
 *    does), and the input zero points are folded per (input, row): acc = fold + sum(x * w) with
 *    fold = [bias] - z_i * sum(w) (the bias in term 0 only), padded positions holding z_i.
 *  - im2col: 4 output pixels at a time for every input term, widened to int16 by SXTB16.
 *  - GEMM: 2 rows x 4 pixels, 8 SMLAD per 2 weight and 4 activation loads, once per input.
 *  - Requantization of the T = n_inputs * n_weights accumulators of an output: with
 *    s' = max(shift, 33) and m'_k = m_k * 2^(s' - shift), floor((sum acc_k * m'_k + 2^(s'-1)) /
 *    2^s') is floor((hi + 2^(s'-33)) / 2^(s'-32)), hi the high word of the 64-bit sum (SMULL,
 *    SMLAL): the low word cannot carry into the result. A channel takes this path when every
 *    m'_k fits int32 and the accumulator bounds keep the 64-bit sum below 2^62; otherwise
 *    q4_requantize_terms_clamp.
 *  - Dual weights (n_weights = 2, the usual multi-term layer), when every channel of a block
 *    has 28 <= shift <= 49 and small enough bounds (q4_td_fast_prepare): GEMM and
 *    requantization of a whole block in one function per clamp and input count, per channel
 *    and pixel pair the 2 x 2 assembly GEMM then, from a 64-bit preset per channel, one SMLAL
 *    per term, a shift and USAT in a second assembly block (see q4_td_fast_rec).
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#include <stddef.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_conv_dsp.h"
#include "q4_conv_terms.h"

/* Scratch: the records, the unpacked rows of a block, the 4 columns of each input and an int8
 * staging row. */
int32_t q4_conv2d_s4_terms_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k = q4_round_up8(filter_dims->h * filter_dims->w * filter_dims->c);
    return (int32_t)sizeof(q4_terms_records) +
           (Q4_TERMS_ROWS + Q4_TERMS_INPUTS * Q4_DSP_PIXELS) * 2 * k + k;
}

/* Unpacks the block's n_rows rows (row r: channel oc0 + r / n_w of weight tensor r % n_w) into
 * dst, two rows interleaved per K-pair ([row pair][block][K-pair][row of the pair]); an odd last
 * row is paired with zeros. Writes rec->fold for every input. */
static void q4_td_unpack_rows(const q4_terms_params *terms, const uint8_t *const *filters,
                              const int32_t *bias, int32_t oc0, int32_t n_rows, int32_t k,
                              uint32_t *dst, q4_terms_records *rec)
{
    const int32_t n_w = terms->n_weights, n_in = terms->n_inputs;
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t blocks = q4_round_up8(k) / Q4_DSP_BLOCK;
    int32_t r, b, i;

    for (r = 0; r < n_rows + (n_rows & 1); ++r) {
        uint32_t *out = dst + (r / 2) * blocks * 8 + r % 2;
        int32_t sum16 = 0;
        if (r >= n_rows) { /* the zero partner of an odd last row */
            for (b = 0; b < blocks; ++b, out += 8) {
                (void)q4_unpack8(0, out);
            }
            for (i = 0; i < n_in; ++i) {
                rec->fold[i][r] = 0;
            }
            continue;
        }
        {
            const int32_t channel = oc0 + r / n_w;
            const uint8_t *row = filters[r % n_w] + channel * row_bytes;
            int32_t sum;
            for (b = 0; b < blocks; ++b, out += 8) {
                sum16 += q4_unpack8(q4_row_word(row, row_bytes, b), out);
            }
            sum = q4_floor_shift32(sum16, 4);
            for (i = 0; i < n_in; ++i) {
                const int32_t base = i == 0 && r % n_w == 0 ? bias[channel] : 0;
                rec->fold[i][r] = base - terms->input_zp[i] * sum;
            }
        }
    }
}

/* sum(x * w) of a pair of unpacked rows (w) with the 4 columns over `blocks` blocks, plus the
 * rows' folds: acc[0..3] for the first row's pixels, acc[4..7] for the second's. The GEMM is
 * the single-term kernel's inline-assembly 2 x 2 tile (q4_dot_2x2), run on pixels 0-1 and 2-3. */
static void q4_td_dot_2x4(const uint32_t *w, const uint32_t *col, int32_t blocks,
                          int32_t fold_a, int32_t fold_b, int32_t *acc)
{
    int32_t lo[4], hi[4];
    q4_dot_2x2_short(w, col, blocks, lo);
    q4_dot_2x2_short(w, col + 2, blocks, hi);
    /* the sums are 16 * sum(x * w): the shift by 4 is exact */
    acc[0] = fold_a + q4_floor_shift32(lo[0], 4);
    acc[1] = fold_a + q4_floor_shift32(lo[1], 4);
    acc[2] = fold_a + q4_floor_shift32(hi[0], 4);
    acc[3] = fold_a + q4_floor_shift32(hi[1], 4);
    acc[4] = fold_b + q4_floor_shift32(lo[2], 4);
    acc[5] = fold_b + q4_floor_shift32(lo[3], 4);
    acc[6] = fold_b + q4_floor_shift32(hi[2], 4);
    acc[7] = fold_b + q4_floor_shift32(hi[3], 4);
}

/* Requantizes and stores one dual-weight channel's n pixels (stride out_c) from the sums
 * dot[i * 2 * Q4_DSP_PIXELS + p] (weight term 0) and dot[(2 * i + 1) * Q4_DSP_PIXELS + p]
 * (term 1) of its N_IN inputs, m[t * Q4_TERMS_ROWS] the block's m'_t: hi = the high word of
 * sum acc_t * m'_t (SMULL, SMLAL), u = floor((hi + round) / 2^right) with round = 2^(right - 1)
 * + (z_y - act_min) * 2^right, clamped to [0, width] by CLAMP (USAT #8, USAT #4, or USAT #8 and
 * a minimum), y = u + act_min. One function per clamp and input count, out of line so that the
 * constants stay in registers. */
#define Q4_TD_DUAL(name, CLAMP, N_IN)                                                         \
    static Q4_TERMS_NOINLINE void name(const int32_t *dot, const int32_t *m, int32_t right,   \
                                       int32_t round, int32_t width, int32_t lo, int8_t *out, \
                                       int32_t out_c, int32_t n)                              \
    {                                                                                         \
        const int32_t m0 = m[0], m1 = m[Q4_TERMS_ROWS];                                       \
        int32_t p;                                                                            \
        (void)width;                                                                          \
        for (p = 0; p < n; ++p, out += out_c) {                                               \
            int64_t total = (int64_t)dot[p] * m0 + (int64_t)dot[Q4_DSP_PIXELS + p] * m1;      \
            int32_t u;                                                                        \
            if (N_IN == 2) {                                                                  \
                total += (int64_t)dot[2 * Q4_DSP_PIXELS + p] * m[2 * Q4_TERMS_ROWS] +         \
                         (int64_t)dot[3 * Q4_DSP_PIXELS + p] * m[3 * Q4_TERMS_ROWS];          \
            }                                                                                 \
            u = q4_floor_shift32((int32_t)(uint32_t)((uint64_t)total >> 32) + round, right);  \
            u = CLAMP(u);                                                                     \
            out[0] = (int8_t)(u + lo);                                                        \
        }                                                                                     \
    }
#define Q4_TD_USAT8(u) ((int32_t)__usat((u), 8))
#define Q4_TD_USAT4(u) ((int32_t)__usat((u), 4))
#define Q4_TD_USAT_MIN(u) (Q4_TD_USAT8(u) < width ? Q4_TD_USAT8(u) : width)
Q4_TD_DUAL(q4_td_dual_u8, Q4_TD_USAT8, 1)
Q4_TD_DUAL(q4_td_dual_u4, Q4_TD_USAT4, 1)
Q4_TD_DUAL(q4_td_dual_min, Q4_TD_USAT_MIN, 1)
Q4_TD_DUAL(q4_td_dual2_u8, Q4_TD_USAT8, 2)
Q4_TD_DUAL(q4_td_dual2_u4, Q4_TD_USAT4, 2)
Q4_TD_DUAL(q4_td_dual2_min, Q4_TD_USAT_MIN, 2)

/* ---- dual weights (n_w = 2): GEMM and requantization of a whole block in one function ----
 *
 * With u = y - act_min before the clamp, off = z_y - act_min and D_k = 16 * sum(x * w) (the
 * GEMM's sums), 16 * acc_k = 16 * fold_k + D_k, so
 *   u = floor((16 * sum_k acc_k * m_k + 2^(s+3) + off * 2^(s+4)) / 2^(s+4))
 *     = floor(X / 2^(s+4)),  X = P + sum_k D_k * m_k,  P = 16 * sum_k fold_k * m_k + 2^(s+3)
 *                                                          + off * 2^(s+4) (once per channel),
 * and for 28 <= s the floor of the high word of X by 2^(s+4-32) is exact: per output one SMLAL
 * per term from the preset P, a shift and USAT. X stays below 2^63 when |m_k| < 2^30, s <= 49
 * and 16 * sum_k |m_k| * (|bias| [k = 0] + 2048 * K) < 2^62 (q4_td_fast_prepare). */
typedef struct {
    int64_t preset[2];         /* P, twice: the two pixels of a q4_td_rq_2x2 call */
    int32_t m[Q4_TERMS_TERMS]; /* m_k, k = i * 2 + j */
    int32_t right;             /* s + 4 - 32 */
    int32_t unused[3];
} q4_td_fast_rec;

/* q4_td_rq_2x2's assembly reads P at bytes 0 and 8, m_a, m_b at 16 and 20, right at 32 */
typedef char q4_td_fast_rec_layout
    [offsetof(q4_td_fast_rec, right) == 32 && offsetof(q4_td_fast_rec, m) == 16 ? 1 : -1];

/* The fast records of a dual block's n_ch channels from rec->fold; 0 when some channel is
 * outside the fast path's bounds (the block then takes the general path). */
static int32_t q4_td_fast_prepare(const q4_terms_params *terms, const q4_terms_records *rec,
                                  const int32_t *bias, int32_t oc0, int32_t n_ch, int32_t out_c,
                                  int32_t k, int32_t off, q4_td_fast_rec *fr)
{
    const int32_t n_in = terms->n_inputs;
    const uint64_t dot_bound = (uint64_t)2048u * (uint64_t)k;
    int32_t c, i, j;
    for (c = 0; c < n_ch; ++c) {
        const int32_t o = oc0 + c, s = terms->shift[o];
        const uint64_t bias_abs = bias[o] < 0 ? (uint64_t)(-(int64_t)bias[o]) : (uint64_t)bias[o];
        uint64_t bound = 0;
        int64_t preset;
        if (s < 28 || s > 49) {
            return 0;
        }
        preset = ((int64_t)1 << (s + 3)) + (int64_t)off * ((int64_t)1 << (s + 4));
        for (i = 0; i < n_in; ++i) {
            for (j = 0; j < 2; ++j) {
                const int32_t t = i * 2 + j, m = terms->multiplier[t * out_c + o];
                const uint64_t m_abs = (uint64_t)(m < 0 ? -(int64_t)m : (int64_t)m);
                if (m_abs >= ((uint64_t)1 << 30)) {
                    return 0;
                }
                bound += m_abs * (dot_bound + (t == 0 ? bias_abs : 0u));
                preset += 16 * (int64_t)rec->fold[i][2 * c + j] * m;
                fr[c].m[t] = m;
            }
        }
        if (bound >= ((uint64_t)1 << 58)) {
            return 0;
        }
        fr[c].preset[0] = preset;
        fr[c].preset[1] = preset;
        fr[c].right = s + 4 - 32;
    }
    return 1;
}

#if defined(__OPTIMIZE__)
/* One channel (two rows: w) x two pixels (col) of a dual layer: the GEMM (q4_dot_2x2's
 * assembly), then its requantization in a second block of GNU inline assembly: from rq = {P0,
 * P1 (int64), m_a, m_b at byte 16, right at byte 32} X_p = P_p + D_a,p * m_a + D_b,p * m_b (two
 * SMLAL), u_p = USAT(high(X_p) >> right). 11 registers each, so it builds with a frame pointer
 * and r9 reserved; only with optimisation (at -O0 the C below). */
#define Q4_TD_RQ_2X2(name, SAT)                                                                \
    static Q4_DSP_ALWAYS_INLINE void name(const uint32_t *w, const uint32_t *col,              \
                                          int32_t blocks, const void *rq, int32_t *u)          \
    {                                                                                          \
        int32_t d[4];                                                                          \
        uint32_t pl, ph, ql, qh, ma, mb;                                                       \
        q4_dot_2x2_short(w, col, blocks, d);                                                   \
        __asm__("ldrd %[pl], %[ph], [%[rq]]\n\t"                                               \
                "ldrd %[ma], %[mb], [%[rq], #16]\n\t"                                          \
                "smlal %[pl], %[ph], %[a0], %[ma]\n\t"                                         \
                "smlal %[pl], %[ph], %[b0], %[mb]\n\t"                                         \
                "ldrd %[ql], %[qh], [%[rq], #8]\n\t"                                           \
                "smlal %[ql], %[qh], %[a1], %[ma]\n\t"                                         \
                "smlal %[ql], %[qh], %[b1], %[mb]\n\t"                                         \
                "ldr %[ma], [%[rq], #32]\n\t"                                                  \
                "asr %[ph], %[ph], %[ma]\n\t"                                                  \
                "asr %[qh], %[qh], %[ma]\n\t"                                                  \
                "usat %[ph], #" #SAT ", %[ph]\n\t"                                             \
                "usat %[qh], #" #SAT ", %[qh]\n\t"                                             \
                : [pl] "=&r"(pl), [ph] "=&r"(ph), [ql] "=&r"(ql), [qh] "=&r"(qh),              \
                  [ma] "=&r"(ma), [mb] "=&r"(mb)                                               \
                : [a0] "r"(d[0]), [a1] "r"(d[1]), [b0] "r"(d[2]), [b1] "r"(d[3]), [rq] "r"(rq) \
                : "memory");                                                                   \
        u[0] = (int32_t)ph;                                                                    \
        u[1] = (int32_t)qh;                                                                    \
    }
Q4_TD_RQ_2X2(q4_td_rq_2x2_u8, 8)
Q4_TD_RQ_2X2(q4_td_rq_2x2_u4, 4)
#else
/* -O0: the same in C */
/* floor(x / 2^32) */
static inline int32_t q4_td_high(int64_t x)
{
    return (int32_t)(uint32_t)((uint64_t)x >> 32);
}

static void q4_td_rq_2x2_c(const uint32_t *w, const uint32_t *col, int32_t blocks,
                           const void *rq, int32_t *u, int32_t sat)
{
    const q4_td_fast_rec *r = (const q4_td_fast_rec *)rq;
    const int32_t top = ((int32_t)1 << sat) - 1;
    int32_t d[4], p;
    q4_dot_2x2_short(w, col, blocks, d);
    for (p = 0; p < 2; ++p) {
        const int64_t x = r->preset[p] + (int64_t)d[p] * r->m[0] + (int64_t)d[2 + p] * r->m[1];
        const int32_t v = q4_floor_shift32(q4_td_high(x), r->right);
        u[p] = v < 0 ? 0 : (v > top ? top : v);
    }
}
static void q4_td_rq_2x2_u8(const uint32_t *w, const uint32_t *col, int32_t blocks,
                            const void *rq, int32_t *u)
{
    q4_td_rq_2x2_c(w, col, blocks, rq, u, 8);
}
static void q4_td_rq_2x2_u4(const uint32_t *w, const uint32_t *col, int32_t blocks,
                            const void *rq, int32_t *u)
{
    q4_td_rq_2x2_c(w, col, blocks, rq, u, 4);
}
#endif
#define Q4_TD_RQ_U8 q4_td_rq_2x2_u8
#define Q4_TD_RQ_U4 q4_td_rq_2x2_u4

/* The block's n_ch dual channels (row pairs at w, 8 * blocks words each) for the group's n
 * pixels, per channel and pixel pair: N_IN = 1, RQ (the GEMM and requantization above, USAT
 * #8 or #4); N_IN = 2, q4_dot_2x2 of the first input, its two terms added to the presets in C,
 * then RQ on the second input. MIN: also clamp to `width` (a clamp range other than 255, 15).
 * y = u + act_min. */
/* u[0..1] of the channel's pixels h, h + 1 (inside Q4_TD_FAST) */
#define Q4_TD_HALF(RQ, N_IN, h, u)                                      \
    do {                                                                \
        if (N_IN == 2) {                                                \
            q4_td_fast_rec r2_;                                         \
            int32_t d_[4];                                              \
            q4_dot_2x2_short(w, cols + (h), blocks, d_);                \
            r2_.preset[0] = fr->preset[0] + (int64_t)d_[0] * fr->m[0] + \
                            (int64_t)d_[2] * fr->m[1];                  \
            r2_.preset[1] = fr->preset[1] + (int64_t)d_[1] * fr->m[0] + \
                            (int64_t)d_[3] * fr->m[1];                  \
            r2_.m[0] = fr->m[2];                                        \
            r2_.m[1] = fr->m[3];                                        \
            r2_.right = fr->right;                                      \
            RQ(w, cols + col_words + (h), blocks, &r2_, (u));           \
        } else {                                                        \
            RQ(w, cols + (h), blocks, fr, (u));                         \
        }                                                               \
    } while (0)
#define Q4_TD_FAST(name, RQ, MIN, N_IN)                                                       \
    static Q4_TERMS_NOINLINE void name(const uint32_t *w, const uint32_t *cols,               \
                                       int32_t blocks, int32_t col_words,                     \
                                       const q4_td_fast_rec *fr, int32_t n_ch, int32_t width, \
                                       int32_t lo, int8_t *out, int32_t out_c, int32_t n)     \
    {                                                                                         \
        int32_t ch, p;                                                                        \
        (void)width;                                                                          \
        (void)col_words;                                                                      \
        for (ch = 0; ch < n_ch; ++ch, w += 8 * blocks, ++fr, ++out) {                         \
            int32_t u[Q4_DSP_PIXELS];                                                         \
            if (MIN) { /* the uncommon clamps: one copy of the tile code (size) */            \
                for (p = 0; p < Q4_DSP_PIXELS; p += 2) {                                      \
                    Q4_TD_HALF(RQ, N_IN, p, u + p);                                           \
                }                                                                             \
            } else {                                                                          \
                Q4_TD_HALF(RQ, N_IN, 0, u);                                                   \
                Q4_TD_HALF(RQ, N_IN, 2, u + 2);                                               \
            }                                                                                 \
            if (MIN) {                                                                        \
                u[0] = u[0] < width ? u[0] : width;                                           \
                u[1] = u[1] < width ? u[1] : width;                                           \
                u[2] = u[2] < width ? u[2] : width;                                           \
                u[3] = u[3] < width ? u[3] : width;                                           \
            }                                                                                 \
            if (n == Q4_DSP_PIXELS) {                                                         \
                out[0] = (int8_t)(u[0] + lo);                                                 \
                out[out_c] = (int8_t)(u[1] + lo);                                             \
                out[2 * out_c] = (int8_t)(u[2] + lo);                                         \
                out[3 * out_c] = (int8_t)(u[3] + lo);                                         \
            } else {                                                                          \
                for (p = 0; p < n; ++p) {                                                     \
                    out[p * out_c] = (int8_t)(u[p] + lo);                                     \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }
Q4_TD_FAST(q4_td_fast1_u8, Q4_TD_RQ_U8, 0, 1)
Q4_TD_FAST(q4_td_fast1_u4, Q4_TD_RQ_U4, 0, 1)
Q4_TD_FAST(q4_td_fast1_min, Q4_TD_RQ_U8, 1, 1)
Q4_TD_FAST(q4_td_fast2_u8, Q4_TD_RQ_U8, 0, 2)
Q4_TD_FAST(q4_td_fast2_u4, Q4_TD_RQ_U4, 0, 2)
Q4_TD_FAST(q4_td_fast2_min, Q4_TD_RQ_U8, 1, 2)

void q4_conv2d_s4_terms_dsp(const q4_conv_params *params, const q4_terms_params *terms,
                            const q4_dims *input_dims, const int8_t *const *inputs,
                            const q4_dims *filter_dims, const uint8_t *const *filters,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                            int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k_pad = q4_round_up8(k);
    const int32_t blocks = k_pad / Q4_DSP_BLOCK;
    const int32_t out_w = output_dims->w, out_c = output_dims->c;
    const int32_t pixels = output_dims->h * out_w;
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights, n_terms = n_in * n_w;
    const int32_t block_channels = Q4_TERMS_ROWS / n_w;
    /* scratch: records, the unpacked rows of a block, the 4 columns of each input, staging */
    q4_terms_records *rec = (q4_terms_records *)(void *)scratch;
    uint32_t *weights = (uint32_t *)(rec + 1);
    uint32_t *cols = weights + Q4_TERMS_ROWS * (k_pad / 2);
    int8_t *stage = (int8_t *)(cols + Q4_TERMS_INPUTS * Q4_DSP_PIXELS * (k_pad / 2));
    q4_td_fast_rec fast_rec[Q4_TERMS_ROWS / 2];
    int32_t oc0, p0, c, i, r, j, fast;

    for (oc0 = 0; oc0 < out_c; oc0 += block_channels) {
        const int32_t n_ch = out_c - oc0 < block_channels ? out_c - oc0 : block_channels;
        const int32_t n_rows = n_ch * n_w;
        q4_td_unpack_rows(terms, filters, bias, oc0, n_rows, k, weights, rec);
        q4_terms_channel_records(terms, bias, oc0, n_ch, out_c, k, rec);
        fast = n_w == 2 && q4_td_fast_prepare(terms, rec, bias, oc0, n_ch, out_c, k,
                                              params->output_zp - params->act_min, fast_rec);
        for (p0 = 0; p0 < pixels; p0 += Q4_DSP_PIXELS) {
            const int32_t n = pixels - p0 < Q4_DSP_PIXELS ? pixels - p0 : Q4_DSP_PIXELS;
            for (i = 0; i < n_in; ++i) {
                uint32_t *col = cols + i * Q4_DSP_PIXELS * (k_pad / 2);
                q4_im2col_group(input_dims, inputs[i], filter_dims, params, terms->input_zp[i],
                                out_w, p0, n, stage, col);
            }
            if (fast) {
                const int32_t lo = params->act_min, width = params->act_max - lo;
                const int32_t col_words = Q4_DSP_PIXELS * (k_pad / 2);
                int8_t *out = output + p0 * out_c + oc0;
                /* USAT #8 or #4 when the clamp is 255 or 15 wide, else USAT #8 and a minimum */
                if (n_in == 1 && width == 255) {
                    q4_td_fast1_u8(weights, cols, blocks, col_words, fast_rec, n_ch, width, lo,
                                   out, out_c, n);
                } else if (n_in == 1 && width == 15) {
                    q4_td_fast1_u4(weights, cols, blocks, col_words, fast_rec, n_ch, width, lo,
                                   out, out_c, n);
                } else if (n_in == 1) {
                    q4_td_fast1_min(weights, cols, blocks, col_words, fast_rec, n_ch, width, lo,
                                    out, out_c, n);
                } else if (width == 255) {
                    q4_td_fast2_u8(weights, cols, blocks, col_words, fast_rec, n_ch, width, lo,
                                   out, out_c, n);
                } else if (width == 15) {
                    q4_td_fast2_u4(weights, cols, blocks, col_words, fast_rec, n_ch, width, lo,
                                   out, out_c, n);
                } else {
                    q4_td_fast2_min(weights, cols, blocks, col_words, fast_rec, n_ch, width, lo,
                                    out, out_c, n);
                }
                continue;
            }
            for (r = 0; r < n_rows; r += 2) {
                /* dot[i][row of the pair * 4 + pixel] */
                int32_t dot[Q4_TERMS_INPUTS][2 * Q4_DSP_PIXELS];
                const int32_t *acc[Q4_TERMS_TERMS];
                for (i = 0; i < n_in; ++i) {
                    q4_td_dot_2x4(weights + r * (k_pad / 2),
                                  cols + i * Q4_DSP_PIXELS * (k_pad / 2), blocks,
                                  rec->fold[i][r], rec->fold[i][r + 1], dot[i]);
                }
                if (n_w == 2 && rec->right[r / 2] > 0 && rec->right[r / 2] <= 21) {
                    /* a dual channel on the fast path: 21 bounds (act_max - act_min) * 2^right */
                    const int32_t ch = r / 2, right = rec->right[ch];
                    const int32_t lo = params->act_min, width = params->act_max - lo;
                    const int32_t round = ((int32_t)1 << (right - 1)) +
                                          (params->output_zp - lo) * ((int32_t)1 << right);
                    const int32_t *m = &rec->multiplier[0][ch]; /* m'_t at t * Q4_TERMS_ROWS */
                    int8_t *out = output + p0 * out_c + oc0 + ch;
                    if (n_in == 1 && width == 255) {
                        q4_td_dual_u8(dot[0], m, right, round, width, lo, out, out_c, n);
                    } else if (n_in == 1 && width == 15) {
                        q4_td_dual_u4(dot[0], m, right, round, width, lo, out, out_c, n);
                    } else if (n_in == 1) {
                        q4_td_dual_min(dot[0], m, right, round, width, lo, out, out_c, n);
                    } else if (width == 255) {
                        q4_td_dual2_u8(dot[0], m, right, round, width, lo, out, out_c, n);
                    } else if (width == 15) {
                        q4_td_dual2_u4(dot[0], m, right, round, width, lo, out, out_c, n);
                    } else {
                        q4_td_dual2_min(dot[0], m, right, round, width, lo, out, out_c, n);
                    }
                    continue;
                }
                /* the pair holds 2 / n_w channels of n_w rows each */
                for (c = 0; c < 2 / n_w && r + c * n_w < n_rows; ++c) {
                    const int32_t ch = r / n_w + c;
                    for (i = 0; i < n_in; ++i) {
                        for (j = 0; j < n_w; ++j) {
                            acc[i * n_w + j] = dot[i] + (c * n_w + j) * Q4_DSP_PIXELS;
                        }
                    }
                    q4_terms_store_channel(acc, n_terms, n, rec, ch, oc0 + ch, terms, params,
                                           output + p0 * out_c + oc0 + ch, out_c);
                }
            }
        }
    }
}

#else /* no DSP extension: the portable kernel (scratch unused) */

int32_t q4_conv2d_s4_terms_dsp_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_conv2d_s4_terms_dsp(const q4_conv_params *params, const q4_terms_params *terms,
                            const q4_dims *input_dims, const int8_t *const *inputs,
                            const q4_dims *filter_dims, const uint8_t *const *filters,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                            int32_t *scratch)
{
    (void)scratch;
    q4_conv2d_s4_terms(params, terms, input_dims, inputs, filter_dims, filters, bias,
                       output_dims, output);
}

#endif
