/* Classify images with the edgecc-generated digits model.
 * usage: digits_demo IMAGES.bin   (N images of 1x1x8x8 float32, pixels / 16) */
#include <stdio.h>

#include "digits.h"

int main(int argc, char **argv)
{
    static float image[DIGITS_INPUT0_SIZE];
    static float logits[DIGITS_OUTPUT0_SIZE];
    FILE *f;
    int n = 0;
    if (argc != 2 || !(f = fopen(argv[1], "rb"))) {
        fprintf(stderr, "usage: %s IMAGES.bin\n", argv[0]);
        return 2;
    }
    while (fread(image, sizeof image, 1, f) == 1) {
        unsigned best = 0, k;
        if (digits_run(image, logits) != DIGITS_OK) {
            fclose(f);
            return 1;
        }
        for (k = 1; k < DIGITS_OUTPUT0_SIZE; ++k)
            if (logits[k] > logits[best]) best = k;
        printf("image %d: predicted %u\n", n++, best);
    }
    fclose(f);
    return 0;
}
