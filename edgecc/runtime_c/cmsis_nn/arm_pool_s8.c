/*
 * edgecc: arm_avgpool_s8 and arm_max_pool_s8 of the CMSIS-NN v6 API (independent
 * implementations from the API documentation and the TFLite int8 pooling; see README.md).
 *
 * NHWC; each window is clipped to the input (top/left padding, the output size fixes the
 * rest), so padded positions are never counted. Average: sum / count rounded half away from
 * zero. Both clamp to pool_params->activation. input_dims->n batches (a value below 1 counts
 * as 1). No scratch memory.
 */
#include "arm_nnfunctions.h"
#include "arm_nn_requantize.h"

#define EDGECC_NN_POOL_AVG 0
#define EDGECC_NN_POOL_MAX 1

static arm_cmsis_nn_status edgecc_nn_pool(const int32_t kind,
                                          const cmsis_nn_pool_params *pool_params,
                                          const cmsis_nn_dims *input_dims,
                                          const int8_t *input_data,
                                          const cmsis_nn_dims *filter_dims,
                                          const cmsis_nn_dims *output_dims,
                                          int8_t *output_data)
{
    const int32_t batches = input_dims->n > 1 ? input_dims->n : 1;
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t channels = input_dims->c;
    const int32_t k_h = filter_dims->h;
    const int32_t k_w = filter_dims->w;
    const int32_t out_h = output_dims->h;
    const int32_t out_w = output_dims->w;
    const int32_t act_min = pool_params->activation.min;
    const int32_t act_max = pool_params->activation.max;
    int32_t b;

    if (pool_params->stride.h <= 0 || pool_params->stride.w <= 0 || output_dims->c != channels) {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    for (b = 0; b < batches; b++) {
        int32_t oy;
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * pool_params->stride.h - pool_params->padding.h;
            int32_t ky_begin;
            int32_t ky_end;
            int32_t ox;
            edgecc_nn_valid_taps(iy0, 1, k_h, in_h, &ky_begin, &ky_end);
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * pool_params->stride.w - pool_params->padding.w;
                int8_t *out = output_data + ((b * out_h + oy) * out_w + ox) * channels;
                int32_t kx_begin;
                int32_t kx_end;
                int32_t count;
                int32_t c;
                edgecc_nn_valid_taps(ix0, 1, k_w, in_w, &kx_begin, &kx_end);
                count = (ky_end - ky_begin) * (kx_end - kx_begin);
                if (ky_end <= ky_begin || kx_end <= kx_begin) {
                    return ARM_CMSIS_NN_ARG_ERROR; /* a window with no input element */
                }
                for (c = 0; c < channels; c++) {
                    int32_t acc = kind == EDGECC_NN_POOL_MAX ? INT8_MIN : 0;
                    int32_t ky;
                    for (ky = ky_begin; ky < ky_end; ky++) {
                        const int8_t *in = input_data +
                            ((b * in_h + iy0 + ky) * in_w + ix0 + kx_begin) * channels + c;
                        int32_t kx;
                        for (kx = 0; kx < kx_end - kx_begin; kx++) {
                            const int32_t v = in[kx * channels];
                            if (kind == EDGECC_NN_POOL_MAX) {
                                acc = v > acc ? v : acc;
                            } else {
                                acc += v;
                            }
                        }
                    }
                    if (kind == EDGECC_NN_POOL_AVG) {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    out[c] = (int8_t)edgecc_nn_clamp(acc, act_min, act_max);
                }
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_avgpool_s8(const cmsis_nn_context *ctx,
                                   const cmsis_nn_pool_params *pool_params,
                                   const cmsis_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const cmsis_nn_dims *filter_dims,
                                   const cmsis_nn_dims *output_dims,
                                   int8_t *output_data)
{
    (void)ctx;
    return edgecc_nn_pool(EDGECC_NN_POOL_AVG, pool_params, input_dims, input_data, filter_dims,
                          output_dims, output_data);
}

int32_t arm_avgpool_s8_get_buffer_size(const int dim_dst_width, const int ch_src)
{
    (void)dim_dst_width;
    (void)ch_src;
    return 0;
}

arm_cmsis_nn_status arm_max_pool_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_pool_params *pool_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data)
{
    (void)ctx;
    return edgecc_nn_pool(EDGECC_NN_POOL_MAX, pool_params, input_dims, input_data, filter_dims,
                          output_dims, output_data);
}
