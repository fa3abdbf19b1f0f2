/* icount.h: executed-instruction counting with SysTick, for QEMU runs with -icount shift=0.
 *
 * Under "-icount shift=0" QEMU's virtual clock advances exactly 1 ns per executed instruction,
 * and SysTick (CLKSOURCE = processor clock) counts at the board's CPU clock: 25 MHz on
 * mps2-an386 / mps2-an500, 32 MHz on mps3-an547. So one SysTick tick is 40 instructions on
 * the MPS2 boards and 31.25 on the MPS3 board (measured with a known loop; see
 * edgecc/targets/cortex_m.py). The count is deterministic; its resolution is one tick.
 * On real silicon the same code counts CPU cycles instead. */
#ifndef EDGECC_ICOUNT_H
#define EDGECC_ICOUNT_H

#include <stdint.h>

/* CPU clock feeding SysTick, in MHz (set per board by the build). */
#ifndef EDGECC_CPU_MHZ
#define EDGECC_CPU_MHZ 25u
#endif

/* Starts SysTick free-running from the processor clock (24-bit down-counter; its wraps are
 * counted in SysTick_Handler). */
void icount_start(void);
/* Ticks since icount_start(). */
uint64_t icount_ticks(void);
/* Ticks converted to executed instructions under -icount shift=0 (1 ns per instruction). */
uint64_t icount_ticks_to_instructions(uint64_t ticks);

void SysTick_Handler(void);

#endif /* EDGECC_ICOUNT_H */
