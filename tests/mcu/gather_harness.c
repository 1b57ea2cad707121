/*
 * gather_harness.c - runs every gather case of the generated "gather_cases.h" through each
 * variant built for this core (portable q4_gather_s8, _dsp, _mve), checks the output against the
 * oracle's expected bytes and that nothing is written past the output, and times it. The input
 * starts at a case-given byte offset of its array and the output at a case-given offset of the
 * buffer, so the alignment-dependent copy paths are taken both ways.
 *
 * One record per case and variant:
 *     @q4 <case>.<variant> <mismatches> <ticks> <first_bad> <guard> <scratch_bytes>
 * (scratch_bytes is always 0: the variants take none).
 */
#include "q4_board.h"
#include "q4_kernels.h"
#include "q4_gather.h"
#include "q4_kernels_opt.h"
#include "gather_cases.h"

#define GUARD_BYTE 0x5A
#define GUARD_BYTES 64

typedef void (*gather_fn)(const q4_gather_params *params, const int8_t *input, int8_t *output);

static int8_t output[Q4_OUTPUT_BYTES + 4 + GUARD_BYTES] __attribute__((aligned(4)));

static const struct {
    const char *name;
    gather_fn run;
} variants[] = {
    {"portable", q4_gather_s8},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_gather_s8_dsp},
#endif
#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
    {"mve", q4_gather_s8_mve},
#endif
};

int main(void)
{
    uint32_t i, v, ticks;
    board_init();
    for (i = 0; i < sizeof q4_gather_cases / sizeof q4_gather_cases[0]; ++i) {
        const q4_gather_case *c = &q4_gather_cases[i];
        const int32_t n = c->params.outer * c->params.n_index * c->params.inner;
        int8_t *out = output + c->out_shift;
        for (v = 0; v < sizeof variants / sizeof variants[0]; ++v) {
            int32_t k, mismatches = 0, first_bad = -1, guard = 1;
            for (k = 0; k < (int32_t)sizeof output; ++k) {
                output[k] = (int8_t)GUARD_BYTE;
            }
            board_timer_start();
            Q4_TIMING_BARRIER();
            variants[v].run(&c->params, c->input + c->in_shift, out);
            Q4_TIMING_BARRIER();
            ticks = board_timer_read();
            for (k = 0; k < n; ++k) {
                if (out[k] != c->expected[k]) {
                    mismatches += 1;
                    first_bad = first_bad < 0 ? k : first_bad;
                }
            }
            for (k = 0; k < c->out_shift; ++k) {
                guard &= output[k] == (int8_t)GUARD_BYTE;
            }
            for (k = n; k < n + GUARD_BYTES; ++k) {
                guard &= out[k] == (int8_t)GUARD_BYTE;
            }
            board_puts("@q4 ");
            board_puts(c->name);
            board_putc('.');
            board_puts(variants[v].name);
            board_putc(' ');
            board_put_i32(mismatches);
            board_putc(' ');
            board_put_u32(ticks);
            board_putc(' ');
            board_put_i32(first_bad);
            board_putc(' ');
            board_put_i32(guard);
            board_puts(" 0\n");
        }
    }
    return 0;
}
