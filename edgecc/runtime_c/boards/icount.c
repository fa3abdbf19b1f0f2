/* icount.c: SysTick as a 64-bit tick counter (24-bit hardware counter + wrap count). */
#include "icount.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)

#define CSR_ENABLE (1u << 0)
#define CSR_TICKINT (1u << 1)
#define CSR_CLKSOURCE_CPU (1u << 2)
#define RELOAD 0x00FFFFFFu

static volatile uint32_t wraps;

void SysTick_Handler(void)
{
    ++wraps;
}

void icount_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = RELOAD;
    SYST_CVR = 0; /* any write clears the counter; it reloads on the next tick */
    wraps = 0;
    SYST_CSR = CSR_CLKSOURCE_CPU | CSR_TICKINT | CSR_ENABLE;
}

/* The counter was cleared to 0 at start and reloads to RELOAD on the next tick, so after
 * w wraps (w counter underflows to 0) the tick count is w * 2^24 + ((RELOAD + 1 - value) mod
 * 2^24). A wrap whose interrupt is still pending counts too; re-read if a wrap happened
 * while reading. */
uint64_t icount_ticks(void)
{
    uint32_t count, pending, value;
    do {
        count = wraps;
        pending = SCB_ICSR & ICSR_PENDSTSET;
        value = SYST_CVR;
    } while (count != wraps || pending != (SCB_ICSR & ICSR_PENDSTSET));
    if (pending) ++count;
    return (uint64_t)count * (RELOAD + 1u) + ((RELOAD + 1u - value) & RELOAD);
}

uint64_t icount_ticks_to_instructions(uint64_t ticks)
{
    return ticks * 1000u / EDGECC_CPU_MHZ;
}
