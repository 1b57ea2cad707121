/*
 * conv_harness.c - runs every conv2d case of the generated "conv_cases.h" through each kernel
 * variant built for this core (portable, _dsp, _a4_dsp for 4-bit inputs, _mve, _armv6m and
 * _a4_armv6m on ARMv6-M or with Q4_HARNESS_ARMV6M defined), checks the output against the oracle's
 * expected bytes and that nothing is written past the output or the scratch, and times it.
 *
 * One record per case and variant:
 *     @q4 <case>.<variant> <mismatches> <ticks> <first_bad> <guard> <scratch_bytes>
 * first_bad is the first differing output index (-1 if none); guard is 1 when the bytes past the
 * output and the scratch are untouched; scratch_bytes is what *_get_buffer_size returned.
 */
#include "q4_board.h"
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "conv_cases.h"

#define GUARD_BYTE 0x5A
#define GUARD_WORDS 16
#define GUARD_WORD 0x5A5A5A5A

typedef int32_t (*buffer_size_fn)(const q4_conv_case *c);
typedef void (*conv_fn)(const q4_conv_case *c, int8_t *out, int32_t *scratch);

static int8_t output[Q4_OUTPUT_BYTES + GUARD_WORDS * 4];
static int32_t scratch[Q4_SCRATCH_WORDS + GUARD_WORDS];

static int32_t no_scratch(const q4_conv_case *c)
{
    (void)c;
    return 0;
}

static void run_portable(const q4_conv_case *c, int8_t *out, int32_t *scr)
{
    (void)scr;
    q4_conv2d_s4(&c->params, &c->quant, &c->input_dims, c->input, &c->filter_dims, c->filter,
                 c->bias, &c->output_dims, out);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static int32_t dsp_size(const q4_conv_case *c)
{
    return q4_conv2d_s4_dsp_get_buffer_size(&c->filter_dims);
}

static void run_dsp(const q4_conv_case *c, int8_t *out, int32_t *scr)
{
    q4_conv2d_s4_dsp(&c->params, &c->quant, &c->input_dims, c->input, &c->filter_dims,
                     c->filter, c->bias, &c->output_dims, out, scr);
}

static int32_t a4_dsp_size(const q4_conv_case *c)
{
    return q4_conv2d_s4_a4_dsp_get_buffer_size(&c->filter_dims);
}

static void run_a4_dsp(const q4_conv_case *c, int8_t *out, int32_t *scr)
{
    q4_conv2d_s4_a4_dsp(&c->params, &c->quant, &c->input_dims, c->input, &c->filter_dims,
                        c->filter, c->bias, &c->output_dims, out, scr);
}
#endif

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
static int32_t mve_size(const q4_conv_case *c)
{
    return q4_conv2d_s4_mve_get_buffer_size(&c->filter_dims, &c->output_dims);
}

static void run_mve(const q4_conv_case *c, int8_t *out, int32_t *scr)
{
    q4_conv2d_s4_mve(&c->params, &c->quant, &c->input_dims, c->input, &c->filter_dims,
                     c->filter, c->bias, &c->output_dims, out, scr);
}
#endif

#if defined(__ARM_ARCH_6M__) && !defined(Q4_HARNESS_ARMV6M)
#define Q4_HARNESS_ARMV6M 1
#endif

#ifdef Q4_HARNESS_ARMV6M
static int32_t armv6m_size(const q4_conv_case *c)
{
    return q4_conv2d_s4_armv6m_get_buffer_size(&c->filter_dims);
}

static void run_armv6m(const q4_conv_case *c, int8_t *out, int32_t *scr)
{
    q4_conv2d_s4_armv6m(&c->params, &c->quant, &c->input_dims, c->input, &c->filter_dims,
                        c->filter, c->bias, &c->output_dims, out, scr);
}

static int32_t a4_armv6m_size(const q4_conv_case *c)
{
    return q4_conv2d_s4_a4_armv6m_get_buffer_size(&c->filter_dims);
}

static void run_a4_armv6m(const q4_conv_case *c, int8_t *out, int32_t *scr)
{
    q4_conv2d_s4_a4_armv6m(&c->params, &c->quant, &c->input_dims, c->input, &c->filter_dims,
                           c->filter, c->bias, &c->output_dims, out, scr);
}
#endif

static const struct {
    const char *name;
    buffer_size_fn size;
    conv_fn run;
    int32_t max_bits; /* the widest activations the variant accepts */
} variants[] = {
    {"portable", no_scratch, run_portable, 8},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", dsp_size, run_dsp, 8},
    {"a4_dsp", a4_dsp_size, run_a4_dsp, 4},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", mve_size, run_mve, 8},
#endif
#ifdef Q4_HARNESS_ARMV6M
    {"armv6m", armv6m_size, run_armv6m, 8},
    {"a4_armv6m", a4_armv6m_size, run_a4_armv6m, 4},
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
        const q4_conv_case *c = &q4_cases[i];
        const int32_t n = c->output_dims.h * c->output_dims.w * c->output_dims.c;
        for (v = 0; v < sizeof variants / sizeof variants[0]; ++v) {
            const int32_t bytes = variants[v].size(c), words = (bytes + 3) / 4;
            int32_t k, mismatches = 0, first_bad = -1, guard = 1;
            uint32_t ticks;
            if (c->bits > variants[v].max_bits) {
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
            for (k = 0; k < n; ++k) {
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
