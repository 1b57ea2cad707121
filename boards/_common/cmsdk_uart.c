/*
 * cmsdk_uart.c - board_putc() on an Arm CMSDK APB UART (MPS2 and MPS3 FPGA images).
 * The board's compile flags define Q4_UART_BASE (board.json "console.base").
 */
#include "q4_board.h"

#define UART_DATA (*(volatile uint32_t *)(Q4_UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(Q4_UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(Q4_UART_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(Q4_UART_BASE + 0x10u))

#define UART_STATE_TX_FULL 0x1u
#define UART_CTRL_TX_ENABLE 0x1u
#define UART_MIN_BAUDDIV 16u

void cmsdk_uart_init(void)
{
    UART_BAUDDIV = UART_MIN_BAUDDIV;
    UART_CTRL = UART_CTRL_TX_ENABLE;
}

void board_putc(char c)
{
    while ((UART_STATE & UART_STATE_TX_FULL) != 0u) {
    }
    UART_DATA = (uint32_t)(unsigned char)c;
}
