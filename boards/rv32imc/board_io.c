/*
 * board_io.c - generic rv32imc part (build-only): semihosting console and exit, mcycle timer.
 */
#include "board_parts.h"
#include "q4_board.h"

void board_init(void)
{
}

void board_putc(char c)
{
    semihost_putc(c);
}

/* CSR instructions belong to Zicsr, which -march=rv32imc leaves out (it selects the multilib). */
#define WITH_ZICSR(instruction) ".option push\n\t.option arch, +zicsr\n\t" instruction "\n\t.option pop"

void board_timer_start(void)
{
    __asm__ volatile(WITH_ZICSR("csrw mcycle, zero"));
}

uint32_t board_timer_read(void)
{
    uint32_t cycles;
    __asm__ volatile(WITH_ZICSR("csrr %0, mcycle") : "=r"(cycles));
    return cycles;
}
