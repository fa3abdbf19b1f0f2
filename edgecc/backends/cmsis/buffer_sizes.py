"""Scratch bytes for the CMSIS-NN s8 calls edgecc emits: what any build of Arm's library asks
for, whichever variant it was compiled for.

Each CMSIS-NN function that takes a scratch buffer has a documented ``*_get_buffer_size`` rule
with one formula per variant: ``_dsp`` (Cortex-M4/M7, ARM_MATH_DSP), ``_mve`` (Helium,
Cortex-M55, ARM_MATH_MVEI) and the pure-C build. They are restated below as Python (from the
CMSIS-NN API documentation, https://arm-software.github.io/CMSIS-NN/latest/ group
GetBufferSizeNNConv, and the comments of Include/arm_nnfunctions.h and
Source/*/arm_*_get_buffer_sizes_s8.c, releases 4.1 to 7.x) and each function returns the
largest of its variants, so the same generated C runs with the library built for any core.
Where releases differ (the wrappers' dispatch, the im2col rounding) the larger is taken.
kernels.scratch_bytes adds what edgecc's own runtime_c/cmsis_nn asks for.
"""
from __future__ import annotations

# arm_nnsupportfunctions.h: input channels per block of the MVE depthwise kernel
CH_IN_BLOCK_MVE = 124


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def convolve_s8(channels: int, kh: int, kw: int) -> int:
    """arm_convolve_s8_get_buffer_size. DSP and pure C: two im2col columns of int16, the column
    (kh * kw * channels) rounded up to 4 (from v6; not rounded before). MVE (_mve): four im2col
    columns of int8, each rounded up to whole 16-byte vectors."""
    col = channels * kh * kw
    return max(2 * _round_up(col, 4) * 2, 4 * _round_up(col, 16))


def convolve_1x1_s8_fast(channels: int) -> int:
    """arm_convolve_1x1_s8_fast_get_buffer_size: 2 * channels int16 in DSP builds made with Arm
    Compiler 6 (v7); 0 with GCC, with MVE and in pure C."""
    return 2 * channels * 2


def convolve_1_x_n_s8_mve(channels: int, kw: int, pad_w: int, stride_w: int, in_w: int,
                          out_w: int) -> int:
    """arm_convolve_1_x_n_s8_get_buffer_size, MVE (v7): one row of kw * channels plus the
    left or right padding, from the counts of output columns touching each padded side; when
    those counts do not add up, arm_convolve_s8's MVE rule. DSP and pure C: arm_convolve_s8's."""
    total = (out_w - 1) * stride_w + kw - in_w
    asym = total - 2 * int(total / 2)        # C's %, which keeps the sign
    right = max(1, -(-(pad_w + asym) // stride_w)) if pad_w + asym else 0
    left = max(1, -(-pad_w // stride_w)) if pad_w else 0
    if right + left + max(out_w - right - left, 0) != out_w:
        return 4 * _round_up(channels * kw, 16)
    pad_left = pad_w * channels
    pad_right = right * channels if asym else pad_left
    return max(kw * channels + pad_left, (kw - 1) * channels + pad_right)


def convolve_wrapper_s8(channels: int, kernel, pads, strides, dilations, in_hw,
                        out_w: int) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size (and its _dsp, _mve): the rule of the function
    the wrapper runs. ``kernel``, ``pads`` (begin pads), ``strides``, ``dilations`` and ``in_hw``
    are (h, w) pairs; one input image (n = 1 per call, or the batch as rows for 1x1)."""
    kh, kw = kernel
    if tuple(kernel) == (1, 1) and tuple(pads) == (0, 0) and tuple(dilations) == (1, 1):
        if tuple(strides) == (1, 1):             # arm_convolve_1x1_s8_fast
            return convolve_1x1_s8_fast(channels)
        # strided: arm_convolve_1x1_s8 (no scratch) from v4.1; v4.0 ran arm_convolve_s8
        return convolve_s8(channels, 1, 1)
    need = convolve_s8(channels, kh, kw)        # arm_convolve_s8, and 1xN's DSP/C rule
    if in_hw[0] == 1 and kh == 1:               # arm_convolve_1_x_n_s8's shapes
        need = max(need, convolve_1_x_n_s8_mve(channels, kw, pads[1], strides[1], in_hw[1],
                                               out_w))
    return need


def depthwise_conv_wrapper_s8(in_channels: int, out_channels: int, kernel, pads,
                              dilations) -> int:
    """arm_depthwise_conv_wrapper_s8_get_buffer_size (and its _dsp, _mve). With one output
    channel per input channel, one image and no dilation it runs arm_depthwise_conv_s8_opt,
    whose rule is 4 * CH_IN_BLOCK_MVE * kh * kw int8 with MVE and in_channels * kh * kw int16
    on DSP, except that DSP and pure-C builds run a 3x3 kernel with pads of at most 1 on
    arm_depthwise_conv_3x3_s8 (no scratch); pure C's opt needs none. Otherwise
    arm_depthwise_conv_s8: no scratch. (MVE's conversion of a one-input-channel depthwise
    convolution to a convolution does not arise: edgecc emits that as a group-1 convolution.)"""
    kh, kw = kernel
    if in_channels != out_channels or tuple(dilations) != (1, 1):
        return 0
    dsp = 0 if (kh, kw) == (3, 3) and max(pads) <= 1 else in_channels * kh * kw * 2
    return max(4 * CH_IN_BLOCK_MVE * kh * kw, dsp)


def avgpool_s8(channels: int) -> int:
    """arm_avgpool_s8_get_buffer_size: one int32 per channel on DSP; 0 with MVE and in C."""
    return 4 * channels
