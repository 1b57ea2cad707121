/*
 * board_io.c - MPS3 AN547 (Cortex-M55, SSE-300): UART0 console, SysTick timer, semihosting exit.
 * The SSE-300 timers are system-counter timers, not CMSDK timers, so the harness uses SysTick.
 */
#include "board_parts.h"
#include "q4_board.h"

void board_init(void)
{
    cmsdk_uart_init();
}
