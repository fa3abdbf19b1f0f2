/*
 * edgecc: integer helpers shared by the CMSIS-NN-compatible functions in this directory
 * (internal; not part of the CMSIS-NN API, hence the edgecc_nn_ prefix).
 *
 * The TFLite int8 requantization (see shared QUANT.md and edgecc/ir/quant.py, the numpy model
 * these match bit for bit):
 *   requantize(acc, M0, shift) = RDBP(SRDHM(sat32(acc * 2^max(shift, 0)), M0), max(-shift, 0))
 * Signed right shifts are arithmetic (GCC, Clang and Arm Compiler all define them so).
 * The softmax exp and reciprocal are defined in arm_nn_requantize.c.
 */
#ifndef EDGECC_NN_REQUANTIZE_H
#define EDGECC_NN_REQUANTIZE_H

#include <stdint.h>

/* Saturating rounding doubling high multiply: (a * b + nudge) / 2^31 truncated toward zero,
 * nudge = 2^30 for a non-negative product and 1 - 2^30 otherwise; a = b = INT32_MIN
 * saturates to INT32_MAX. That is floor((a * b + 2^30) / 2^31) (exact halves toward +inf):
 * for a * b < 0 the truncated quotient of a * b + 1 - 2^30 is its ceiling, which equals
 * floor((a * b + 1 - 2^30 + 2^31 - 1) / 2^31). */
static inline int32_t edgecc_nn_srdhm(const int32_t a, const int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + (INT64_C(1) << 30)) >> 31);
}

/* Rounding divide by 2^exponent (exponent in [0, 31]), halves away from zero. */
static inline int32_t edgecc_nn_rdbp(const int32_t x, const int32_t exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* acc * M0 * 2^(shift - 31) with TFLite's two roundings; shift is clamped to [-31, 31]
 * (a left shift saturates to int32; the rounding divide by 2^0 is the identity). */
static inline int32_t edgecc_nn_requantize(const int32_t acc, const int32_t m0, const int32_t shift)
{
    if (shift > 0) {
        const int64_t v = (int64_t)acc * ((int64_t)1 << (shift > 31 ? 31 : shift));
        return edgecc_nn_srdhm(v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v),
                               m0);
    }
    return edgecc_nn_rdbp(edgecc_nn_srdhm(acc, m0), shift < -31 ? 31 : -shift);
}

/* Clamp to [lo, hi]. */
static inline int32_t edgecc_nn_clamp(const int32_t x, const int32_t lo, const int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* One int8 output: clamp(requantize(acc, m0, shift) + output_offset, lo, hi). */
static inline int8_t edgecc_nn_output(const int32_t acc, const int32_t m0, const int32_t shift,
                                      const int32_t output_offset, const int32_t lo,
                                      const int32_t hi)
{
    return (int8_t)edgecc_nn_clamp(edgecc_nn_requantize(acc, m0, shift) + output_offset, lo, hi);
}

/* out[j] = edgecc_nn_output(acc[j], multiplier[j], shift[j], output_offset, lo, hi), j < n.
 * (Taking the parameters by value keeps them in registers: the int8 stores may alias.) */
static inline void edgecc_nn_outputs(const int32_t *acc, const int32_t n,
                                     const int32_t *multiplier, const int32_t *shift,
                                     const int32_t output_offset, const int32_t lo,
                                     const int32_t hi, int8_t *out)
{
    int32_t j;
    for (j = 0; j < n; j++) {
        out[j] = edgecc_nn_output(acc[j], multiplier[j], shift[j], output_offset, lo, hi);
    }
}

/* First and one-past-last filter tap k in [0, k_size) whose input position
 * origin + k * dilation lies in [0, in_size). Empty range: *k_end <= *k_begin. */
static inline void edgecc_nn_valid_taps(const int32_t origin, const int32_t dilation,
                                        const int32_t k_size, const int32_t in_size,
                                        int32_t *k_begin, int32_t *k_end)
{
    int32_t b = 0;
    int32_t e = k_size;
    if (origin < 0) {
        b = (-origin + dilation - 1) / dilation;
    }
    if (origin + (e - 1) * dilation >= in_size) {
        e = in_size - origin <= 0 ? 0 : (in_size - origin + dilation - 1) / dilation;
    }
    *k_begin = b;
    *k_end = e;
}

/* exp(a) for a <= 0 given in Q5.26; the result in Q0.31 (exp(0) = INT32_MAX). */
int32_t edgecc_nn_exp_on_negative_values(int32_t a);

/* 1 / (1 + a) for a in [0, 1) given in Q0.31; the result in Q0.31. */
int32_t edgecc_nn_one_over_one_plus_x(int32_t a);

#endif /* EDGECC_NN_REQUANTIZE_H */
