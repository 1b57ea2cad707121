/*
 * q4_global_avgpool_s8_dsp.c - global average pooling (H, W, C) -> (1, 1, C), int8-stored
 * activations, for cores with the Arm DSP extension (Cortex-M4/M7/M33/M55). Bit-exact with
 * q4_global_avgpool_s8.
 *
 * Scheme (docs/kernels.md, "Fully connected, add and pooling, round 3"): per block of 8 channels
 * (then 4), per pixel one word of 4 channels and two SXTAB16 (the second with ROR #8) add the
 * sign-extended bytes into two int16 pair accumulators; the sum of at most 256 int8 values lies
 * in [-32768, 32512], so a lane never wraps within a chunk of 256 pixels, after which the lanes
 * are added into int32 sums. acc = sum(x) - pixels * z_x equals the spec's sum(x - z_x); the
 * last C % 4 channels and the requantization are the portable ones. Scratch: none.
 */
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "q4_dsp.h"

#define Q4_GAP_CHUNK 256 /* pixels per int16 lane sum: 256 * 128 = 32768 */

/* acc + the bytes 1 and 3 of x sign-extended, per halfword (SXTAB16 with ROR #8; GCC does not
 * fold the rotation from C). */
static inline uint32_t q4_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    uint32_t result;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(result) : "r"(acc), "r"(x));
    return result;
}

/* The low and the high int16 lane of the pair p. */
static inline int32_t q4_lo16(uint32_t p)
{
    return (int32_t)(int16_t)(p & 0xFFFFu);
}

static inline int32_t q4_hi16(uint32_t p)
{
    return (int32_t)(int16_t)(p >> 16);
}

/* sum[0..4 * words) += the sums over pixels [0, pixels) of channels c .. c + 4 * words - 1
 * (words = 1 or 2, a constant at each call). */
static inline void q4_gap_sums(const int8_t *input, int32_t pixels, int32_t ch, int32_t c,
                               int32_t words, int32_t *sum)
{
    int32_t p0, p;
    for (p0 = 0; p0 < pixels; p0 += Q4_GAP_CHUNK) {
        const int32_t n = pixels - p0 < Q4_GAP_CHUNK ? pixels - p0 : Q4_GAP_CHUNK;
        const int8_t *x = input + p0 * ch + c;
        uint32_t a02 = 0, a13 = 0, b02 = 0, b13 = 0;
        for (p = 0; p < n; ++p, x += ch) {
            const uint32_t v = q4_load_u32(x);
            a02 = (uint32_t)__sxtab16((int32_t)a02, (int32_t)v);
            a13 = q4_sxtab16_ror8(a13, v);
            if (words == 2) {
                const uint32_t u = q4_load_u32(x + 4);
                b02 = (uint32_t)__sxtab16((int32_t)b02, (int32_t)u);
                b13 = q4_sxtab16_ror8(b13, u);
            }
        }
        sum[0] += q4_lo16(a02);
        sum[1] += q4_lo16(a13);
        sum[2] += q4_hi16(a02);
        sum[3] += q4_hi16(a13);
        if (words == 2) {
            sum[4] += q4_lo16(b02);
            sum[5] += q4_lo16(b13);
            sum[6] += q4_hi16(b02);
            sum[7] += q4_hi16(b13);
        }
    }
}

void q4_global_avgpool_s8_dsp(const q4_pool_params *params, const q4_dims *input_dims,
                              const int8_t *input, int8_t *output)
{
    const int32_t pixels = input_dims->h * input_dims->w, ch = input_dims->c;
    /* locals: the int8 stores below could otherwise alias *params */
    const int32_t zp_total = pixels * params->input_zp;
    const int32_t multiplier = params->multiplier, shift = params->shift;
    const int32_t out_zp = params->output_zp;
    const int32_t act_min = params->act_min, act_max = params->act_max;
    int32_t c = 0, k;

    while (c + 4 <= ch) {
        const int32_t words = c + 8 <= ch ? 2 : 1;
        int32_t sum[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (words == 2) {
            q4_gap_sums(input, pixels, ch, c, 2, sum);
        } else {
            q4_gap_sums(input, pixels, ch, c, 1, sum);
        }
        for (k = 0; k < 4 * words; ++k) {
            output[c + k] = q4_requantize_clamp(sum[k] - zp_total, multiplier, shift, out_zp,
                                                act_min, act_max);
        }
        c += 4 * words;
    }
    for (; c < ch; ++c) { /* the last C % 4 channels */
        int32_t acc = 0, p;
        for (p = 0; p < pixels; ++p) {
            acc += input[p * ch + c];
        }
        output[c] = q4_requantize_clamp(acc - zp_total, multiplier, shift, out_zp, act_min,
                                        act_max);
    }
}

#else /* no DSP extension: the portable kernel */

void q4_global_avgpool_s8_dsp(const q4_pool_params *params, const q4_dims *input_dims,
                              const int8_t *input, int8_t *output)
{
    q4_global_avgpool_s8(params, input_dims, input, output);
}

#endif
