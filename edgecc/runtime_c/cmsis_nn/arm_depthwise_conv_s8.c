/*
 * edgecc: arm_depthwise_conv_wrapper_s8 of the CMSIS-NN v6 API (independent implementation
 * from the API documentation and the TFLite int8 depthwise convolution; see README.md).
 *
 * NHWC input, filter [1, HK, WK, C_OUT], channel multiplier (output channel c reads input
 * channel c / ch_mult), stride, dilation, top/left padding, per-channel requantization, clamp.
 * Batches are computed one after the other.
 *
 * Per output position the valid taps (those inside the input) are computed once. With
 * ch_mult 1, channels are computed four at a time, innermost: each tap reads four adjacent
 * channels of the NHWC input and of the filter. Given scratch memory
 * (arm_depthwise_conv_wrapper_s8_get_buffer_size(): one int32 per channel with ch_mult 1),
 * the positions whose taps are all inside the input start from bias + input_offset * (sum of
 * the channel's filter) and sum x * w: the same int32 sum as the definition's
 * (x + input_offset) * w, regrouped, so the results are bit for bit the same.
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

/* Output channels c .. c + 3 (ch_mult 1) of one output position, from the sums over the
 * window of (input + input_offset) * filter, started at start[0 .. 3]; or, when `raw`, of
 * input * filter (start then holds bias + input_offset * filter sums). */
static void edgecc_nn_dw_block4(const cmsis_nn_dw_conv_params *params,
                                const cmsis_nn_per_channel_quant_params *quant,
                                const edgecc_nn_dw_window *win, const int32_t c,
                                const int32_t *start, const int32_t raw, int8_t *out)
{
    const int32_t input_offset = params->input_offset;
    const int32_t in_col = win->in_col;
    const int32_t w_col = win->w_col;
    int32_t acc[4];
    int32_t a0 = start != NULL ? start[0] : 0;
    int32_t a1 = start != NULL ? start[1] : 0;
    int32_t a2 = start != NULL ? start[2] : 0;
    int32_t a3 = start != NULL ? start[3] : 0;
    int32_t r;
    for (r = 0; r < win->rows; r++) {
        const int8_t *in = win->in + r * win->in_row + c;
        const int8_t *w = win->w + r * win->w_row + c;
        const int8_t *const w_end = w + win->cols * w_col;
        if (raw) {
            for (; w != w_end; in += in_col, w += w_col) {
                a0 += (int32_t)in[0] * (int32_t)w[0];
                a1 += (int32_t)in[1] * (int32_t)w[1];
                a2 += (int32_t)in[2] * (int32_t)w[2];
                a3 += (int32_t)in[3] * (int32_t)w[3];
            }
        } else {
            for (; w != w_end; in += in_col, w += w_col) {
                a0 += ((int32_t)in[0] + input_offset) * (int32_t)w[0];
                a1 += ((int32_t)in[1] + input_offset) * (int32_t)w[1];
                a2 += ((int32_t)in[2] + input_offset) * (int32_t)w[2];
                a3 += ((int32_t)in[3] + input_offset) * (int32_t)w[3];
            }
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    edgecc_nn_outputs(acc, 4, quant->multiplier + c, quant->shift + c, params->output_offset,
                      params->activation.min, params->activation.max, out + c);
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
        for (t = 0; t < win->cols; t++, in += win->in_col, w += win->w_col) {
            acc += ((int32_t)*in + input_offset) * (int32_t)*w;
        }
    }
    return acc;
}

/* base[c] = bias[c] + input_offset * (sum of filter channel c over all taps), c < channels. */
static void edgecc_nn_dw_bases(const int8_t *filter, const int32_t taps, const int32_t channels,
                               const int32_t *bias, const int32_t input_offset, int32_t *base)
{
    int32_t c;
    for (c = 0; c < channels; c++) {
        int32_t sum = 0;
        int32_t t;
        for (t = 0; t < taps; t++) {
            sum += filter[(size_t)t * (size_t)channels + (size_t)c];
        }
        base[c] = (bias != NULL ? bias[c] : 0) + input_offset * sum;
    }
}

/* All output channels of one output position. `full`: all its taps are inside the input and
 * base (edgecc_nn_dw_bases) is given. */
static void edgecc_nn_dw_position(const cmsis_nn_dw_conv_params *params,
                                  const cmsis_nn_per_channel_quant_params *quant,
                                  const int32_t *bias, const int32_t *base,
                                  const edgecc_nn_dw_window *win, const int32_t full,
                                  const int32_t channels, int8_t *out)
{
    const int32_t ch_mult = params->ch_mult;
    int32_t c = 0;
    if (ch_mult == 1) {
        for (; c + 4 <= channels; c += 4) {
            const int32_t *start = full ? base + c : (bias != NULL ? bias + c : NULL);
            edgecc_nn_dw_block4(params, quant, win, c, start, full, out);
        }
    }
    for (; c < channels; c++) {
        const int32_t acc = (bias != NULL ? bias[c] : 0) +
                            edgecc_nn_dw_dot1(win, c / ch_mult, c, params->input_offset);
        edgecc_nn_outputs(&acc, 1, quant->multiplier + c, quant->shift + c,
                          params->output_offset, params->activation.min, params->activation.max,
                          out + c);
    }
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
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t in_c = input_dims->c;
    const int32_t k_h = filter_dims->h;
    const int32_t k_w = filter_dims->w;
    const int32_t out_c = output_dims->c;
    const int32_t dil_h = dw_conv_params->dilation.h;
    const int32_t dil_w = dw_conv_params->dilation.w;
    const int32_t scratch = arm_depthwise_conv_wrapper_s8_get_buffer_size(
        dw_conv_params, input_dims, filter_dims, output_dims);
    int32_t *base = NULL; /* per channel: bias + input_offset * filter sum */
    edgecc_nn_dw_window win;
    int32_t b;
    int32_t oy;
    int32_t ox;
    int8_t *out = output_data;

    (void)bias_dims;
    if (dw_conv_params->ch_mult <= 0 || out_c != in_c * dw_conv_params->ch_mult ||
        dw_conv_params->stride.h <= 0 || dw_conv_params->stride.w <= 0 || dil_h <= 0 ||
        dil_w <= 0) {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    if (scratch > 0 && ctx != NULL && ctx->buf != NULL && ctx->size >= scratch &&
        (uintptr_t)ctx->buf % sizeof(int32_t) == 0) {
        base = (int32_t *)ctx->buf;
        edgecc_nn_dw_bases(filter_data, k_h * k_w, out_c, bias_data,
                           dw_conv_params->input_offset, base);
    }
    win.in_row = dil_h * in_w * in_c;
    win.in_col = dil_w * in_c;
    win.w_row = k_w * out_c;
    win.w_col = out_c;

    for (b = 0; b < input_dims->n; b++) {
        for (oy = 0; oy < output_dims->h; oy++) {
            const int32_t iy0 = oy * dw_conv_params->stride.h - dw_conv_params->padding.h;
            int32_t ky_begin;
            int32_t ky_end;
            edgecc_nn_valid_taps(iy0, dil_h, k_h, in_h, &ky_begin, &ky_end);
            for (ox = 0; ox < output_dims->w; ox++, out += out_c) {
                const int32_t ix0 = ox * dw_conv_params->stride.w - dw_conv_params->padding.w;
                int32_t kx_begin;
                int32_t kx_end;
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
                edgecc_nn_dw_position(dw_conv_params, quant_params, bias_data, base, &win,
                                      base != NULL && win.rows == k_h && win.cols == k_w, out_c,
                                      out);
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
    /* one int32 per channel (ch_mult 1): the start of a fully inside position's sum */
    (void)input_dims;
    (void)filter_dims;
    return dw_conv_params->ch_mult == 1 ? output_dims->c * (int32_t)sizeof(int32_t) : 0;
}
