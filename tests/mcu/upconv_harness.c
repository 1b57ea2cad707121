/*
 * upconv_harness.c - runs every conv_transpose case of the generated "upconv_cases.h" through
 * each variant built for this core (portable q4_conv_transpose_s4, _dsp, _mve) and every resize
 * case through q4_resize_s8 and _dsp, checks the output against the oracle's expected bytes and
 * that nothing is written past the output or the scratch, and times it.
 *
 * One record per case and variant:
 *     @q4 <case>.<variant> <mismatches> <ticks> <first_bad> <guard> <scratch_bytes>
 * first_bad is the first differing output index (-1 if none); guard is 1 when the bytes past the
 * output and the scratch are untouched; scratch_bytes is what *_get_buffer_size returned.
 */
#include "q4_board.h"
#include "q4_conv_transpose.h"
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "q4_resize.h"
#include "upconv_cases.h"

#define GUARD_BYTE 0x5A
#define GUARD_WORDS 16
#define GUARD_WORD 0x5A5A5A5A

typedef int32_t (*buffer_size_fn)(const q4_dims *filter_dims);
typedef void (*upconv_fn)(const q4_upconv_case *c, int8_t *out, int32_t *scratch);

static int8_t output[Q4_OUTPUT_BYTES + GUARD_WORDS * 4];
static int32_t scratch[Q4_SCRATCH_WORDS + GUARD_WORDS];

static int32_t no_scratch(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

static void run_portable(const q4_upconv_case *c, int8_t *out, int32_t *scr)
{
    (void)scr;
    q4_conv_transpose_s4(&c->params, &c->quant, &c->input_dims, c->input, &c->filter_dims,
                         c->filter, c->bias, &c->output_dims, out);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static void run_dsp(const q4_upconv_case *c, int8_t *out, int32_t *scr)
{
    q4_conv_transpose_s4_dsp(&c->params, &c->quant, &c->input_dims, c->input, &c->filter_dims,
                             c->filter, c->bias, &c->output_dims, out, scr);
}
#endif

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
static void run_mve(const q4_upconv_case *c, int8_t *out, int32_t *scr)
{
    q4_conv_transpose_s4_mve(&c->params, &c->quant, &c->input_dims, c->input, &c->filter_dims,
                             c->filter, c->bias, &c->output_dims, out, scr);
}
#endif

static const struct {
    const char *name;
    buffer_size_fn size;
    upconv_fn run;
} variants[] = {
    {"portable", no_scratch, run_portable},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_conv_transpose_s4_dsp_get_buffer_size, run_dsp},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", q4_conv_transpose_s4_mve_get_buffer_size, run_mve},
#endif
};

/* Fills the output (and the scratch words) with guard values before a run. */
static void fill_guards(int32_t n, int32_t words)
{
    int32_t k;
    for (k = 0; k < n + GUARD_WORDS * 4; ++k) {
        output[k] = (int8_t)GUARD_BYTE;
    }
    for (k = 0; k < words + GUARD_WORDS; ++k) {
        scratch[k] = GUARD_WORD;
    }
}

/* Checks the n output bytes and the guards after a run and prints its record. */
static void report(const char *case_name, const char *variant, const int8_t *expected,
                   int32_t n, int32_t words, uint32_t ticks, int32_t bytes)
{
    int32_t k, mismatches = 0, first_bad = -1, guard = 1;
    for (k = 0; k < n; ++k) {
        if (output[k] != expected[k]) {
            mismatches += 1;
            first_bad = first_bad < 0 ? k : first_bad;
        }
    }
    for (k = n; k < n + GUARD_WORDS * 4; ++k) {
        guard &= output[k] == (int8_t)GUARD_BYTE;
    }
    for (k = words; k < words + GUARD_WORDS; ++k) {
        guard &= scratch[k] == GUARD_WORD;
    }
    board_puts("@q4 ");
    board_puts(case_name);
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
    board_put_i32(bytes);
    board_putc('\n');
}

typedef void (*resize_fn)(const q4_resize_params *params, const q4_dims *input_dims,
                          const int8_t *input, const q4_dims *output_dims, int8_t *output);

static const struct {
    const char *name;
    resize_fn run;
} resize_variants[] = {
    {"portable", q4_resize_s8},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_resize_s8_dsp},
#endif
};

int main(void)
{
    uint32_t i, v, ticks;
    board_init();
    for (i = 0; i < sizeof q4_upconv_cases / sizeof q4_upconv_cases[0]; ++i) {
        const q4_upconv_case *c = &q4_upconv_cases[i];
        const int32_t n = c->output_dims.h * c->output_dims.w * c->output_dims.c;
        for (v = 0; v < sizeof variants / sizeof variants[0]; ++v) {
            const int32_t bytes = variants[v].size(&c->filter_dims), words = (bytes + 3) / 4;
            if (words > Q4_SCRATCH_WORDS) {
                board_report_str("scratch_too_small", c->name);
                return 2;
            }
            fill_guards(n, words);
            board_timer_start();
            Q4_TIMING_BARRIER();
            variants[v].run(c, output, scratch);
            Q4_TIMING_BARRIER();
            ticks = board_timer_read();
            report(c->name, variants[v].name, c->expected, n, words, ticks, bytes);
        }
    }
    for (i = 0; i < sizeof q4_resize_cases / sizeof q4_resize_cases[0]; ++i) {
        const q4_resize_case *c = &q4_resize_cases[i];
        const int32_t n = c->output_dims.h * c->output_dims.w * c->output_dims.c;
        for (v = 0; v < sizeof resize_variants / sizeof resize_variants[0]; ++v) {
            fill_guards(n, 0);
            board_timer_start();
            Q4_TIMING_BARRIER();
            resize_variants[v].run(&c->params, &c->input_dims, c->input, &c->output_dims, output);
            Q4_TIMING_BARRIER();
            ticks = board_timer_read();
            report(c->name, resize_variants[v].name, c->expected, n, 0, ticks, 0);
        }
    }
    return 0;
}
