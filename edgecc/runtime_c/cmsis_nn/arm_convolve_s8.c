/*
 * edgecc: arm_convolve_wrapper_s8 of the CMSIS-NN v6 API (independent implementation from the
 * API documentation and the TFLite int8 convolution; see README.md).
 *
 * One general direct convolution: NHWC input, OHWI filter, groups (filter_dims->c input
 * channels per group), stride, dilation, top/left padding (padded positions contribute
 * nothing, as if they held the input zero point), per-channel requantization, clamp. No
 * scratch memory.
 */
#include "arm_nnfunctions.h"
#include "arm_nn_requantize.h"

#include <stddef.h>

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
                                            int8_t *output_data)
{
    const int32_t batches = input_dims->n;
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t in_c = input_dims->c;
    const int32_t k_h = filter_dims->h;
    const int32_t k_w = filter_dims->w;
    const int32_t k_c = filter_dims->c;
    const int32_t out_h = output_dims->h;
    const int32_t out_w = output_dims->w;
    const int32_t out_c = output_dims->c;
    const int32_t stride_h = conv_params->stride.h;
    const int32_t stride_w = conv_params->stride.w;
    const int32_t dil_h = conv_params->dilation.h;
    const int32_t dil_w = conv_params->dilation.w;
    const int32_t input_offset = conv_params->input_offset;
    const int32_t output_offset = conv_params->output_offset;
    const int32_t act_min = conv_params->activation.min;
    const int32_t act_max = conv_params->activation.max;
    int32_t groups;
    int32_t group_out;
    int32_t b;

    (void)ctx;
    (void)bias_dims;
    if (k_c <= 0 || in_c % k_c != 0 || stride_h <= 0 || stride_w <= 0 || dil_h <= 0 ||
        dil_w <= 0) {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    groups = in_c / k_c;
    if (out_c % groups != 0) {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    group_out = out_c / groups;

    for (b = 0; b < batches; b++) {
        int32_t oy;
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * stride_h - conv_params->padding.h;
            int32_t ky_begin;
            int32_t ky_end;
            int32_t ox;
            edgecc_nn_valid_taps(iy0, dil_h, k_h, in_h, &ky_begin, &ky_end);
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * stride_w - conv_params->padding.w;
                int8_t *out = output_data + ((b * out_h + oy) * out_w + ox) * out_c;
                int32_t kx_begin;
                int32_t kx_end;
                int32_t oc;
                edgecc_nn_valid_taps(ix0, dil_w, k_w, in_w, &kx_begin, &kx_end);
                for (oc = 0; oc < out_c; oc++) {
                    const int32_t g = oc / group_out;
                    const int8_t *filter = filter_data + (size_t)oc * (size_t)(k_h * k_w * k_c);
                    int32_t acc = bias_data != NULL ? bias_data[oc] : 0;
                    int32_t ky;
                    for (ky = ky_begin; ky < ky_end; ky++) {
                        const int32_t iy = iy0 + ky * dil_h;
                        int32_t kx;
                        for (kx = kx_begin; kx < kx_end; kx++) {
                            const int32_t ix = ix0 + kx * dil_w;
                            const int8_t *in = input_data +
                                ((b * in_h + iy) * in_w + ix) * in_c + g * k_c;
                            const int8_t *w = filter + (ky * k_w + kx) * k_c;
                            int32_t ic;
                            for (ic = 0; ic < k_c; ic++) {
                                acc += ((int32_t)in[ic] + input_offset) * (int32_t)w[ic];
                            }
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

int32_t arm_convolve_wrapper_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                                const cmsis_nn_dims *input_dims,
                                                const cmsis_nn_dims *filter_dims,
                                                const cmsis_nn_dims *output_dims)
{
    (void)conv_params;
    (void)input_dims;
    (void)filter_dims;
    (void)output_dims;
    return 0;
}
