/*
 * edgecc: arm_fully_connected_s8 (CMSIS-NN v6 API) and arm_fully_connected_per_channel_s8
 * (v7 API), independent implementations from the API documentation and the TFLite int8
 * fully connected layer; see README.md.
 *
 * out[b][n] = clamp(output_offset + requant(bias[n] + sum_k (x[b][k] + input_offset) *
 *                   (w[n][k] + filter_offset), M[n]), act.min, act.max)
 * with k < filter_dims->n (accumulation depth), n < output_dims->c, b < input_dims->n.
 * No scratch memory (ctx is not read).
 */
#include "arm_nnfunctions.h"
#include "arm_nn_requantize.h"

#include <stddef.h>

/* The shared loop: per-channel when per_channel != 0 (multiplier[n], shift[n]), else
 * multiplier[0], shift[0] for every output. */
static arm_cmsis_nn_status edgecc_nn_fully_connected(const cmsis_nn_fc_params *fc_params,
                                                     const int32_t *multiplier,
                                                     const int32_t *shift,
                                                     const int32_t per_channel,
                                                     const cmsis_nn_dims *input_dims,
                                                     const int8_t *input_data,
                                                     const cmsis_nn_dims *filter_dims,
                                                     const int8_t *filter_data,
                                                     const int32_t *bias_data,
                                                     const cmsis_nn_dims *output_dims,
                                                     int8_t *output_data)
{
    const int32_t batches = input_dims->n;
    const int32_t depth = filter_dims->n;
    const int32_t out_c = output_dims->c;
    const int32_t input_offset = fc_params->input_offset;
    const int32_t filter_offset = fc_params->filter_offset;
    const int32_t output_offset = fc_params->output_offset;
    const int32_t act_min = fc_params->activation.min;
    const int32_t act_max = fc_params->activation.max;
    int32_t b;

    if (depth < 0 || out_c < 0) {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    for (b = 0; b < batches; b++) {
        const int8_t *in = input_data + (size_t)b * (size_t)depth;
        int8_t *out = output_data + (size_t)b * (size_t)out_c;
        int32_t n;
        for (n = 0; n < out_c; n++) {
            const int8_t *w = filter_data + (size_t)n * (size_t)depth;
            const int32_t ch = per_channel ? n : 0;
            int32_t acc = bias_data != NULL ? bias_data[n] : 0;
            int32_t k;
            for (k = 0; k < depth; k++) {
                acc += ((int32_t)in[k] + input_offset) * ((int32_t)w[k] + filter_offset);
            }
            acc = edgecc_nn_requantize(acc, multiplier[ch], shift[ch]) + output_offset;
            out[n] = (int8_t)edgecc_nn_clamp(acc, act_min, act_max);
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

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
                                           int8_t *output_data)
{
    (void)ctx;
    (void)bias_dims;
    return edgecc_nn_fully_connected(fc_params, &quant_params->multiplier, &quant_params->shift,
                                     0, input_dims, input_data, filter_dims, filter_data,
                                     bias_data, output_dims, output_data);
}

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
    int8_t *output_data)
{
    (void)ctx;
    (void)bias_dims;
    return edgecc_nn_fully_connected(fc_params, quant_params->multiplier, quant_params->shift,
                                     1, input_dims, input_data, filter_dims, kernel, bias_data,
                                     output_dims, output_data);
}

int32_t arm_fully_connected_s8_get_buffer_size(const cmsis_nn_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}
