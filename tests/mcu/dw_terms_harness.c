/*
 * dw_terms_harness.c - runs every multi-term depthwise case of the generated "dw_terms_cases.h"
 * through each variant built for this core (portable q4_depthwise_conv2d_s4_terms, _terms_dsp,
 * _terms_mve), checks the output against the oracle's expected bytes and that nothing is written
 * past the output or the scratch, and times it. Cases marked `single` also time the single-term
 * optimised depthwise kernel of the core on the same shape (input 0, weight 0: outputs not
 * checked, a cost reference).
 *
 * One record per case and variant:
 *     @q4 <case>.<variant> <mismatches> <ticks> <first_bad> <guard> <scratch_bytes>
 */
#include "q4_board.h"
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "dw_terms_cases.h"

#define GUARD_BYTE 0x5A
#define GUARD_WORDS 16
#define GUARD_WORD 0x5A5A5A5A

typedef int32_t (*buffer_size_fn)(const q4_terms_case *c);
typedef void (*conv_fn)(const q4_terms_case *c, int8_t *out, int32_t *scratch);

static int8_t output[Q4_OUTPUT_BYTES + GUARD_WORDS * 4];
static int32_t scratch[Q4_SCRATCH_WORDS + GUARD_WORDS];

static int32_t no_scratch(const q4_terms_case *c)
{
    (void)c;
    return 0;
}

static void run_portable(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    (void)scr;
    q4_depthwise_conv2d_s4_terms(&c->params, &c->terms, &c->input_dims, c->inputs,
                                 &c->filter_dims, c->filters, c->bias, &c->output_dims, out);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static int32_t dsp_size(const q4_terms_case *c)
{
    return q4_depthwise_conv2d_s4_terms_dsp_get_buffer_size(&c->filter_dims);
}

static void run_dsp(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    q4_depthwise_conv2d_s4_terms_dsp(&c->params, &c->terms, &c->input_dims, c->inputs,
                                     &c->filter_dims, c->filters, c->bias, &c->output_dims, out,
                                     scr);
}

static int32_t single_dsp_size(const q4_terms_case *c)
{
    return q4_depthwise_conv2d_s4_dsp_get_buffer_size(&c->filter_dims);
}

/* The single-term kernel on input 0 and weight 0 (a cost reference). */
static void run_single_dsp(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    q4_depthwise_conv2d_s4_dsp(&c->params, &c->single_quant, &c->input_dims, c->inputs[0],
                               &c->filter_dims, c->filters[0], c->bias, &c->output_dims, out,
                               scr);
}
#endif

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
static int32_t mve_size(const q4_terms_case *c)
{
    return q4_depthwise_conv2d_s4_terms_mve_get_buffer_size(&c->filter_dims);
}

static void run_mve(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    q4_depthwise_conv2d_s4_terms_mve(&c->params, &c->terms, &c->input_dims, c->inputs,
                                     &c->filter_dims, c->filters, c->bias, &c->output_dims, out,
                                     scr);
}

static int32_t single_mve_size(const q4_terms_case *c)
{
    return q4_depthwise_conv2d_s4_mve_get_buffer_size(&c->filter_dims);
}

static void run_single_mve(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    q4_depthwise_conv2d_s4_mve(&c->params, &c->single_quant, &c->input_dims, c->inputs[0],
                               &c->filter_dims, c->filters[0], c->bias, &c->output_dims, out,
                               scr);
}
#endif

static const struct {
    const char *name;
    buffer_size_fn size;
    conv_fn run;
    int32_t checked; /* 0: a single-term timing on `single` cases, output not compared */
} variants[] = {
    {"portable", no_scratch, run_portable, 1},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", dsp_size, run_dsp, 1},
    {"single_dsp", single_dsp_size, run_single_dsp, 0},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", mve_size, run_mve, 1},
    {"single_mve", single_mve_size, run_single_mve, 0},
#endif
};

static void put_record_start(const char *case_name, const char *variant)
{
    board_puts("@q4 ");
    board_puts(case_name);
    board_putc('.');
    board_puts(variant);
    board_putc(' ');
}

int main(void)
{
    uint32_t i, v;
    board_init();
    for (i = 0; i < sizeof q4_cases / sizeof q4_cases[0]; ++i) {
        const q4_terms_case *c = &q4_cases[i];
        const int32_t n = c->output_dims.h * c->output_dims.w * c->output_dims.c;
        for (v = 0; v < sizeof variants / sizeof variants[0]; ++v) {
            const int32_t bytes = variants[v].size(c), words = (bytes + 3) / 4;
            int32_t k, mismatches = 0, first_bad = -1, guard = 1;
            uint32_t ticks;
            if (!variants[v].checked && !c->single) {
                continue;
            }
            if (words > Q4_SCRATCH_WORDS) {
                board_report_str("scratch_too_small", c->name);
                return 2;
            }
            for (k = 0; k < n + GUARD_WORDS * 4; ++k) {
                output[k] = (int8_t)GUARD_BYTE;
            }
            for (k = 0; k < words + GUARD_WORDS; ++k) {
                scratch[k] = GUARD_WORD;
            }
            board_timer_start();
            Q4_TIMING_BARRIER();
            variants[v].run(c, output, scratch);
            Q4_TIMING_BARRIER();
            ticks = board_timer_read();
            for (k = 0; k < n && variants[v].checked; ++k) {
                if (output[k] != c->expected[k]) {
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
            put_record_start(c->name, variants[v].name);
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
    }
    return 0;
}
