/*
 * board_io.c - generic rv32imc part: semihosting console and exit, minstret timer.
 *
 * The timer is the retired-instruction counter, so a tick is one instruction on any rv32imc
 * part, in silicon or under QEMU (whose -icount makes minstret, and mcycle, count exactly the
 * instructions executed). Only the low 32 bits are read: 4.29e9 instructions per timing.
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
    __asm__ volatile(WITH_ZICSR("csrw minstret, zero"));
}

uint32_t board_timer_read(void)
{
    uint32_t instructions;
    __asm__ volatile(WITH_ZICSR("csrr %0, minstret") : "=r"(instructions));
    return instructions;
}
