/*
 * edgecc: the int8 dot products of the convolutions in this directory (internal; not part of
 * the CMSIS-NN API, hence the edgecc_nn_ prefix). Defined in arm_nn_dot_s8.c, a translation
 * unit of their own: compiled apart from their callers, their inner loops get the registers
 * to themselves.
 *
 * Every sum is the exact int32 sum of (x + input_offset) * w over the terms given, added to
 * acc[]; x and w are int8.
 */
#ifndef EDGECC_NN_DOT_S8_H
#define EDGECC_NN_DOT_S8_H

#include <stdint.h>

/* acc[j] += sum over r < rows, i < len of (in[r * in_step + i] + input_offset) *
 * w[j * w_size + r * w_step + i], for j < 4: four filters w_size apart, over `rows` runs of
 * `len` contiguous values. */
void edgecc_nn_dot4_s8(const int8_t *in, int32_t in_step, const int8_t *w, int32_t w_step,
                       int32_t w_size, int32_t rows, int32_t len, int32_t input_offset,
                       int32_t *acc);

/* The same for one filter: acc[0] += sum of (in[r * in_step + i] + input_offset) *
 * w[r * w_step + i]. */
void edgecc_nn_dot1_s8(const int8_t *in, int32_t in_step, const int8_t *w, int32_t w_step,
                       int32_t rows, int32_t len, int32_t input_offset, int32_t *acc);

/* Packed filters. Four filters of len values, w + j * len for j < 4, packed in pairs into
 * 32-bit words: packed[2 i] = w0[i] + w1[i] * 2^23, packed[2 i + 1] = w2[i] + w3[i] * 2^23.
 * One 32 x 32 -> 64-bit multiply-accumulate of x with such a word then adds x * w0[i] +
 * (x * w1[i]) * 2^23 to a 64-bit sum S0 + S1 * 2^23, exactly; S0 and S1 are recovered exactly
 * from it as long as |S0| < 2^22, which bounds the terms summed between two recoveries (the
 * chunk). */
void edgecc_nn_pack4_s8(const int8_t *w, int32_t len, int32_t *packed);

/* Terms per chunk for this input offset (|x + input_offset| * 128 * chunk < 2^22), or 0 if not
 * even one fits. */
int32_t edgecc_nn_pack_chunk(int32_t input_offset);

/* acc[j] += sum over i < len of (in[i] + input_offset) * w_j[i], for the four filters packed by
 * edgecc_nn_pack4_s8; chunk from edgecc_nn_pack_chunk(input_offset), > 0. */
void edgecc_nn_dot4_packed_s8(const int8_t *in, const int32_t *packed, int32_t len,
                              int32_t input_offset, int32_t chunk, int32_t *acc);

#endif /* EDGECC_NN_DOT_S8_H */
