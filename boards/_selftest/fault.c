/* fault.c - harness self-test: an undefined instruction must end the run with Q4_EXIT_FAULT. */
#include "q4_board.h"

int main(void)
{
    board_init();
    board_puts("about to fault\n");
#if defined(__riscv)
    __asm__ volatile("unimp");
#else
    __asm__ volatile("udf #0");
#endif
    return 0;
}
