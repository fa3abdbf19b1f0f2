/* Classify the held-out digits on a Cortex-M board under QEMU with the edgecc-generated model.
 *
 * Built by demo.py with edgecc.targets.cortex_m.build_program: the board support (startup,
 * semihosting console, SysTick instruction counting) comes from edgecc/runtime_c/boards/,
 * heldout_images.h (HELDOUT_COUNT images and labels) is written by demo.py. For each image it
 * prints one line over semihosting:
 *   image I label L predicted P instructions N logits HEX
 * (HEX: the 10 float logits' bytes, to compare bit for bit with a host build), then
 *   stack B       peak stack use in bytes
 * and exits with 0, or 1 when digits_run() fails. */
#include <stdint.h>

#include "board.h"
#include "digits.h"
#include "heldout_images.h"
#include "icount.h"
#include "semihost.h"

static float logits[DIGITS_OUTPUT0_SIZE];

int main(void)
{
    uint32_t i, k;
    sh_puts("edgecc: digits on the board, ");
    sh_put_u32(HELDOUT_COUNT);
    sh_puts(" held-out images\n");
    for (i = 0; i < HELDOUT_COUNT; ++i) {
        uint32_t best = 0;
        uint64_t ticks;
        icount_start();
        if (digits_run(heldout_images[i], logits) != DIGITS_OK) {
            sh_puts("error: digits_run failed\n");
            return 1;
        }
        ticks = icount_ticks();
        for (k = 1; k < DIGITS_OUTPUT0_SIZE; ++k) {
            if (logits[k] > logits[best]) best = k;
        }
        sh_puts("image ");
        sh_put_u32(i);
        sh_puts(" label ");
        sh_put_u32(heldout_labels[i]);
        sh_puts(" predicted ");
        sh_put_u32(best);
        sh_puts(" instructions ");
        sh_put_u64(icount_ticks_to_instructions(ticks));
        sh_puts(" logits ");
        sh_put_hex_bytes(logits, sizeof logits);
        sh_puts("\n");
    }
    sh_puts("stack ");
    sh_put_u32(board_stack_used());
    sh_puts("\n");
    return 0;
}
