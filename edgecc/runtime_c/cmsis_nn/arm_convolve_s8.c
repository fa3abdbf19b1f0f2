/*
 * edgecc: arm_convolve_wrapper_s8 of the CMSIS-NN v6 API (independent implementation from the
 * API documentation and the TFLite int8 convolution; see README.md).
 *
 * Direct convolution: NHWC input, OHWI filter, groups (filter_dims->c input channels per
 * group), stride, dilation, top/left padding (padded positions contribute nothing, as if they
 * held the input zero point), per-channel requantization, clamp. No scratch memory.
 *
 * Per output position the valid part of the receptive field (the taps that fall inside the
 * input) is computed once, as rows of contiguous runs: with one group and no horizontal
 * dilation a filter row's taps are one run of (taps * channels) values in both the NHWC input
 * and the OHWI filter. Output channels are computed four at a time, so each input value is
 * loaded (and offset) once for four filters. A 1x1 convolution with stride 1 and no padding
 * is a plain matrix product: one run of C_IN values per pixel. The accumulation is the same
 * exact int32 sum as the definition, so the results are bit for bit the same.
 */
#include "arm_nnfunctions.h"
#include "arm_nn_requantize.h"

#include <stddef.h>

/* The valid taps of one output position (one group), as `rows` rows of `runs` runs of `len`
 * values: run s of row r starts at in + r * in_row + s * in_run in the input and at
 * w_off + r * w_row + s * w_run in each filter. */
typedef struct
{
    const int8_t *in;
    int32_t w_off;
    int32_t rows;
    int32_t runs;
    int32_t len;
    int32_t in_row;
    int32_t in_run;
    int32_t w_row;
    int32_t w_run;
} edgecc_nn_window;

/* What stays the same for every output position. */
typedef struct
{
    const int8_t *filter;
    int32_t w_size; /* values per filter: HK * WK * C_IN / groups */
    const int32_t *bias;
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} edgecc_nn_conv_job;

/* acc[j] += sum_i (in[i] + input_offset) * w[j * w_size + i], for j < 4 and i < len. */
static void edgecc_nn_dot4(const int8_t *in, const int8_t *w, const int32_t w_size,
                           const int32_t len, const int32_t input_offset, int32_t *acc)
{
    const int8_t *w1 = w + w_size;
    const int8_t *w2 = w1 + w_size;
    const int8_t *w3 = w2 + w_size;
    int32_t a0 = acc[0];
    int32_t a1 = acc[1];
    int32_t a2 = acc[2];
    int32_t a3 = acc[3];
    int32_t i;
    for (i = 0; i < len; i++) {
        const int32_t x = (int32_t)in[i] + input_offset;
        a0 += x * (int32_t)w[i];
        a1 += x * (int32_t)w1[i];
        a2 += x * (int32_t)w2[i];
        a3 += x * (int32_t)w3[i];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* acc[0] += sum_i (in[i] + input_offset) * w[i], for i < len. */
static void edgecc_nn_dot1(const int8_t *in, const int8_t *w, const int32_t len,
                           const int32_t input_offset, int32_t *acc)
{
    int32_t a = acc[0];
    int32_t i;
    for (i = 0; i < len; i++) {
        a += ((int32_t)in[i] + input_offset) * (int32_t)w[i];
    }
    acc[0] = a;
}

/* acc[j] += the sum over the window of (input + input_offset) * filter j, for `count` (1 or
 * 4) filters w_size apart; w is the first filter's first valid tap. */
static void edgecc_nn_window_dot(const edgecc_nn_window *win, const int8_t *w,
                                 const int32_t w_size, const int32_t count,
                                 const int32_t input_offset, int32_t *acc)
{
    int32_t r;
    for (r = 0; r < win->rows; r++) {
        int32_t s;
        for (s = 0; s < win->runs; s++) {
            const int8_t *in_run = win->in + r * win->in_row + s * win->in_run;
            const int8_t *w_run = w + r * win->w_row + s * win->w_run;
            if (count == 4) {
                edgecc_nn_dot4(in_run, w_run, w_size, win->len, input_offset, acc);
            } else {
                edgecc_nn_dot1(in_run, w_run, win->len, input_offset, acc);
            }
        }
    }
}

/* Output channels [oc_begin, oc_end) of one output position (all in one group): four at a
 * time, then one at a time. */
static void edgecc_nn_conv_channels(const edgecc_nn_conv_job *job, const edgecc_nn_window *win,
                                    const int32_t oc_begin, const int32_t oc_end, int8_t *out)
{
    /* locals: the int8 stores to out may alias anything, the job's fields included */
    const int8_t *const filter = job->filter + win->w_off;
    const int32_t w_size = job->w_size;
    const int32_t *const bias = job->bias;
    const int32_t *const multiplier = job->multiplier;
    const int32_t *const shift = job->shift;
    const int32_t input_offset = job->input_offset;
    const int32_t output_offset = job->output_offset;
    const int32_t act_min = job->act_min;
    const int32_t act_max = job->act_max;
    int32_t acc[4];
    int32_t oc = oc_begin;
    while (oc < oc_end) {
        const int8_t *w = filter + (size_t)oc * (size_t)w_size;
        const int32_t count = oc_end - oc >= 4 ? 4 : 1;
        int32_t j;
        for (j = 0; j < count; j++) {
            acc[j] = bias != NULL ? bias[oc + j] : 0;
        }
        if (win->rows == 1 && win->runs == 1) { /* e.g. 1x1 convolutions */
            if (count == 4) {
                edgecc_nn_dot4(win->in, w, w_size, win->len, input_offset, acc);
            } else {
                edgecc_nn_dot1(win->in, w, win->len, input_offset, acc);
            }
        } else {
            edgecc_nn_window_dot(win, w, w_size, count, input_offset, acc);
        }
        for (j = 0; j < count; j++, oc++) {
            out[oc] = edgecc_nn_output(acc[j], multiplier[oc], shift[oc], output_offset, act_min,
                                       act_max);
        }
    }
}

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
    edgecc_nn_conv_job job;
    edgecc_nn_window win;
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
    job.filter = filter_data;
    job.w_size = k_h * k_w * k_c;
    job.bias = bias_data;
    job.multiplier = quant_params->multiplier;
    job.shift = quant_params->shift;
    job.input_offset = conv_params->input_offset;
    job.output_offset = conv_params->output_offset;
    job.act_min = conv_params->activation.min;
    job.act_max = conv_params->activation.max;
    win.in_row = dil_h * in_w * in_c;
    win.in_run = dil_w * in_c;
    win.w_row = k_w * k_c;
    win.w_run = k_c;

    if (k_h == 1 && k_w == 1 && groups == 1 && stride_h == 1 && stride_w == 1 &&
        conv_params->padding.h == 0 && conv_params->padding.w == 0 && out_h == in_h &&
        out_w == in_w) {
        /* 1x1, stride 1, no padding: every pixel is one run of C_IN values */
        const int32_t pixels = batches * in_h * in_w;
        int32_t p;
        win.w_off = 0;
        win.rows = 1;
        win.runs = 1;
        win.len = in_c;
        for (p = 0; p < pixels; p++) {
            win.in = input_data + (size_t)p * (size_t)in_c;
            edgecc_nn_conv_channels(&job, &win, 0, out_c, output_data + (size_t)p * (size_t)out_c);
        }
        return ARM_CMSIS_NN_SUCCESS;
    }

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
                int8_t *out = output_data + ((size_t)(b * out_h + oy) * (size_t)out_w + (size_t)ox) *
                                                (size_t)out_c;
                int32_t kx_begin;
                int32_t kx_end;
                int32_t g;
                edgecc_nn_valid_taps(ix0, dil_w, k_w, in_w, &kx_begin, &kx_end);
                win.rows = ky_end > ky_begin && kx_end > kx_begin ? ky_end - ky_begin : 0;
                win.in = input_data;
                if (win.rows > 0) {
                    const int32_t iy = iy0 + ky_begin * dil_h;
                    const int32_t ix = ix0 + kx_begin * dil_w;
                    win.in += ((size_t)(b * in_h + iy) * (size_t)in_w + (size_t)ix) * (size_t)in_c;
                }
                win.w_off = win.rows > 0 ? (ky_begin * k_w + kx_begin) * k_c : 0;
                if (groups == 1 && dil_w == 1) { /* a filter row's taps are contiguous */
                    win.runs = 1;
                    win.len = (kx_end - kx_begin) * k_c;
                } else {
                    win.runs = kx_end - kx_begin;
                    win.len = k_c;
                }
                for (g = 0; g < groups; g++) {
                    edgecc_nn_conv_channels(&job, &win, g * group_out, (g + 1) * group_out, out);
                    win.in += k_c;
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
