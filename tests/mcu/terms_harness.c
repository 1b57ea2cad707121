/*
 * terms_harness.c - runs every multi-term conv2d case of the generated "terms_cases.h" through
 * each variant built for this core (portable q4_conv2d_s4_terms, _dsp, _mve; the cases shaped as
 * a fully connected layer also through q4_fully_connected_s4_terms_mve / _dsp), checks the output
 * against the oracle's expected bytes and that nothing is written past the output or the
 * scratch, and times it. Cases marked `single` also time the single-term optimised kernels on
 * the same shape (input 0, weight 0: outputs not checked, this is only a cost reference).
 *
 * One record per case and variant:
 *     @q4 <case>.<variant> <mismatches> <ticks> <first_bad> <guard> <scratch_bytes>
 * first_bad is the first differing output index (-1 if none, or for a single-term timing);
 * guard is 1 when the bytes past the output and the scratch are untouched; scratch_bytes is
 * what *_get_buffer_size returned.
 */
#include "q4_board.h"
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "terms_cases.h"

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
    q4_conv2d_s4_terms(&c->params, &c->terms, &c->input_dims, c->inputs, &c->filter_dims,
                       c->filters, c->bias, &c->output_dims, out);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static int32_t dsp_size(const q4_terms_case *c)
{
    return q4_conv2d_s4_terms_dsp_get_buffer_size(&c->filter_dims);
}

static void run_dsp(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    q4_conv2d_s4_terms_dsp(&c->params, &c->terms, &c->input_dims, c->inputs, &c->filter_dims,
                           c->filters, c->bias, &c->output_dims, out, scr);
}

static int32_t single_dsp_size(const q4_terms_case *c)
{
    return c->bits <= 4 ? q4_conv2d_s4_a4_dsp_get_buffer_size(&c->filter_dims)
                        : q4_conv2d_s4_dsp_get_buffer_size(&c->filter_dims);
}

/* The single-term kernel the generator picks on a DSP core (4-bit inputs: _a4_dsp). */
static void run_single_dsp(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    if (c->bits <= 4) {
        q4_conv2d_s4_a4_dsp(&c->params, &c->single_quant, &c->input_dims, c->inputs[0],
                            &c->filter_dims, c->filters[0], c->bias, &c->output_dims, out, scr);
    } else {
        q4_conv2d_s4_dsp(&c->params, &c->single_quant, &c->input_dims, c->inputs[0],
                         &c->filter_dims, c->filters[0], c->bias, &c->output_dims, out, scr);
    }
}

static int32_t fc_dsp_size(const q4_terms_case *c)
{
    return q4_fully_connected_s4_terms_dsp_get_buffer_size(c->input_dims.c);
}

/* A 1 x 1 convolution of a 1 x 1 input is a fully connected layer. */
static void run_fc_dsp(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    const q4_fc_params fc = {c->params.input_zp, c->params.output_zp, c->params.act_min,
                             c->params.act_max};
    q4_fully_connected_s4_terms_dsp(&fc, &c->terms, c->input_dims.c, c->inputs, c->filters,
                                    c->bias, c->output_dims.c, out, scr);
}
#endif

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
static int32_t mve_size(const q4_terms_case *c)
{
    return q4_conv2d_s4_terms_mve_get_buffer_size(&c->filter_dims);
}

static void run_mve(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    q4_conv2d_s4_terms_mve(&c->params, &c->terms, &c->input_dims, c->inputs, &c->filter_dims,
                           c->filters, c->bias, &c->output_dims, out, scr);
}

static int32_t single_mve_size(const q4_terms_case *c)
{
    return q4_conv2d_s4_mve_get_buffer_size(&c->filter_dims, &c->output_dims);
}

static void run_single_mve(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    q4_conv2d_s4_mve(&c->params, &c->single_quant, &c->input_dims, c->inputs[0],
                     &c->filter_dims, c->filters[0], c->bias, &c->output_dims, out, scr);
}

static int32_t fc_mve_size(const q4_terms_case *c)
{
    return q4_fully_connected_s4_terms_mve_get_buffer_size(c->input_dims.c);
}

/* A 1 x 1 convolution of a 1 x 1 input is a fully connected layer. */
static void run_fc_mve(const q4_terms_case *c, int8_t *out, int32_t *scr)
{
    const q4_fc_params fc = {c->params.input_zp, c->params.output_zp, c->params.act_min,
                             c->params.act_max};
    q4_fully_connected_s4_terms_mve(&fc, &c->terms, c->input_dims.c, c->inputs, c->filters,
                                    c->bias, c->output_dims.c, out, scr);
}
#endif

/* The case is a fully connected layer: 1 x 1 input and kernel, no padding. */
static int is_fc(const q4_terms_case *c)
{
    return c->input_dims.h == 1 && c->input_dims.w == 1 && c->filter_dims.h == 1 &&
           c->filter_dims.w == 1 && c->output_dims.h == 1 && c->output_dims.w == 1 &&
           c->params.pad_top == 0 && c->params.pad_left == 0;
}

static const struct {
    const char *name;
    buffer_size_fn size;
    conv_fn run;
    int32_t checked; /* 0: a single-term timing on `single` cases, output not compared */
    int32_t fc_only; /* 1: a fully connected variant, run on the cases that are one (is_fc) */
} variants[] = {
    {"portable", no_scratch, run_portable, 1, 0},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", dsp_size, run_dsp, 1, 0},
    {"single_dsp", single_dsp_size, run_single_dsp, 0, 0},
    {"fc_dsp", fc_dsp_size, run_fc_dsp, 1, 1},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", mve_size, run_mve, 1, 0},
    {"single_mve", single_mve_size, run_single_mve, 0, 0},
    {"fc_mve", fc_mve_size, run_fc_mve, 1, 1},
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
            if ((!variants[v].checked && !c->single) || (variants[v].fc_only && !is_fc(c))) {
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
