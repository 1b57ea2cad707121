/*
 * cmsdk_timer.c - board timer on an Arm CMSDK APB timer, counting down from 0xFFFFFFFF.
 * The board's compile flags define Q4_TIMER_BASE (board.json "timer.base").
 *
 * Under QEMU with "-icount shift=0" one guest instruction is 1 ns of virtual time, so a timer
 * clocked at 25 MHz ticks once per 40 instructions. 32 bits of ticks last 1.7e11 instructions.
 */
#include "q4_board.h"

#define TIMER_CTRL (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x00u))
#define TIMER_VALUE (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x04u))
#define TIMER_RELOAD (*(volatile uint32_t *)(Q4_TIMER_BASE + 0x08u))

#define TIMER_CTRL_ENABLE 0x1u

void board_timer_start(void)
{
    TIMER_CTRL = 0u;
    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = TIMER_CTRL_ENABLE;
}

uint32_t board_timer_read(void)
{
    return 0xFFFFFFFFu - TIMER_VALUE;
}
