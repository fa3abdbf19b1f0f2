/*
 * edgecc: types of the CMSIS-NN v6 public API (arm_nn_types.h), the subset used by the
 * functions in arm_nnfunctions.h beside this file.
 *
 * Part of edgecc's independent implementation of a subset of the CMSIS-NN API, written from
 * the library's public API documentation (CMSIS-NN v6.0.0; arm_fully_connected_per_channel_s8
 * from v7.0.0) and the TFLite int8 quantization specification. It contains no code from
 * CMSIS-NN. Type, field and enumerator names equal the real header's so that the same calling
 * code compiles against either; link the real `cmsis-nn` library instead when the firmware has
 * one (then its own headers are used and this directory is not compiled).
 */
#ifndef ARM_NN_TYPES_H
#define ARM_NN_TYPES_H

#include <stdint.h>

/* Return codes of the functions. */
typedef enum
{
    ARM_CMSIS_NN_SUCCESS = 0,        /* done */
    ARM_CMSIS_NN_ARG_ERROR = -1,     /* an argument violates the function's constraints */
    ARM_CMSIS_NN_NO_IMPL_ERROR = -2, /* no implementation for these arguments */
    ARM_CMSIS_NN_FAILURE = -3        /* any other failure */
} arm_cmsis_nn_status;

/* A pair of horizontal (w) and vertical (h) values: stride, padding or dilation. */
typedef struct
{
    int32_t w;
    int32_t h;
} cmsis_nn_tile;

/* Scratch memory handed to a function: `size` bytes at `buf` (buf may be NULL when the
 * matching *_get_buffer_size() returns 0). */
typedef struct
{
    void *buf;
    int32_t size;
} cmsis_nn_context;

/* Tensor dimensions. `n` is the batch count, or the output channel count for filters;
 * each function documents which fields it reads. */
typedef struct
{
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} cmsis_nn_dims;

/* One (multiplier, shift) per output channel: real scale = multiplier * 2^(shift - 31). */
typedef struct
{
    int32_t *multiplier;
    int32_t *shift;
} cmsis_nn_per_channel_quant_params;

/* One (multiplier, shift) for the whole output tensor. */
typedef struct
{
    int32_t multiplier;
    int32_t shift;
} cmsis_nn_per_tensor_quant_params;

/* Output clamp in the quantized domain (fused ReLU / ReLU6 / clip). */
typedef struct
{
    int32_t min;
    int32_t max;
} cmsis_nn_activation;

/* Convolution parameters. As TFLite Micro passes them: input_offset = -input zero point,
 * output_offset = +output zero point. padding is the top (h) and left (w) padding; the output
 * dimensions given to the function fix the rest. */
typedef struct
{
    int32_t input_offset;
    int32_t output_offset;
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_tile dilation;
    cmsis_nn_activation activation;
} cmsis_nn_conv_params;

/* Depthwise convolution parameters; out channel c reads input channel c / ch_mult
 * (ch_mult * input channels = output channels). Offsets as in cmsis_nn_conv_params. */
typedef struct
{
    int32_t input_offset;
    int32_t output_offset;
    int32_t ch_mult;
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_tile dilation;
    cmsis_nn_activation activation;
} cmsis_nn_dw_conv_params;

/* Pooling parameters (padding: top and left, as for convolutions). */
typedef struct
{
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_activation activation;
} cmsis_nn_pool_params;

/* Fully connected parameters: input_offset = -input zero point, filter_offset = -filter
 * zero point (0 for symmetric weights), output_offset = +output zero point. */
typedef struct
{
    int32_t input_offset;
    int32_t filter_offset;
    int32_t output_offset;
    cmsis_nn_activation activation;
} cmsis_nn_fc_params;

#endif /* ARM_NN_TYPES_H */
