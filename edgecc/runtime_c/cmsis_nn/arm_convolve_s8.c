/*
 * edgecc: arm_convolve_wrapper_s8 of the CMSIS-NN v6 API (independent implementation from the
 * API documentation and the TFLite int8 convolution; see README.md).
 *
 * Direct convolution: NHWC input, OHWI filter, groups (filter_dims->c input channels per
 * group), stride, dilation, top/left padding (padded positions contribute nothing, as if they
 * held the input zero point), per-channel requantization, clamp.
 *
 * Output channels are computed four at a time, so that each input value is loaded once for
 * four filters (arm_nn_dot_s8.h). Per output position only the taps inside the input are
 * visited, as rows of contiguous runs: with one group and no horizontal dilation, a filter
 * row's valid taps are one run of (taps x channels) values in both the NHWC input and the OHWI
 * filter.
 *
 * A pointwise convolution (1x1, stride 1, no padding, one group) is a matrix product, computed
 * four output channels at a time over all pixels. Given scratch memory
 * (arm_convolve_wrapper_s8_get_buffer_size(): two words per input channel, or none when there
 * are too few pixels or channels to pay for it), the four filters are first packed in pairs so
 * that one 64-bit multiply-accumulate sums two of them (edgecc_nn_pack4_s8).
 *
 * Either way the sums are the same exact int32 sums as the definition's, so the results are
 * bit for bit the same.
 */
#include "arm_nnfunctions.h"
#include "arm_nn_dot_s8.h"
#include "arm_nn_requantize.h"

#include <stddef.h>

#define EDGECC_NN_PACK_MIN_PIXELS 4     /* packing four filters costs about one pixel */
#define EDGECC_NN_PACK_MIN_CHANNELS 16  /* with fewer, recovering the sums costs more */

/* The call's arguments. */
typedef struct
{
    const int8_t *input;
    const int8_t *filter;
    const int32_t *bias;
    const cmsis_nn_per_channel_quant_params *quant;
    const cmsis_nn_conv_params *p;
    cmsis_nn_dims in;   /* input dims */
    cmsis_nn_dims k;    /* filter dims: k.c input channels per group */
    cmsis_nn_dims out;  /* output dims (batches: in.n) */
    int32_t w_size;     /* values per filter: k.h * k.w * k.c */
    int32_t group_out;  /* output channels per group */
} edgecc_nn_conv;

/* The valid taps of one output position: `rows` rows of `runs` runs of `len` values. Run s of
 * row r starts at in + r * dil.h * W * C + s * dil.w * C in the input (group 0) and at
 * tap + r * k.w * k.c + s * k.c in a filter. */
typedef struct
{
    const int8_t *in;
    int32_t tap;
    int32_t rows;
    int32_t runs;
    int32_t len;
} edgecc_nn_window;

/* 1x1, stride 1, no padding, one group, output size = input size: a matrix product. */
static int32_t edgecc_nn_pointwise(const cmsis_nn_conv_params *p, const cmsis_nn_dims *in,
                                   const cmsis_nn_dims *k, const cmsis_nn_dims *out)
{
    return k->h == 1 && k->w == 1 && k->c == in->c && p->stride.h == 1 && p->stride.w == 1 &&
           p->padding.h == 0 && p->padding.w == 0 && out->h == in->h && out->w == in->w;
}

static void edgecc_nn_window_at(const edgecc_nn_conv *cv, const int32_t b, const int32_t oy,
                                const int32_t ox, edgecc_nn_window *win)
{
    const cmsis_nn_conv_params *p = cv->p;
    const int32_t iy0 = oy * p->stride.h - p->padding.h;
    const int32_t ix0 = ox * p->stride.w - p->padding.w;
    int32_t ky_begin;
    int32_t ky_end;
    int32_t kx_begin;
    int32_t kx_end;
    edgecc_nn_valid_taps(iy0, p->dilation.h, cv->k.h, cv->in.h, &ky_begin, &ky_end);
    edgecc_nn_valid_taps(ix0, p->dilation.w, cv->k.w, cv->in.w, &kx_begin, &kx_end);
    win->in = cv->input;
    win->tap = 0;
    win->rows = 0;
    win->runs = 0;
    win->len = 0;
    if (ky_end > ky_begin && kx_end > kx_begin) {
        const int32_t iy = iy0 + ky_begin * p->dilation.h;
        const int32_t ix = ix0 + kx_begin * p->dilation.w;
        const int32_t row_run = cv->k.c == cv->in.c && p->dilation.w == 1;
        win->in += ((size_t)(b * cv->in.h + iy) * (size_t)cv->in.w + (size_t)ix) * (size_t)cv->in.c;
        win->tap = (ky_begin * cv->k.w + kx_begin) * cv->k.c;
        win->rows = ky_end - ky_begin;
        win->runs = row_run ? 1 : kx_end - kx_begin;
        win->len = row_run ? (kx_end - kx_begin) * cv->k.c : cv->k.c;
    }
}

/* acc[j] = the bias of channel oc + j (0 without bias), for j < count. */
static void edgecc_nn_conv_bias(const edgecc_nn_conv *cv, const int32_t oc, const int32_t count,
                                int32_t *acc)
{
    int32_t j;
    for (j = 0; j < count; j++) {
        acc[j] = cv->bias != NULL ? cv->bias[oc + j] : 0;
    }
}

/* Output channels oc .. oc + count - 1 (count 1 or 4) of every pixel of a pointwise
 * convolution; `packed`: the four filters packed (edgecc_nn_pack4_s8), or NULL. */
static void edgecc_nn_pointwise_block(const edgecc_nn_conv *cv, const int32_t oc,
                                      const int32_t count, const int32_t *packed, int8_t *out)
{
    const int32_t in_c = cv->in.c;
    const int8_t *const w = cv->filter + (size_t)oc * (size_t)in_c;
    const int32_t input_offset = cv->p->input_offset;
    const int32_t chunk = edgecc_nn_pack_chunk(input_offset);
    const int32_t *const multiplier = cv->quant->multiplier + oc;
    const int32_t *const shift = cv->quant->shift + oc;
    const int32_t output_offset = cv->p->output_offset;
    const int32_t act_min = cv->p->activation.min;
    const int32_t act_max = cv->p->activation.max;
    const int8_t *in = cv->input;
    const int8_t *const in_end = in + (size_t)(cv->in.n * cv->in.h * cv->in.w) * (size_t)in_c;
    int32_t bias[4] = { 0, 0, 0, 0 };
    edgecc_nn_conv_bias(cv, oc, count, bias);
    for (out += oc; in != in_end; in += in_c, out += cv->out.c) {
        int32_t acc[4];
        acc[0] = bias[0];
        acc[1] = bias[1];
        acc[2] = bias[2];
        acc[3] = bias[3];
        if (count == 1) {
            edgecc_nn_dot1_s8(in, 0, w, 0, 1, in_c, input_offset, acc);
        } else if (packed != NULL) {
            edgecc_nn_dot4_packed_s8(in, packed, in_c, input_offset, chunk, acc);
        } else {
            edgecc_nn_dot4_s8(in, 0, w, 0, in_c, 1, in_c, input_offset, acc);
        }
        edgecc_nn_outputs(acc, count, multiplier, shift, output_offset, act_min, act_max, out);
    }
}

/* A pointwise convolution: four output channels at a time over all pixels, their filters
 * packed first if `packed` (scratch for 2 * C_IN words) is given. */
static void edgecc_nn_conv_pointwise(const edgecc_nn_conv *cv, int32_t *packed, int8_t *out)
{
    int32_t oc = 0;
    for (; oc + 4 <= cv->out.c; oc += 4) {
        if (packed != NULL) {
            edgecc_nn_pack4_s8(cv->filter + (size_t)oc * (size_t)cv->in.c, cv->in.c, packed);
        }
        edgecc_nn_pointwise_block(cv, oc, 4, packed, out);
    }
    for (; oc < cv->out.c; oc++) {
        edgecc_nn_pointwise_block(cv, oc, 1, NULL, out);
    }
}

/* Output channels oc .. oc + count - 1 (count 1 or 4, one group) of one output position. */
static void edgecc_nn_conv_channels(const edgecc_nn_conv *cv, const edgecc_nn_window *win,
                                    const int32_t oc, const int32_t count, int8_t *out)
{
    const int32_t in_row = cv->p->dilation.h * cv->in.w * cv->in.c;
    const int32_t in_run = cv->p->dilation.w * cv->in.c;
    const int32_t w_row = cv->k.w * cv->k.c;
    const int32_t input_offset = cv->p->input_offset;
    const int8_t *const in = win->in + oc / cv->group_out * cv->k.c;
    const int8_t *const w = cv->filter + (size_t)oc * (size_t)cv->w_size + win->tap;
    int32_t acc[4];
    int32_t r;
    edgecc_nn_conv_bias(cv, oc, count, acc);
    if (win->runs == 1) { /* one run per row */
        if (count == 4) {
            edgecc_nn_dot4_s8(in, in_row, w, w_row, cv->w_size, win->rows, win->len,
                              input_offset, acc);
        } else {
            edgecc_nn_dot1_s8(in, in_row, w, w_row, win->rows, win->len, input_offset, acc);
        }
    } else {
        for (r = 0; r < win->rows; r++) { /* the row's runs */
            if (count == 4) {
                edgecc_nn_dot4_s8(in + r * in_row, in_run, w + r * w_row, cv->k.c, cv->w_size,
                                  win->runs, win->len, input_offset, acc);
            } else {
                edgecc_nn_dot1_s8(in + r * in_row, in_run, w + r * w_row, cv->k.c, win->runs,
                                  win->len, input_offset, acc);
            }
        }
    }
    edgecc_nn_outputs(acc, count, cv->quant->multiplier + oc, cv->quant->shift + oc,
                      cv->p->output_offset, cv->p->activation.min, cv->p->activation.max,
                      out + oc);
}

/* Any convolution: per output position its valid taps once, then the output channels of each
 * group four at a time. */
static void edgecc_nn_conv_general(const edgecc_nn_conv *cv, int8_t *out)
{
    int32_t b;
    int32_t oy;
    int32_t ox;
    for (b = 0; b < cv->in.n; b++) {
        for (oy = 0; oy < cv->out.h; oy++) {
            for (ox = 0; ox < cv->out.w; ox++, out += cv->out.c) {
                edgecc_nn_window win;
                int32_t oc = 0;
                edgecc_nn_window_at(cv, b, oy, ox, &win);
                while (oc < cv->out.c) {
                    const int32_t group_end = (oc / cv->group_out + 1) * cv->group_out;
                    const int32_t count = group_end - oc >= 4 ? 4 : 1;
                    edgecc_nn_conv_channels(cv, &win, oc, count, out);
                    oc += count;
                }
            }
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
    const int32_t scratch = arm_convolve_wrapper_s8_get_buffer_size(conv_params, input_dims,
                                                                    filter_dims, output_dims);
    int32_t groups;
    edgecc_nn_conv cv;

    (void)bias_dims;
    if (filter_dims->c <= 0 || input_dims->c % filter_dims->c != 0 || conv_params->stride.h <= 0 ||
        conv_params->stride.w <= 0 || conv_params->dilation.h <= 0 ||
        conv_params->dilation.w <= 0) {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    groups = input_dims->c / filter_dims->c;
    if (output_dims->c % groups != 0) {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    cv.input = input_data;
    cv.filter = filter_data;
    cv.bias = bias_data;
    cv.quant = quant_params;
    cv.p = conv_params;
    cv.in = *input_dims;
    cv.k = *filter_dims;
    cv.out = *output_dims;
    cv.w_size = filter_dims->h * filter_dims->w * filter_dims->c;
    cv.group_out = output_dims->c / groups;
    if (!edgecc_nn_pointwise(conv_params, input_dims, filter_dims, output_dims)) {
        edgecc_nn_conv_general(&cv, output_data);
    } else if (scratch > 0 && ctx != NULL && ctx->buf != NULL && ctx->size >= scratch &&
               (uintptr_t)ctx->buf % sizeof(int32_t) == 0) {
        edgecc_nn_conv_pointwise(&cv, (int32_t *)ctx->buf, output_data);
    } else {
        edgecc_nn_conv_pointwise(&cv, NULL, output_data); /* the same sums, unpacked */
    }
    return ARM_CMSIS_NN_SUCCESS;
}

int32_t arm_convolve_wrapper_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                                const cmsis_nn_dims *input_dims,
                                                const cmsis_nn_dims *filter_dims,
                                                const cmsis_nn_dims *output_dims)
{
    /* a pointwise convolution's four packed filters: two words per input channel */
    if (!edgecc_nn_pointwise(conv_params, input_dims, filter_dims, output_dims) ||
        input_dims->n * input_dims->h * input_dims->w < EDGECC_NN_PACK_MIN_PIXELS ||
        input_dims->c < EDGECC_NN_PACK_MIN_CHANNELS || output_dims->c < 4 ||
        edgecc_nn_pack_chunk(conv_params->input_offset) == 0) {
        return 0;
    }
    return input_dims->c * 2 * (int32_t)sizeof(int32_t);
}
