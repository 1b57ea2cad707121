/*
 * ops_harness.c - runs every add, fully_connected and depthwise_conv2d case of the generated
 * "ops_cases.h" through
 * each variant built for this core (portable, _dsp, _mve; the fully connected and depthwise
 * _armv6m on ARMv6-M or with Q4_HARNESS_ARMV6M defined), checks the output against the
 * oracle's expected bytes and that nothing is written past the output or the scratch, and
 * times it.
 *
 * One record per case and variant:
 *     @q4 <case>.<variant> <mismatches> <ticks> <first_bad> <guard> <scratch_bytes>
 * first_bad is the first differing output index (-1 if none); guard is 1 when the bytes past the
 * output and past the variant's declared scratch are untouched; scratch_bytes is what its
 * *_get_buffer_size returned.
 */
#include "q4_board.h"
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "ops_cases.h"

#define GUARD_BYTE 0x5A
#define GUARD_WORDS 16
#define GUARD_WORD 0x5A5A5A5A
#define SCRATCH_WORDS Q4_SCRATCH_WORDS

typedef void (*add_fn)(const q4_add_case *c, int8_t *out, int32_t *scratch);
typedef void (*fc_fn)(const q4_fc_case *c, int8_t *out, int32_t *scratch);
typedef int32_t (*fc_size_fn)(int32_t input_size);
typedef void (*dw_fn)(const q4_dw_case *c, int8_t *out, int32_t *scratch);
typedef int32_t (*dw_size_fn)(const q4_dims *filter_dims);

static int8_t output[Q4_OUTPUT_BYTES + GUARD_WORDS * 4];
static int32_t scratch[SCRATCH_WORDS + GUARD_WORDS];

static void run_portable(const q4_add_case *c, int8_t *out, int32_t *scr)
{
    (void)scr;
    q4_add_s8(&c->params, c->size, c->a, c->b, out);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static void run_dsp(const q4_add_case *c, int8_t *out, int32_t *scr)
{
    q4_add_s8_dsp(&c->params, c->size, c->a, c->b, out, scr);
}
#endif

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
static void run_mve(const q4_add_case *c, int8_t *out, int32_t *scr)
{
    q4_add_s8_mve(&c->params, c->size, c->a, c->b, out, scr);
}
#endif

static int32_t no_scratch(int32_t input_size)
{
    (void)input_size;
    return 0;
}

static void fc_portable(const q4_fc_case *c, int8_t *out, int32_t *scr)
{
    (void)scr;
    q4_fully_connected_s4(&c->params, &c->quant, c->input_size, c->input, c->filter, c->bias,
                          c->output_size, out);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static void fc_dsp(const q4_fc_case *c, int8_t *out, int32_t *scr)
{
    q4_fully_connected_s4_dsp(&c->params, &c->quant, c->input_size, c->input, c->filter,
                              c->bias, c->output_size, out, scr);
}
#endif

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
static void fc_mve(const q4_fc_case *c, int8_t *out, int32_t *scr)
{
    q4_fully_connected_s4_mve(&c->params, &c->quant, c->input_size, c->input, c->filter,
                              c->bias, c->output_size, out, scr);
}
#endif

#if defined(__ARM_ARCH_6M__) && !defined(Q4_HARNESS_ARMV6M)
#define Q4_HARNESS_ARMV6M 1
#endif

#ifdef Q4_HARNESS_ARMV6M
static void fc_armv6m(const q4_fc_case *c, int8_t *out, int32_t *scr)
{
    q4_fully_connected_s4_armv6m(&c->params, &c->quant, c->input_size, c->input, c->filter,
                                 c->bias, c->output_size, out, scr);
}
#endif

static const struct {
    const char *name;
    fc_size_fn size;
    fc_fn run;
} fc_variants[] = {
    {"portable", no_scratch, fc_portable},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_fully_connected_s4_dsp_get_buffer_size, fc_dsp},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", q4_fully_connected_s4_mve_get_buffer_size, fc_mve},
#endif
#ifdef Q4_HARNESS_ARMV6M
    {"armv6m", q4_fully_connected_s4_armv6m_get_buffer_size, fc_armv6m},
#endif
};

static int32_t dw_no_scratch(const q4_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

static void dw_portable(const q4_dw_case *c, int8_t *out, int32_t *scr)
{
    (void)scr;
    q4_depthwise_conv2d_s4(&c->params, &c->quant, &c->input_dims, c->input, &c->filter_dims,
                           c->filter, c->bias, &c->output_dims, out);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static void dw_dsp(const q4_dw_case *c, int8_t *out, int32_t *scr)
{
    q4_depthwise_conv2d_s4_dsp(&c->params, &c->quant, &c->input_dims, c->input,
                               &c->filter_dims, c->filter, c->bias, &c->output_dims, out, scr);
}
#endif

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
static void dw_mve(const q4_dw_case *c, int8_t *out, int32_t *scr)
{
    q4_depthwise_conv2d_s4_mve(&c->params, &c->quant, &c->input_dims, c->input,
                               &c->filter_dims, c->filter, c->bias, &c->output_dims, out, scr);
}
#endif

#ifdef Q4_HARNESS_ARMV6M
static void dw_armv6m(const q4_dw_case *c, int8_t *out, int32_t *scr)
{
    q4_depthwise_conv2d_s4_armv6m(&c->params, &c->quant, &c->input_dims, c->input,
                                  &c->filter_dims, c->filter, c->bias, &c->output_dims, out, scr);
}
#endif

static const struct {
    const char *name;
    dw_size_fn size;
    dw_fn run;
} dw_variants[] = {
    {"portable", dw_no_scratch, dw_portable},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_depthwise_conv2d_s4_dsp_get_buffer_size, dw_dsp},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", q4_depthwise_conv2d_s4_mve_get_buffer_size, dw_mve},
#endif
#ifdef Q4_HARNESS_ARMV6M
    {"armv6m", q4_depthwise_conv2d_s4_armv6m_get_buffer_size, dw_armv6m},
#endif
};

static int32_t add_no_scratch(void)
{
    return 0;
}

static const struct {
    const char *name;
    int32_t (*size)(void);
    add_fn run;
} variants[] = {
    {"portable", add_no_scratch, run_portable},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_add_s8_dsp_get_buffer_size, run_dsp},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", q4_add_s8_mve_get_buffer_size, run_mve},
#endif
};

/* Fills the output and scratch with guard values (before a run). */
static void fill_guards(int32_t n)
{
    int32_t k;
    for (k = 0; k < n + GUARD_WORDS * 4; ++k) {
        output[k] = (int8_t)GUARD_BYTE;
    }
    for (k = 0; k < SCRATCH_WORDS + GUARD_WORDS; ++k) {
        scratch[k] = GUARD_WORD;
    }
}

/* Compares the n output bytes with expected, checks that the output guard and the scratch
 * past the declared scratch_bytes are untouched, and prints the record. */
static void report(const char *case_name, const char *variant, const int8_t *expected,
                   int32_t n, int32_t scratch_bytes, uint32_t ticks)
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
    for (k = (scratch_bytes + 3) / 4; k < SCRATCH_WORDS + GUARD_WORDS; ++k) {
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
    board_put_i32(scratch_bytes);
    board_putc('\n');
}

/* 1 when a variant's declared scratch does not fit the harness buffer. */
static int scratch_too_small(void)
{
    uint32_t i, v;
    for (v = 0; v < sizeof variants / sizeof variants[0]; ++v) {
        if (variants[v].size() > SCRATCH_WORDS * 4) {
            return 1;
        }
    }
    for (i = 0; i < sizeof q4_fc_cases / sizeof q4_fc_cases[0]; ++i) {
        for (v = 0; v < sizeof fc_variants / sizeof fc_variants[0]; ++v) {
            if (fc_variants[v].size(q4_fc_cases[i].input_size) > SCRATCH_WORDS * 4) {
                return 1;
            }
        }
    }
    for (i = 0; i < sizeof q4_dw_cases / sizeof q4_dw_cases[0]; ++i) {
        for (v = 0; v < sizeof dw_variants / sizeof dw_variants[0]; ++v) {
            if (dw_variants[v].size(&q4_dw_cases[i].filter_dims) > SCRATCH_WORDS * 4) {
                return 1;
            }
        }
    }
    return 0;
}

int main(void)
{
    uint32_t i, v, ticks;
    board_init();
    if (scratch_too_small()) {
        board_report_str("error", "scratch_too_small");
        return 2;
    }
    for (i = 0; i < sizeof q4_cases / sizeof q4_cases[0]; ++i) {
        const q4_add_case *c = &q4_cases[i];
        for (v = 0; v < sizeof variants / sizeof variants[0]; ++v) {
            fill_guards(c->size);
            board_timer_start();
            Q4_TIMING_BARRIER();
            variants[v].run(c, output, scratch);
            Q4_TIMING_BARRIER();
            ticks = board_timer_read();
            report(c->name, variants[v].name, c->expected, c->size, variants[v].size(), ticks);
        }
    }
    for (i = 0; i < sizeof q4_fc_cases / sizeof q4_fc_cases[0]; ++i) {
        const q4_fc_case *c = &q4_fc_cases[i];
        for (v = 0; v < sizeof fc_variants / sizeof fc_variants[0]; ++v) {
            fill_guards(c->output_size);
            board_timer_start();
            Q4_TIMING_BARRIER();
            fc_variants[v].run(c, output, scratch);
            Q4_TIMING_BARRIER();
            ticks = board_timer_read();
            report(c->name, fc_variants[v].name, c->expected, c->output_size,
                   fc_variants[v].size(c->input_size), ticks);
        }
    }
    for (i = 0; i < sizeof q4_dw_cases / sizeof q4_dw_cases[0]; ++i) {
        const q4_dw_case *c = &q4_dw_cases[i];
        const int32_t n = c->output_dims.h * c->output_dims.w * c->output_dims.c;
        for (v = 0; v < sizeof dw_variants / sizeof dw_variants[0]; ++v) {
            fill_guards(n);
            board_timer_start();
            Q4_TIMING_BARRIER();
            dw_variants[v].run(c, output, scratch);
            Q4_TIMING_BARRIER();
            ticks = board_timer_read();
            report(c->name, dw_variants[v].name, c->expected, n,
                   dw_variants[v].size(&c->filter_dims), ticks);
        }
    }
    return 0;
}
