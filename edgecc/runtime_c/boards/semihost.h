/* semihost.h: console output and exit through Arm semihosting (bkpt 0xAB).
 * Works under qemu-system-arm -semihosting and under a debugger with semihosting enabled.
 * The formatter is printf-free: it prints strings, decimal integers and hex. */
#ifndef EDGECC_SEMIHOST_H
#define EDGECC_SEMIHOST_H

#include <stdint.h>

/* Writes one NUL-terminated string (buffered: flushed at each '\n' and at exit). */
void sh_puts(const char *s);
void sh_putc(char c);
void sh_put_u32(uint32_t v);
void sh_put_i32(int32_t v);
void sh_put_u64(uint64_t v);
/* Exactly 8 lowercase hex digits, no prefix. */
void sh_put_hex32(uint32_t v);
/* Each byte as 2 lowercase hex digits, no separators, in memory order. */
void sh_put_hex_bytes(const void *data, uint32_t bytes);
/* A float as its IEEE-754 bits ("0x3f800000"), bit-exact and free of float formatting. */
void sh_put_float_bits(float v);
void sh_flush(void);
/* From now on write each character at once (SYS_WRITEC): for fault handlers. */
void sh_unbuffered(void);

/* Flushes the console and ends the program with this exit code (SYS_EXIT_EXTENDED). */
void sh_exit(int code) __attribute__((noreturn));

#endif /* EDGECC_SEMIHOST_H */
