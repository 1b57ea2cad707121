/*
 * nrf51_timer.c - board timer on an nRF51 TIMER (Q4_TIMER_BASE), 32-bit timer mode.
 *
 * The timer counts the 16 MHz peripheral clock (prescaler 0). A CAPTURE task copies the counter
 * into CC[0], which is then read. Under QEMU with "-icount shift=0" one instruction is 1 ns, so
 * a tick is 62.5 instructions; 32 bits of ticks last 2.7e11 instructions.
 */
#include "q4_board.h"

#define TIMER_START (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x000u))
#define TIMER_STOP (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x004u))
#define TIMER_CLEAR (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x00Cu))
#define TIMER_CAPTURE0 (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x040u))
#define TIMER_MODE (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x504u))
#define TIMER_BITMODE (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x508u))
#define TIMER_PRESCALER (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x510u))
#define TIMER_CC0 (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x540u))

#define TIMER_MODE_TIMER 0u
#define TIMER_BITMODE_32 3u

void board_timer_start(void)
{
    TIMER_STOP = 1u;
    TIMER_MODE = TIMER_MODE_TIMER;
    TIMER_BITMODE = TIMER_BITMODE_32;
    TIMER_PRESCALER = 0u;
    TIMER_CLEAR = 1u;
    TIMER_START = 1u;
}

uint32_t board_timer_read(void)
{
    TIMER_CAPTURE0 = 1u;
    return TIMER_CC0;
}
