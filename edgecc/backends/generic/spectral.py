"""Portable C kernels: Signal processing for audio front ends: DFT, STFT, MelWeightMatrix and
the window functions (the last two are constants by the time code is generated).

DFT and STFT share one template (templates/spectral_dft.c.j2): a direct O(N^2) transform of
each sequence, its twiddle factors cos/sin(2 pi m / N) a compile-time table, the sums in
double whatever the tensor type (a float32 sum of N terms would lose about log2(N) bits, and
the node tests' 1e-6 absolute tolerance on near-zero bins does not leave them). The input is
viewed as [outer, frames, length, inner, 1|2]: a DFT has one frame and transforms ``length``
values ``inner`` apart; an STFT's frames of ``length`` values start ``step`` apart in the
signal, each multiplied by the window.
"""
from __future__ import annotations

import numpy as np

from ...ir.ops.spectral import twiddles
from ..kernels import Kernel, kernel


def _context(x, y, n, inverse, onesided, outer, frames, frame_stride, inner, used):
    cin, cout = x.shape[-1], y.shape[-1]
    return dict(x=x, y=y, n=n, inverse=inverse, irfft=inverse and onesided,
                cin=cin, cout=cout, outer=outer, frames=frames, inner=inner, used=used,
                x_outer=x.numel // max(outer, 1), x_frame=frame_stride, x_step=inner * cin,
                y_frame=y.numel // max(outer * frames, 1), y_step=inner * cout)


def _tables(n):
    cos, sin = twiddles(n)
    return {"cos": cos.astype(np.float64), "sin": sin.astype(np.float64)}


@kernel("DFT")
def dft(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    outer = int(np.prod(x.shape[:a.axis]))
    inner = int(np.prod(x.shape[a.axis + 1:-1]))
    length = x.shape[a.axis]
    used = min(length, a.length // 2 + 1 if a.inverse and a.onesided else a.length)
    context = _context(x, y, a.length, a.inverse, a.onesided, outer, 1, 0, inner, used)
    context.update(bins=y.shape[a.axis], window=False)
    return Kernel("spectral_dft.c.j2", context, [x.name, y.name], tables=_tables(a.length))


@kernel("STFT")
def stft(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    window = len(node.inputs) > 1
    context = _context(x, y, a.length, False, a.onesided, x.shape[0], y.shape[1],
                       a.step * x.shape[-1], 1, a.length)
    context.update(bins=y.shape[2], window=window)
    args = [x.name] + ([node.inputs[1]] if window else []) + [y.name]
    return Kernel("spectral_dft.c.j2", context, args, tables=_tables(a.length))
