/* startup.c: vector table and reset code for the Cortex-M boards edgecc runs under QEMU
 * (mps2-an386 Cortex-M4, mps2-an500 Cortex-M7, mps3-an547 Cortex-M55).
 *
 * Reset_Handler enables the FPU (and MVE on Cortex-M55) before any float code runs, copies
 * .data from flash to SRAM, zeroes .bss and calls main(); main's return value becomes the
 * semihosting exit code. A HardFault prints the fault registers and exits with code 3. */
#include <stdint.h>

#include "board.h"
#include "icount.h"
#include "semihost.h"

/* From the linker script (MACHINE.ld, rendered from board.ld.j2). */
extern uint32_t __data_load__[], __data_start__[], __data_end__[];
extern uint32_t __bss_start__[], __bss_end__[];
extern uint32_t __stack_limit__[], __stack_top__[];

int main(void);
void Reset_Handler(void) __attribute__((noreturn));
void HardFault_Handler(void);
void Default_Handler(void);
void hardfault_report(const uint32_t *frame, uint32_t exc_return);

#define SCB_VTOR (*(volatile uint32_t *)0xE000ED08u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define CPACR_CP10_CP11_FULL (0xFu << 20)

#define STACK_PAINT 0x5AC0FFEEu
#define EXIT_HARDFAULT 3
#define EXIT_UNEXPECTED_EXCEPTION 4

/* Entry 0 is the initial stack pointer, the rest are handlers. */
typedef union {
    void (*handler)(void);
    uint32_t *stack_top;
} vector_t;

__attribute__((section(".vectors"), used))
const vector_t vector_table[16] = {
    {.stack_top = __stack_top__},
    {.handler = Reset_Handler},
    {.handler = Default_Handler},   /* NMI */
    {.handler = HardFault_Handler},
    {.handler = HardFault_Handler}, /* MemManage (escalates to HardFault unless enabled) */
    {.handler = HardFault_Handler}, /* BusFault */
    {.handler = HardFault_Handler}, /* UsageFault */
    {.handler = HardFault_Handler}, /* SecureFault (Armv8-M) */
    {.handler = 0},
    {.handler = 0},
    {.handler = 0},
    {.handler = Default_Handler}, /* SVCall */
    {.handler = Default_Handler}, /* DebugMonitor */
    {.handler = 0},
    {.handler = Default_Handler}, /* PendSV */
    {.handler = SysTick_Handler},
};

/* Fills the unused part of the stack (below this frame, with a margin) with STACK_PAINT. */
static void paint_stack(void)
{
    uint32_t *sp, *p;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (p = __stack_limit__; p < sp - 16;) *p++ = STACK_PAINT;
}

uint32_t board_stack_used(void)
{
    const uint32_t *p = __stack_limit__;
    while (p < __stack_top__ && *p == STACK_PAINT) ++p;
    return (uint32_t)((uintptr_t)__stack_top__ - (uintptr_t)p);
}

void Reset_Handler(void)
{
    uint32_t *src, *dst;

    /* Full access to coprocessors 10 and 11 (FPU, MVE) before the first float instruction. */
    SCB_CPACR |= CPACR_CP10_CP11_FULL;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    SCB_VTOR = (uint32_t)(uintptr_t)vector_table;

    for (src = __data_load__, dst = __data_start__; dst < __data_end__;) *dst++ = *src++;
    for (dst = __bss_start__; dst < __bss_end__;) *dst++ = 0;
    paint_stack();

    sh_exit(main());
}

/* Passes the stacked exception frame (r0-r3, r12, lr, pc, xpsr) to hardfault_report. */
__attribute__((naked)) void HardFault_Handler(void)
{
    __asm__ volatile(
        "tst lr, #4\n\t"
        "ite eq\n\t"
        "mrseq r0, msp\n\t"
        "mrsne r0, psp\n\t"
        "mov r1, lr\n\t"
        "b hardfault_report\n\t");
}

void hardfault_report(const uint32_t *frame, uint32_t exc_return)
{
    sh_unbuffered();
    sh_puts("\nHardFault: pc=0x");
    sh_put_hex32(frame[6]);
    sh_puts(" lr=0x");
    sh_put_hex32(frame[5]);
    sh_puts(" CFSR=0x");
    sh_put_hex32(SCB_CFSR);
    sh_puts(" HFSR=0x");
    sh_put_hex32(SCB_HFSR);
    sh_puts(" MMFAR=0x");
    sh_put_hex32(SCB_MMFAR);
    sh_puts(" BFAR=0x");
    sh_put_hex32(SCB_BFAR);
    sh_puts(" EXC_RETURN=0x");
    sh_put_hex32(exc_return);
    sh_puts("\n");
    sh_exit(EXIT_HARDFAULT);
}

void Default_Handler(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    sh_unbuffered();
    sh_puts("\nunexpected exception ");
    sh_put_u32(ipsr & 0x1FFu);
    sh_puts("\n");
    sh_exit(EXIT_UNEXPECTED_EXCEPTION);
}
