/*
 * edgecc: shared fixed-point helpers of the CMSIS-NN-compatible functions (internal, not part
 * of the CMSIS-NN API): the exp and reciprocal of TFLite's int8 softmax, i.e. gemmlowp's
 * exp_on_negative_values and one_over_one_plus_x_for_x_in_0_1, written from their math.
 * Declared in arm_nn_requantize.h; numpy model in edgecc/backends/cmsis/cmsis_reference.py.
 */
#include "arm_nn_requantize.h"

/* x * 2^e saturated to int32 (gemmlowp's SaturatingRoundingMultiplyByPOT for e > 0). */
static int32_t edgecc_nn_sat_mul_pot(const int32_t x, const int32_t e)
{
    const int32_t threshold = (int32_t)((INT64_C(1) << (31 - e)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((int64_t)x * ((int64_t)1 << e));
}

/* exp(a) for a in [-1/4, 0), a and the result in Q0.31: Taylor series around -1/8. */
static int32_t edgecc_nn_exp_quarter(const int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* exp(-1/8) in Q0.31 */
    const int32_t one_third = 715827883;             /* 1/3 in Q0.31 */
    const int32_t x = a + (1 << 28);                 /* a + 1/8 */
    const int32_t x2 = edgecc_nn_srdhm(x, x);
    const int32_t x3 = edgecc_nn_srdhm(x2, x);
    const int32_t x4 = edgecc_nn_srdhm(x2, x2);
    const int32_t x4_over_4 = edgecc_nn_rdbp(x4, 2);
    /* x^4/24 + x^3/6 + x^2/2 = ((x^4/4 + x^3) / 3 + x^2) / 2 */
    const int32_t tail = edgecc_nn_rdbp(edgecc_nn_srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth + edgecc_nn_srdhm(exp_minus_one_eighth, x + tail);
}

/* exp(a) for a <= 0 in Q5.26, result in Q0.31: exp of a mod 1/4 times the factors
 * exp(-2^k) (k = -2..4) of the bits of the rest. */
int32_t edgecc_nn_exp_on_negative_values(const int32_t a)
{
    static const int32_t exp_of_minus_pow2[7] = {
        1672461947, /* exp(-1/4) in Q0.31 */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1) */
        290630308,  /* exp(-2) */
        39332535,   /* exp(-4) */
        720401,     /* exp(-8) */
        242         /* exp(-16) */
    };
    const int32_t one_quarter = 1 << 24; /* 1/4 in Q5.26 */
    const int32_t a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter;
    const int32_t remainder = a_mod_quarter_minus_quarter - a; /* multiple of 1/4, >= 0 */
    int32_t result = edgecc_nn_exp_quarter(edgecc_nn_sat_mul_pot(a_mod_quarter_minus_quarter, 5));
    int32_t k;
    for (k = 0; k < 7; k++) {
        if (remainder & ((int32_t)1 << (24 + k))) {
            result = edgecc_nn_srdhm(result, exp_of_minus_pow2[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1) in Q0.31, result in Q0.31. */
int32_t edgecc_nn_one_over_one_plus_x(const int32_t a)
{
    const int32_t c48_over_17 = 1515870810;      /* 48/17 in Q2.29 */
    const int32_t c_neg_32_over_17 = -1010580540; /* -32/17 in Q2.29 */
    const int64_t sum = (int64_t)a + INT32_MAX;
    /* (1 + a) / 2 in Q0.31: half the sum rounded half away from zero */
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = c48_over_17 + edgecc_nn_srdhm(half_denominator, c_neg_32_over_17); /* Q2.29 */
    int32_t i;
    for (i = 0; i < 3; i++) {
        const int32_t one_minus_dx = (1 << 29) - edgecc_nn_srdhm(half_denominator, x);
        x = x + edgecc_nn_sat_mul_pot(edgecc_nn_srdhm(x, one_minus_dx), 2);
    }
    /* x ~ 1 / half_denominator in Q2.29 = 1 / (1 + a) in Q1.30; to Q0.31 */
    return edgecc_nn_sat_mul_pot(x, 1);
}

