/*
 * hello.c - harness self-test: console, records, exit status (Q4_HELLO_EXIT) and a 64-bit
 * division, which links the right libgcc for the core (a wrong multilib fails to link).
 */
#include "q4_board.h"

#ifndef Q4_HELLO_EXIT
#define Q4_HELLO_EXIT 0
#endif

static volatile uint64_t dividend = 123456789012345ull;
static volatile uint32_t divisor = 98765u;

int main(void)
{
    board_init();
    board_puts("hello from q4sdk\n");
    board_report_str("board", Q4_BOARD_NAME);
    board_report_i32("min_i32", INT32_MIN);
    board_report_u32("max_u32", UINT32_MAX);
    board_report_u32("u64_div", (uint32_t)(dividend / divisor));
    return Q4_HELLO_EXIT;
}
