"""IR ops: Resize: nearest, linear and cubic, antialias, every coordinate mode.

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/resize.py."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..registry import ir_op


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


ir_op("Resize", reference=lambda n, xs: [resize_reference(n.attrs, xs[0])], quant="shared")
