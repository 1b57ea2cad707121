/*
 * arm_semihosting.c - board_exit() through Arm semihosting (BKPT 0xAB).
 *
 * SYS_EXIT_EXTENDED carries the exit status, so QEMU started with
 * "-semihosting-config enable=on,target=native" exits with that status. On a real board a
 * debugger with semihosting enabled must be attached (without one, BKPT faults).
 */
#include "q4_board.h"

#define SEMIHOST_SYS_WRITEC 0x03u
#define SEMIHOST_SYS_EXIT_EXTENDED 0x20u
#define SEMIHOST_ADP_STOPPED_APPLICATION_EXIT 0x20026u

static uint32_t semihost_call(uint32_t operation, const void *argument)
{
    register uint32_t r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* Console output through the debugger, for boards whose board.json says "console": "semihosting". */
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
