/*
 * pool_harness.c - runs every global_avgpool case of the generated "pool_cases.h" through each
 * variant built for this core (portable q4_global_avgpool_s8, _dsp), checks the output against
 * the oracle's expected bytes and that nothing is written past the output, and times it.
 *
 * One record per case and variant:
 *     @q4 <case>.<variant> <mismatches> <ticks> <first_bad> <guard> <scratch_bytes>
 * (scratch_bytes is always 0: the variants take none).
 */
#include "q4_board.h"
#include "q4_kernels.h"
#include "q4_kernels_opt.h"
#include "pool_cases.h"

#define GUARD_BYTE 0x5A
#define GUARD_BYTES 64

typedef void (*gap_fn)(const q4_pool_params *params, const q4_dims *input_dims,
                       const int8_t *input, int8_t *output);

static int8_t output[Q4_OUTPUT_BYTES + GUARD_BYTES];

static const struct {
    const char *name;
    gap_fn run;
} variants[] = {
    {"portable", q4_global_avgpool_s8},
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    {"dsp", q4_global_avgpool_s8_dsp},
#endif
};

int main(void)
{
    uint32_t i, v, ticks;
    board_init();
    for (i = 0; i < sizeof q4_gap_cases / sizeof q4_gap_cases[0]; ++i) {
        const q4_gap_case *c = &q4_gap_cases[i];
        const int32_t n = c->input_dims.c;
        for (v = 0; v < sizeof variants / sizeof variants[0]; ++v) {
            int32_t k, mismatches = 0, first_bad = -1, guard = 1;
            for (k = 0; k < n + GUARD_BYTES; ++k) {
                output[k] = (int8_t)GUARD_BYTE;
            }
            board_timer_start();
            Q4_TIMING_BARRIER();
            variants[v].run(&c->params, &c->input_dims, c->input, output);
            Q4_TIMING_BARRIER();
            ticks = board_timer_read();
            for (k = 0; k < n; ++k) {
                if (output[k] != c->expected[k]) {
                    mismatches += 1;
                    first_bad = first_bad < 0 ? k : first_bad;
                }
            }
            for (k = n; k < n + GUARD_BYTES; ++k) {
                guard &= output[k] == (int8_t)GUARD_BYTE;
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
