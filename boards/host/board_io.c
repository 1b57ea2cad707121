/*
 * board_io.c - the host board: stdout console, monotonic clock in nanoseconds, exit().
 * Stack painting is not available on a hosted OS, so board_stack_used() returns 0.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "q4_board.h"

static struct timespec timer_origin;

void board_init(void)
{
}

void board_putc(char c)
{
    putchar(c);
}

void board_timer_start(void)
{
    clock_gettime(CLOCK_MONOTONIC, &timer_origin);
}

uint32_t board_timer_read(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t)(now.tv_sec - timer_origin.tv_sec) * 1000000000 +
                 (int64_t)(now.tv_nsec - timer_origin.tv_nsec);
    return (uint32_t)ns;
}

void board_stack_paint(void)
{
}

uint32_t board_stack_used(void)
{
    return 0u;
}

void board_exit(uint32_t code)
{
    fflush(stdout);
    exit((int)code);
}
