/*
 * calibration.c - harness self-test of the board timer against a known instruction count.
 *
 * The timed loop runs exactly 2 * Q4_CALIBRATION_ITERATIONS instructions (one decrement and one
 * branch per iteration), so under QEMU -icount the timer must read that count divided by the
 * board's instructions per tick. "empty" times no code at all: the cost of the timer reads.
 */
#include "q4_board.h"

#ifndef Q4_CALIBRATION_ITERATIONS
#define Q4_CALIBRATION_ITERATIONS 1000000u
#endif

static void spin(uint32_t iterations)
{
#if defined(__riscv)
    __asm__ volatile("1: addi %0, %0, -1\n\t"
                     "bnez %0, 1b"
                     : "+r"(iterations));
#else
    __asm__ volatile(".syntax unified\n\t"
                     "1: subs %0, %0, #1\n\t"
                     "bne 1b"
                     : "+l"(iterations)
                     :
                     : "cc");
#endif
}

int main(void)
{
    board_init();
    board_timer_start();

    Q4_TIMING_BARRIER();
    uint32_t start = board_timer_read();
    uint32_t end = board_timer_read();
    Q4_TIMING_BARRIER();
    board_report_u32("empty", end - start);

    Q4_TIMING_BARRIER();
    start = board_timer_read();
    spin(Q4_CALIBRATION_ITERATIONS);
    end = board_timer_read();
    Q4_TIMING_BARRIER();
    board_report_u32("loop", end - start);
    return 0;
}
