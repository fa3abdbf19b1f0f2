"""Portable C kernels: AffineGrid, RoiAlign, DeformConv (2-D), Det (see
compiler/lowering/vision.py and ir/ops/vision.py). All compute in double and round once."""
from __future__ import annotations

import numpy as np

from ...ir.ops.vision import affine_base
from ..kernels import Kernel, kernel


@kernel("AffineGrid")
def affine_grid(ctx, node):
    """grid[n, p, i] = sum_j theta[n, i, j] * base_p[j], base_p = (x, y[, z], 1) of point p;
    the normalized coordinates of each axis are tables (onnx's reference values)."""
    theta, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    dims = node.attrs.dims
    tables = {f"axis{i}": affine_base(d, node.attrs.align_corners).astype(np.float64)
              for i, d in enumerate(dims)}
    return Kernel("vision_affine_grid.c.j2", dict(
        theta=theta, y=y, n=theta.shape[0], dims=list(dims), r=len(dims),
        points=int(np.prod(dims))), [theta.name, y.name], tables=tables)


@kernel("RoiAlign")
def roi_align(ctx, node):
    x, rois, idx, y = (ctx.view(n) for n in (*node.inputs, node.outputs[0]))
    a = node.attrs
    return Kernel("vision_roi_align.c.j2", dict(
        x=x, rois=rois, idx=idx, y=y, batch=x.shape[0], c=x.shape[1], h=x.shape[2],
        w=x.shape[3], r=rois.shape[0], oh=a.output_height, ow=a.output_width,
        ratio=a.sampling_ratio, scale=repr(float(a.spatial_scale)),
        offset="0.5" if a.half_pixel else "0.0", half_pixel=a.half_pixel, mode=a.mode),
        [x.name, rois.name, idx.name, y.name])


@kernel("DeformConv")
def deform_conv(ctx, node):
    names = (list(node.inputs) + ["", ""])[:5]
    x, w, off = (ctx.view(n) for n in names[:3])
    bias = ctx.view(names[3]) if names[3] else None
    mask = ctx.view(names[4]) if names[4] else None
    y = ctx.view(node.outputs[0])
    a = node.attrs
    return Kernel("vision_deform_conv.c.j2", dict(
        x=x, w=w, off=off, bias=bias, mask=mask, y=y, n=x.shape[0], c=x.shape[1],
        h=x.shape[2], wd=x.shape[3], m=y.shape[1], oh=y.shape[2], ow=y.shape[3],
        kh=a.kernel[0], kw=a.kernel[1], cg=x.shape[1] // a.group, mg=y.shape[1] // a.group,
        cog=x.shape[1] // a.offset_group, og=a.offset_group, pads=a.pads,
        strides=a.strides, dil=a.dilations),
        [x.name, w.name, off.name] + [v.name for v in (bias, mask) if v] + [y.name])


@kernel("Det")
def det(ctx, node):
    x, y, work = (ctx.view(n) for n in (node.inputs[0], *node.outputs))
    return Kernel("vision_det.c.j2", dict(x=x, y=y, count=y.numel, k=x.shape[-1]),
                  [x.name, y.name, work.name])
