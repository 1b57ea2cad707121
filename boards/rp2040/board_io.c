/*
 * board_io.c - RP2040 (build-only): semihosting console and exit, SysTick timer (the M0+ has no DWT counter).
 * Flash starts at 0x10000100: a flashable image also needs the Pico SDK boot stage 2 in the
 * first 256 bytes of the external flash, which this build leaves free.
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
