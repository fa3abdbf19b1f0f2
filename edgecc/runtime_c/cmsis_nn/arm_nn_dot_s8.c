/*
 * edgecc: the int8 dot products of the convolutions (internal helpers, declared and documented
 * in arm_nn_dot_s8.h).
 */
#include "arm_nn_dot_s8.h"

#define EDGECC_NN_PACK_BITS 23 /* packed word: w0 + w1 * 2^23, |w0|, |w1| <= 128 */

void edgecc_nn_dot4_s8(const int8_t *in, const int32_t in_step, const int8_t *w,
                       const int32_t w_step, const int32_t w_size, const int32_t rows,
                       const int32_t len, const int32_t input_offset, int32_t *acc)
{
    int32_t a0 = acc[0];
    int32_t a1 = acc[1];
    int32_t a2 = acc[2];
    int32_t a3 = acc[3];
    int32_t r;
    for (r = 0; r < rows; r++, in += in_step, w += w_step) {
        const int8_t *w1 = w + w_size;
        const int8_t *w2 = w1 + w_size;
        const int8_t *w3 = w2 + w_size;
        int32_t i;
        for (i = 0; i < len; i++) {
            const int32_t x = (int32_t)in[i] + input_offset;
            a0 += x * (int32_t)w[i];
            a1 += x * (int32_t)w1[i];
            a2 += x * (int32_t)w2[i];
            a3 += x * (int32_t)w3[i];
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

void edgecc_nn_dot1_s8(const int8_t *in, const int32_t in_step, const int8_t *w,
                       const int32_t w_step, const int32_t rows, const int32_t len,
                       const int32_t input_offset, int32_t *acc)
{
    int32_t a = acc[0];
    int32_t r;
    for (r = 0; r < rows; r++, in += in_step, w += w_step) {
        int32_t i;
        for (i = 0; i < len; i++) {
            a += ((int32_t)in[i] + input_offset) * (int32_t)w[i];
        }
    }
    acc[0] = a;
}

void edgecc_nn_pack4_s8(const int8_t *w, const int32_t len, int32_t *packed)
{
    const int32_t scale = (int32_t)1 << EDGECC_NN_PACK_BITS;
    int32_t i;
    for (i = 0; i < len; i++) {
        packed[2 * i] = (int32_t)w[i] + (int32_t)w[i + len] * scale;
        packed[2 * i + 1] = (int32_t)w[i + 2 * len] + (int32_t)w[i + 3 * len] * scale;
    }
}

int32_t edgecc_nn_pack_chunk(const int32_t input_offset)
{
    /* x in [-128, 127], |w| <= 128: |S0| <= chunk * max|x + input_offset| * 128 < 2^22 */
    const int32_t lo = input_offset - 128 < 0 ? 128 - input_offset : input_offset - 128;
    const int32_t hi = input_offset + 127 < 0 ? -(input_offset + 127) : input_offset + 127;
    const int32_t max_x = lo > hi ? lo : hi;
    const int32_t limit = ((int32_t)1 << (EDGECC_NN_PACK_BITS - 1)) - 1;
    return max_x > limit / 128 ? 0 : limit / (max_x * 128);
}

/* Adds the two sums in s = s0 + s1 * 2^23 (|s0| < 2^22) to acc[0] and acc[1]. */
static void edgecc_nn_unpack(const int64_t s, int32_t *acc)
{
    const int32_t low_mask = ((int32_t)1 << EDGECC_NN_PACK_BITS) - 1;
    int32_t s0 = (int32_t)(s & low_mask); /* s0 mod 2^23, sign-extended below */
    if (s0 > low_mask / 2) {
        s0 -= low_mask + 1;
    }
    acc[0] += s0;
    acc[1] += (int32_t)((s - s0) >> EDGECC_NN_PACK_BITS);
}

void edgecc_nn_dot4_packed_s8(const int8_t *in, const int32_t *packed, int32_t len,
                              const int32_t input_offset, const int32_t chunk, int32_t *acc)
{
    while (len > 0) {
        const int32_t n = len < chunk ? len : chunk;
        int64_t s01 = 0;
        int64_t s23 = 0;
        int32_t i;
        for (i = 0; i < n; i++) {
            const int32_t x = (int32_t)in[i] + input_offset;
            s01 += (int64_t)x * packed[2 * i];
            s23 += (int64_t)x * packed[2 * i + 1];
        }
        edgecc_nn_unpack(s01, acc);
        edgecc_nn_unpack(s23, acc + 2);
        in += n;
        packed += 2 * n;
        len -= n;
    }
}
