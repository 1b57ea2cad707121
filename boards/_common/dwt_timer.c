/*
 * dwt_timer.c - board timer on the DWT cycle counter (Cortex-M3/M4/M7/M33/M55 silicon).
 * Ticks are core clock cycles. QEMU does not model CYCCNT, so QEMU boards use another timer.
 */
#include "q4_board.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL_CYCCNTENA 0x1u

void board_timer_start(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_CYCCNT = 0u;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
}

uint32_t board_timer_read(void)
{
    return DWT_CYCCNT;
}
