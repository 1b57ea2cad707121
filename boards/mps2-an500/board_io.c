/*
 * board_io.c - MPS2 FPGA image (AN386/AN500): UART0 console, CMSDK timer 0, semihosting exit.
 */
#include "board_parts.h"
#include "q4_board.h"

void board_init(void)
{
    cmsdk_uart_init();
}
