/*
 * stack_depth.c - harness self-test of stack painting: a function with a Q4_STACK_ARRAY-byte
 * local array must raise the high-water mark by at least that much.
 */
#include "q4_board.h"

#ifndef Q4_STACK_ARRAY
#define Q4_STACK_ARRAY 8192
#endif

__attribute__((noinline)) static uint32_t use_stack(uint32_t seed)
{
    volatile uint8_t buffer[Q4_STACK_ARRAY];
    uint32_t sum = 0;
    for (uint32_t i = 0; i < Q4_STACK_ARRAY; ++i) {
        buffer[i] = (uint8_t)(seed + i);
    }
    for (uint32_t i = 0; i < Q4_STACK_ARRAY; ++i) {
        sum += buffer[i];
    }
    return sum;
}

int main(void)
{
    board_init();
    board_stack_paint();
    board_report_u32("before", board_stack_used());
    board_report_u32("sum", use_stack(7u));
    board_report_u32("after", board_stack_used());
    return 0;
}
