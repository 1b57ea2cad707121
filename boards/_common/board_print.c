/*
 * board_print.c - console helpers built on board_putc(), shared by every board.
 * No printf: the firmware stays freestanding and small.
 */
#include "q4_board.h"

void board_puts(const char *s)
{
    while (*s != '\0') {
        board_putc(*s++);
    }
}

void board_put_u32(uint32_t value)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    while (n > 0) {
        board_putc(digits[--n]);
    }
}

void board_put_i32(int32_t value)
{
    if (value < 0) {
        board_putc('-');
        board_put_u32(0u - (uint32_t)value);
    } else {
        board_put_u32((uint32_t)value);
    }
}

static void report_key(const char *key)
{
    board_puts("@q4 ");
    board_puts(key);
    board_putc(' ');
}

void board_report_u32(const char *key, uint32_t value)
{
    report_key(key);
    board_put_u32(value);
    board_putc('\n');
}

void board_report_i32(const char *key, int32_t value)
{
    report_key(key);
    board_put_i32(value);
    board_putc('\n');
}

void board_report_str(const char *key, const char *value)
{
    report_key(key);
    board_puts(value);
    board_putc('\n');
}
