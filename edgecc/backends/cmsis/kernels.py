"""Kernels that call the CMSIS-NN s8 API (v6). Each returns None when the node is outside
what the CMSIS-NN function computes, and the portable kernel is used instead.

The generated code links a user-provided `cmsis-nn` library, or edgecc's own implementation
of exactly these functions (runtime_c/cmsis_nn/). Scratch buffers live in the arena: their
sizes come from ``scratch_bytes`` at compile time (the most Arm's library asks for in its DSP,
Helium or pure-C build, buffer_sizes.py, or edgecc's runtime if more) and every call checks,
at run time, that the linked library's ``*_get_buffer_size`` fits the reserved bytes.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ...ir.quant import quant_range, quantize_multiplier
from ...ir.quant_ref import ADD_LEFT_SHIFT, add_multipliers
from ..generic.int8 import activation_bounds, requant_tables
from ..kernels import Kernel, kernel
from . import buffer_sizes as rules
from .cmsis_reference import softmax_params

HELPERS = ("cmsis_helpers.c.j2",)
SCRATCH_ALIGN = 16


def _dims(shape):
    n, h, w, c = shape
    return dict(n=n, h=h, w=w, c=c)


def _edgecc_pointwise_bytes(in_channels: int, pixels: int) -> int:
    """edgecc's arm_convolve_wrapper_s8 packs four 1x1 filters into two int32 per input
    channel when there are at least 4 pixels (and 16 channels, 4 filters; reserving for
    fewer is harmless)."""
    return 8 * in_channels if pixels >= 4 else 0


def _arm_and_edgecc_bytes(graph, node) -> int:
    """The larger of what Arm's CMSIS-NN asks for the node's call, in any of its builds (DSP,
    Helium, pure C: buffer_sizes.py), and what edgecc's own runtime_c/cmsis_nn asks for."""
    if node.op == "QGemm":  # per-channel weights run as a 1x1 convolution (see below)
        w_t = graph.types[node.inputs[1]]
        if w_t.quant is None or len(set(w_t.quant.scale)) == 1:
            # arm_fully_connected_s8 with ctx.buf = NULL: Arm's MVE build (v6+) wants its
            # kernel sums (arm_vector_sum_s8) there, so it refuses the call rather than
            # reading an unfilled buffer
            return 0
        batches, depth = graph.types[node.inputs[0]].shape[0], w_t.shape[1]
        return max(rules.convolve_wrapper_s8(depth, (1, 1), (0, 0), (1, 1), (1, 1), (1, 1), 1),
                   _edgecc_pointwise_bytes(depth, batches))
    if node.op == "QAveragePoolNHWC":
        return rules.avgpool_s8(graph.types[node.inputs[0]].shape[3])
    if node.op != "QConvNHWC":
        return 0
    x = graph.types[node.inputs[0]].shape
    y = graph.types[node.outputs[0]].shape
    a = node.attrs
    if a.group == 1:
        need = rules.convolve_wrapper_s8(x[3], a.kernel, a.pads[:2], a.strides, a.dilations,
                                         x[1:3], y[2])
        if tuple(a.kernel) == (1, 1):
            need = max(need, _edgecc_pointwise_bytes(x[3], y[0] * y[1] * y[2]))
        return need
    need = rules.depthwise_conv_wrapper_s8(x[3], y[3], a.kernel, a.pads[:2], a.dilations)
    return max(need, 4 * y[3] if y[3] == x[3] else 0)  # edgecc's: one int32 per channel


def scratch_bytes(graph, node) -> int:
    """Bytes of scratch reserved in the arena for a node's CMSIS-NN call (0 for ops without
    scratch): _arm_and_edgecc_bytes rounded up to SCRATCH_ALIGN."""
    need = _arm_and_edgecc_bytes(graph, node)
    return (need + SCRATCH_ALIGN - 1) // SCRATCH_ALIGN * SCRATCH_ALIGN


@kernel("QConvNHWC")
def conv(ctx, node):
    g = ctx.graph
    x, w, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    b = ctx.view(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    x_t, w_t, y_t = (g.types[n] for n in (x.name, w.name, y.name))
    a = node.attrs
    act_min, act_max = activation_bounds(a.activation, y_t)
    depthwise = a.group != 1
    channels = y.shape[3]
    filter_dims = (dict(n=1, h=a.kernel[0], w=a.kernel[1], c=channels) if depthwise else
                   dict(n=channels, h=a.kernel[0], w=a.kernel[1], c=x.shape[3]))
    return Kernel("cmsis_conv.c.j2", dict(
        x=x, w=w, b=b, y=y, depthwise=depthwise, ch_mult=channels // x.shape[3],
        input_dims=_dims(x.shape), filter_dims=filter_dims, output_dims=_dims(y.shape),
        stride=a.strides, pad=a.pads[:2], dilation=a.dilations,
        in_offset=-x_t.quant.zero_point[0], out_offset=y_t.quant.zero_point[0],
        act_min=act_min, act_max=act_max, scratch=ctx.scratch(node),
        scratch_size=scratch_bytes(g, node)),
        [x.name, w.name] + ([b.name] if b else []) + [y.name],
        tables=requant_tables(x_t, w_t, y_t, channels), needs=HELPERS)


@kernel("MaxPoolNHWC", "QAveragePoolNHWC")
def pool(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    qmin, qmax = quant_range(x.dtype.np_dtype)
    return Kernel("cmsis_pool.c.j2", dict(
        x=x, y=y, input_dims=_dims(x.shape), output_dims=_dims(y.shape), kernel=a.kernel,
        stride=a.strides, pad=a.pads[:2], act_min=qmin, act_max=qmax,
        api="arm_max_pool_s8" if node.op == "MaxPoolNHWC" else "arm_avgpool_s8",
        scratch=ctx.scratch(node), scratch_size=scratch_bytes(ctx.graph, node)),
        [x.name, y.name], needs=HELPERS)


@kernel("QSoftmax")
def softmax(ctx, node):
    """arm_softmax_s8 over the trailing axes; its output is fixed at scale 1/256, zero
    point -128 (TFLite), so other output quantizations use the portable kernel."""
    g = ctx.graph
    x_t, y_t = g.types[node.inputs[0]], g.types[node.outputs[0]]
    a = node.attrs
    row = int(np.prod(x_t.shape[a.axis:]))
    if (a.end_axis != x_t.rank or x_t.dtype != DType.INT8 or y_t.dtype != DType.INT8
            or y_t.quant.zero_point[0] != -128 or abs(y_t.quant.scale[0] * 256 - 1) > 1e-6
            or row > 4095):
        return None
    try:
        mult, shift, diff_min = softmax_params(x_t.quant.scale[0])
    except ValueError:
        return None
    return Kernel("cmsis_softmax.c.j2", dict(
        x=ctx.view(node.inputs[0]), y=ctx.view(node.outputs[0]), rows=x_t.numel // row,
        row_size=row, mult=mult, shift=shift, diff_min=diff_min),
        [node.inputs[0], node.outputs[0]], needs=HELPERS)


@kernel("QGemm")
def fully_connected(ctx, node):
    g = ctx.graph
    x, w, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    b = ctx.view(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    x_t, w_t, y_t = (g.types[n] for n in (x.name, w.name, y.name))
    if x.dtype != w.dtype or x_t.quant is None or x.ctype != "int8_t":
        return None
    act_min, act_max = activation_bounds(node.attrs.activation, y_t)
    tables = requant_tables(x_t, w_t, y_t, y.shape[1])
    per_tensor = len(set(w_t.quant.scale)) == 1
    context = dict(x=x, w=w, b=b, y=y, batches=x.shape[0], accum_depth=w.shape[1],
                   out_ch=w.shape[0], in_offset=-x_t.quant.zero_point[0],
                   out_offset=y_t.quant.zero_point[0], act_min=act_min, act_max=act_max,
                   per_tensor=per_tensor, scratch=ctx.scratch(node),
                   scratch_size=scratch_bytes(g, node))
    if per_tensor:
        context.update(multiplier=int(tables["multiplier"][0]), shift=int(tables["shift"][0]))
        tables = {}
    return Kernel("cmsis_fully_connected.c.j2", context,
                  [x.name, w.name] + ([b.name] if b else []) + [y.name], tables=tables,
                  needs=HELPERS)


def _same_shape(ctx, node):
    return len({ctx.graph.types[i].shape for i in node.inputs}) == 1


@kernel("QAdd")
def elementwise_add(ctx, node):
    if not _same_shape(ctx, node) or ctx.view(node.outputs[0]).ctype != "int8_t":
        return None
    g = ctx.graph
    a, b, y = (g.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    (ma, sa), (mb, sb), (my, sy) = add_multipliers(a.quant.scale[0], b.quant.scale[0],
                                                   y.quant.scale[0])
    p = dict(a_offset=-a.quant.zero_point[0], a_mult=ma, a_shift=sa,
             b_offset=-b.quant.zero_point[0], b_mult=mb, b_shift=sb, left_shift=ADD_LEFT_SHIFT,
             out_offset=y.quant.zero_point[0], out_mult=my, out_shift=sy)
    act_min, act_max = activation_bounds(node.attrs.activation, y)
    return Kernel("cmsis_add.c.j2", dict(
        a=ctx.view(node.inputs[0]), b=ctx.view(node.inputs[1]), y=ctx.view(node.outputs[0]),
        p=p, act_min=act_min, act_max=act_max), list(node.inputs) + [node.outputs[0]],
        needs=HELPERS)


@kernel("QMul")
def elementwise_mul(ctx, node):
    if not _same_shape(ctx, node) or ctx.view(node.outputs[0]).ctype != "int8_t":
        return None
    g = ctx.graph
    a, b, y = (g.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    mult, shift = quantize_multiplier(a.quant.scale[0] * b.quant.scale[0] / y.quant.scale[0])
    act_min, act_max = activation_bounds(node.attrs.activation, y)
    return Kernel("cmsis_mul.c.j2", dict(
        a=ctx.view(node.inputs[0]), b=ctx.view(node.inputs[1]), y=ctx.view(node.outputs[0]),
        a_offset=-a.quant.zero_point[0], b_offset=-b.quant.zero_point[0],
        out_offset=y.quant.zero_point[0], mult=mult, shift=shift, act_min=act_min,
        act_max=act_max), list(node.inputs) + [node.outputs[0]], needs=HELPERS)


