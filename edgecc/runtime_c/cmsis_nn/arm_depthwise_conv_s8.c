/*
 * edgecc: arm_depthwise_conv_wrapper_s8 of the CMSIS-NN v6 API (independent implementation
 * from the API documentation and the TFLite int8 depthwise convolution; see README.md).
 *
 * NHWC input, filter [1, HK, WK, C_OUT], channel multiplier (output channel c reads input
 * channel c / ch_mult), stride, dilation, top/left padding, per-channel requantization, clamp.
 * Batches are computed one after the other. No scratch memory.
 *
 * Per output position the valid taps (those inside the input) are computed once. With
 * ch_mult 1, channels are computed four at a time, innermost: each tap reads four adjacent
 * channels of the NHWC input and of the filter. The accumulation is the same exact int32 sum
 * as the definition, so the results are bit for bit the same.
 */
#include "arm_nnfunctions.h"
#include "arm_nn_requantize.h"

#include <stddef.h>

/* The valid taps of one output position: `rows` x `cols` taps; tap (r, t) reads the input at
 * in + r * in_row + t * in_col and the filter at w + r * w_row + t * w_col, plus the
 * channel. */
typedef struct
{
    const int8_t *in;
    const int8_t *w;
    int32_t rows;
    int32_t cols;
    int32_t in_row;
    int32_t in_col;
    int32_t w_row;
    int32_t w_col;
} edgecc_nn_dw_window;

/* acc[j] = sum over the window of (input channel c + j + input_offset) * filter channel c + j,
 * for j < 4 (ch_mult 1). */
static void edgecc_nn_dw_dot4(const edgecc_nn_dw_window *win, const int32_t c,
                              const int32_t input_offset, int32_t *acc)
{
    int32_t a0 = 0;
    int32_t a1 = 0;
    int32_t a2 = 0;
    int32_t a3 = 0;
    const int32_t in_col = win->in_col;
    const int32_t w_col = win->w_col;
    int32_t r;
    for (r = 0; r < win->rows; r++) {
        const int8_t *in = win->in + r * win->in_row + c;
        const int8_t *w = win->w + r * win->w_row + c;
        const int8_t *const in_end = in + win->cols * in_col;
        while (in != in_end) {
            a0 += ((int32_t)in[0] + input_offset) * (int32_t)w[0];
            a1 += ((int32_t)in[1] + input_offset) * (int32_t)w[1];
            a2 += ((int32_t)in[2] + input_offset) * (int32_t)w[2];
            a3 += ((int32_t)in[3] + input_offset) * (int32_t)w[3];
            in += in_col;
            w += w_col;
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* The sum over the window of (input channel ic + input_offset) * filter channel oc. */
static int32_t edgecc_nn_dw_dot1(const edgecc_nn_dw_window *win, const int32_t ic,
                                 const int32_t oc, const int32_t input_offset)
{
    int32_t acc = 0;
    int32_t r;
    for (r = 0; r < win->rows; r++) {
        const int8_t *in = win->in + r * win->in_row + ic;
        const int8_t *w = win->w + r * win->w_row + oc;
        int32_t t;
        for (t = 0; t < win->cols; t++) {
            acc += ((int32_t)*in + input_offset) * (int32_t)*w;
            in += win->in_col;
            w += win->w_col;
        }
    }
    return acc;
}

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
    const int32_t block_end = ch_mult == 1 ? out_c - out_c % 4 : 0; /* channels done by 4 */
    edgecc_nn_dw_window win;
    int32_t b;

    (void)ctx;
    (void)bias_dims;
    if (ch_mult <= 0 || out_c != in_c * ch_mult || stride_h <= 0 || stride_w <= 0 ||
        dil_h <= 0 || dil_w <= 0) {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    win.in_row = dil_h * in_w * in_c;
    win.in_col = dil_w * in_c;
    win.w_row = k_w * out_c;
    win.w_col = out_c;

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
                int8_t *out = output_data + ((size_t)(b * out_h + oy) * (size_t)out_w + (size_t)ox) *
                                                (size_t)out_c;
                int32_t kx_begin;
                int32_t kx_end;
                int32_t acc[4];
                int32_t count;
                int32_t c;
                edgecc_nn_valid_taps(ix0, dil_w, k_w, in_w, &kx_begin, &kx_end);
                win.rows = ky_end > ky_begin && kx_end > kx_begin ? ky_end - ky_begin : 0;
                win.cols = kx_end - kx_begin;
                win.in = input_data;
                win.w = filter_data;
                if (win.rows > 0) {
                    const int32_t iy = iy0 + ky_begin * dil_h;
                    const int32_t ix = ix0 + kx_begin * dil_w;
                    win.in += ((size_t)(b * in_h + iy) * (size_t)in_w + (size_t)ix) * (size_t)in_c;
                    win.w += (size_t)(ky_begin * k_w + kx_begin) * (size_t)out_c;
                }
                for (c = 0; c < out_c; c += count) {
                    int32_t j;
                    count = c < block_end ? 4 : 1;
                    if (count == 4) {
                        edgecc_nn_dw_dot4(&win, c, input_offset, acc);
                    } else {
                        acc[0] = edgecc_nn_dw_dot1(&win, c / ch_mult, c, input_offset);
                    }
                    for (j = 0; j < count; j++) {
                        const int32_t bias = bias_data != NULL ? bias_data[c + j] : 0;
                        out[c + j] = edgecc_nn_output(acc[j] + bias, quant_params->multiplier[c + j],
                                                      quant_params->shift[c + j], output_offset,
                                                      act_min, act_max);
                    }
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
