/* board.h: what startup.c offers the application besides the vector table. */
#ifndef EDGECC_BOARD_H
#define EDGECC_BOARD_H

#include <stdint.h>

/* Peak stack use so far, in bytes: Reset_Handler fills the stack with a pattern before main()
 * runs, and this finds the deepest word that no longer holds it. */
uint32_t board_stack_used(void);

#endif /* EDGECC_BOARD_H */
