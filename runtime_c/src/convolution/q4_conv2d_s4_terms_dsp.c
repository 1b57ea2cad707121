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
 *  - im2col: 4 output pixels at a time for every input term, widened to int16 by SXTB16 (a 3 x 3
 *    window on 3 channels, K = 27, by q4_terms_im2col_rgb, borders included).
 *  - GEMM: 2 rows x 4 pixels, 8 SMLAD per 2 weight and 4 activation loads, once per input, by
 *    K-pairs: a last block of at most 4 real K-indices runs 2 of its 4 (q4_terms_kpairs).
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
 *  - 4-bit inputs (every input value and zero point in [-8, 7], checked per call) and two inputs,
 *    or dual weights with K >= 128: a row pair per 16-bit product, the _a4_dsp scheme (see
 *    "4-bit inputs" below, q4_ta4_*): half the SMLADs.
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

/* Two K-pairs of a 2-row x 2-pixel tile (the int16 rows, or a quad of the 4-bit path): per K-pair one LDRD of the two pairs' weight words,
 * one of the two pixels' column words (both post-indexed), 4 SMLAD (text of the assembly). */
#define Q4_TA4_KPAIRS2                     \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"    \
    "ldrd %[x0], %[x1], [%[c]], #16\n\t"   \
    "smlad %[a0], %[x0], %[wa], %[a0]\n\t" \
    "smlad %[a1], %[x1], %[wa], %[a1]\n\t" \
    "smlad %[b0], %[x0], %[wb], %[b0]\n\t" \
    "smlad %[b1], %[x1], %[wb], %[b1]\n\t" \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"    \
    "ldrd %[x0], %[x1], [%[c]], #16\n\t"   \
    "smlad %[a0], %[x0], %[wa], %[a0]\n\t" \
    "smlad %[a1], %[x1], %[wa], %[a1]\n\t" \
    "smlad %[b0], %[x0], %[wb], %[b0]\n\t" \
    "smlad %[b1], %[x1], %[wb], %[b1]\n\t"
#define Q4_TA4_ASM(text)                                                                 \
    __asm__ volatile(                                                                    \
        text                                                                             \
        : [a0] "+&r"(a0), [a1] "+&r"(a1), [b0] "+&r"(b0), [b1] "+&r"(b1), [w] "+&r"(w),  \
          [c] "+&r"(col), [wa] "=&r"(wa), [wb] "=&r"(wb), [x0] "=&r"(x0), [x1] "=&r"(x1) \
        :                                                                                \
        : "memory")

/* The K-pairs the GEMMs run for K: 4 per block of 8, but a last block of at most 4 real
 * K-indices runs only its first 2 (its pairs (x4, x6), (x5, x7) have zero weights). */
static int32_t q4_terms_kpairs(int32_t k)
{
    const int32_t tail = k % Q4_DSP_BLOCK;
    return 4 * (q4_round_up8(k) / Q4_DSP_BLOCK) - (tail != 0 && tail <= 4 ? 2 : 0);
}

/* 16 * sum(x * w) of a pair of unpacked rows (w) with 2 pixels (col) over n_kp K-pairs (even):
 * q4_dot_2x2_short's sums, by K-pair (a last block of at most 4 real K-indices runs 2 of its 4
 * K-pairs: 14 instead of 16 for K = 27). */
static Q4_DSP_ALWAYS_INLINE void q4_td_dot_kp(const uint32_t *w, const uint32_t *col,
                                              int32_t n_kp, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
    const uint32_t *const w_end = w + 8 * (n_kp / 4); /* the whole blocks */
    uint32_t wa, wb, x0, x1;
    if (w != w_end) { /* a block per step; the post-indexed loads advance w and col */
        __asm__ volatile(
            "1:\n\t" Q4_TA4_KPAIRS2 Q4_TA4_KPAIRS2 "cmp %[w], %[end]\n\t"
            "bne 1b\n\t"
            : [a0] "+&r"(a0), [a1] "+&r"(a1), [b0] "+&r"(b0), [b1] "+&r"(b1), [w] "+&r"(w),
              [c] "+&r"(col), [wa] "=&r"(wa), [wb] "=&r"(wb), [x0] "=&r"(x0), [x1] "=&r"(x1)
            : [end] "r"(w_end)
            : "cc", "memory");
    }
    if (n_kp & 2) { /* the first half of a last block */
        Q4_TA4_ASM(Q4_TA4_KPAIRS2);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

/* q4_dot_2x2_short over n_kp / 4 blocks, or q4_td_dot_kp when the last block is a half one. */
static Q4_DSP_ALWAYS_INLINE void q4_td_dot(const uint32_t *w, const uint32_t *col, int32_t n_kp,
                                           int32_t *acc)
{
    if (n_kp & 2) {
        q4_td_dot_kp(w, col, n_kp, acc);
    } else {
        q4_dot_2x2_short(w, col, n_kp / 4, acc);
    }
}

#if defined(__OPTIMIZE__)
/* One channel (two rows: w) x two pixels (col) of a dual layer: the GEMM (q4_dot_2x2's
 * assembly), then its requantization in a second block of GNU inline assembly: from rq = {P0,
 * P1 (int64), m_a, m_b at byte 16, right at byte 32} X_p = P_p + D_a,p * m_a + D_b,p * m_b (two
 * SMLAL), u_p = USAT(high(X_p) >> right). 11 registers each, so it builds with a frame pointer
 * and r9 reserved; only with optimisation (at -O0 the C below). */
#define Q4_TD_RQ_2X2(name, SAT)                                                                \
    static Q4_DSP_ALWAYS_INLINE void name(const uint32_t *w, const uint32_t *col,              \
                                          int32_t n_kp, const void *rq, int32_t *u)            \
    {                                                                                          \
        int32_t d[4];                                                                          \
        uint32_t pl, ph, ql, qh, ma, mb;                                                       \
        q4_td_dot(w, col, n_kp, d);                                                            \
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

static void q4_td_rq_2x2_c(const uint32_t *w, const uint32_t *col, int32_t n_kp, const void *rq,
                           int32_t *u, int32_t sat)
{
    const q4_td_fast_rec *r = (const q4_td_fast_rec *)rq;
    const int32_t top = ((int32_t)1 << sat) - 1;
    int32_t d[4], p;
    q4_td_dot(w, col, n_kp, d);
    for (p = 0; p < 2; ++p) {
        const int64_t x = r->preset[p] + (int64_t)d[p] * r->m[0] + (int64_t)d[2 + p] * r->m[1];
        const int32_t v = q4_floor_shift32(q4_td_high(x), r->right);
        u[p] = v < 0 ? 0 : (v > top ? top : v);
    }
}
static void q4_td_rq_2x2_u8(const uint32_t *w, const uint32_t *col, int32_t n_kp,
                            const void *rq, int32_t *u)
{
    q4_td_rq_2x2_c(w, col, n_kp, rq, u, 8);
}
static void q4_td_rq_2x2_u4(const uint32_t *w, const uint32_t *col, int32_t n_kp,
                            const void *rq, int32_t *u)
{
    q4_td_rq_2x2_c(w, col, n_kp, rq, u, 4);
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
            q4_td_dot(w, cols + (h), n_kp, d_);                         \
            r2_.preset[0] = fr->preset[0] + (int64_t)d_[0] * fr->m[0] + \
                            (int64_t)d_[2] * fr->m[1];                  \
            r2_.preset[1] = fr->preset[1] + (int64_t)d_[1] * fr->m[0] + \
                            (int64_t)d_[3] * fr->m[1];                  \
            r2_.m[0] = fr->m[2];                                        \
            r2_.m[1] = fr->m[3];                                        \
            r2_.right = fr->right;                                      \
            RQ(w, cols + col_words + (h), n_kp, &r2_, (u));             \
        } else {                                                        \
            RQ(w, cols + (h), n_kp, fr, (u));                           \
        }                                                               \
    } while (0)
#define Q4_TD_FAST(name, RQ, MIN, N_IN)                                                       \
    static Q4_TERMS_NOINLINE void name(const uint32_t *w, const uint32_t *cols,               \
                                       int32_t blocks, int32_t n_kp, int32_t col_words,       \
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

/* im2col of a group of Q4_DSP_PIXELS output pixels from p0 (n of them real: a missing last
 * pixel repeats the one before) for a 3 x 3 window on a 3-channel input (K = 27, an RGB first
 * layer; any stride and padding) into the interleaved columns at cols, as q4_im2col_group
 * writes them. A window inside the input is assembled in registers from 9 loads that stay
 * inside its three 9-byte row runs (as q4_im2col_fast does); a border window copies its taps
 * inside the input into a z_x-filled 32-byte row, then widens it (the general q4_im2col took
 * about 5x as long on those). */
static Q4_DSP_NOINLINE void q4_terms_im2col_rgb(const q4_dims *input_dims, const int8_t *input,
                                                const q4_conv_params *params, int32_t zp,
                                                int32_t out_w, int32_t p0, int32_t n,
                                                uint32_t *cols)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, row_step = in_w * 3;
    const uint32_t zp8 = (uint32_t)zp & 0xFFu, zp4 = zp8 * 0x01010101u;
    int32_t c;
    for (c = 0; c < Q4_DSP_PIXELS; ++c) {
        const int32_t p = p0 + (c < n ? c : n - 1);
        const int32_t y0 = p / out_w * params->stride_h - params->pad_top;
        const int32_t x0 = p % out_w * params->stride_w - params->pad_left;
        uint32_t *dst = cols + c;
        if (y0 >= 0 && x0 >= 0 && y0 + 3 <= in_h && x0 + 3 <= in_w) {
            const int8_t *r0 = input + y0 * row_step + x0 * 3;
            const int8_t *r1 = r0 + row_step, *r2 = r1 + row_step;
            const uint32_t s2 = (uint32_t)(uint8_t)r0[8] | q4_load_u32(r1) << 8;
            const uint32_t s4 = q4_load_u32(r1 + 5) >> 16 | q4_load_u32(r2) << 16;
            const uint32_t s6 = q4_load_u32(r2 + 5) >> 8 | zp8 << 24;
            q4_widen8(q4_load_u32(r0), q4_load_u32(r0 + 4), dst);
            q4_widen8(s2, q4_load_u32(r1 + 3), dst + 4 * Q4_DSP_PIXELS);
            q4_widen8(s4, q4_load_u32(r2 + 2), dst + 8 * Q4_DSP_PIXELS);
            q4_widen8(s6, zp4, dst + 12 * Q4_DSP_PIXELS);
        } else {
            uint32_t row[8]; /* the 27 window bytes and 5 of z_x */
            int8_t *b = (int8_t *)(void *)row;
            int32_t i, ky, kx;
            for (i = 0; i < 8; ++i) {
                row[i] = zp4;
            }
            for (ky = 0; ky < 3; ++ky) {
                const int32_t iy = y0 + ky;
                if (iy < 0 || iy >= in_h) {
                    continue;
                }
                for (kx = 0; kx < 3; ++kx) {
                    const int32_t ix = x0 + kx;
                    if (ix >= 0 && ix < in_w) {
                        const int8_t *src = input + iy * row_step + ix * 3;
                        int8_t *t = b + ky * 9 + kx * 3;
                        t[0] = src[0];
                        t[1] = src[1];
                        t[2] = src[2];
                    }
                }
            }
            for (i = 0; i < 4; ++i) {
                q4_widen8(row[2 * i], row[2 * i + 1], dst + 4 * i * Q4_DSP_PIXELS);
            }
        }
    }
}

/* q4_im2col_group, or q4_terms_im2col_rgb for a 3 x 3 window on 3 channels. */
static void q4_terms_im2col(const q4_dims *input_dims, const int8_t *input,
                            const q4_dims *filter_dims, const q4_conv_params *params, int32_t zp,
                            int32_t out_w, int32_t p0, int32_t n, int8_t *stage, uint32_t *cols)
{
    if (input_dims->c == 3 && filter_dims->h == 3 && filter_dims->w == 3) {
        q4_terms_im2col_rgb(input_dims, input, params, zp, out_w, p0, n, cols);
    } else {
        q4_im2col_group(input_dims, input, filter_dims, params, zp, out_w, p0, n, stage, cols);
    }
}

/* ---- 4-bit inputs: two rows per 16-bit product (the _a4_dsp scheme, on the row pairs) ----
 *
 * When every input value and input zero point lies in [-8, 7] (checked per call: the kernel is
 * also called with 8-bit inputs), a row pair (r, r + 1) of a block (a dual layer's two weight
 * tensors of one channel; two channels of a single-weight layer) is packed into one halfword
 * per K-index, h = -w_r + w_(r+1) * 2^11, which fits int16. One SMLAD of a column word then adds
 * -(x0 w_r + x1 w_r) to the low 11 bits of an accumulator and (x0 w_(r+1) + x1 w_(r+1)) * 2^11
 * above them: both terms of a channel, 4 MACs per instruction (half the SMLADs of the int16
 * rows). Each -x * w_r lies in [-64, 56], so 16 products (8 K-pairs) stay in the signed 11-bit
 * field [-1024, 896]; after every 8 K-pairs the field is moved out (SBFX) into a low sum, and
 * the upper field keeps accumulating, exact while 64 * K * 2^11 < 2^31 (K <= Q4_TA4_MAX_K).
 * The K-pairs of a block are its columns' words in order, so a last block of at most 4 real
 * K-indices (K = 27) runs only its first 2 K-pairs (the others have zero weights).
 * The GEMM is 2 row pairs (a quad) x 2 pixels per input, one LDRD of the pairs' weights and one
 * of the pixels' activations per 4 SMLAD, post-indexed (GNU inline assembly, 10 registers). Per
 * output the T sums D_t = sum(x * w) are requantized from a 64-bit preset per channel,
 * X = P + sum_t D_t * m'_t, P = sum_t fold_t * m'_t + 2^(s'-1) + (z_y - act_min) * 2^s', with
 * s', m'_t of q4_terms_channel_records (s' >= 33): u = floor(high(X) / 2^(s'-32)), exact since
 * the low word cannot carry; SMLAL wraps modulo 2^64 and the final X is below 2^63 when s' <= 53
 * (channel records' bound). Other channels take q4_terms_store_channel. */
#define Q4_TA4_SPACING 11     /* bit position of the second row's field */
#define Q4_TA4_MAX_K 16383    /* |sum(x * w_(r+1))| * 2^11 <= 64 * K * 2^11 < 2^31 */
#define Q4_TA4_DRAIN_KP 8     /* K-pairs per drain: 16 products of [-64, 56] */
#define Q4_TA4_MIN_K_DUAL 128 /* one input, two weight tensors: the 4-bit path from this K on */

/* 1 when every input zero point and the first n elements of every input lie in [-8, 7]
 * (UADD8 of 8 maps exactly those bytes to 0..15); stops at the first block outside. */
static int32_t q4_ta4_inputs_fit(const q4_terms_params *terms, const int8_t *const *inputs,
                                 int32_t n)
{
    int32_t i, j;
    for (i = 0; i < terms->n_inputs; ++i) {
        const int8_t *x = inputs[i];
        uint32_t any = 0;
        if (terms->input_zp[i] < -8 || terms->input_zp[i] > 7) {
            return 0;
        }
        for (j = 0; j + 16 <= n; j += 16) {
            any |= __uadd8(q4_load_u32(x + j), 0x08080808u) |
                   __uadd8(q4_load_u32(x + j + 4), 0x08080808u) |
                   __uadd8(q4_load_u32(x + j + 8), 0x08080808u) |
                   __uadd8(q4_load_u32(x + j + 12), 0x08080808u);
            if (any & 0xF0F0F0F0u) {
                return 0;
            }
        }
        any = 0;
        for (; j < n; ++j) {
            any |= (uint32_t)(x[j] + 8); /* 0..15 exactly when x[j] is in [-8, 7] */
        }
        if (any & 0xFFFFFFF0u) {
            return 0;
        }
    }
    return 1;
}

/* The 8 weights of one packed word as int16 pairs (w0,w2) (w1,w3) (w4,w6) (w5,w7), or their
 * negations with `negate` (matching q4_widen8). Nibble n becomes (n ^ 8) - 8 (or 8 - (n ^ 8))
 * per byte by SSUB8. */
static void q4_ta4_nibble_pairs(uint32_t w, int32_t negate, uint32_t *dst)
{
    const uint32_t eight = 0x08080808u;
    const uint32_t even = (w & 0x0F0F0F0Fu) ^ eight; /* w0 w2 w4 w6, offset by 8 */
    const uint32_t odd = ((w >> 4) & 0x0F0F0F0Fu) ^ eight;
    const uint32_t e = (uint32_t)(negate ? __ssub8((int32_t)eight, (int32_t)even)
                                         : __ssub8((int32_t)even, (int32_t)eight));
    const uint32_t o = (uint32_t)(negate ? __ssub8((int32_t)eight, (int32_t)odd)
                                         : __ssub8((int32_t)odd, (int32_t)eight));
    dst[0] = q4_pair01(e);
    dst[1] = q4_pair01(o);
    dst[2] = q4_pair01(e >> 16);
    dst[3] = q4_pair01(o >> 16);
}

/* Packs the block's n_rows rows (row r: channel oc0 + r / n_w of weight tensor r % n_w) by row
 * pairs, -w_r + w_(r+1) * 2^11 per halfword, two pairs interleaved per K-pair:
 * [quad][block][K-pair][pair of the quad]; missing rows have zero weights. Writes rec->fold
 * (zero for missing rows). */
static void q4_ta4_pack_rows(const q4_terms_params *terms, const uint8_t *const *filters,
                             const int32_t *bias, int32_t oc0, int32_t n_rows, int32_t k,
                             uint32_t *dst, q4_terms_records *rec)
{
    const int32_t n_w = terms->n_weights, n_in = terms->n_inputs;
    const int32_t row_bytes = (k + 1) / 2;
    const int32_t blocks = q4_round_up8(k) / Q4_DSP_BLOCK;
    int32_t r, b, j, i, h;

    for (r = 0; r < 4 * ((n_rows + 3) / 4); r += 2) {
        uint32_t *out = dst + (r / 4) * blocks * 8 + (r / 2) % 2;
        const uint8_t *rows[2];
        int32_t sums[2] = {0, 0}; /* -sum(w_r), sum(w_(r+1)) */
        for (h = 0; h < 2; ++h) {
            const int32_t row = r + h;
            rows[h] = row < n_rows ? filters[row % n_w] + (oc0 + row / n_w) * row_bytes : NULL;
        }
        for (b = 0; b < blocks; ++b, out += 8) {
            uint32_t neg_a[4] = {0, 0, 0, 0}, w_b[4] = {0, 0, 0, 0};
            if (rows[0] != NULL) {
                q4_ta4_nibble_pairs(q4_row_word(rows[0], row_bytes, b), 1, neg_a);
            }
            if (rows[1] != NULL) {
                q4_ta4_nibble_pairs(q4_row_word(rows[1], row_bytes, b), 0, w_b);
            }
            for (j = 0; j < 4; ++j) {
                sums[0] = q4_smlad(neg_a[j], 0x00010001u, sums[0]);
                sums[1] = q4_smlad(w_b[j], 0x00010001u, sums[1]);
                out[2 * j] = (uint32_t)__sadd16(
                    (int32_t)neg_a[j], (int32_t)((w_b[j] << Q4_TA4_SPACING) & 0xF800F800u));
            }
        }
        for (h = 0; h < 2; ++h) {
            const int32_t row = r + h;
            const int32_t sum = h == 0 ? -sums[0] : sums[1];
            for (i = 0; i < n_in; ++i) {
                const int32_t base = row < n_rows && i == 0 && row % n_w == 0
                                         ? bias[oc0 + row / n_w]
                                         : 0;
                rec->fold[i][row] = row < n_rows ? base - terms->input_zp[i] * sum : 0;
            }
        }
    }
}

/* Moves the low field of acc (signed 11 bits) out of it, adding 16 times it to low (one ADD with
 * a shifted operand). */
#define Q4_TA4_DRAIN(acc, low)                                                    \
    do {                                                                          \
        const int32_t f_ = (int32_t)((uint32_t)(acc) << (32 - Q4_TA4_SPACING)) >> \
                           (32 - Q4_TA4_SPACING);                                 \
        (low) += f_ * 16;                                                         \
        (acc) -= f_;                                                              \
    } while (0)
/* ... the first drain: low = 16 times the field */
#define Q4_TA4_DRAIN_FIRST(acc, low)                                              \
    do {                                                                          \
        const int32_t f_ = (int32_t)((uint32_t)(acc) << (32 - Q4_TA4_SPACING)) >> \
                           (32 - Q4_TA4_SPACING);                                 \
        (low) = f_ * 16;                                                          \
        (acc) -= f_;                                                              \
    } while (0)

/* 16 * sum(x * w) of a quad (w: its words from K-pair 0) with two pixels (col: the first one's
 * words; K-pair j at col[4 j]) over n_kp K-pairs (even), negated for the first row of each pair
 * (its field holds -sum): d[row of the quad * 4] for the first pixel, d[row * 4 + 1] for the
 * second (d is one input's [4 rows][Q4_DSP_PIXELS]). The factor
 * 16 is free (ADD with a shifted operand, a shift by 7 instead of 11) and widens the shifts the
 * requantization takes (see q4_ta4_prepare). */
static Q4_DSP_ALWAYS_INLINE void q4_ta4_dot(const uint32_t *w, const uint32_t *col,
                                            int32_t n_kp, int32_t *d)
{
    const int32_t first = n_kp < Q4_TA4_DRAIN_KP ? n_kp : Q4_TA4_DRAIN_KP; /* 2, 4, 6 or 8 */
    int32_t a0, a1, b0, b1, la0, la1, lb0, lb1;
    uint32_t wa, wb, x0, x1;
    /* the first chunk: its first K-pair starts the sums (SMUAD), its drain the low sums */
    __asm__ volatile(
        "ldrd %[wa], %[wb], [%[w]], #8\n\t"
        "ldrd %[x0], %[x1], [%[c]], #16\n\t"
        "smuad %[a0], %[x0], %[wa]\n\t"
        "smuad %[a1], %[x1], %[wa]\n\t"
        "smuad %[b0], %[x0], %[wb]\n\t"
        "smuad %[b1], %[x1], %[wb]\n\t"
        "ldrd %[wa], %[wb], [%[w]], #8\n\t"
        "ldrd %[x0], %[x1], [%[c]], #16\n\t"
        "smlad %[a0], %[x0], %[wa], %[a0]\n\t"
        "smlad %[a1], %[x1], %[wa], %[a1]\n\t"
        "smlad %[b0], %[x0], %[wb], %[b0]\n\t"
        "smlad %[b1], %[x1], %[wb], %[b1]\n\t"
        : [a0] "=&r"(a0), [a1] "=&r"(a1), [b0] "=&r"(b0), [b1] "=&r"(b1), [w] "+&r"(w),
          [c] "+&r"(col), [wa] "=&r"(wa), [wb] "=&r"(wb), [x0] "=&r"(x0), [x1] "=&r"(x1)
        :
        : "memory");
    if (first >= 6) {
        Q4_TA4_ASM(Q4_TA4_KPAIRS2 Q4_TA4_KPAIRS2);
    }
    if ((first - 2) & 2) {
        Q4_TA4_ASM(Q4_TA4_KPAIRS2);
    }
    Q4_TA4_DRAIN_FIRST(a0, la0);
    Q4_TA4_DRAIN_FIRST(a1, la1);
    Q4_TA4_DRAIN_FIRST(b0, lb0);
    Q4_TA4_DRAIN_FIRST(b1, lb1);
    for (n_kp -= first; n_kp >= Q4_TA4_DRAIN_KP; n_kp -= Q4_TA4_DRAIN_KP) {
        Q4_TA4_ASM(Q4_TA4_KPAIRS2 Q4_TA4_KPAIRS2 Q4_TA4_KPAIRS2 Q4_TA4_KPAIRS2);
        Q4_TA4_DRAIN(a0, la0);
        Q4_TA4_DRAIN(a1, la1);
        Q4_TA4_DRAIN(b0, lb0);
        Q4_TA4_DRAIN(b1, lb1);
    }
    if (n_kp > 0) {
        if (n_kp >= 4) {
            Q4_TA4_ASM(Q4_TA4_KPAIRS2 Q4_TA4_KPAIRS2);
        }
        if (n_kp & 2) {
            Q4_TA4_ASM(Q4_TA4_KPAIRS2);
        }
        Q4_TA4_DRAIN(a0, la0);
        Q4_TA4_DRAIN(a1, la1);
        Q4_TA4_DRAIN(b0, lb0);
        Q4_TA4_DRAIN(b1, lb1);
    }
    /* acc = sum_b * 2^11 exactly; low = -16 * sum_a (its multipliers are negated) */
    d[0] = la0;
    d[1] = la1;
    d[Q4_DSP_PIXELS] = q4_floor_shift32(a0, Q4_TA4_SPACING - 4);
    d[Q4_DSP_PIXELS + 1] = q4_floor_shift32(a1, Q4_TA4_SPACING - 4);
    d[2 * Q4_DSP_PIXELS] = lb0;
    d[2 * Q4_DSP_PIXELS + 1] = lb1;
    d[3 * Q4_DSP_PIXELS] = q4_floor_shift32(b0, Q4_TA4_SPACING - 4);
    d[3 * Q4_DSP_PIXELS + 1] = q4_floor_shift32(b1, Q4_TA4_SPACING - 4);
}

/* The fast requantization of a block's channels on the 4-bit path: with D'_t = 16 * sum(x * w)
 * (q4_ta4_dot) and e = max(0, 28 - s), u = y - act_min before the clamp is
 *   floor(X / 2^(s+4+e)),  X = P + sum_t D'_t * m'_t,  m'_t = m_t * 2^e,
 *   P = 16 * sum_t fold_t * m'_t + 2^(s+3+e) + (z_y - act_min) * 2^(s+4+e),
 * and since s + 4 + e >= 32 it is floor(high(X) / 2^right), right = s + 4 + e - 32: the low word
 * cannot carry. A channel takes it when every m'_t fits int32, right <= 21 (the offset term
 * stays below 2^61) and 16 * sum_t |m'_t| * (|bias| [t = 0] + 2048 K) < 2^62, so that X (the
 * partial sums wrap harmlessly modulo 2^64) ends below 2^63; else right[c] = -1 (the exact
 * q4_requantize_terms_clamp). */
typedef struct {
    int64_t preset;            /* P */
    int32_t m[Q4_TERMS_TERMS]; /* m'_t, negated for a first row of its pair (0 past T) */
    int32_t right;             /* s + 4 + e - 32, or -1 */
    int32_t unused;
} q4_ta4_rec;

static void q4_ta4_prepare(const q4_terms_params *terms, const int32_t *bias, int32_t oc0,
                           int32_t n_ch, int32_t out_c, int32_t k, int32_t off,
                           const q4_terms_records *rec, q4_ta4_rec *fr)
{
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights;
    const uint64_t dot_bound = (uint64_t)2048u * (uint64_t)k;
    int32_t c, i, j;
    for (c = 0; c < n_ch; ++c) {
        const int32_t o = oc0 + c, s = terms->shift[o];
        const int32_t e = s < 28 ? 28 - s : 0, right = s + 4 + e - 32;
        const uint64_t bias_abs = bias[o] < 0 ? (uint64_t)(-(int64_t)bias[o]) : (uint64_t)bias[o];
        uint64_t bound = 0;
        int64_t preset;
        q4_ta4_rec *r = fr + c;
        r->right = -1;
        r->m[1] = r->m[2] = r->m[3] = 0;
        if (right > 21) {
            continue;
        }
        for (i = 0; i < n_in * n_w; ++i) {
            const int32_t m = terms->multiplier[i * out_c + o];
            const uint64_t m_abs = (uint64_t)(m < 0 ? -(int64_t)m : (int64_t)m) << e;
            if (m_abs >= ((uint64_t)1 << 31)) {
                bound = (uint64_t)1 << 58;
                break;
            }
            bound += m_abs * (dot_bound + (i == 0 ? bias_abs : 0u)); /* < 2^63 each */
            r->m[i] = (int32_t)(uint32_t)((uint64_t)(uint32_t)m << e);
            if ((c * n_w + i % n_w) % 2 == 0) { /* a first row of its pair: the sums are negated */
                r->m[i] = -r->m[i];
            }
        }
        if (bound >= ((uint64_t)1 << 58)) {
            continue;
        }
        /* |16 * fold_t * m'_t| < 2^62 by the bound (|fold_t| <= |bias| [t = 0] + 64 K) */
        preset = ((int64_t)1 << (right + 31)) + (int64_t)off * ((int64_t)1 << (right + 32));
        for (i = 0; i < n_in; ++i) {
            for (j = 0; j < n_w; ++j) {
                const int32_t row = c * n_w + j, m = r->m[i * n_w + j];
                preset += 16 * (int64_t)rec->fold[i][row] * (row % 2 == 0 ? -(int64_t)m : m);
            }
        }
        r->preset = preset;
        r->right = right;
    }
}

/* What the tiles of a block need besides the sums. */
typedef struct {
    const q4_terms_records *rec;
    const q4_ta4_rec *fr; /* per channel of the block */
    const q4_terms_params *terms;
    const q4_conv_params *params;
    int32_t oc0, out_c, width;
} q4_ta4_ctx;

/* The exact requantization of channel c of the block (any shift): acc_t = fold_t + sum_t, the
 * sums d + off[t] (times 16), q4_requantize_terms_clamp. */
static Q4_TERMS_NOINLINE void q4_ta4_exact(const q4_ta4_ctx *ctx, int32_t c, const int32_t *d,
                                           const int32_t *off, int8_t *out, int32_t n)
{
    const q4_terms_params *terms = ctx->terms;
    const int32_t n_w = terms->n_weights, n_terms = terms->n_inputs * n_w, o = ctx->oc0 + c;
    int32_t p, t;
    for (p = 0; p < n; ++p) {
        int32_t acc[Q4_TERMS_TERMS];
        for (t = 0; t < n_terms; ++t) {
            const int32_t row = c * n_w + t % n_w, sum = q4_floor_shift32(d[off[t] + p], 4);
            acc[t] = ctx->rec->fold[t / n_w][row] + (row % 2 == 0 ? -sum : sum);
        }
        out[p * ctx->out_c] = q4_requantize_terms_clamp(
            acc, n_terms, terms->multiplier + o, ctx->out_c, terms->shift[o],
            ctx->params->output_zp, ctx->params->act_min, ctx->params->act_max);
    }
}

/* u = USAT(floor(high(X) / 2^right), SAT) for pixel PX of a channel, X = its preset (int64 at
 * pre) + sum_t D'_t[PX] * m_t, the term-0 sums at d, term t's O_t words further (MORE: the text
 * of the terms after the first, Q4_TA4_RQ_T2 / _T4): one LDRD, T loads and SMLAL, ASR, USAT
 * (GNU inline assembly; C at -O0). */
#if defined(__OPTIMIZE__)
#define Q4_TA4_RQ_T2                \
    "ldr %[t], [%[d], #%c[p1]]\n\t" \
    "smlal %[xl], %[xh], %[t], %[m1]\n\t"
#define Q4_TA4_RQ_T4                      \
    Q4_TA4_RQ_T2                          \
    "ldr %[t], [%[d], #%c[p2]]\n\t"       \
    "smlal %[xl], %[xh], %[t], %[m2]\n\t" \
    "ldr %[t], [%[d], #%c[p3]]\n\t"       \
    "smlal %[xl], %[xh], %[t], %[m3]\n\t"
#define Q4_TA4_RQ(u, PX, MORE, SAT, O1, O2, O3)                                                   \
    do {                                                                                          \
        uint32_t xl_, xh_, t_;                                                                    \
        __asm__("ldrd %[xl], %[xh], [%[pre]]\n\t"                                                 \
                "ldr %[t], [%[d], #%c[p0]]\n\t"                                                   \
                "smlal %[xl], %[xh], %[t], %[m0]\n\t" MORE "asr %[xh], %[xh], %[right]\n\t"       \
                "usat %[xh], #" #SAT ", %[xh]\n\t"                                                \
                : [xl] "=&r"(xl_), [xh] "=&r"(xh_), [t] "=&r"(t_)                                 \
                : [pre] "r"(pre), [d] "r"(t0), [m0] "r"(m0), [m1] "r"(m1), [m2] "r"(m2),          \
                  [m3] "r"(m3), [right] "r"(right), [p0] "i"(4 * (PX)),                           \
                  [p1] "i"(4 * ((PX) + O1)), [p2] "i"(4 * ((PX) + O2)), [p3] "i"(4 * ((PX) + O3)) \
                : "memory");                                                                      \
        (u) = (int32_t)xh_;                                                                       \
    } while (0)
#else
#define Q4_TA4_RQ_T2 2
#define Q4_TA4_RQ_T4 4
#define Q4_TA4_RQ(u, PX, MORE, SAT, O1, O2, O3)                                 \
    do {                                                                        \
        const int32_t top_ = (1 << (SAT)) - 1;                                  \
        int64_t x_ = *pre + (int64_t)t0[PX] * m0;                               \
        if ((MORE) > 1) {                                                       \
            x_ += (int64_t)t0[(PX) + O1] * m1;                                  \
        }                                                                       \
        if ((MORE) > 2) {                                                       \
            x_ += (int64_t)t0[(PX) + O2] * m2 + (int64_t)t0[(PX) + O3] * m3;    \
        }                                                                       \
        (u) = q4_floor_shift32((int32_t)(uint32_t)((uint64_t)x_ >> 32), right); \
        (u) = (u) < 0 ? 0 : ((u) > top_ ? top_ : (u));                          \
    } while (0)
#endif

/* The 4 pixels of a channel, USAT #SAT (inside Q4_TA4_TILE) */
#define Q4_TA4_RQ4(MORE, SAT, O1, O2, O3)        \
    do {                                         \
        int32_t u0, u1, u2, u3;                  \
        Q4_TA4_RQ(u0, 0, MORE, SAT, O1, O2, O3); \
        Q4_TA4_RQ(u1, 1, MORE, SAT, O1, O2, O3); \
        Q4_TA4_RQ(u2, 2, MORE, SAT, O1, O2, O3); \
        Q4_TA4_RQ(u3, 3, MORE, SAT, O1, O2, O3); \
        out[0] = (int8_t)(u0 + lo);              \
        out[out_c] = (int8_t)(u1 + lo);          \
        out[2 * out_c] = (int8_t)(u2 + lo);      \
        out[3 * out_c] = (int8_t)(u3 + lo);      \
    } while (0)

/* One quad (w) x the group's 4 pixels (n of them real) of a layer with N_IN inputs and N_W
 * weight tensors: the sums of every input (d[i][row of the quad * 4 + pixel], times 16), then
 * per channel of the quad (c0 + 0 .. 4 / N_W - 1, at most n_ch) y = act_min +
 * min(USAT(floor(high(X) / 2^right), 8), width) (USAT #4 when width = 15), X = P + sum_t D'_t *
 * m'_t, the term t = i * N_W + j of the channel's row r = cq * N_W + j at d[i][r * 4], O1..O3
 * words after term 0 (q4_ta4_exact when right < 0). One function per (N_IN, N_W), out of line
 * so that its constants stay in registers. */
#define Q4_TA4_TILE(name, N_IN, N_W, MORE, O1, O2, O3)                                         \
    static Q4_TERMS_NOINLINE void name(const uint32_t *w, const uint32_t *cols,                \
                                       int32_t col_words, int32_t n_kp, const q4_ta4_ctx *ctx, \
                                       int32_t c0, int32_t n_ch, int8_t *out, int32_t n)       \
    {                                                                                          \
        int32_t d[2][4 * Q4_DSP_PIXELS];                                                       \
        const int32_t width = ctx->width, out_c = ctx->out_c;                                  \
        const int32_t lo = ctx->params->act_min;                                               \
        int32_t cq, p;                                                                         \
        for (p = 0; p < (N_IN); ++p) { /* per input: pixels 0-1, 2-3 */                        \
            q4_ta4_dot(w, cols + p * col_words, n_kp, d[p]);                                   \
            q4_ta4_dot(w, cols + p * col_words + 2, n_kp, d[p] + 2);                           \
        }                                                                                      \
        for (cq = 0; cq < 4 / (N_W) && cq < n_ch; ++cq, ++out) {                               \
            const q4_ta4_rec *r = ctx->fr + c0 + cq;                                           \
            const int32_t *t0 = d[0] + cq * (N_W)*Q4_DSP_PIXELS;                               \
            const int32_t m0 = r->m[0], m1 = r->m[1], m2 = r->m[2], m3 = r->m[3];              \
            const int32_t right = r->right;                                                    \
            const int64_t *pre = &r->preset;                                                   \
            if (right < 0) {                                                                   \
                const int32_t offs[Q4_TERMS_TERMS] = {0, O1, O2, O3};                          \
                q4_ta4_exact(ctx, c0 + cq, t0, offs, out, n);                                  \
            } else if (n == Q4_DSP_PIXELS && width == 15) {                                    \
                Q4_TA4_RQ4(MORE, 4, O1, O2, O3);                                               \
            } else if (n == Q4_DSP_PIXELS && width == 255) {                                   \
                Q4_TA4_RQ4(MORE, 8, O1, O2, O3);                                               \
            } else {                                                                           \
                for (p = 0; p < n; ++p) {                                                      \
                    int32_t u;                                                                 \
                    if (p == 0) {                                                              \
                        Q4_TA4_RQ(u, 0, MORE, 8, O1, O2, O3);                                  \
                    } else if (p == 1) {                                                       \
                        Q4_TA4_RQ(u, 1, MORE, 8, O1, O2, O3);                                  \
                    } else if (p == 2) {                                                       \
                        Q4_TA4_RQ(u, 2, MORE, 8, O1, O2, O3);                                  \
                    } else {                                                                   \
                        Q4_TA4_RQ(u, 3, MORE, 8, O1, O2, O3);                                  \
                    }                                                                          \
                    u = u > width ? width : u;                                                 \
                    out[p * out_c] = (int8_t)(u + lo);                                         \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }
Q4_TA4_TILE(q4_ta4_tile12, 1, 2, Q4_TA4_RQ_T2, 4, 0, 0)
Q4_TA4_TILE(q4_ta4_tile21, 2, 1, Q4_TA4_RQ_T2, 16, 0, 0)
Q4_TA4_TILE(q4_ta4_tile22, 2, 2, Q4_TA4_RQ_T4, 4, 16, 20)

/* The whole layer on the 4-bit path (q4_ta4_inputs_fit holds); arguments as the kernel's. Out of
 * line: its records (1 KB of stack) do not add to the int16 path's frame. */
static Q4_DSP_NOINLINE void q4_ta4_conv(const q4_conv_params *params,
                                        const q4_terms_params *terms, const q4_dims *input_dims,
                                        const int8_t *const *inputs, const q4_dims *filter_dims,
                                        const uint8_t *const *filters, const int32_t *bias,
                                        const q4_dims *output_dims, int8_t *output,
                                        int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k_pad = q4_round_up8(k);
    const int32_t blocks = k_pad / Q4_DSP_BLOCK;
    const int32_t n_kp = q4_terms_kpairs(k);
    const int32_t out_w = output_dims->w, out_c = output_dims->c;
    const int32_t pixels = output_dims->h * out_w;
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights;
    const int32_t block_channels = Q4_TERMS_ROWS / n_w;
    const int32_t col_words = Q4_DSP_PIXELS * (k_pad / 2);
    q4_terms_records *rec = (q4_terms_records *)(void *)scratch;
    uint32_t *weights = (uint32_t *)(rec + 1);
    uint32_t *cols = weights + Q4_TERMS_ROWS * (k_pad / 2);
    int8_t *stage = (int8_t *)(cols + Q4_TERMS_INPUTS * col_words);
    q4_ta4_rec fr[Q4_TERMS_ROWS];
    q4_ta4_ctx ctx;
    int32_t oc0, p0, i, q;

    ctx.rec = rec;
    ctx.fr = fr;
    ctx.terms = terms;
    ctx.params = params;
    ctx.out_c = out_c;
    ctx.width = params->act_max - params->act_min;

    for (oc0 = 0; oc0 < out_c; oc0 += block_channels) {
        const int32_t n_ch = out_c - oc0 < block_channels ? out_c - oc0 : block_channels;
        const int32_t n_rows = n_ch * n_w;
        q4_ta4_pack_rows(terms, filters, bias, oc0, n_rows, k, weights, rec);
        q4_ta4_prepare(terms, bias, oc0, n_ch, out_c, k, params->output_zp - params->act_min,
                       rec, fr);
        ctx.oc0 = oc0;
        for (p0 = 0; p0 < pixels; p0 += Q4_DSP_PIXELS) {
            const int32_t n = pixels - p0 < Q4_DSP_PIXELS ? pixels - p0 : Q4_DSP_PIXELS;
            for (i = 0; i < n_in; ++i) {
                q4_terms_im2col(input_dims, inputs[i], filter_dims, params, terms->input_zp[i],
                                out_w, p0, n, stage, cols + i * col_words);
            }
            for (q = 0; 4 * q < n_rows; ++q) {
                const uint32_t *wq = weights + q * 8 * blocks;
                const int32_t c0 = 4 * q / n_w; /* the quad's first channel */
                int8_t *out = output + p0 * out_c + oc0 + c0;
                if (n_in == 1) {
                    q4_ta4_tile12(wq, cols, col_words, n_kp, &ctx, c0, n_ch - c0, out, n);
                } else if (n_w == 1) {
                    q4_ta4_tile21(wq, cols, col_words, n_kp, &ctx, c0, n_ch - c0, out, n);
                } else {
                    q4_ta4_tile22(wq, cols, col_words, n_kp, &ctx, c0, n_ch - c0, out, n);
                }
            }
        }
    }
}

void q4_conv2d_s4_terms_dsp(const q4_conv_params *params, const q4_terms_params *terms,
                            const q4_dims *input_dims, const int8_t *const *inputs,
                            const q4_dims *filter_dims, const uint8_t *const *filters,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                            int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k_pad = q4_round_up8(k);
    const int32_t blocks = k_pad / Q4_DSP_BLOCK, n_kp = q4_terms_kpairs(k);
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

    /* the 4-bit path: two inputs (T = 4, or T = 2 with two channels per product) or a dual layer
     * with a long K; a dual layer of one input and a short K runs the int16 rows below, whose
     * fused 2 x 2 requantization costs less than the 4-bit path's field extraction there */
    if ((n_in == 2 || (n_w == 2 && k >= Q4_TA4_MIN_K_DUAL)) && k <= Q4_TA4_MAX_K &&
        q4_ta4_inputs_fit(terms, inputs, input_dims->h * input_dims->w * input_dims->c)) {
        q4_ta4_conv(params, terms, input_dims, inputs, filter_dims, filters, bias, output_dims,
                    output, scratch);
        return;
    }

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
                q4_terms_im2col(input_dims, inputs[i], filter_dims, params, terms->input_zp[i],
                                out_w, p0, n, stage, col);
            }
            if (fast) {
                const int32_t lo = params->act_min, width = params->act_max - lo;
                const int32_t col_words = Q4_DSP_PIXELS * (k_pad / 2);
                int8_t *out = output + p0 * out_c + oc0;
                /* USAT #8 or #4 when the clamp is 255 or 15 wide, else USAT #8 and a minimum */
                if (n_in == 1 && width == 255) {
                    q4_td_fast1_u8(weights, cols, blocks, n_kp, col_words, fast_rec, n_ch,
                                   width, lo, out, out_c, n);
                } else if (n_in == 1 && width == 15) {
                    q4_td_fast1_u4(weights, cols, blocks, n_kp, col_words, fast_rec, n_ch,
                                   width, lo, out, out_c, n);
                } else if (n_in == 1) {
                    q4_td_fast1_min(weights, cols, blocks, n_kp, col_words, fast_rec, n_ch,
                                    width, lo, out, out_c, n);
                } else if (width == 255) {
                    q4_td_fast2_u8(weights, cols, blocks, n_kp, col_words, fast_rec, n_ch,
                                   width, lo, out, out_c, n);
                } else if (width == 15) {
                    q4_td_fast2_u4(weights, cols, blocks, n_kp, col_words, fast_rec, n_ch,
                                   width, lo, out, out_c, n);
                } else {
                    q4_td_fast2_min(weights, cols, blocks, n_kp, col_words, fast_rec, n_ch,
                                    width, lo, out, out_c, n);
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
