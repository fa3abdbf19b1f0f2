"""Portable C kernel for GridSample (compiler/lowering/sampling.py), as onnx's reference
(and PyTorch's grid_sampler) computes it: per output point, denormalize each coordinate
(align_corners: (g + 1) / 2 * (size - 1), else ((g + 1) * size - 1) / 2), round half to even
for nearest, move coordinates outside [lo, hi] in by the padding mode (border: clamp to
[0, size - 1]; reflection: reflect about lo and hi, which are 0 and size - 1 with
align_corners, else -0.5 and size - 0.5), then blend the 1 (nearest), 2 (linear) or 4 (cubic,
Keys' a = -0.75) taps of each axis; a tap index outside the input reads 0 (zeros), the
clamped index (border) or the reflected one (reflection)."""
from __future__ import annotations

from ..kernels import Kernel, kernel


@kernel("GridSample")
def grid_sample(ctx, node):
    x, grid, y = (ctx.view(n) for n in (*node.inputs, *node.outputs))
    a = node.attrs
    dims = list(x.shape[2:])
    points = 1
    for d in y.shape[2:]:
        points *= d
    taps = {"nearest": 1, "linear": 2, "cubic": 4}[a.mode]
    return Kernel("sampling_grid.c.j2", dict(
        x=x, grid=grid, y=y, n=x.shape[0], c=x.shape[1], dims=dims, rank=len(dims),
        points=points, taps=taps, mode=a.mode, padding=a.padding_mode,
        align=a.align_corners, t=x.ctype, acc="double"),
        [x.name, grid.name, y.name])
