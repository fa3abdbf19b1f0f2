/*
 * edgecc: arm_elementwise_add_s8 and arm_elementwise_mul_s8 of the CMSIS-NN v6 API
 * (independent implementations from the API documentation and TFLite's int8 Add and Mul;
 * see README.md). Both inputs have block_size elements (no broadcasting).
 *
 * add: a = requant((x1 + input_1_offset) * 2^left_shift, input_1_mult, input_1_shift),
 *      b likewise, out = clamp(requant(a + b, out_mult, out_shift) + out_offset)
 * mul: out = clamp(requant((x1 + input_1_offset) * (x2 + input_2_offset), out_mult, out_shift)
 *      + out_offset)
 */
#include "arm_nnfunctions.h"
#include "arm_nn_requantize.h"

arm_cmsis_nn_status arm_elementwise_add_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_1_mult,
                                           const int32_t input_1_shift,
                                           const int32_t input_2_offset,
                                           const int32_t input_2_mult,
                                           const int32_t input_2_shift,
                                           const int32_t left_shift,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size)
{
    int32_t scale_up;
    int32_t i;
    if (left_shift < 0 || left_shift > 23) {
        return ARM_CMSIS_NN_ARG_ERROR; /* (x + offset) * 2^left_shift must fit in int32 */
    }
    scale_up = (int32_t)1 << left_shift;
    for (i = 0; i < block_size; i++) {
        const int32_t a = edgecc_nn_requantize(
            ((int32_t)input_1_vect[i] + input_1_offset) * scale_up, input_1_mult, input_1_shift);
        const int32_t b = edgecc_nn_requantize(
            ((int32_t)input_2_vect[i] + input_2_offset) * scale_up, input_2_mult, input_2_shift);
        const int32_t sum = edgecc_nn_requantize(a + b, out_mult, out_shift) + out_offset;
        output[i] = (int8_t)edgecc_nn_clamp(sum, out_activation_min, out_activation_max);
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_elementwise_mul_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_2_offset,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size)
{
    int32_t i;
    for (i = 0; i < block_size; i++) {
        const int32_t product = ((int32_t)input_1_vect[i] + input_1_offset) *
                                ((int32_t)input_2_vect[i] + input_2_offset);
        const int32_t out = edgecc_nn_requantize(product, out_mult, out_shift) + out_offset;
        output[i] = (int8_t)edgecc_nn_clamp(out, out_activation_min, out_activation_max);
    }
    return ARM_CMSIS_NN_SUCCESS;
}
