/*
 * nrf51_uart.c - board_putc() on the nRF51 UART (Q4_UART_BASE, board.json "console.base").
 *
 * After ENABLE and the STARTTX task, a byte written to TXD is sent; TXDRDY rises when it is
 * gone (in QEMU's model as on the part). No pins or baud rate are set: QEMU needs none.
 */
#include "board_parts.h"
#include "q4_board.h"

#define UART_STARTTX (*(volatile uint32_t *)(Q4_UART_BASE + 0x008u))
#define UART_TXDRDY (*(volatile uint32_t *)(Q4_UART_BASE + 0x11Cu))
#define UART_ENABLE (*(volatile uint32_t *)(Q4_UART_BASE + 0x500u))
#define UART_TXD (*(volatile uint32_t *)(Q4_UART_BASE + 0x51Cu))

#define UART_ENABLE_ON 4u

void nrf51_uart_init(void)
{
    UART_ENABLE = UART_ENABLE_ON;
    UART_STARTTX = 1u;
}

void board_putc(char c)
{
    UART_TXDRDY = 0u;
    UART_TXD = (uint32_t)(unsigned char)c;
    while (UART_TXDRDY == 0u) {
    }
}
