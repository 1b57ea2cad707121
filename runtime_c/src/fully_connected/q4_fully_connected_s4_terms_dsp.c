/*
 * q4_fully_connected_s4_terms_dsp.c - multi-term fully connected layer (dual INT4 weights and/or
 * a residual-quantized input), int8-stored activations (4 or 8 bits), for cores with the Arm DSP
 * extension (Cortex-M4/M7/M33/M55). Bit-exact with q4_fully_connected_s4_terms.
 *
 * Scheme (docs/kernels.md, "Fully connected, add and pooling, round 3"):
 *  - Each input is widened once into the scratch as int16 pairs of x_i - z_i (q4_fc_widen, as in
 *    q4_fully_connected_s4_dsp), so no sum of the weights is needed.
 *  - 8 output rows per step: each term (input i, weight tensor j) is a single-term dot product,
 *    computed by the 4-row passes of q4_fully_connected_s4_dsp (q4_fc_rows4: one LDM of 4 pairs
 *    per 8 inputs, per row one LDR, 4 AND-with-shift and 4 SMLAD).
 *  - The last output_size % 8 rows, per row and packed word of each weight tensor: four
 *    AND-with-shift give the (4096 w_k, 4096 w_(k+4)) halfword pairs (q4_fc_dot8); one word of
 *    weights serves every input and one block of pairs every weight tensor.
 *  - The accumulators hold 4096 times the partial sums and are drained (divided by 4096, exact)
 *    every 32 words; acc_k = [bias] + sum((x_i - z_i) w_j) (term k = i * n_w + j, the bias in
 *    term 0), then the exact q4_requantize_terms_clamp.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"
#include "q4_fc_dsp.h"

int32_t q4_fully_connected_s4_terms_dsp_get_buffer_size(int32_t input_size)
{
    return 4 * q4_round_up8(input_size);
}

/* The 4096-scaled dot products of words [from, to) of the rows w0 (tensor 0) and w1 (tensor
 * n_w - 1) with the pairs x0 (input 0) and x1 (input n_in - 1), added to d[0..3] = (x0 w0,
 * x0 w1, x1 w0, x1 w1). n_in and n_w are constants at each call: the loop is specialised. */
static inline void q4_fct_dot_words(int32_t n_in, int32_t n_w, const uint8_t *w0,
                                    const uint8_t *w1, const uint32_t *x0, const uint32_t *x1,
                                    int32_t from, int32_t to, int32_t *d)
{
    const uint32_t top = 0xF000F000u;
    int32_t d00 = 0, d01 = 0, d10 = 0, d11 = 0, b;
    for (b = from; b < to; ++b) {
        const uint32_t wa = q4_load_u32(w0 + 4 * b);
        const uint32_t *const xa = x0 + 4 * b;
        uint32_t a0, a1, a2, a3;
        Q4_AND_LSL(top, wa, 12, a0);
        Q4_AND_LSL(top, wa, 8, a1);
        Q4_AND_LSL(top, wa, 4, a2);
        a3 = wa & top;
        d00 = q4_smlad(a3, xa[3],
                       q4_smlad(a2, xa[2], q4_smlad(a1, xa[1], q4_smlad(a0, xa[0], d00))));
        if (n_in == 2) {
            const uint32_t *const xb = x1 + 4 * b;
            d10 = q4_smlad(a3, xb[3],
                           q4_smlad(a2, xb[2], q4_smlad(a1, xb[1], q4_smlad(a0, xb[0], d10))));
            if (n_w == 2) {
                const uint32_t wb = q4_load_u32(w1 + 4 * b);
                d01 = q4_fc_dot8(wb, xa[0], xa[1], xa[2], xa[3], d01);
                d11 = q4_fc_dot8(wb, xb[0], xb[1], xb[2], xb[3], d11);
            }
        } else {
            d01 = q4_fc_dot8(q4_load_u32(w1 + 4 * b), xa[0], xa[1], xa[2], xa[3], d01);
        }
    }
    /* the partial sums are multiples of 4096: exact division */
    d[0] += q4_floor_shift32(d00, 12);
    d[1] += q4_floor_shift32(d01, 12);
    d[2] += q4_floor_shift32(d10, 12);
    d[3] += q4_floor_shift32(d11, 12);
}

void q4_fully_connected_s4_terms_dsp(const q4_fc_params *params, const q4_terms_params *terms,
                                     int32_t input_size, const int8_t *const *inputs,
                                     const uint8_t *const *filters, const int32_t *bias,
                                     int32_t output_size, int8_t *output, int32_t *scratch)
{
    const int32_t row_bytes = (input_size + 1) / 2;
    const int32_t padded = q4_round_up8(input_size);
    const int32_t whole = row_bytes / 4; /* words of a row that can be loaded whole */
    const int32_t n_in = terms->n_inputs, n_w = terms->n_weights, n_terms = n_in * n_w;
    /* locals: the int8 stores below could otherwise alias *params and *terms */
    const int32_t out_zp = params->output_zp, act_min = params->act_min;
    const int32_t act_max = params->act_max;
    uint32_t *const pairs = (uint32_t *)scratch; /* input i at pairs + i * padded / 2 */
    const uint32_t *const x0 = pairs, *const x1 = pairs + (n_in - 1) * (padded / 2);
    int32_t i, o = 0;

    for (i = 0; i < n_in; ++i) {
        q4_fc_widen(inputs[i], input_size, terms->input_zp[i], pairs + i * (padded / 2));
    }
    if (whole > 0) {
        /* 8 rows per step as in q4_fully_connected_s4_dsp: per term two 4-row passes, rows
         * {1, 2, 4, 0} from row 0 and {6, 5, 3, 7} from row 7 */
        static const int8_t rows[8] = {1, 2, 4, 0, 6, 5, 3, 7};
        for (; o + 8 <= output_size; o += 8) {
            int32_t d8[4][8], t, r;
            for (t = 0; t < n_terms; ++t) {
                const uint32_t *const x = pairs + (t / n_w) * (padded / 2);
                const uint8_t *const row0 = filters[t % n_w] + o * row_bytes;
                q4_fc_pass pass[2] = {
                    {x, row0, row_bytes, x + 4 * whole, {0, 0, 0, 0}},
                    {x, row0 + 7 * row_bytes, -row_bytes, x + 4 * whole, {0, 0, 0, 0}}};
                q4_fc_rows4(&pass[0]);
                q4_fc_rows4(&pass[1]);
                for (r = 0; r < 8; ++r) {
                    const uint32_t *const xl = x + 4 * whole;
                    d8[t][r] = pass[r / 4].sum[r % 4];
                    if (whole * 8 < padded) { /* the row's last, partial word */
                        const uint32_t wl = q4_fc_word(
                            filters[t % n_w] + (o + rows[r]) * row_bytes, row_bytes, whole);
                        d8[t][r] += q4_floor_shift32(
                            q4_fc_dot8(wl, xl[0], xl[1], xl[2], xl[3], 0), 12);
                    }
                }
            }
            for (r = 0; r < 8; ++r) {
                const int32_t row = o + rows[r];
                int32_t acc[4];
                for (t = 0; t < n_terms; ++t) {
                    acc[t] = d8[t][r];
                }
                /* modulo 2^32: each acc_k fits int32 (docs/integer-spec.md) */
                acc[0] = (int32_t)((uint32_t)bias[row] + (uint32_t)acc[0]);
                output[row] = q4_requantize_terms_clamp(acc, n_terms, terms->multiplier + row,
                                                        output_size, terms->shift[row], out_zp,
                                                        act_min, act_max);
            }
        }
    }
    for (; o < output_size; ++o) { /* the last output_size % 8 rows */
        const uint8_t *const w0 = filters[0] + o * row_bytes;
        const uint8_t *const w1 = filters[n_w - 1] + o * row_bytes;
        int32_t d[4] = {0, 0, 0, 0}, acc[4];
        int32_t b0;
        for (b0 = 0; b0 < whole; b0 += Q4_FC_DRAIN_WORDS) {
            const int32_t b_end = whole - b0 < Q4_FC_DRAIN_WORDS ? whole : b0 + Q4_FC_DRAIN_WORDS;
            if (n_in == 2 && n_w == 2) {
                q4_fct_dot_words(2, 2, w0, w1, x0, x1, b0, b_end, d);
            } else if (n_in == 2) {
                q4_fct_dot_words(2, 1, w0, w1, x0, x1, b0, b_end, d);
            } else {
                q4_fct_dot_words(1, 2, w0, w1, x0, x1, b0, b_end, d);
            }
        }
        if (whole * 8 < padded) { /* the row's last, partial word, read byte by byte */
            const uint32_t wa = q4_fc_word(w0, row_bytes, whole);
            const uint32_t wb = q4_fc_word(w1, row_bytes, whole);
            const uint32_t *const xa = x0 + 4 * whole, *const xb = x1 + 4 * whole;
            d[0] += q4_floor_shift32(q4_fc_dot8(wa, xa[0], xa[1], xa[2], xa[3], 0), 12);
            d[1] += q4_floor_shift32(q4_fc_dot8(wb, xa[0], xa[1], xa[2], xa[3], 0), 12);
            d[2] += q4_floor_shift32(q4_fc_dot8(wa, xb[0], xb[1], xb[2], xb[3], 0), 12);
            d[3] += q4_floor_shift32(q4_fc_dot8(wb, xb[0], xb[1], xb[2], xb[3], 0), 12);
        }
        /* modulo 2^32: each acc_k fits int32 (docs/integer-spec.md) */
        acc[0] = (int32_t)((uint32_t)bias[o] + (uint32_t)d[0]);
        if (n_in == 2 && n_w == 2) {
            acc[1] = d[1];
            acc[2] = d[2];
            acc[3] = d[3];
        } else {
            acc[1] = n_in == 2 ? d[2] : d[1];
        }
        output[o] = q4_requantize_terms_clamp(acc, n_terms, terms->multiplier + o, output_size,
                                              terms->shift[o], out_zp, act_min, act_max);
    }
}

#else /* no DSP extension: the portable kernel (scratch unused) */

int32_t q4_fully_connected_s4_terms_dsp_get_buffer_size(int32_t input_size)
{
    (void)input_size;
    return 0;
}

void q4_fully_connected_s4_terms_dsp(const q4_fc_params *params, const q4_terms_params *terms,
                                     int32_t input_size, const int8_t *const *inputs,
                                     const uint8_t *const *filters, const int32_t *bias,
                                     int32_t output_size, int8_t *output, int32_t *scratch)
{
    (void)scratch;
    q4_fully_connected_s4_terms(params, terms, input_size, inputs, filters, bias, output_size,
                                output);
}

#endif
