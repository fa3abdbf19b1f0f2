/*
 * edgecc: the CMSIS-NN v6 s8 functions that edgecc's Cortex-M backend calls.
 *
 * An independent implementation of a subset of the CMSIS-NN API, written from its public API
 * documentation (CMSIS-NN v6.0.0; arm_fully_connected_per_channel_s8 is the v7.0.0 addition)
 * and the TFLite int8 reference arithmetic; see README.md. Names, signatures, structs and
 * results equal the real library's, so generated code builds against either.
 *
 * Conventions shared by every function:
 *  - activations are NHWC int8; offsets as TFLite Micro passes them (input_offset = -zero
 *    point of the input, output_offset = +zero point of the output);
 *  - requantization: out = clamp(output_offset + RDBP(SRDHM(acc * 2^max(shift,0), mult),
 *    max(-shift,0)), act.min, act.max), shift in [-31, 31] (TFLite's default double rounding);
 *  - bias_data may be NULL (no bias); bias_dims is not read;
 *  - scratch memory (ctx): only the two convolutions may use some, to go faster; given less
 *    than their *_get_buffer_size() bytes (ctx NULL, no buffer, too small or not 4-byte
 *    aligned) they compute the same results without it. The other functions never read ctx
 *    and their *_get_buffer_size() returns 0.
 */
#ifndef ARM_NNFUNCTIONS_H
#define ARM_NNFUNCTIONS_H

#include "arm_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Convolution. input [N, H, W, C_IN]; filter [C_OUT, HK, WK, C_IN / groups] (filter_dims->n
 * is C_OUT, ->c the input channels of one group: groups = C_IN / filter_dims->c); bias
 * [C_OUT] int32; output [N, H_OUT, W_OUT, C_OUT]; one (multiplier, shift) per output channel.
 * Returns ARM_CMSIS_NN_ARG_ERROR if the channel counts do not divide into groups. */
arm_cmsis_nn_status arm_convolve_wrapper_s8(const cmsis_nn_context *ctx,
                                            const cmsis_nn_conv_params *conv_params,
                                            const cmsis_nn_per_channel_quant_params *quant_params,
                                            const cmsis_nn_dims *input_dims,
                                            const int8_t *input_data,
                                            const cmsis_nn_dims *filter_dims,
                                            const int8_t *filter_data,
                                            const cmsis_nn_dims *bias_dims,
                                            const int32_t *bias_data,
                                            const cmsis_nn_dims *output_dims,
                                            int8_t *output_data);

/* Scratch bytes arm_convolve_wrapper_s8 uses for these arguments: 8 * C_IN for a 1x1,
 * stride 1, unpadded, single-group convolution over at least 4 pixels, 16 input and 4 output
 * channels, with input_offset in [-32639, 32640] (its filters packed, four at a time), else 0. */
int32_t arm_convolve_wrapper_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                                const cmsis_nn_dims *input_dims,
                                                const cmsis_nn_dims *filter_dims,
                                                const cmsis_nn_dims *output_dims);

/* Depthwise convolution with channel multiplier dw_conv_params->ch_mult.
 * input [N, H, W, C_IN]; filter [1, HK, WK, C_OUT]; output [N, H_OUT, W_OUT, C_OUT] with
 * C_OUT = C_IN * ch_mult; output channel c reads input channel c / ch_mult.
 * Returns ARM_CMSIS_NN_ARG_ERROR if C_OUT != C_IN * ch_mult. */
arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(
    const cmsis_nn_context *ctx,
    const cmsis_nn_dw_conv_params *dw_conv_params,
    const cmsis_nn_per_channel_quant_params *quant_params,
    const cmsis_nn_dims *input_dims,
    const int8_t *input_data,
    const cmsis_nn_dims *filter_dims,
    const int8_t *filter_data,
    const cmsis_nn_dims *bias_dims,
    const int32_t *bias_data,
    const cmsis_nn_dims *output_dims,
    int8_t *output_data);

/* Scratch bytes arm_depthwise_conv_wrapper_s8 uses: 4 * C_OUT with ch_mult 1 (one int32 per
 * channel: bias + input_offset * filter sum, for the positions whose taps are all inside the
 * input), else 0. */
int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size(const cmsis_nn_dw_conv_params *dw_conv_params,
                                                      const cmsis_nn_dims *input_dims,
                                                      const cmsis_nn_dims *filter_dims,
                                                      const cmsis_nn_dims *output_dims);

/* Fully connected, one (multiplier, shift) for the output tensor.
 * input: input_dims->n batches of filter_dims->n values each; filter [C_OUT][filter_dims->n]
 * row-major (filter_dims->n = accumulation depth, output_dims->c = C_OUT); output
 * [input_dims->n][C_OUT]. acc = bias + sum (x + input_offset) * (w + filter_offset). */
arm_cmsis_nn_status arm_fully_connected_s8(const cmsis_nn_context *ctx,
                                           const cmsis_nn_fc_params *fc_params,
                                           const cmsis_nn_per_tensor_quant_params *quant_params,
                                           const cmsis_nn_dims *input_dims,
                                           const int8_t *input_data,
                                           const cmsis_nn_dims *filter_dims,
                                           const int8_t *filter_data,
                                           const cmsis_nn_dims *bias_dims,
                                           const int32_t *bias_data,
                                           const cmsis_nn_dims *output_dims,
                                           int8_t *output_data);

/* As arm_fully_connected_s8 with one (multiplier, shift) per output channel (CMSIS-NN
 * v7.0.0 API; absent from v6, where a 1x1 arm_convolve_wrapper_s8 computes the same). */
arm_cmsis_nn_status arm_fully_connected_per_channel_s8(
    const cmsis_nn_context *ctx,
    const cmsis_nn_fc_params *fc_params,
    const cmsis_nn_per_channel_quant_params *quant_params,
    const cmsis_nn_dims *input_dims,
    const int8_t *input_data,
    const cmsis_nn_dims *filter_dims,
    const int8_t *kernel,
    const cmsis_nn_dims *bias_dims,
    const int32_t *bias_data,
    const cmsis_nn_dims *output_dims,
    int8_t *output_data);

/* Scratch bytes arm_fully_connected_s8 / _per_channel_s8 need (here always 0). */
int32_t arm_fully_connected_s8_get_buffer_size(const cmsis_nn_dims *filter_dims);

/* Average pooling over the valid (unpadded) elements of each window, rounded half away from
 * zero, then clamped. input [N, H, W, C]; filter_dims->h/w = window;
 * output [N, H_OUT, W_OUT, C]. */
arm_cmsis_nn_status arm_avgpool_s8(const cmsis_nn_context *ctx,
                                   const cmsis_nn_pool_params *pool_params,
                                   const cmsis_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const cmsis_nn_dims *filter_dims,
                                   const cmsis_nn_dims *output_dims,
                                   int8_t *output_data);

/* Scratch bytes arm_avgpool_s8 needs (here always 0). */
int32_t arm_avgpool_s8_get_buffer_size(const int dim_dst_width, const int ch_src);

/* Max pooling over the valid elements of each window, then clamped. Layout as arm_avgpool_s8;
 * input and output must not overlap. */
arm_cmsis_nn_status arm_max_pool_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_pool_params *pool_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data);

/* Softmax of num_rows rows of row_size int8 values each, TFLite's fixed-point algorithm:
 * d = x - max(row) scaled by (mult, shift) into Q5.26 (shift in [0, 31]), exp of each d >=
 * diff_min, the sum's reciprocal, output scale 1/256 and zero point -128. row_size up to
 * 4095 (the sum of exps is Q12.19). */
void arm_softmax_s8(const int8_t *input,
                    const int32_t num_rows,
                    const int32_t row_size,
                    const int32_t mult,
                    const int32_t shift,
                    const int32_t diff_min,
                    int8_t *output);

/* Elementwise add (TFLite int8 Add): each input (x + offset) * 2^left_shift is requantized
 * with its own (mult, shift); the sum is requantized with (out_mult, out_shift). */
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
                                           const int32_t block_size);

/* Elementwise multiply: out = requant((x1 + offset_1) * (x2 + offset_2)) + out_offset. */
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
                                           const int32_t block_size);

#ifdef __cplusplus
}
#endif

#endif /* ARM_NNFUNCTIONS_H */
