/*
 * q4_conv2d_s4_terms_mve.c - multi-term conv2d (dual INT4 weights and/or a residual-quantized
 * input), int8-stored activations (4 or 8 bits), for cores with Helium (MVE, Cortex-M55/M85).
 * Bit-exact with q4_conv2d_s4_terms.
 *
 * Scheme (docs/kernels.md, "Multi-term conv2d"):
 *  - The weight tensors are read as one list of "rows": row r of a block is channel
 *    oc0 + r / n_weights of weight tensor r % n_weights, so a dual layer's two tensors of one
 *    channel form a pair. Q4_TERMS_ROWS rows are unpacked per block into int8, zero-padded to a
 *    multiple of 16 K-indices, the two rows of a pair interleaved per 16-weight vector (the
 *    layout of the single-term q4_conv2d_s4_mve); the input zero points are folded per
 *    (input, row): acc = fold + sum(x * w) with fold = [bias] - z_i * sum(w) (the bias in term 0
 *    only), padded positions holding z_i.
 *  - Per group of 4 output pixels and per input, the im2col and the 2-row x 4-pixel GEMM of
 *    q4_conv2d_s4_mve (q4_conv_mve.h; the last group overlaps the one before), run over all
 *    the block's row pairs in one inline-assembly loop that stores each row's 4 sums; for dual
 *    weights (a row pair is one channel's two terms) when every channel of the block takes the
 *    vector requantization, the same loop requantizes and stores the channel (T = 2; T = 4 with
 *    K <= 32: one loop runs both inputs' GEMMs and sums each pixel's 4 terms exactly by
 *    VMLALDAVA, q4_tm_quad_run*; T = 4 with larger K: input 0's loop stores the 64-bit sums of
 *    its two terms, input 1's adds its own and stores).
 *  - Requantization of a channel's 4 pixels per vector: with s' = max(shift, 33) and
 *    m'_k = m_k * 2^(s' - shift) (q4_terms_channel_records), floor((sum_k acc_k * m'_k +
 *    2^(s'-1)) / 2^s') = floor((H + 2^(s'-33)) / 2^(s'-32)), H = floor(sum / 2^32) the high
 *    word of the exact 64-bit sum: H = sum_k VMULH(acc_k, m'_k) plus the carries of the low
 *    words VMUL(acc_k, m'_k) added as unsigned (the carry of a + b is bit 31 of VHADD.U32(a, b)),
 *    then VRSHL by -(s' - 32), + z_y, clamp, one scatter VSTRB.32. Channels whose m'_k do not
 *    fit int32 or whose sum could reach 2^62 use q4_terms_store_channel (exact 64-bit path).
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

#include "q4_conv_mve.h"
#include "q4_conv_terms.h"

/* int32 words of one input's sums: 4 pixels per row of a block */
#define Q4_TM_SUMS (Q4_TERMS_ROWS * Q4_MVE_PIXELS)

/* Scratch: the records, the sums of each input, the unpacked rows of a block, the 4 columns of
 * each input, a staging column (or border patch, with the next) and the gather offsets. */
int32_t q4_conv2d_s4_terms_mve_get_buffer_size(const q4_dims *filter_dims)
{
    const int32_t k16 = q4_round_up16(filter_dims->h * filter_dims->w * filter_dims->c);
    return (int32_t)sizeof(q4_terms_records) + Q4_TERMS_INPUTS * Q4_TM_SUMS * 4 +
           (Q4_TERMS_ROWS + Q4_TERMS_INPUTS * Q4_MVE_PIXELS + 2) * k16 + Q4_MVE_LANES;
}

/* Unpacks the block's n_rows rows (row r: channel oc0 + r / n_w of weight tensor r % n_w) into
 * dst as pairs (pair p's vector b: row 2p at dst + (p * k16 + 16 * b) * 2, row 2p + 1 16 bytes
 * further); an odd last row is paired with zeros. Writes rec->fold for every input. */
static void q4_tm_unpack_rows(const q4_terms_params *terms, const uint8_t *const *filters,
                              const int32_t *bias, int32_t oc0, int32_t n_rows, int32_t k,
                              int8_t *dst, q4_terms_records *rec)
{
    const int32_t n_w = terms->n_weights, n_in = terms->n_inputs;
    const int32_t row_bytes = (k + 1) / 2, k16 = q4_round_up16(k);
    int32_t r, b, i;

    for (r = 0; r < n_rows + (n_rows & 1); ++r) {
        int8_t *out = dst + (r / 2) * 2 * k16 + (r % 2) * Q4_MVE_LANES;
        if (r >= n_rows) { /* the zero partner of an odd last row */
            for (b = 0; b < k16 / Q4_MVE_LANES; ++b) {
                vst1q_s8(out + b * 2 * Q4_MVE_LANES, vdupq_n_s8(0));
            }
            for (i = 0; i < n_in; ++i) {
                rec->fold[i][r] = 0;
            }
        } else {
            const int32_t channel = oc0 + r / n_w;
            const uint8_t *row = filters[r % n_w] + channel * row_bytes;
            const int32_t sum = q4_mve_unpack_row(row, row_bytes, k16, out);
            for (i = 0; i < n_in; ++i) {
                const int32_t base = i == 0 && r % n_w == 0 ? bias[channel] : 0;
                /* modulo 2^32: with the dot product it fits int32 (docs/integer-spec.md) */
                rec->fold[i][r] = (int32_t)((uint32_t)base -
                                            (uint32_t)terms->input_zp[i] * (uint32_t)sum);
            }
        }
    }
}

/* sum(x * w) of every row pair of a block (weights w, contiguous pairs) with one input's group
 * columns (cols), `steps` GEMM steps each, stored per row as 4 pixels: sums .. sums_end. The
 * values used once per pair stay in memory, as in q4_mve_tiles_run: 4 general registers
 * besides the accumulators. */
static inline void q4_tm_gemm_pairs(const int8_t *cols, uint32_t steps, const int8_t *w,
                                    int32_t *sums, const int32_t *sums_end)
{
    Q4_MVE_ACCUMULATORS;
    const int8_t *x;
    uint32_t n;
    __asm__ volatile("0:\n\t"
                     "ldr %[x], %[cols]\n\t"
                     "ldr %[n], %[steps]\n\t" Q4_MVE_GEMM "vstrw.32 q0, [%[s]], #16\n\t"
                     "vstrw.32 q1, [%[s]], #16\n\t"
                     "ldr %[a0], %[end]\n\t"
                     "cmp %[s], %[a0]\n\t"
                     "bne 0b\n\t"
                     : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "=&r"(x), [n] "=&r"(n), [s] "+r"(sums)
                     : [cols] "m"(cols), [steps] "m"(steps), [end] "m"(sums_end)
                     : "q0", "q1", "q2", "q3", "cc", "memory");
}

/* The fused path of a dual-weight layer (n_w = 2) whose block takes the vector requantization
 * for every channel: row pair p is channel p's two weight terms, so the GEMM's two sum vectors
 * are that channel's acc_0 and acc_1 (4 pixels each) and are requantized in the same loop. Per
 * channel a record of Q4_TM_FUSED words, in the order the loop loads them (one LDM): the folds
 * of the input's two terms, their multipliers m'_k, and -(s' - 32) for VRSHL. */
#define Q4_TM_FUSED 5
enum { Q4_TM_FOLD_A, Q4_TM_FOLD_B, Q4_TM_MULT_A, Q4_TM_MULT_B, Q4_TM_NEG_RIGHT };

/* The fused records of input i's terms for the block's n_ch channels; 1 when every channel
 * takes the vector requantization (else the records are not written). */
static int32_t q4_tm_fused_records(const q4_terms_records *rec, int32_t n_ch, int32_t i,
                                   int32_t *dst)
{
    int32_t c;
    for (c = 0; c < n_ch; ++c) {
        if (rec->right[c] <= 0) {
            return 0;
        }
    }
    for (c = 0; c < n_ch; ++c, dst += Q4_TM_FUSED) {
        dst[Q4_TM_FOLD_A] = rec->fold[i][2 * c];
        dst[Q4_TM_FOLD_B] = rec->fold[i][2 * c + 1];
        dst[Q4_TM_MULT_A] = rec->multiplier[2 * i][c];
        dst[Q4_TM_MULT_B] = rec->multiplier[2 * i + 1][c];
        dst[Q4_TM_NEG_RIGHT] = -rec->right[c];
    }
    return 1;
}

/* After the GEMM (q0, q1: acc without fold of terms a and b) and the record LDM (a0..a3: folds
 * and multipliers): q3 = VMULH(acc_a, m_a) + VMULH(acc_b, m_b) + the carry of the low words
 * q0, q1 = VMUL(acc_k, m_k): the exact 64-bit sum is q3 * 2^32 + (q0 + q1 mod 2^32). */
#define Q4_TM_WIDE_SUM           \
    "vadd.i32 q0, q0, %[a0]\n\t" \
    "vadd.i32 q1, q1, %[a1]\n\t" \
    "vdup.32 q2, %[a2]\n\t"      \
    "vmulh.s32 q3, q0, q2\n\t"   \
    "vmul.i32 q0, q0, %[a2]\n\t" \
    "vdup.32 q2, %[a3]\n\t"      \
    "vmulh.s32 q2, q1, q2\n\t"   \
    "vmul.i32 q1, q1, %[a3]\n\t" \
    "vadd.i32 q3, q3, q2\n\t"    \
    "vhadd.u32 q2, q0, q1\n\t"   \
    "vshr.u32 q2, q2, #31\n\t"   \
    "vadd.i32 q3, q3, q2\n\t"

/* q3 (the high word H) requantized (VRSHL by b0 = -(s' - 32), + z_y, clamp) and scattered to
 * the channel's 4 pixels; out moves to the next channel. */
#define Q4_TM_STORE                      \
    "vrshl.s32 q3, %[b0]\n\t"            \
    "vadd.i32 q3, q3, %q[zp]\n\t"        \
    "vmax.s32 q3, q3, %q[lo]\n\t"        \
    "vmin.s32 q3, q3, %q[hi]\n\t"        \
    "vstrb.32 q3, [%[out], %q[off]]\n\t" \
    "adds %[out], %[out], #1\n\t"

/* The GEMM of one row pair with `steps` steps (Q4_MVE_GEMM), or with a fixed 1 or 2 steps. */
#define Q4_TM_GEMM_N "ldr %[n], %[steps]\n\t" Q4_MVE_GEMM
#define Q4_TM_GEMM_1 Q4_MVE_GEMM_1
#define Q4_TM_GEMM_2 Q4_MVE_GEMM_2

/* Every channel of a fast dual-weight block for one group, one input (T = 2): GEMM, fused
 * records recs .. recs_end, requantized and stored; out: the group's first pixel, channel oc0.
 * The values used once per channel stay in memory, as in q4_mve_tiles_run. */
#define Q4_TM_DEFINE_FUSED_RUN(name, gemm)                                                         \
    static inline void name(const int8_t *cols, uint32_t steps, const int32_t *recs,               \
                            const int32_t *recs_end, const int8_t *w, int8_t *out,                 \
                            int32x4_t lo, int32x4_t hi, int32x4_t zp, uint32x4_t offsets)          \
    {                                                                                              \
        Q4_MVE_ACCUMULATORS;                                                                       \
        const int8_t *x;                                                                           \
        uint32_t n;                                                                                \
        __asm__ volatile("0:\n\t"                                                                  \
                         "ldr %[x], %[cols]\n\t" gemm "ldr %[n], %[rec]\n\t"                       \
                         "ldm %[n]!, {%[a0], %[a1], %[a2], %[a3], %[b0]}\n\t"                      \
                         "str %[n], %[rec]\n\t" Q4_TM_WIDE_SUM Q4_TM_STORE "ldr %[a0], %[end]\n\t" \
                         "cmp %[n], %[a0]\n\t"                                                     \
                         "bne 0b\n\t"                                                              \
                         : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "=&r"(x), [n] "=&r"(n),           \
                           [out] "+r"(out), [rec] "+m"(recs)                                       \
                         : [cols] "m"(cols), [steps] "m"(steps), [end] "m"(recs_end),              \
                           [lo] "w"(lo), [hi] "w"(hi), [zp] "w"(zp), [off] "w"(offsets)            \
                         : "q0", "q1", "q2", "q3", "cc", "memory");                                \
    }

/* Input 0 of a fast T = 4 block for one group: per channel the exact 64-bit sum of its two
 * terms, stored as 4 high words then 4 low words at wide (8 words per channel). */
#define Q4_TM_DEFINE_FUSED_WIDE(name, gemm)                                              \
    static inline void name(const int8_t *cols, uint32_t steps, const int32_t *recs,     \
                            const int32_t *recs_end, const int8_t *w, int32_t *wide)     \
    {                                                                                    \
        Q4_MVE_ACCUMULATORS;                                                             \
        const int8_t *x;                                                                 \
        uint32_t n;                                                                      \
        __asm__ volatile("0:\n\t"                                                        \
                         "ldr %[x], %[cols]\n\t" gemm "ldr %[n], %[rec]\n\t"             \
                         "ldm %[n]!, {%[a0], %[a1], %[a2], %[a3], %[b0]}\n\t"            \
                         "str %[n], %[rec]\n\t" Q4_TM_WIDE_SUM "vadd.i32 q0, q0, q1\n\t" \
                         "vstrw.32 q3, [%[s]], #16\n\t"                                  \
                         "vstrw.32 q0, [%[s]], #16\n\t"                                  \
                         "ldr %[a0], %[end]\n\t"                                         \
                         "cmp %[n], %[a0]\n\t"                                           \
                         "bne 0b\n\t"                                                    \
                         : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "=&r"(x), [n] "=&r"(n), \
                           [s] "+r"(wide), [rec] "+m"(recs)                              \
                         : [cols] "m"(cols), [steps] "m"(steps), [end] "m"(recs_end)     \
                         : "q0", "q1", "q2", "q3", "cc", "memory");                      \
    }

/* Input 1 of a fast T = 4 block: its two terms' 64-bit sum plus input 0's (wide), requantized
 * and stored as in the T = 2 loop. */
#define Q4_TM_DEFINE_FUSED_RUN_WIDE(name, gemm)                                            \
    static inline void name(const int8_t *cols, uint32_t steps, const int32_t *recs,       \
                            const int32_t *recs_end, const int8_t *w, const int32_t *wide, \
                            int8_t *out, int32x4_t lo, int32x4_t hi, int32x4_t zp,         \
                            uint32x4_t offsets)                                            \
    {                                                                                      \
        Q4_MVE_ACCUMULATORS;                                                               \
        const int8_t *x;                                                                   \
        uint32_t n;                                                                        \
        __asm__ volatile("0:\n\t"                                                          \
                         "ldr %[x], %[cols]\n\t" gemm "ldr %[n], %[rec]\n\t"               \
                         "ldm %[n]!, {%[a0], %[a1], %[a2], %[a3], %[b0]}\n\t"              \
                         "str %[n], %[rec]\n\t" Q4_TM_WIDE_SUM "vadd.i32 q0, q0, q1\n\t"   \
                         "ldr %[a0], %[wide]\n\t"                                          \
                         "vldrw.u32 q1, [%[a0]], #16\n\t" /* input 0's high words */       \
                         "vadd.i32 q3, q3, q1\n\t"                                         \
                         "vldrw.u32 q1, [%[a0]], #16\n\t" /* and low words */              \
                         "str %[a0], %[wide]\n\t"                                          \
                         "vhadd.u32 q2, q0, q1\n\t"                                        \
                         "vshr.u32 q2, q2, #31\n\t"                                        \
                         "vadd.i32 q3, q3, q2\n\t" Q4_TM_STORE "ldr %[a0], %[end]\n\t"     \
                         "cmp %[n], %[a0]\n\t"                                             \
                         "bne 0b\n\t"                                                      \
                         : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "=&r"(x), [n] "=&r"(n),   \
                           [out] "+r"(out), [rec] "+m"(recs), [wide] "+m"(wide)            \
                         : [cols] "m"(cols), [steps] "m"(steps), [end] "m"(recs_end),      \
                           [lo] "w"(lo), [hi] "w"(hi), [zp] "w"(zp), [off] "w"(offsets)    \
                         : "q0", "q1", "q2", "q3", "cc", "memory");                        \
    }

Q4_TM_DEFINE_FUSED_RUN(q4_tm_fused_run, Q4_TM_GEMM_N)
Q4_TM_DEFINE_FUSED_RUN(q4_tm_fused_run1, Q4_TM_GEMM_1)
Q4_TM_DEFINE_FUSED_RUN(q4_tm_fused_run2, Q4_TM_GEMM_2)
/* T = 4 with more than 2 steps (1 or 2: the quad loop below) */
Q4_TM_DEFINE_FUSED_WIDE(q4_tm_fused_wide, Q4_TM_GEMM_N)
Q4_TM_DEFINE_FUSED_RUN_WIDE(q4_tm_fused_run_wide, Q4_TM_GEMM_N)

/* The fused path of a dual-weight layer with two inputs (T = 4) and K <= 32 (1 or 2 GEMM steps),
 * one loop for both inputs: per channel the GEMM of input 0, its 8 sums moved into 4 pixel
 * vectors (lanes 0 and 2: terms 0 and 1), the GEMM of input 1 over the same weights (lanes 1
 * and 3: terms 2 and 3), then per pixel one VMLALDAVA.S32 of the pixel vector with the channel's
 * multipliers m'_k onto C = sum_k fold_k * m'_k + 2^(s' - 1): the exact 64-bit sum, whose high
 * word shifted right by s' - 32 is the requantized value (s' >= 33); + z_y, clamp, scatter.
 * Per channel a record of Q4_TM_QUAD words: the multipliers in lane order, C (low, high word),
 * -(s' - 32), z_y; after the last record the clamp and the pixels' byte offsets (3 vectors). */
#define Q4_TM_QUAD 8

/* The quad records of the block's n_ch channels (every one takes the vector requantization). */
static void q4_tm_quad_records(const q4_terms_records *rec, int32_t n_ch,
                               const q4_conv_params *params, uint32x4_t offsets, int32_t *dst)
{
    int32_t c;
    for (c = 0; c < n_ch; ++c, dst += Q4_TM_QUAD) {
        const int32_t right = rec->right[c]; /* s' - 32, 1 .. 30 */
        /* |sum_k fold_k * m'_k| < 2^62 (q4_terms_channel_records' bound), 2^(s'-1) <= 2^61 */
        const int64_t sum = ((int64_t)1 << (right + 31)) +
                            (int64_t)rec->fold[0][2 * c] * rec->multiplier[0][c] +
                            (int64_t)rec->fold[0][2 * c + 1] * rec->multiplier[1][c] +
                            (int64_t)rec->fold[1][2 * c] * rec->multiplier[2][c] +
                            (int64_t)rec->fold[1][2 * c + 1] * rec->multiplier[3][c];
        dst[0] = rec->multiplier[0][c]; /* lane 0: input 0, weight tensor 0 */
        dst[1] = rec->multiplier[2][c]; /* lane 1: input 1, weight tensor 0 */
        dst[2] = rec->multiplier[1][c]; /* lane 2: input 0, weight tensor 1 */
        dst[3] = rec->multiplier[3][c]; /* lane 3: input 1, weight tensor 1 */
        dst[4] = (int32_t)(uint32_t)(uint64_t)sum;
        dst[5] = (int32_t)(uint32_t)((uint64_t)sum >> 32);
        dst[6] = -right;
        dst[7] = params->output_zp;
    }
    vst1q_s32(dst, vdupq_n_s32(params->act_min));
    vst1q_s32(dst + 4, vdupq_n_s32(params->act_max));
    vst1q_u32((uint32_t *)(void *)(dst + 8), offsets);
}

/* One GEMM step on 3 vector registers (q0, q1: the pair's weights, q2: each pixel's column). */
#define Q4_TM_STEP3(op)                                                           \
    "vldrb.8 q0, [%[w]], #16\n\t"                                                 \
    "vldrb.8 q1, [%[w]], #16\n\t"                                                 \
    "vldrb.8 q2, [%[x]], #16\n\t" op " %[a0], q2, q0\n\t" op " %[b0], q2, q1\n\t" \
    "vldrb.8 q2, [%[x]], #16\n\t" op " %[a1], q2, q0\n\t" op " %[b1], q2, q1\n\t" \
    "vldrb.8 q2, [%[x]], #16\n\t" op " %[a2], q2, q0\n\t" op " %[b2], q2, q1\n\t" \
    "vldrb.8 q2, [%[x]], #16\n\t" op " %[a3], q2, q0\n\t" op " %[b3], q2, q1\n\t"
#define Q4_TM_QUAD_GEMM_1 Q4_TM_STEP3("vmladav.s8")
#define Q4_TM_QUAD_GEMM_2 Q4_TM_STEP3("vmladav.s8") Q4_TM_STEP3("vmladava.s8")

/* One pixel (vector qP) onto C: the 64-bit sum in lo:hi (lo even, hi odd register). */
#define Q4_TM_QUAD_PIXEL(lo, hi, qp)              \
    "ldrd %[" lo "], %[" hi "], [%[b3], #16]\n\t" \
    "vmlaldava.s32 %[" lo "], %[" hi "], " qp ", q0\n\t"

/* Every channel of a fast T = 4 block for one group: input 0's columns cols0, input 1's cols1,
 * quad records recs .. recs_end (the constants after them), out: the group's first pixel,
 * channel oc0. back: the bytes of one pair's weights (the GEMM of input 1 rereads them). x and
 * n are bound to odd registers: VMLALDAVA's high word. */
#define Q4_TM_DEFINE_QUAD_RUN(name, gemm, back)                                                               \
    static inline void name(const int8_t *cols0, const int8_t *cols1, const int32_t *recs,                    \
                            const int32_t *recs_end, const int8_t *w, int8_t *out)                            \
    {                                                                                                         \
        Q4_MVE_ACCUMULATORS;                                                                                  \
        register const int8_t *x __asm__("r1");                                                               \
        register uint32_t n __asm__("r11");                                                                   \
        __asm__ volatile(                                                                                     \
            "0:\n\t"                                                                                          \
            "ldr %[x], %[cols0]\n\t" gemm "vmov q3[2], q3[0], %[a0], %[b0]\n\t"                               \
            "vmov q4[2], q4[0], %[a1], %[b1]\n\t"                                                             \
            "vmov q5[2], q5[0], %[a2], %[b2]\n\t"                                                             \
            "vmov q6[2], q6[0], %[a3], %[b3]\n\t"                                                             \
            "ldr %[x], %[cols1]\n\t"                                                                          \
            "subs %[w], %[w], #" back "\n\t" gemm "vmov q3[3], q3[1], %[a0], %[b0]\n\t"                       \
            "vmov q4[3], q4[1], %[a1], %[b1]\n\t"                                                             \
            "vmov q5[3], q5[1], %[a2], %[b2]\n\t"                                                             \
            "vmov q6[3], q6[1], %[a3], %[b3]\n\t"                                                             \
            "ldr %[b3], %[rec]\n\t"                                                                           \
            "vldrw.u32 q0, [%[b3]]\n\t" Q4_TM_QUAD_PIXEL("a0", "x", "q3") Q4_TM_QUAD_PIXEL(                   \
                "a1", "n",                                                                                    \
                "q5") "vmov q1[2], q1[0], %[x], %[n]\n\t" Q4_TM_QUAD_PIXEL("a0", "x", "q4")                   \
                Q4_TM_QUAD_PIXEL("a1", "n", "q6") "vmov q1[3], q1[1], %[x], %[n]\n\t"                         \
                                                  "ldrd %[a2], %[a3], [%[b3], #24]\n\t"                       \
                                                  "vshl.s32 q1, %[a2]\n\t"                                    \
                                                  "vadd.i32 q1, q1, %[a3]\n\t"                                \
                                                  "ldr %[a0], %[end]\n\t"                                     \
                                                  "vldrw.u32 q2, [%[a0]]\n\t"                                 \
                                                  "vldrw.u32 q3, [%[a0], #16]\n\t"                            \
                                                  "vldrw.u32 q4, [%[a0], #32]\n\t"                            \
                                                  "vmax.s32 q1, q1, q2\n\t"                                   \
                                                  "vmin.s32 q1, q1, q3\n\t"                                   \
                                                  "vstrb.32 q1, [%[out], q4]\n\t"                             \
                                                  "adds %[out], %[out], #1\n\t"                               \
                                                  "adds %[b3], %[b3], #32\n\t"                                \
                                                  "str %[b3], %[rec]\n\t"                                     \
                                                  "cmp %[b3], %[a0]\n\t"                                      \
                                                  "bne 0b\n\t"                                                \
            : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "=&r"(x), [n] "=&r"(n), [out] "+r"(out), [rec] "+m"(recs) \
            : [cols0] "m"(cols0), [cols1] "m"(cols1), [end] "m"(recs_end)                                     \
            : "q0", "q1", "q2", "q3", "q4", "q5", "q6", "cc", "memory");                                      \
        (void)n;                                                                                              \
    }

Q4_TM_DEFINE_QUAD_RUN(q4_tm_quad_run1, Q4_TM_QUAD_GEMM_1, "32")
Q4_TM_DEFINE_QUAD_RUN(q4_tm_quad_run2, Q4_TM_QUAD_GEMM_2, "64")

/* The fused path of a layer with one weight tensor and two inputs (T = 2: a residual input,
 * DS-CNN's first layer at W4A4) and K <= 32: the quad loop's layout for a row pair that is two
 * channels a and b (lanes 0 and 1: channel a's terms of inputs 0 and 1, lanes 2 and 3: channel
 * b's), each channel summed by VMLALDAVA with a multiplier vector zero in the other channel's
 * lanes. Per pair a record of Q4_TM_DUO words: the two multiplier vectors, C_a and C_b (low,
 * high word), -(s' - 32) of each, and channel b's byte offset (1, or 0 for an odd last channel,
 * whose zero partner is stored first and then overwritten); after the last record the clamp,
 * the pixels' byte offsets and z_y (4 vectors). */
#define Q4_TM_DUO 15

/* The duo records of the block's n_ch channels; 0 (nothing written) unless every channel takes
 * the vector requantization. They fit the sums area: 16 pairs of 15 words and 16. */
static int32_t q4_tm_duo_records(const q4_terms_records *rec, int32_t n_ch,
                                 const q4_conv_params *params, uint32x4_t offsets, int32_t *dst)
{
    int32_t c, h;
    for (c = 0; c < n_ch; ++c) {
        if (rec->right[c] <= 0) {
            return 0;
        }
    }
    for (c = 0; c < n_ch; c += 2, dst += Q4_TM_DUO) {
        const int32_t lone = c + 1 >= n_ch; /* the partner row (c + 1) is zeros, fold 0 */
        for (h = 0; h < 2; ++h) {
            const int32_t ch = lone ? c : c + h, right = rec->right[ch];
            const int32_t m0 = rec->multiplier[0][ch], m1 = rec->multiplier[1][ch];
            /* as in q4_tm_quad_records: exact in int64 */
            const int64_t sum = ((int64_t)1 << (right + 31)) + (int64_t)rec->fold[0][c + h] * m0 +
                                (int64_t)rec->fold[1][c + h] * m1;
            dst[4 * h] = h == 0 ? m0 : 0; /* lanes 0, 1: channel a; 2, 3: channel b */
            dst[4 * h + 1] = h == 0 ? m1 : 0;
            dst[4 * h + 2] = h == 0 ? 0 : m0;
            dst[4 * h + 3] = h == 0 ? 0 : m1;
            dst[8 + 2 * h] = (int32_t)(uint32_t)(uint64_t)sum;
            dst[9 + 2 * h] = (int32_t)(uint32_t)((uint64_t)sum >> 32);
            dst[12 + h] = -right;
        }
        dst[14] = lone ? 0 : 1;
    }
    vst1q_s32(dst, vdupq_n_s32(params->act_min));
    vst1q_s32(dst + 4, vdupq_n_s32(params->act_max));
    vst1q_u32((uint32_t *)(void *)(dst + 8), offsets);
    vst1q_s32(dst + 12, vdupq_n_s32(params->output_zp));
    return 1;
}

/* One channel's 4 pixels (q3..q6) onto its constant at [rec + coff] with multipliers qm, the
 * high words into vector qr. */
#define Q4_TM_DUO_CHANNEL(qm, coff, qr)         \
    "ldrd %[a0], %[x], [%[b3], #" coff "]\n\t"  \
    "vmlaldava.s32 %[a0], %[x], q3, " qm "\n\t" \
    "ldrd %[a1], %[n], [%[b3], #" coff "]\n\t"  \
    "vmlaldava.s32 %[a1], %[n], q5, " qm "\n\t" \
    "vmov " qr "[2], " qr "[0], %[x], %[n]\n\t" \
    "ldrd %[a0], %[x], [%[b3], #" coff "]\n\t"  \
    "vmlaldava.s32 %[a0], %[x], q4, " qm "\n\t" \
    "ldrd %[a1], %[n], [%[b3], #" coff "]\n\t"  \
    "vmlaldava.s32 %[a1], %[n], q6, " qm "\n\t" \
    "vmov " qr "[3], " qr "[1], %[x], %[n]\n\t"

/* Every channel pair of a fast one-tensor two-input block for one group (as the quad loop). */
#define Q4_TM_DEFINE_DUO_RUN(name, gemm, back)                                                                \
    static inline void name(const int8_t *cols0, const int8_t *cols1, const int32_t *recs,                    \
                            const int32_t *recs_end, const int8_t *w, int8_t *out)                            \
    {                                                                                                         \
        Q4_MVE_ACCUMULATORS;                                                                                  \
        register const int8_t *x __asm__("r1");                                                               \
        register uint32_t n __asm__("r11");                                                                   \
        __asm__ volatile(                                                                                     \
            "0:\n\t"                                                                                          \
            "ldr %[x], %[cols0]\n\t" gemm "vmov q3[2], q3[0], %[a0], %[b0]\n\t"                               \
            "vmov q4[2], q4[0], %[a1], %[b1]\n\t"                                                             \
            "vmov q5[2], q5[0], %[a2], %[b2]\n\t"                                                             \
            "vmov q6[2], q6[0], %[a3], %[b3]\n\t"                                                             \
            "ldr %[x], %[cols1]\n\t"                                                                          \
            "subs %[w], %[w], #" back "\n\t" gemm "vmov q3[3], q3[1], %[a0], %[b0]\n\t"                       \
            "vmov q4[3], q4[1], %[a1], %[b1]\n\t"                                                             \
            "vmov q5[3], q5[1], %[a2], %[b2]\n\t"                                                             \
            "vmov q6[3], q6[1], %[a3], %[b3]\n\t"                                                             \
            "ldr %[b3], %[rec]\n\t"                                                                           \
            "vldrw.u32 q0, [%[b3]]\n\t"                                                                       \
            "vldrw.u32 q1, [%[b3], #16]\n\t" Q4_TM_DUO_CHANNEL("q0", "32", "q2")                              \
                Q4_TM_DUO_CHANNEL("q1", "40",                                                                 \
                                  "q7") "ldrd %[a2], %[a3], [%[b3], #48]\n\t"                                 \
                                        "vshl.s32 q2, %[a2]\n\t"                                              \
                                        "vshl.s32 q7, %[a3]\n\t"                                              \
                                        "ldr %[a1], [%[b3], #56]\n\t"                                         \
                                        "ldr %[a0], %[end]\n\t"                                               \
                                        "vldrw.u32 q3, [%[a0]]\n\t"                                           \
                                        "vldrw.u32 q4, [%[a0], #16]\n\t"                                      \
                                        "vldrw.u32 q5, [%[a0], #32]\n\t"                                      \
                                        "vldrw.u32 q6, [%[a0], #48]\n\t"                                      \
                                        "vadd.i32 q2, q2, q6\n\t"                                             \
                                        "vadd.i32 q7, q7, q6\n\t"                                             \
                                        "vmax.s32 q2, q2, q3\n\t"                                             \
                                        "vmin.s32 q2, q2, q4\n\t"                                             \
                                        "vmax.s32 q7, q7, q3\n\t"                                             \
                                        "vmin.s32 q7, q7, q4\n\t"                                             \
                                        "add %[a1], %[a1], %[out]\n\t"                                        \
                                        "vstrb.32 q7, [%[a1], q5]\n\t" /* channel b first */                  \
                                        "vstrb.32 q2, [%[out], q5]\n\t"                                       \
                                        "adds %[out], %[out], #2\n\t"                                         \
                                        "adds %[b3], %[b3], #60\n\t"                                          \
                                        "str %[b3], %[rec]\n\t"                                               \
                                        "cmp %[b3], %[a0]\n\t"                                                \
                                        "bne 0b\n\t"                                                          \
            : Q4_MVE_ACC_OPERANDS, [w] "+r"(w), [x] "=&r"(x), [n] "=&r"(n), [out] "+r"(out), [rec] "+m"(recs) \
            : [cols0] "m"(cols0), [cols1] "m"(cols1), [end] "m"(recs_end)                                     \
            : "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "cc", "memory");                                \
        (void)n;                                                                                              \
    }

Q4_TM_DEFINE_DUO_RUN(q4_tm_duo_run1, Q4_TM_QUAD_GEMM_1, "32")
Q4_TM_DEFINE_DUO_RUN(q4_tm_duo_run2, Q4_TM_QUAD_GEMM_2, "64")

/* 4 lanes of 64-bit values high * 2^32 + low (low unsigned). */
typedef struct {
    int32x4_t high;
    uint32x4_t low;
} q4_tm_wide;

/* acc * m per lane, exact: VMULH gives floor(acc * m / 2^32), VMUL the low word. */
static inline q4_tm_wide q4_tm_product(int32x4_t acc, int32_t m)
{
    q4_tm_wide p;
    p.high = vmulhq_s32(acc, vdupq_n_s32(m));
    p.low = vreinterpretq_u32_s32(vmulq_n_s32(acc, m));
    return p;
}

/* a + b per lane (no overflow: the sums stay below 2^62): the carry of the low words is bit 31
 * of their halving sum (a.low + b.low) / 2. */
static inline q4_tm_wide q4_tm_add(q4_tm_wide a, q4_tm_wide b)
{
    q4_tm_wide s;
    const uint32x4_t carry = vshrq_n_u32(vhaddq_u32(a.low, b.low), 31);
    s.low = vaddq_u32(a.low, b.low);
    s.high = vaddq_s32(vaddq_s32(a.high, b.high), vreinterpretq_s32_u32(carry));
    return s;
}

#if defined(__GNUC__)
#define Q4_TM_INLINE __attribute__((always_inline)) inline
#else
#define Q4_TM_INLINE inline
#endif

/* Requantizes and stores the group's outputs of the block's n_ch channels from the sums of each
 * input (sums[i * Q4_TM_SUMS + 4 * row + pixel]); out: the group's first pixel, channel oc0;
 * offsets: the pixels' byte offsets; n: the pixels (at most 4) for the exact fallback. Called
 * with constant n_in and n_w, so the term loops unroll. */
static Q4_TM_INLINE void q4_tm_store(const int32_t *sums, const q4_terms_records *rec,
                                     const q4_terms_params *terms, const q4_conv_params *params,
                                     int32_t oc0, int32_t n_ch, int32_t out_c, int32_t n,
                                     uint32x4_t offsets, int8_t *out, const int32_t n_in,
                                     const int32_t n_w)
{
    const int32_t n_terms = n_in * n_w;
    const int32_t zp = params->output_zp;
    const int32x4_t lo = vdupq_n_s32(params->act_min), hi = vdupq_n_s32(params->act_max);
    int32_t c, t;
    for (c = 0; c < n_ch; ++c, sums += n_w * Q4_MVE_PIXELS) {
        const int32_t right = rec->right[c], r = c * n_w;
        /* term k = i * n_w + j: input i, weight tensor j (row r + j) */
        int32x4_t acc[Q4_TERMS_TERMS];
        acc[0] = vaddq_n_s32(vld1q_s32(sums), rec->fold[0][r]);
        if (n_w == 2) {
            acc[1] = vaddq_n_s32(vld1q_s32(sums + Q4_MVE_PIXELS), rec->fold[0][r + 1]);
        }
        if (n_in == 2) {
            acc[n_w] = vaddq_n_s32(vld1q_s32(sums + Q4_TM_SUMS), rec->fold[1][r]);
            if (n_w == 2) {
                acc[3] = vaddq_n_s32(vld1q_s32(sums + Q4_TM_SUMS + Q4_MVE_PIXELS),
                                     rec->fold[1][r + 1]);
            }
        }
        if (right > 0) {
            q4_tm_wide acc_sum = q4_tm_product(acc[0], rec->multiplier[0][c]);
            int32x4_t y;
            if (n_terms >= 2) {
                acc_sum = q4_tm_add(acc_sum, q4_tm_product(acc[1], rec->multiplier[1][c]));
            }
            if (n_terms == 4) {
                acc_sum = q4_tm_add(acc_sum,
                                    q4_tm_add(q4_tm_product(acc[2], rec->multiplier[2][c]),
                                              q4_tm_product(acc[3], rec->multiplier[3][c])));
            }
            y = vaddq_n_s32(vrshlq_n_s32(acc_sum.high, -right), zp);
            y = vminq_s32(vmaxq_s32(y, lo), hi);
            vstrbq_scatter_offset_s32(out + c, offsets, y);
        } else {
            int32_t exact[Q4_TERMS_TERMS][Q4_MVE_PIXELS];
            const int32_t *ptr[Q4_TERMS_TERMS];
            for (t = 0; t < n_terms; ++t) {
                vst1q_s32(exact[t], acc[t]);
                ptr[t] = exact[t];
            }
            q4_terms_store_channel(ptr, n_terms, n, rec, c, oc0 + c, terms, params, out + c,
                                   out_c);
        }
    }
}

void q4_conv2d_s4_terms_mve(const q4_conv_params *params, const q4_terms_params *terms,
                            const q4_dims *input_dims, const int8_t *const *inputs,
                            const q4_dims *filter_dims, const uint8_t *const *filters,
                            const int32_t *bias, const q4_dims *output_dims, int8_t *output,
                            int32_t *scratch)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int32_t k16 = q4_round_up16(k), steps = k16 / Q4_MVE_LANES;
    const int32_t out_c = output_dims->c, pixels = output_dims->h * output_dims->w;
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights;
    const int32_t block_channels = Q4_TERMS_ROWS / n_w;
    /* scratch: records, sums, the unpacked rows of a block, the 4 columns of each input,
     * staging column (or patch, 2 * k16 + 16 bytes with the offsets), gather offsets */
    q4_terms_records *rec = (q4_terms_records *)(void *)scratch;
    int32_t *sums = (int32_t *)(rec + 1);
    int8_t *weights = (int8_t *)(sums + Q4_TERMS_INPUTS * Q4_TM_SUMS);
    int8_t *cols = weights + Q4_TERMS_ROWS * k16;
    int8_t *staging = cols + Q4_TERMS_INPUTS * Q4_MVE_PIXELS * k16;
    uint8_t *offset_table = (uint8_t *)(staging + k16 + Q4_MVE_LANES);
    /* the pixels' output offsets; fewer than 4 pixels repeat the last one */
    const uint32x4_t offsets = vmulq_n_u32(
        vminq_u32(vidupq_n_u32(0, 1), vdupq_n_u32((uint32_t)(pixels - 1))), (uint32_t)out_c);
    const int32_t n = pixels < Q4_MVE_PIXELS ? pixels : Q4_MVE_PIXELS;
    const uint8_t *gather;
    int8x16_t zp_second;
    q4_mve_geometry g, g_pair;
    int8_t *out;
    int32_t oc0, p0, i;

    g.input = inputs[0];
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
    g.zp = vdupq_n_s8((int8_t)terms->input_zp[0]);
    gather = g.in_c % Q4_MVE_LANES ? q4_mve_gather_offsets(&g, offset_table) : NULL;
    /* input 0's geometry for q4_mve_gather_pair (a copy: g's address stays private) */
    g_pair = g;
    zp_second = vdupq_n_s8((int8_t)terms->input_zp[n_in - 1]);
    q4_mve_fill_spill(staging, k16, vdupq_n_s8(0)); /* the bytes past K stay defined */
    for (oc0 = 0; oc0 < out_c; oc0 += block_channels) {
        const int32_t n_ch = out_c - oc0 < block_channels ? out_c - oc0 : block_channels;
        const int32_t n_rows = n_ch * n_w, n_pairs = (n_rows + 1) / 2;
        /* fused (dual weights, every channel fast): the records after rec, in the sums; the
         * wide sums of input 0 (T = 4) over rec, which is no longer read */
        int32_t *const fused = sums, *const wide = (int32_t *)(void *)rec;
        int32_t fast, duo;
        q4_tm_unpack_rows(terms, filters, bias, oc0, n_rows, k, weights, rec);
        q4_terms_channel_records(terms, bias, oc0, n_ch, out_c, k, rec);
        fast = n_w == 2 && q4_tm_fused_records(rec, n_ch, 0, fused);
        /* one weight tensor, two inputs, K <= 32: the duo loop */
        duo = n_w == 1 && n_in == 2 && steps <= 2 &&
              q4_tm_duo_records(rec, n_ch, params, offsets, fused);
        if (fast && n_in == 2) {
            if (steps <= 2) { /* one loop for both inputs */
                q4_tm_quad_records(rec, n_ch, params, offsets, fused);
            } else {
                q4_tm_fused_records(rec, n_ch, 1, fused + Q4_TM_FUSED * n_ch);
            }
        }
        for (p0 = 0; p0 < pixels; p0 += Q4_MVE_PIXELS) {
            /* the last group overlaps the one before: every group is whole */
            const int32_t first = p0 + Q4_MVE_PIXELS <= pixels || pixels < Q4_MVE_PIXELS
                                      ? p0
                                      : pixels - Q4_MVE_PIXELS;
            out = output + first * out_c + oc0;
            if (n_in == 2 && gather != NULL &&
                q4_mve_gather_pair(&g_pair, inputs[1], &zp_second, first, pixels, gather, cols,
                                   cols + Q4_MVE_PIXELS * k16)) {
                /* both inputs' columns at once */
            } else {
                for (i = 0; i < n_in; ++i) { /* the im2col of each input */
                    g.input = inputs[i];
                    g.zp = vdupq_n_s8((int8_t)terms->input_zp[i]);
                    q4_mve_im2col(&g, first, pixels, gather, staging,
                                  cols + i * Q4_MVE_PIXELS * k16);
                }
            }
            if (duo) {
                const int32_t *const duo_end = fused + Q4_TM_DUO * n_pairs;
                if (steps == 2) {
                    q4_tm_duo_run2(cols, cols + Q4_MVE_PIXELS * k16, fused, duo_end, weights,
                                   out);
                } else {
                    q4_tm_duo_run1(cols, cols + Q4_MVE_PIXELS * k16, fused, duo_end, weights,
                                   out);
                }
                continue;
            }
            if (fast) {
                /* here, not for the whole call: live across the other paths, they slowed them */
                const int32x4_t lo = vdupq_n_s32(params->act_min);
                const int32x4_t hi = vdupq_n_s32(params->act_max);
                const int32x4_t zp_y = vdupq_n_s32(params->output_zp);
                const int32_t *const end0 = fused + Q4_TM_FUSED * n_ch;
                if (n_in == 1) { /* T = 2; 1 or 2 steps without the step-count logic */
                    if (steps > 2) {
                        q4_tm_fused_run(cols, (uint32_t)steps, fused, end0, weights, out, lo,
                                        hi, zp_y, offsets);
                    } else if (steps == 2) {
                        q4_tm_fused_run2(cols, 2, fused, end0, weights, out, lo, hi, zp_y,
                                         offsets);
                    } else {
                        q4_tm_fused_run1(cols, 1, fused, end0, weights, out, lo, hi, zp_y,
                                         offsets);
                    }
                } else { /* T = 4: input 0's wide sums, then input 1 adds its own */
                    int8_t *const col1 = cols + Q4_MVE_PIXELS * k16;
                    const int32_t *const end1 = end0 + Q4_TM_FUSED * n_ch;
                    const int32_t *const quad_end = fused + Q4_TM_QUAD * n_ch;
                    if (steps == 2) {
                        q4_tm_quad_run2(cols, col1, fused, quad_end, weights, out);
                    } else if (steps == 1) {
                        q4_tm_quad_run1(cols, col1, fused, quad_end, weights, out);
                    } else {
                        q4_tm_fused_wide(cols, (uint32_t)steps, fused, end0, weights, wide);
                        q4_tm_fused_run_wide(col1, (uint32_t)steps, end0, end1, weights, wide,
                                             out, lo, hi, zp_y, offsets);
                    }
                }
                continue;
            }
            for (i = 0; i < n_in; ++i) {
                int32_t *s = sums + i * Q4_TM_SUMS;
                q4_tm_gemm_pairs(cols + i * Q4_MVE_PIXELS * k16, (uint32_t)steps, weights, s,
                                 s + 2 * Q4_MVE_PIXELS * n_pairs);
            }
            if (n_w == 2 && n_in == 1) {
                q4_tm_store(sums, rec, terms, params, oc0, n_ch, out_c, n, offsets, out, 1, 2);
            } else if (n_w == 2) {
                q4_tm_store(sums, rec, terms, params, oc0, n_ch, out_c, n, offsets, out, 2, 2);
            } else if (n_in == 2) {
                q4_tm_store(sums, rec, terms, params, oc0, n_ch, out_c, n, offsets, out, 2, 1);
            } else {
                q4_tm_store(sums, rec, terms, params, oc0, n_ch, out_c, n, offsets, out, 1, 1);
            }
        }
    }
}

#else /* no MVE: the portable kernel (scratch unused) */

int32_t q4_conv2d_s4_terms_mve_get_buffer_size(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

void q4_conv2d_s4_terms_mve(const q4_conv_params *params, const q4_terms_params *terms,
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
