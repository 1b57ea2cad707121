/*
 * startup.c - reset entry of the generic rv32imc part.
 *
 * _start (placed first in flash, at the reset address) sets the stack pointer and jumps to
 * reset(), which copies .data, zeroes .bss, runs main() and passes its result to board_exit().
 * Traps are not expected: mtvec points at a handler that reports and exits.
 *
 * Under QEMU's virt machine flash is RAM too (the board's "flash" is the start of its DRAM), so
 * reset makes it read-only with a locked PMP region (locked entries bind machine mode as well):
 * a stack overflow, which runs down from the bottom of RAM into flash, then faults (store access
 * fault, mcause 7) instead of overwriting code. On a part with real flash it changes nothing.
 */
#include "q4_board.h"

extern uint32_t __q4_data_load[];
extern uint32_t __q4_data_start[];
extern uint32_t __q4_data_end[];
extern uint32_t __q4_bss_start[];
extern uint32_t __q4_bss_end[];
extern uint32_t __q4_flash_start[];
extern uint32_t __q4_flash_end[];

#define PMP_R 0x01u
#define PMP_X 0x04u
#define PMP_TOR 0x08u /* the region is [pmpaddr(i-1), pmpaddr(i)) */
#define PMP_L 0x80u   /* locked: applies to machine mode too */

int main(void);
void reset(void) __attribute__((noreturn, used));
void trap_handler(void) __attribute__((noreturn, used));
void trap_entry(void);

/* trap_entry (mtvec) restarts the stack first: the trap may be a stack overflow. */
__asm__(".section .vectors, \"ax\"\n"
        ".global _start\n"
        "_start:\n"
        "    la sp, __q4_stack_top\n"
        "    j reset\n"
        ".balign 4\n"
        ".global trap_entry\n"
        "trap_entry:\n"
        "    la sp, __q4_stack_top\n"
        "    j trap_handler\n"
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
                     "csrw mtvec, %0\n\t"
                     "csrw pmpaddr0, %1\n\t"
                     "csrw pmpaddr1, %2\n\t"
                     "csrw pmpcfg0, %3\n\t.option pop"
                     :
                     : "r"(trap_entry), "r"((uintptr_t)__q4_flash_start >> 2),
                       "r"((uintptr_t)__q4_flash_end >> 2),
                       "r"((PMP_L | PMP_TOR | PMP_X | PMP_R) << 8));
    board_exit((uint32_t)main());
}
