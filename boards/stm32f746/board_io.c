/*
 * board_io.c - STM32F746 (build-only): semihosting console and exit, DWT cycle counter.
 * Runs as is under a debugger with semihosting enabled (OpenOCD, pyOCD).
 */
#include "board_parts.h"
#include "q4_board.h"

void board_init(void)
{
}

void board_putc(char c)
{
    semihost_putc(c);
}
