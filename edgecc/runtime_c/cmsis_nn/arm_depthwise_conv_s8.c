/*
 * edgecc: arm_depthwise_conv_wrapper_s8 of the CMSIS-NN v6 API (independent implementation
 * from the API documentation and the TFLite int8 depthwise convolution; see README.md).
 *
 * NHWC input, filter [1, HK, WK, C_OUT], channel multiplier (output channel c reads input
 * channel c / ch_mult), stride, dilation, top/left padding, per-channel requantization, clamp.
 * Batches are computed one after the other. No scratch memory.
 */
#include "arm_nnfunctions.h"
#include "arm_nn_requantize.h"

#include <stddef.h>

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
    int8_t *output_data)
{
    const int32_t batches = input_dims->n;
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t in_c = input_dims->c;
    const int32_t k_h = filter_dims->h;
    const int32_t k_w = filter_dims->w;
    const int32_t out_h = output_dims->h;
    const int32_t out_w = output_dims->w;
    const int32_t out_c = output_dims->c;
    const int32_t ch_mult = dw_conv_params->ch_mult;
    const int32_t stride_h = dw_conv_params->stride.h;
    const int32_t stride_w = dw_conv_params->stride.w;
    const int32_t dil_h = dw_conv_params->dilation.h;
    const int32_t dil_w = dw_conv_params->dilation.w;
    const int32_t input_offset = dw_conv_params->input_offset;
    const int32_t output_offset = dw_conv_params->output_offset;
    const int32_t act_min = dw_conv_params->activation.min;
    const int32_t act_max = dw_conv_params->activation.max;
    int32_t b;

    (void)ctx;
    (void)bias_dims;
    if (ch_mult <= 0 || out_c != in_c * ch_mult || stride_h <= 0 || stride_w <= 0 ||
        dil_h <= 0 || dil_w <= 0) {
        return ARM_CMSIS_NN_ARG_ERROR;
    }

    for (b = 0; b < batches; b++) {
        int32_t oy;
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * stride_h - dw_conv_params->padding.h;
            int32_t ky_begin;
            int32_t ky_end;
            int32_t ox;
            edgecc_nn_valid_taps(iy0, dil_h, k_h, in_h, &ky_begin, &ky_end);
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * stride_w - dw_conv_params->padding.w;
                int8_t *out = output_data + ((b * out_h + oy) * out_w + ox) * out_c;
                int32_t kx_begin;
                int32_t kx_end;
                int32_t oc;
                edgecc_nn_valid_taps(ix0, dil_w, k_w, in_w, &kx_begin, &kx_end);
                for (oc = 0; oc < out_c; oc++) {
                    const int32_t ic = oc / ch_mult;
                    int32_t acc = bias_data != NULL ? bias_data[oc] : 0;
                    int32_t ky;
                    for (ky = ky_begin; ky < ky_end; ky++) {
                        const int32_t iy = iy0 + ky * dil_h;
                        const int8_t *in_row = input_data + (b * in_h + iy) * in_w * in_c + ic;
                        const int8_t *w_row = filter_data + (size_t)(ky * k_w) * (size_t)out_c + oc;
                        int32_t kx;
                        for (kx = kx_begin; kx < kx_end; kx++) {
                            const int32_t ix = ix0 + kx * dil_w;
                            acc += ((int32_t)in_row[ix * in_c] + input_offset) *
                                   (int32_t)w_row[kx * out_c];
                        }
                    }
                    acc = edgecc_nn_requantize(acc, quant_params->multiplier[oc],
                                               quant_params->shift[oc]) + output_offset;
                    out[oc] = (int8_t)edgecc_nn_clamp(acc, act_min, act_max);
                }
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size(const cmsis_nn_dw_conv_params *dw_conv_params,
                                                      const cmsis_nn_dims *input_dims,
                                                      const cmsis_nn_dims *filter_dims,
                                                      const cmsis_nn_dims *output_dims)
{
    (void)dw_conv_params;
    (void)input_dims;
    (void)filter_dims;
    (void)output_dims;
    return 0;
}
