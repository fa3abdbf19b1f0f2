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

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ...ir import DType
from ..registry import ir_op, lowering


@dataclass(frozen=True)
class ResizeAttrs:
    mode: str                      # nearest | linear | cubic
    coord: str                     # coordinate_transformation_mode
    nearest_mode: str              # round_prefer_floor | round_prefer_ceil | floor | ceil | simple
    scales: Tuple[float, ...]      # per input axis (1.0 where the axis is not resized)
    sizes: Tuple[int, ...]         # the output shape
    roi: Tuple[float, ...] = ()    # tf_crop_and_resize: starts of every axis, then ends
    cubic_a: float = -0.75
    exclude_outside: bool = False
    antialias: bool = False
    extrapolation_value: float = 0.0


@dataclass(frozen=True)
class AxisTaps:
    """Per output index along one axis: ``taps`` input indices (clamped) and their weights."""

    index: np.ndarray              # int64 [out, taps]
    weight: np.ndarray             # float64 [out, taps]
    outside: Optional[np.ndarray]  # bool [out]: take extrapolation_value (tf_crop_and_resize)


def _source_coords(a: ResizeAttrs, axis: int, n_in: int, n_out: int) -> np.ndarray:
    """Input coordinate of each output index (float64), per coordinate_transformation_mode."""
    scale = a.scales[axis]
    y = np.arange(n_out, dtype=np.float64)
    width = scale * n_in  # the output width before flooring, as the spec defines it
    if a.coord == "align_corners":
        return np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)
    if a.coord == "asymmetric":
        return y / scale
    if a.coord == "pytorch_half_pixel":
        return np.full(n_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    if a.coord == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if a.coord == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / width)
        return offset + (y + 0.5) / scale - 0.5
    if a.coord == "tf_crop_and_resize":
        rank = len(a.scales)
        start, end = a.roi[axis], a.roi[rank + axis]
        if width == 1:
            x = np.full(n_out, (end - start) * (n_in - 1) / 2)
        else:
            x = y * (end - start) * (n_in - 1) / (width - 1)
        return x + start * (n_in - 1)
    raise ValueError(a.coord)


def _nearest_choice(a: ResizeAttrs, axis: int, x: np.ndarray) -> np.ndarray:
    floor = np.floor(x)
    frac = x - floor
    mode = a.nearest_mode
    if mode == "simple":  # opset 10: truncate when upsampling, ceil when downsampling
        mode = "ceil" if a.scales[axis] < 1 else "floor"
    up = {"round_prefer_floor": frac > 0.5, "round_prefer_ceil": frac >= 0.5,
          "floor": np.zeros_like(frac, dtype=bool), "ceil": frac > 0}[mode]
    return np.where(frac == 0, x, floor + up).astype(np.int64)


def _coeffs(a: ResizeAttrs, ratio: float, scale: float) -> np.ndarray:
    """Weights of the taps left/right of the source coordinate; ratio in (0, 1]."""
    A = a.cubic_a
    if a.antialias and scale < 1:
        if a.mode == "linear":
            start = int(np.floor(-1 / scale) + 1)
            args = (np.arange(start, 2 - start) - ratio) * scale
            c = np.clip(1 - np.abs(args), 0, 1)
            return c / c.sum()
        start = int(np.floor(-2 / scale) + 1)
        t = np.abs(scale * (np.arange(start, 2 - start) - ratio))
        c = np.where(t <= 1, (A + 2) * t**3 - (A + 3) * t**2 + 1,
                     np.where(t < 2, A * t**3 - 5 * A * t**2 + 8 * A * t - 4 * A, 0.0))
        return c / c.sum()
    if a.mode == "linear":
        return np.array([1 - ratio, ratio])
    d = np.array([ratio + 1, ratio, 1 - ratio, 2 - ratio])
    return np.where(d <= 1, (A + 2) * d**3 - (A + 3) * d**2 + 1,
                    A * d**3 - 5 * A * d**2 + 8 * A * d - 4 * A)


def axis_taps(a: ResizeAttrs, axis: int, n_in: int) -> Optional[AxisTaps]:
    """Index/weight tables of one axis, or None when the axis is left unchanged."""
    n_out = a.sizes[axis]
    trivial_roi = (a.coord != "tf_crop_and_resize"
                   or (math.isclose(a.roi[axis], 0.0)
                       and math.isclose(a.roi[len(a.scales) + axis], 1.0)))
    if math.isclose(a.scales[axis], 1.0) and n_out == n_in and trivial_roi:
        return None
    x = _source_coords(a, axis, n_in, n_out)
    outside = None
    if a.coord == "tf_crop_and_resize":
        outside = (x < 0) | (x > n_in - 1)
    if a.mode == "nearest":
        index = np.clip(_nearest_choice(a, axis, x), 0, n_in - 1)[:, None]
        return AxisTaps(index, np.ones(index.shape), outside)
    # left: the input index just left of x (x itself counts as right), ratio: x - left
    left = np.ceil(x).astype(np.int64) - 1
    ratio = x - left
    weight = np.stack([_coeffs(a, float(r), a.scales[axis]) for r in ratio])
    n = weight.shape[1]  # even: n/2 taps on each side of x
    first = left - n // 2 + 1
    index = first[:, None] + np.arange(n)[None, :]
    if a.exclude_outside:
        weight = np.where((index < 0) | (index >= n_in), 0.0, weight)
        total = weight.sum(axis=1, keepdims=True)
        weight = weight / np.where(total == 0, 1.0, total)
    return AxisTaps(np.clip(index, 0, n_in - 1), weight, outside)


def resize_reference(a: ResizeAttrs, x: np.ndarray) -> np.ndarray:
    """numpy Resize through the same tables, one axis at a time (float64, then cast)."""
    out = x.astype(np.float64)
    for axis in range(x.ndim):
        taps = axis_taps(a, axis, x.shape[axis])
        if taps is None:
            continue
        gathered = np.take(out, taps.index, axis=axis)  # [..., out, taps, ...]
        shape = (1,) * axis + taps.weight.shape + (1,) * (x.ndim - axis - 1)
        out = (gathered * taps.weight.reshape(shape)).sum(axis=axis + 1)
        if taps.outside is not None:
            mask = taps.outside.reshape((1,) * axis + (-1,) + (1,) * (x.ndim - axis - 1))
            out = np.where(mask, a.extrapolation_value, out)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        return np.clip(np.round(out), info.min, info.max).astype(x.dtype)
    return out.astype(x.dtype)


ir_op("Resize", reference=lambda n, xs: [resize_reference(n.attrs, xs[0])])


def _const_vector(ctx, i: int, what: str):
    value = ctx.const_input(i, what, None)
    if value is None or np.asarray(value).size == 0:
        return None
    return np.asarray(value).reshape(-1)


def _text(value, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


@lowering("Resize", const_inputs=(1, 2, 3))
def lower_resize(ctx, node):
    x_t = ctx.type(node.input[0])
    y_t = ctx.type(node.output[0])
    rank = x_t.rank
    if ctx.opset < 11:  # Resize-10: (X, scales)
        roi, scales, sizes = None, _const_vector(ctx, 1, "scales"), None
    else:
        roi = _const_vector(ctx, 1, "roi")
        scales = _const_vector(ctx, 2, "scales")
        sizes = _const_vector(ctx, 3, "sizes")
    coord = _text(ctx.attr("coordinate_transformation_mode"), "half_pixel")
    nearest = _text(ctx.attr("nearest_mode"), "round_prefer_floor")
    if min(ctx.opset, getattr(ctx, "user_opset", ctx.opset)) < 11:
        # Resize-10 (also after onnx's version converter, which keeps the opset-10 attributes
        # and so silently changes the meaning) maps coordinates as asymmetric, and rounds
        # nearest like Upsample: truncate when upsampling, ceil when downsampling
        # (onnxruntime's behaviour).
        coord, nearest = "asymmetric", "simple"
    mode = _text(ctx.attr("mode"), "nearest")
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
        policy = _text(ctx.attr("keep_aspect_ratio_policy"), "stretch")
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
