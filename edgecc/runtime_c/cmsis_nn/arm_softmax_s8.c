/*
 * edgecc: arm_softmax_s8 of the CMSIS-NN v6 API (independent implementation from the API
 * documentation and TFLite's int8 reference softmax, whose fixed-point exp and reciprocal are
 * gemmlowp's; see README.md and edgecc/backends/cmsis/cmsis_reference.py, its numpy model).
 *
 * Fixed-point formats: Qm.n is an int32 with m integer and n = 31 - m fraction bits.
 *  - d = x - max(row) <= 0 is scaled to Q5.26: SRDHM(d * 2^shift, mult);
 *  - exp(d) in Q0.31 (exp_on_negative_values); the row's sum of exps in Q12.19;
 *  - 1 / sum from 1 / (1 + t), t in [0, 1) (Newton-Raphson, three steps);
 *  - out = exp(d) / sum in units of 1/256, minus 128, clamped; elements with d < diff_min
 *    give -128.
 */
#include "arm_nnfunctions.h"
#include "arm_nn_requantize.h"

#define EDGECC_NN_SOFTMAX_ACCUM_BITS 12

/* Rounding divide by 2^e, halves away from zero, for e in [0, 62]. */
static int32_t edgecc_nn_rdbp64(const int64_t x, const int32_t e)
{
    const int64_t mask = (INT64_C(1) << e) - 1;
    const int64_t remainder = x & mask;
    const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (int32_t)((x >> e) + (remainder > threshold ? 1 : 0));
}

static int32_t edgecc_nn_count_leading_zeros(const uint32_t x)
{
    int32_t n = 0;
    uint32_t bit = UINT32_C(1) << 31;
    while (n < 32 && (x & bit) == 0) {
        n++;
        bit >>= 1;
    }
    return n;
}

/* d * 2^shift scaled by mult into Q5.26 (d >= diff_min keeps it in range). */
static int32_t edgecc_nn_softmax_scale(const int32_t diff, const int32_t mult, const int32_t shift)
{
    int64_t v = (int64_t)diff * ((int64_t)1 << shift);
    v = v < INT32_MIN ? INT32_MIN : (v > INT32_MAX ? INT32_MAX : v);
    return edgecc_nn_srdhm((int32_t)v, mult);
}

void arm_softmax_s8(const int8_t *input,
                    const int32_t num_rows,
                    const int32_t row_size,
                    const int32_t mult,
                    const int32_t shift,
                    const int32_t diff_min,
                    int8_t *output)
{
    const int32_t s = shift < 0 ? 0 : (shift > 31 ? 31 : shift);
    int32_t row;
    for (row = 0; row < num_rows; row++) {
        const int8_t *in = input + row * row_size;
        int8_t *out = output + row * row_size;
        int32_t max = INT8_MIN;
        int32_t sum = 0;
        int32_t headroom;
        int32_t bits_over_unit;
        int32_t scale;
        int32_t c;
        for (c = 0; c < row_size; c++) {
            max = in[c] > max ? in[c] : max;
        }
        for (c = 0; c < row_size; c++) {
            const int32_t diff = (int32_t)in[c] - max;
            if (diff >= diff_min) {
                const int32_t e = edgecc_nn_exp_on_negative_values(
                    edgecc_nn_softmax_scale(diff, mult, s));
                sum += edgecc_nn_rdbp(e, EDGECC_NN_SOFTMAX_ACCUM_BITS); /* Q0.31 -> Q12.19 */
            }
        }
        if (sum <= 0) { /* no element within diff_min of the maximum (diff_min > 0) */
            for (c = 0; c < row_size; c++) {
                out[c] = INT8_MIN;
            }
            continue;
        }
        /* sum = 2^(12 - headroom) * (1 + t), t in [0, 1) */
        headroom = edgecc_nn_count_leading_zeros((uint32_t)sum);
        bits_over_unit = EDGECC_NN_SOFTMAX_ACCUM_BITS - headroom;
        scale = edgecc_nn_one_over_one_plus_x(
            (int32_t)(((uint32_t)sum << headroom) - (UINT32_C(1) << 31)));
        for (c = 0; c < row_size; c++) {
            const int32_t diff = (int32_t)in[c] - max;
            int32_t value = INT8_MIN;
            if (diff >= diff_min) {
                const int32_t e = edgecc_nn_exp_on_negative_values(
                    edgecc_nn_softmax_scale(diff, mult, s));
                /* e / sum in Q0.31, then to units of 1/256. The exponent exceeds 31 when the
                 * sum passes 2^28 (hundreds of elements near the maximum): TFLite's reference
                 * asserts there; each probability is at most 1/512 and this gives 0. */
                value = edgecc_nn_rdbp64(edgecc_nn_srdhm(scale, e), bits_over_unit + 31 - 8);
                value += INT8_MIN;
                value = edgecc_nn_clamp(value, INT8_MIN, INT8_MAX);
            }
            out[c] = (int8_t)value;
        }
    }
}
