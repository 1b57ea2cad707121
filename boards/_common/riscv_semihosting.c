/*
 * riscv_semihosting.c - console and board_exit() through RISC-V semihosting.
 *
 * The semihosting call is the uncompressed sequence "slli zero,zero,0x1f; ebreak;
 * srai zero,zero,7", which a debugger (OpenOCD) or QEMU recognises around the EBREAK.
 */
#include "q4_board.h"

#define SEMIHOST_SYS_WRITEC 0x03u
#define SEMIHOST_SYS_EXIT_EXTENDED 0x20u
#define SEMIHOST_ADP_STOPPED_APPLICATION_EXIT 0x20026u

static uint32_t semihost_call(uint32_t operation, const void *argument)
{
    register uint32_t a0 __asm__("a0") = operation;
    register const void *a1 __asm__("a1") = argument;
    __asm__ volatile(".option push\n\t"
                     ".option norvc\n\t"
                     ".balign 16\n\t"
                     "slli zero, zero, 0x1f\n\t"
                     "ebreak\n\t"
                     "srai zero, zero, 0x7\n\t"
                     ".option pop"
                     : "+r"(a0)
                     : "r"(a1)
                     : "memory");
    return a0;
}

void semihost_putc(char c)
{
    semihost_call(SEMIHOST_SYS_WRITEC, &c);
}

void board_exit(uint32_t code)
{
    const uint32_t block[2] = {SEMIHOST_ADP_STOPPED_APPLICATION_EXIT, code};
    semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, block);
    for (;;) {
        /* No debugger took the exit: stop here. */
    }
}
