/*
 * board_parts.h - internal pieces shared between board folders (not for firmware code).
 */
#ifndef Q4_BOARD_PARTS_H
#define Q4_BOARD_PARTS_H

void cmsdk_uart_init(void);  /* cmsdk_uart.c */
void nrf51_uart_init(void);  /* nrf51_uart.c */
void semihost_putc(char c);  /* arm_semihosting.c, riscv_semihosting.c */

#endif /* Q4_BOARD_PARTS_H */
