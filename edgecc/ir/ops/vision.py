"""IR ops (attribute records and facts): detection and geometry ops: AffineGrid, RoiAlign,
DeformConv (2-D), Det.

The ONNX lowerings are in compiler/lowering/vision.py, the C kernels in
backends/generic/vision.py. RoiAlign and DeformConv have no numpy reference: on constants
the loader folds them with onnx's own."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class AffineGridAttrs:
    dims: Tuple[int, ...]   # spatial output size: (H, W) or (D, H, W)
    align_corners: bool


def affine_base(size: int, align: bool) -> np.ndarray:
    """The normalized coordinates of one axis, as onnx's reference (np.arange) makes them."""
    if align:
        return np.array([-1.0]) if size == 1 else -1.0 + np.arange(size) * (2.0 / (size - 1))
    step = 2.0 / size
    return -1.0 + step / 2 + np.arange(size) * step


def _affine_grid_reference(node, xs):
    theta = xs[0].astype(np.float64)
    dims = node.attrs.dims
    axes = [affine_base(d, node.attrs.align_corners) for d in dims]
    mesh = np.meshgrid(*axes, indexing="ij")                  # one array per axis, D/H/W order
    base = np.stack([m.reshape(-1) for m in reversed(mesh)] + [np.ones(mesh[0].size)])
    grid = np.matmul(theta, base)                              # (N, R, points)
    return [np.transpose(grid, (0, 2, 1)).reshape((theta.shape[0], *dims, len(dims)))
            .astype(xs[0].dtype)]


ir_op("AffineGrid", reference=_affine_grid_reference)


@dataclass(frozen=True)
class RoiAlignAttrs:
    mode: str               # "avg" or "max"
    output_height: int
    output_width: int
    sampling_ratio: int     # 0: ceil(roi size / output size) samples per bin and axis
    spatial_scale: float
    half_pixel: bool        # coordinate_transformation_mode "half_pixel"


ir_op("RoiAlign", elementwise=False)


@dataclass(frozen=True)
class DeformConvAttrs:
    """2-D deformable convolution; inputs x, w, offset, bias or "", mask or ""."""
    group: int
    offset_group: int
    kernel: Tuple[int, int]
    pads: Tuple[int, int, int, int]     # top, left, bottom, right
    strides: Tuple[int, int]
    dilations: Tuple[int, int]


def _deform_macs(graph, node):
    w = graph.types[node.inputs[1]].shape
    y = graph.types[node.outputs[0]].shape
    return int(np.prod(y)) * int(np.prod(w[1:]))


ir_op("DeformConv", macs=_deform_macs)


def _det_reference(node, xs):
    """Outputs: the determinants, and the (K, K) double workspace the kernel factors in."""
    x = xs[0]
    return [np.asarray(np.linalg.det(x.astype(np.float64))).astype(x.dtype),
            np.zeros(x.shape[-2:], np.float64)]


ir_op("Det", reference=_det_reference)
