/*
 * systick_timer.c - board timer on the Cortex-M SysTick, clocked by the core clock.
 *
 * SysTick is 24 bits wide, so its exception counts wraps and board_timer_read() combines the
 * two. After a write to the current-value register the counter reads 0 until the first clock
 * reloads it with 0xFFFFFF, which the modular arithmetic below absorbs.
 */
#include "q4_board.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

#define SYST_CSR_ENABLE 0x1u
#define SYST_CSR_TICKINT 0x2u
#define SYST_CSR_CLKSOURCE_CORE 0x4u
#define SYST_PERIOD 0x1000000u

static volatile uint32_t systick_wraps;

void SysTick_Handler(void)
{
    systick_wraps = systick_wraps + 1u;
}

void board_timer_start(void)
{
    SYST_CSR = 0u;
    SYST_RVR = SYST_PERIOD - 1u;
    SYST_CVR = 0u;
    systick_wraps = 0u;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE_CORE;
}

uint32_t board_timer_read(void)
{
    uint32_t wraps;
    uint32_t value;
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    return wraps * SYST_PERIOD + ((SYST_PERIOD - value) & (SYST_PERIOD - 1u));
}
