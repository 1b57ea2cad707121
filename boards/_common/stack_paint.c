/*
 * stack_paint.c - stack high-water mark by painting, for bare-metal boards.
 *
 * The linker script reserves the stack as [__q4_stack_bottom, __q4_stack_top). Painting fills
 * everything below the caller's frame with a pattern; the deepest word no longer holding the
 * pattern marks the high-water mark.
 */
#include "q4_board.h"

#define STACK_PAINT_WORD 0xA5C3A5C3u
#define STACK_PAINT_GUARD_WORDS 32u /* left unpainted below the current SP (exception frames) */

extern uint32_t __q4_stack_bottom[];
extern uint32_t __q4_stack_top[];

static uint32_t *current_sp(void)
{
    uint32_t *sp;
#if defined(__riscv)
    __asm__ volatile("mv %0, sp" : "=r"(sp));
#else
    __asm__ volatile("mov %0, sp" : "=r"(sp));
#endif
    return sp;
}

__attribute__((noinline)) void board_stack_paint(void)
{
    uint32_t *end = current_sp() - STACK_PAINT_GUARD_WORDS;
    for (uint32_t *word = __q4_stack_bottom; word < end; ++word) {
        *(volatile uint32_t *)word = STACK_PAINT_WORD;
    }
}

uint32_t board_stack_used(void)
{
    const uint32_t *word = __q4_stack_bottom;
    while (word < __q4_stack_top && *(const volatile uint32_t *)word == STACK_PAINT_WORD) {
        ++word;
    }
    return (uint32_t)((uintptr_t)__q4_stack_top - (uintptr_t)word);
}
