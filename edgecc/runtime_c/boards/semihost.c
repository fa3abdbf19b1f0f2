/* semihost.c: Arm semihosting calls and a tiny printf-free formatter.
 * A semihosting call is "bkpt 0xAB" in Thumb state with the operation number in r0 and
 * its argument in r1; the host (QEMU, a debugger) performs it and returns in r0. */
#include <string.h>

#include "semihost.h"

#define SYS_WRITEC 0x03u
#define SYS_WRITE0 0x04u
#define SYS_EXIT 0x18u
#define SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static char line[128];
static uint32_t line_len;
static int unbuffered;

static uint32_t semihost_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_flush(void)
{
    if (line_len == 0) return;
    line[line_len] = '\0';
    semihost_call(SYS_WRITE0, line);
    line_len = 0;
}

void sh_unbuffered(void)
{
    sh_flush();
    unbuffered = 1;
}

void sh_putc(char c)
{
    if (unbuffered) {
        semihost_call(SYS_WRITEC, &c);
        return;
    }
    line[line_len++] = c;
    if (c == '\n' || line_len == sizeof(line) - 1) sh_flush();
}

void sh_puts(const char *s)
{
    while (*s) sh_putc(*s++);
}

void sh_put_u64(uint64_t v)
{
    char digits[21];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0);
    while (n > 0) sh_putc(digits[--n]);
}

void sh_put_u32(uint32_t v)
{
    sh_put_u64(v);
}

void sh_put_i32(int32_t v)
{
    if (v < 0) {
        sh_putc('-');
        sh_put_u64((uint64_t)(-(int64_t)v));
    } else {
        sh_put_u64((uint64_t)v);
    }
}

static void put_hex_digit(uint32_t d)
{
    sh_putc("0123456789abcdef"[d & 0xFu]);
}

void sh_put_hex32(uint32_t v)
{
    int shift;
    for (shift = 28; shift >= 0; shift -= 4) put_hex_digit(v >> shift);
}

void sh_put_hex_bytes(const void *data, uint32_t bytes)
{
    const uint8_t *p = (const uint8_t *)data;
    uint32_t i;
    for (i = 0; i < bytes; ++i) {
        put_hex_digit((uint32_t)p[i] >> 4);
        put_hex_digit(p[i]);
    }
}

void sh_put_float_bits(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof(bits));
    sh_puts("0x");
    sh_put_hex32(bits);
}

void sh_exit(int code)
{
    /* SYS_EXIT_EXTENDED takes {reason, exit code}; plain SYS_EXIT on AArch32 can only say
     * "success" or "failure", so it is the fallback if the host ignores the extended call. */
    uint32_t block[2];
    sh_flush();
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)code;
    semihost_call(SYS_EXIT_EXTENDED, block);
    semihost_call(SYS_EXIT, (const void *)(code == 0 ? ADP_STOPPED_APPLICATION_EXIT : 0x20023u));
    for (;;) {
    }
}
