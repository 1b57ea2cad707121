/*
 * board_io.c - BBC micro:bit (nRF51822, Cortex-M0): UART console, TIMER0, semihosting exit.
 */
#include "board_parts.h"
#include "q4_board.h"

void board_init(void)
{
    nrf51_uart_init();
}
