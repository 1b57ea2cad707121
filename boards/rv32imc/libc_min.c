/*
 * libc_min.c - the four memory functions GCC may call even in freestanding code
 * (struct copies, zero-initialised locals). This board links without a C library.
 */
#include <stddef.h>

void *memcpy(void *restrict dest, const void *restrict src, size_t n)
{
    unsigned char *d = dest;
    const unsigned char *s = src;
    while (n-- != 0u) {
        *d++ = *s++;
    }
    return dest;
}

void *memmove(void *dest, const void *src, size_t n)
{
    unsigned char *d = dest;
    const unsigned char *s = src;
    if (d < s) {
        while (n-- != 0u) {
            *d++ = *s++;
        }
    } else {
        while (n-- != 0u) {
            d[n] = s[n];
        }
    }
    return dest;
}

void *memset(void *dest, int value, size_t n)
{
    unsigned char *d = dest;
    while (n-- != 0u) {
        *d++ = (unsigned char)value;
    }
    return dest;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a;
    const unsigned char *y = b;
    for (size_t i = 0; i < n; ++i) {
        if (x[i] != y[i]) {
            return (int)x[i] - (int)y[i];
        }
    }
    return 0;
}
