/*
 * q4_board.h - the board harness interface every q4sdk firmware is written against.
 *
 * Each board folder under boards/ provides these functions (often from the shared files in
 * boards/_common/). Firmware calls board_init() first and board_exit() last; main() returning
 * is the same as board_exit() with its return value.
 *
 * Results are printed as line records "@q4 <key> <value>\n" that q4sdk.firmware parses.
 */
#ifndef Q4_BOARD_H
#define Q4_BOARD_H

#include <stdint.h>

/* Exit codes the harness itself uses (firmware uses 0 for success and 1..99 for its own). */
#define Q4_EXIT_FAULT 120u /* a CPU fault or an unexpected interrupt */

void board_init(void);

/* Console output (UART, semihosting or stdio, see the board's board.json "console"). */
void board_putc(char c);
void board_puts(const char *s);
void board_put_u32(uint32_t value);
void board_put_i32(int32_t value);

/* Record lines for the host: "@q4 <key> <value>\n". */
void board_report_u32(const char *key, uint32_t value);
void board_report_i32(const char *key, int32_t value);
void board_report_str(const char *key, const char *value);

/*
 * Timer. board_timer_start() zeroes the tick counter; board_timer_read() returns the ticks since.
 * The tick unit is the board's "timer.unit" (instructions under QEMU -icount, core cycles, or
 * nanoseconds on the host); "timer.instructions_per_tick" converts ticks to instructions.
 * Put Q4_TIMING_BARRIER() on both sides of a timed region so the compiler keeps the code inside.
 */
void board_timer_start(void);
uint32_t board_timer_read(void);
#define Q4_TIMING_BARRIER() __asm__ volatile("" ::: "memory")

/*
 * Stack high-water mark by painting. board_stack_paint() fills the unused part of the stack
 * below the caller's frame with a pattern; board_stack_used() returns the number of bytes from
 * the top of the stack down to the deepest overwritten word. Returns 0 where unsupported (host).
 */
void board_stack_paint(void);
uint32_t board_stack_used(void);

/* Ends the program with an exit status the host (QEMU, the OS) sees. Never returns. */
void board_exit(uint32_t code) __attribute__((noreturn));

#endif /* Q4_BOARD_H */
