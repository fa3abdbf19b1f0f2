"""ONNX lowerings: detection and geometry ops: AffineGrid (opset 20), RoiAlign (10/16/22),
DeformConv (19/22, 2-D as onnx's reference), Det.

Float inputs only (float16 & co. arrive widened to float32); the kernels compute in double
and round once to the output type."""
from __future__ import annotations

import numpy as np

from ...ir import DType, TensorType
from ...ir.ops.vision import AffineGridAttrs, DeformConvAttrs, RoiAlignAttrs
from ..registry import lowering

FLOATS = (DType.FLOAT32, DType.FLOAT64)


def _float(ctx, name, what):
    t = ctx.type(name)
    if t.dtype not in FLOATS:
        raise ctx.error(f"{ctx.node.op_type} {what} of type {t.dtype.name.lower()} "
                        "is not supported")
    return t


@lowering("AffineGrid", const_inputs=(1,))
def lower_affine_grid(ctx, node):
    theta_t = _float(ctx, node.input[0], "theta")
    size = [int(v) for v in ctx.const_input(1, "size").reshape(-1)]
    if len(size) not in (4, 5):
        raise ctx.error(f"AffineGrid size {size} must have 4 or 5 entries")
    dims = tuple(size[2:])
    r = len(dims)
    if theta_t.shape != (size[0], r, r + 1) or min(size) < 1:
        raise ctx.error(f"AffineGrid theta {list(theta_t.shape)} does not match size {size}")
    attrs = AffineGridAttrs(dims, bool(ctx.attr("align_corners", 0)))
    ctx.emit("AffineGrid", [node.input[0]], [node.output[0]], attrs,
             types=[TensorType(theta_t.dtype, (size[0], *dims, r))])


@lowering("RoiAlign")
def lower_roi_align(ctx, node):
    x_t = _float(ctx, node.input[0], "input")
    r_t = _float(ctx, node.input[1], "rois")
    b_t = ctx.type(node.input[2])
    if x_t.rank != 4 or r_t.rank != 2 or r_t.shape[1] != 4:
        raise ctx.error(f"RoiAlign needs X of rank 4 and rois (R, 4), not {list(x_t.shape)} "
                        f"and {list(r_t.shape)}")
    if b_t.dtype not in (DType.INT64, DType.INT32) or b_t.shape != (r_t.shape[0],):
        raise ctx.error(f"RoiAlign batch_indices must be int64 of shape ({r_t.shape[0]},)")
    mode = ctx.attr("mode", "avg")
    if mode not in ("avg", "max"):
        raise ctx.error(f"RoiAlign mode '{mode}' is not supported")
    ctm = ctx.attr("coordinate_transformation_mode",
                   "half_pixel" if ctx.opset >= 16 else "output_half_pixel")
    if ctm not in ("half_pixel", "output_half_pixel"):
        raise ctx.error(f"RoiAlign coordinate_transformation_mode '{ctm}' is not supported")
    oh, ow = int(ctx.attr("output_height", 1)), int(ctx.attr("output_width", 1))
    ratio = int(ctx.attr("sampling_ratio", 0))
    if oh < 1 or ow < 1 or ratio < 0:
        raise ctx.error("RoiAlign output sizes must be positive and sampling_ratio >= 0")
    attrs = RoiAlignAttrs(mode, oh, ow, ratio, float(ctx.attr("spatial_scale", 1.0)),
                          ctm == "half_pixel")
    ctx.emit("RoiAlign", list(node.input[:3]), [node.output[0]], attrs,
             types=[TensorType(x_t.dtype, (r_t.shape[0], x_t.shape[1], oh, ow))])


@lowering("DeformConv")
def lower_deform_conv(ctx, node):
    x_t = _float(ctx, node.input[0], "input")
    w_t = _float(ctx, node.input[1], "weight")
    o_t = _float(ctx, node.input[2], "offset")
    if x_t.rank != 4 or w_t.rank != 4 or o_t.rank != 4:
        raise ctx.error("only 2-D DeformConv is supported")
    n, c = x_t.shape[:2]
    m = w_t.shape[0]
    group, og = int(ctx.attr("group", 1)), int(ctx.attr("offset_group", 1))
    kernel = tuple(int(v) for v in ctx.attr("kernel_shape", w_t.shape[2:]))
    pads = tuple(int(v) for v in ctx.attr("pads", [0] * 4))
    strides = tuple(int(v) for v in ctx.attr("strides", [1, 1]))
    dil = tuple(int(v) for v in ctx.attr("dilations", [1, 1]))
    if (group < 1 or og < 1 or c != w_t.shape[1] * group or m % group or c % og
            or kernel != tuple(w_t.shape[2:]) or len(pads) != 4 or min(pads) < 0
            or len(strides) != 2 or len(dil) != 2 or min(strides + dil) < 1):
        raise ctx.error(f"DeformConv: inconsistent shapes or attributes (X {list(x_t.shape)}, "
                        f"W {list(w_t.shape)}, group {group}, offset_group {og})")
    out = []
    for i in range(2):
        span = (kernel[i] - 1) * dil[i] + 1
        out.append((x_t.shape[2 + i] + pads[i] + pads[i + 2] - span) // strides[i] + 1)
    if o_t.shape != (n, og * kernel[0] * kernel[1] * 2, *out) or min(out) < 1:
        raise ctx.error(f"DeformConv offset {list(o_t.shape)} does not match output {out}")
    inputs = list(node.input[:3])
    for pos, shape in ((3, (m,)), (4, (n, og * kernel[0] * kernel[1], *out))):
        name = ctx.input(pos)
        if name:
            t = _float(ctx, name, "bias" if pos == 3 else "mask")
            if t.numel != int(np.prod(shape)):
                raise ctx.error(f"DeformConv input {pos} {list(t.shape)} does not match "
                                f"{list(shape)}")
        inputs.append(name)
    attrs = DeformConvAttrs(group, og, kernel, pads, strides, dil)
    ctx.emit("DeformConv", inputs, [node.output[0]], attrs,
             types=[TensorType(x_t.dtype, (n, m, *out))])


@lowering("Det")
def lower_det(ctx, node):
    x_t = _float(ctx, node.input[0], "input")
    if x_t.rank < 2 or x_t.shape[-1] != x_t.shape[-2]:
        raise ctx.error(f"Det needs square matrices, not shape {list(x_t.shape)}")
    k = x_t.shape[-1]
    work = ctx.temp(f"{node.output[0]}_lu", TensorType(DType.FLOAT64, (k, k)))  # LU workspace
    ctx.emit("Det", [node.input[0]], [node.output[0], work],
             types=[TensorType(x_t.dtype, tuple(x_t.shape[:-2])), None])
