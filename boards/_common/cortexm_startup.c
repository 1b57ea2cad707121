/*
 * cortexm_startup.c - vector table and reset handler shared by the Cortex-M boards.
 *
 * Reset: copy .data from flash to RAM, zero .bss, enable the FPU (CP10/CP11, which also covers
 * Helium/MVE) when the code is built for one, run main() and pass its return value to
 * board_exit(). Any fault or unexpected interrupt prints "@q4 fault <exception number>" and
 * exits with Q4_EXIT_FAULT, so a crash under QEMU ends the run instead of hanging it.
 */
#include <string.h>

#include "q4_board.h"

extern uint32_t __q4_stack_top[];
extern uint32_t __q4_data_load[];
extern uint32_t __q4_data_start[];
extern uint32_t __q4_data_end[];
extern uint32_t __q4_bss_start[];
extern uint32_t __q4_bss_end[];

int main(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define CPACR_CP10_CP11_FULL (0xFu << 20)

void Reset_Handler(void) __attribute__((noreturn));
void Default_Handler(void) __attribute__((noreturn));
void SysTick_Handler(void);

void Reset_Handler(void)
{
    memcpy(__q4_data_start, __q4_data_load,
           (size_t)((uintptr_t)__q4_data_end - (uintptr_t)__q4_data_start));
    memset(__q4_bss_start, 0, (size_t)((uintptr_t)__q4_bss_end - (uintptr_t)__q4_bss_start));
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    SCB_CPACR |= CPACR_CP10_CP11_FULL;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    board_exit((uint32_t)main());
}

void Default_Handler(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    board_report_u32("fault", ipsr & 0x1FFu);
    board_exit(Q4_EXIT_FAULT);
}

/* A board whose timer runs on SysTick overrides this. */
__attribute__((weak)) void SysTick_Handler(void)
{
    Default_Handler();
}

/* Core exceptions only: the harness enables no peripheral interrupt. */
__attribute__((section(".vectors"), used)) static void (*const vector_table[16])(void) = {
    (void (*)(void))__q4_stack_top, /* initial SP */
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    Default_Handler, /* SecureFault (v8-M) */
    0,
    0,
    0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
};
