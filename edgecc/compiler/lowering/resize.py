"""Resize (opset 10-19+): nearest, linear and cubic, antialias, every coordinate mode.

Resize is separable: output element (o_0, ..., o_n-1) is
    sum over taps t_a of  prod_a w_a[o_a][t_a] * x[idx_0[o_0][t_0], ..., idx_n-1[o_n-1][t_n-1]]
so everything depends on per-axis tables of input indices and weights, which ``axis_taps``
computes here at compile time (the same math as onnx's reference implementation); the C
kernel only gathers and blends. Nearest mode has one tap of weight 1 per output index.
tf_crop_and_resize marks output indices whose source coordinate falls outside the input:
those elements take ``extrapolation_value``.

Scales, sizes and roi must be compile-time constants.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ...ir import DType
from ...ir.ops.resize import ResizeAttrs, axis_taps
from ..registry import lowering


def _const_vector(ctx, i: int, what: str):
    value = ctx.const_input(i, what, None)
    if value is None or np.asarray(value).size == 0:
        return None
    return np.asarray(value).reshape(-1)


@lowering("Resize", const_inputs=(1, 2, 3))
def lower_resize(ctx, node):
    """Resize; also Upsample (opset 7-9, the form of Resize-10: X and scales; onnx's version
    converter usually turns it into Resize first)."""
    x_t = ctx.type(node.input[0])
    y_t = ctx.type(node.output[0])
    rank = x_t.rank
    if ctx.opset < 11:  # Resize-10: (X, scales)
        roi, scales, sizes = None, _const_vector(ctx, 1, "scales"), None
    else:
        roi = _const_vector(ctx, 1, "roi")
        scales = _const_vector(ctx, 2, "scales")
        sizes = _const_vector(ctx, 3, "sizes")
    coord = ctx.attr("coordinate_transformation_mode", "half_pixel")
    nearest = ctx.attr("nearest_mode", "round_prefer_floor")
    if min(ctx.opset, getattr(ctx, "user_opset", ctx.opset)) < 11:
        # Resize-10 (also after onnx's version converter, which keeps the opset-10 attributes
        # and so silently changes the meaning) maps coordinates as asymmetric, and rounds
        # nearest like Upsample: truncate when upsampling, ceil when downsampling
        # (onnxruntime's behaviour).
        coord, nearest = "asymmetric", "simple"
    mode = ctx.attr("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        raise ctx.error(f"Resize mode '{mode}' is not supported")
    if x_t.dtype == DType.BOOL and mode != "nearest":
        raise ctx.error(f"Resize mode '{mode}' on bool is not supported")
    axes = [int(v) % rank for v in ctx.attr("axes", range(rank))]
    if len(set(axes)) != len(axes):
        raise ctx.error(f"axes {axes} repeat an axis")
    full_scale = [1.0] * rank
    out = list(x_t.shape)
    if sizes is not None:
        if len(sizes) != len(axes):
            raise ctx.error(f"sizes has {len(sizes)} values for {len(axes)} axes")
        for ax, s in zip(axes, sizes):
            full_scale[ax], out[ax] = int(s) / x_t.shape[ax], int(s)
        policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            s = pick(full_scale[ax] for ax in axes)
            for ax in axes:
                full_scale[ax], out[ax] = s, int(s * x_t.shape[ax] + 0.5)
    elif scales is not None:
        if len(scales) != len(axes):
            raise ctx.error(f"scales has {len(scales)} values for {len(axes)} axes")
        for ax, s in zip(axes, scales):
            full_scale[ax] = float(s)
            out[ax] = int(float(s) * x_t.shape[ax])
    else:
        raise ctx.error("Resize needs scales or sizes")
    if any(s <= 0 for s in full_scale):
        raise ctx.error(f"scales must be positive, got {full_scale}")
    if tuple(out) != y_t.shape:
        raise ctx.error(f"computed output shape {tuple(out)} differs from the shape inferred "
                        f"by onnx {y_t.shape}")
    full_roi: Tuple[float, ...] = ()
    if coord == "tf_crop_and_resize":
        if roi is None or len(roi) != 2 * len(axes):
            raise ctx.error("tf_crop_and_resize needs a constant roi with 2 values per axis")
        starts, ends = [0.0] * rank, [1.0] * rank
        for k, ax in enumerate(axes):
            starts[ax], ends[ax] = float(roi[k]), float(roi[len(axes) + k])
        full_roi = tuple(starts + ends)
    attrs = ResizeAttrs(
        mode=mode, coord=coord, nearest_mode=nearest, scales=tuple(full_scale),
        sizes=tuple(out), roi=full_roi, cubic_a=float(ctx.attr("cubic_coeff_a", -0.75)),
        exclude_outside=bool(ctx.attr("exclude_outside", 0)),
        antialias=bool(ctx.attr("antialias", 0)) and mode != "nearest",
        extrapolation_value=float(ctx.attr("extrapolation_value", 0.0)))
    for ax in range(rank):  # fail at compile time on a bad mode, not in the backend
        try:
            axis_taps(attrs, ax, x_t.shape[ax])
        except (KeyError, ValueError) as e:
            raise ctx.error(f"unsupported Resize setting {e}") from None
    ctx.emit("Resize", [node.input[0]], [node.output[0]], attrs)


@lowering("Upsample", const_inputs=(1,))
def lower_upsample(ctx, node):
    if ctx.opset >= 11:
        raise ctx.error("Upsample is deprecated since opset 10: use Resize")
    lower_resize(ctx, node)
