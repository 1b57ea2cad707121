/*
 * elem_harness.c - runs every case of the generated "elem_cases.h" (maxpool, avgpool, lut, mul,
 * concat) through
 * each variant of its kind built for this core (the portable kernel, _dsp, _a4_dsp, _mve), checks
 * the output against the oracle's expected bytes, that nothing is written past the output or past
 * the scratch a variant asked for, and times the call.
 *
 * One record per case and variant:
 *     @q4 <case>.<variant> <mismatches> <ticks> <first_bad> <guard> <scratch_bytes>
 */
#include "q4_board.h"
#include "q4_kernels.h"
#include "q4_lut.h"
#include "q4_elementwise.h"
#include "q4_kernels_opt.h"
#include "elem_cases.h"

#define GUARD_BYTE 0x5A
#define GUARD_BYTES 64
#define SCRATCH_WORDS 256 /* 1024 bytes: every variant here asks for at most 512 */

typedef void (*maxpool_fn)(const q4_pool_params *params, const q4_dims *input_dims,
                           const int8_t *input, const q4_dims *output_dims, int8_t *output);
typedef void (*lut_fn)(const int8_t *table, int32_t input_min, int32_t size,
                       const int8_t *input, int8_t *output);
typedef void (*mul_fn)(const q4_mul_params *params, int32_t rows, int32_t channels,
                       int32_t b_row_step, const int8_t *input_a, const int8_t *input_b,
                       int8_t *output);

typedef void (*concat_fn)(const q4_concat_params *params, int32_t rows,
                          const int8_t *const *inputs, int8_t *output);

static int8_t output[Q4_OUTPUT_BYTES + GUARD_BYTES];
static int32_t scratch[SCRATCH_WORDS];

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* q4_lut_s8_a4_dsp with the harness's scratch (its size is checked separately) */
static void lut_a4_dsp(const int8_t *table, int32_t input_min, int32_t size,
                       const int8_t *input, int8_t *out)
{
    q4_lut_s8_a4_dsp(table, input_min, size, input, out, scratch);
}
#endif

static const struct {
    const char *name;
    maxpool_fn run;
} maxpool_variants[] = {
    {"portable", q4_maxpool_s8},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_maxpool_s8_dsp},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", q4_maxpool_s8_mve},
#endif
};

static const struct {
    const char *name;
    maxpool_fn run;
} avgpool_variants[] = {
    {"portable", q4_avgpool_s8},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_avgpool_s8_dsp},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", q4_avgpool_s8_mve},
#endif
};

static const struct {
    const char *name;
    lut_fn run;
    int32_t scratch_bytes;
} lut_variants[] = {
    {"portable", q4_lut_s8, 0},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_lut_s8_dsp, 0},
    {"a4_dsp", lut_a4_dsp, 1},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", q4_lut_s8_mve, 0},
#endif
};

static const struct {
    const char *name;
    mul_fn run;
} mul_variants[] = {
    {"portable", q4_mul_s8},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_mul_s8_dsp},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", q4_mul_s8_mve},
#endif
};

static const struct {
    const char *name;
    concat_fn run;
} concat_variants[] = {
    {"portable", q4_concat_s8},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_concat_s8_dsp},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", q4_concat_s8_mve},
#endif
};

#define COUNT(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

static void fill_guards(int32_t n)
{
    int32_t k;
    for (k = 0; k < n + GUARD_BYTES; ++k) {
        output[k] = (int8_t)GUARD_BYTE;
    }
    for (k = 0; k < SCRATCH_WORDS; ++k) {
        scratch[k] = 0x5A5A5A5A;
    }
}

/* Checks the output and the guards, prints the record. */
static void report(const q4_elem_case *c, const char *variant, uint32_t ticks,
                   int32_t scratch_bytes)
{
    int32_t k, mismatches = 0, first_bad = -1, guard = 1;
    for (k = 0; k < c->size; ++k) {
        if (output[k] != c->expected[k]) {
            mismatches += 1;
            first_bad = first_bad < 0 ? k : first_bad;
        }
    }
    for (k = c->size; k < c->size + GUARD_BYTES; ++k) {
        guard &= output[k] == (int8_t)GUARD_BYTE;
    }
    for (k = (scratch_bytes + 3) / 4; k < SCRATCH_WORDS; ++k) {
        guard &= scratch[k] == 0x5A5A5A5A;
    }
    board_puts("@q4 ");
    board_puts(c->name);
    board_putc('.');
    board_puts(variant);
    board_putc(' ');
    board_put_i32(mismatches);
    board_putc(' ');
    board_put_u32(ticks);
    board_putc(' ');
    board_put_i32(first_bad);
    board_putc(' ');
    board_put_i32(guard);
    board_putc(' ');
    board_put_i32(scratch_bytes);
    board_putc('\n');
}

int main(void)
{
    uint32_t i, v, ticks;
    board_init();
    for (i = 0; i < COUNT(q4_elem_cases); ++i) {
        const q4_elem_case *c = &q4_elem_cases[i];
        if (c->kind == Q4_CASE_MAXPOOL) {
            for (v = 0; v < COUNT(maxpool_variants); ++v) {
                fill_guards(c->size);
                board_timer_start();
                Q4_TIMING_BARRIER();
                maxpool_variants[v].run(&c->pool, &c->input_dims, c->a, &c->output_dims, output);
                Q4_TIMING_BARRIER();
                ticks = board_timer_read();
                report(c, maxpool_variants[v].name, ticks, 0);
            }
        } else if (c->kind == Q4_CASE_AVGPOOL) {
            for (v = 0; v < COUNT(avgpool_variants); ++v) {
                fill_guards(c->size);
                board_timer_start();
                Q4_TIMING_BARRIER();
                avgpool_variants[v].run(&c->pool, &c->input_dims, c->a, &c->output_dims, output);
                Q4_TIMING_BARRIER();
                ticks = board_timer_read();
                report(c, avgpool_variants[v].name, ticks, 0);
            }
        } else if (c->kind == Q4_CASE_LUT) {
            for (v = 0; v < COUNT(lut_variants); ++v) {
                int32_t scratch_bytes = 0;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
                if (lut_variants[v].scratch_bytes) {
                    scratch_bytes = q4_lut_s8_a4_dsp_get_buffer_size();
                }
#endif
                fill_guards(c->size);
                board_timer_start();
                Q4_TIMING_BARRIER();
                lut_variants[v].run(c->table, c->input_min, c->size, c->a, output);
                Q4_TIMING_BARRIER();
                ticks = board_timer_read();
                report(c, lut_variants[v].name, ticks, scratch_bytes);
            }
        } else if (c->kind == Q4_CASE_CONCAT) {
            for (v = 0; v < COUNT(concat_variants); ++v) {
                fill_guards(c->size);
                board_timer_start();
                Q4_TIMING_BARRIER();
                concat_variants[v].run(&c->concat, c->rows, c->inputs, output);
                Q4_TIMING_BARRIER();
                ticks = board_timer_read();
                report(c, concat_variants[v].name, ticks, 0);
            }
        } else {
            for (v = 0; v < COUNT(mul_variants); ++v) {
                fill_guards(c->size);
                board_timer_start();
                Q4_TIMING_BARRIER();
                mul_variants[v].run(&c->mul, c->rows, c->channels, c->b_row_step, c->a, c->b,
                                    output);
                Q4_TIMING_BARRIER();
                ticks = board_timer_read();
                report(c, mul_variants[v].name, ticks, 0);
            }
        }
    }
    return 0;
}
