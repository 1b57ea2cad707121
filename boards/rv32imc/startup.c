/*
 * startup.c - reset entry of the generic rv32imc part.
 *
 * _start (placed first in flash, at the reset address) sets the stack pointer and jumps to
 * reset(), which copies .data, zeroes .bss, runs main() and passes its result to board_exit().
 * Traps are not expected: mtvec points at a handler that reports and exits.
 */
#include "q4_board.h"

extern uint32_t __q4_data_load[];
extern uint32_t __q4_data_start[];
extern uint32_t __q4_data_end[];
extern uint32_t __q4_bss_start[];
extern uint32_t __q4_bss_end[];

int main(void);
void reset(void) __attribute__((noreturn, used));
void trap_handler(void) __attribute__((noreturn, used, aligned(4)));

__asm__(".section .vectors, \"ax\"\n"
        ".global _start\n"
        "_start:\n"
        "    la sp, __q4_stack_top\n"
        "    j reset\n"
        ".text\n");

void trap_handler(void)
{
    uint32_t cause;
    __asm__ volatile(".option push\n\t.option arch, +zicsr\n\t"
                     "csrr %0, mcause\n\t.option pop"
                     : "=r"(cause));
    board_report_u32("fault", cause);
    board_exit(Q4_EXIT_FAULT);
}

void reset(void)
{
    const uint32_t *from = __q4_data_load;
    for (uint32_t *to = __q4_data_start; to < __q4_data_end; ++to) {
        *to = *from++;
    }
    for (uint32_t *word = __q4_bss_start; word < __q4_bss_end; ++word) {
        *word = 0u;
    }
    __asm__ volatile(".option push\n\t.option arch, +zicsr\n\t"
                     "csrw mtvec, %0\n\t.option pop"
                     :
                     : "r"(trap_handler));
    board_exit((uint32_t)main());
}
