"""IR ops (attribute records and facts): Signal processing for audio front ends: DFT, STFT,
MelWeightMatrix and the window functions.

The window functions and MelWeightMatrix have only compile-time inputs, so the lowerings
(compiler/lowering/spectral.py) turn them into constants with the numpy functions below; DFT
and STFT are IR ops with a portable C kernel (backends/generic/spectral.py).

Complex tensors are real tensors with a last axis of 2 (real, imaginary); a real input has a
last axis of 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class DFTAttrs:
    axis: int        # the transformed axis of the input (non-negative, not the last)
    length: int      # dft_length N: the input is zero-padded or truncated to it
    inverse: bool
    onesided: bool   # forward: only the first N // 2 + 1 bins; inverse: a real output (irfft)


@dataclass(frozen=True)
class STFTAttrs:
    step: int        # frame_step
    length: int      # frame_length, also the DFT length
    onesided: bool


def twiddles(n: int):
    """cos and sin of 2 pi m / n for m in [0, n), in double, exact at the quarter turns (so
    that a DFT of a real signal has an imaginary part of exactly 0 where it must)."""
    m = np.arange(n)
    cos, sin = np.cos(2 * np.pi * m / n), np.sin(2 * np.pi * m / n)
    for quarter, (c, s) in enumerate(((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))):
        if (quarter * n) % 4 == 0:
            cos[quarter * n // 4], sin[quarter * n // 4] = c, s
    return cos, sin


def _complex(x: np.ndarray) -> np.ndarray:
    """[..., 1] or [..., 2] -> complex128 [...]."""
    x = x.astype(np.float64)
    return x[..., 0] + 1j * x[..., 1] if x.shape[-1] == 2 else x[..., 0] + 0j


def _split(z: np.ndarray) -> np.ndarray:
    return np.stack((z.real, z.imag), axis=-1)


def dft(x: np.ndarray, a: DFTAttrs) -> np.ndarray:
    """ONNX DFT (onnx/reference/ops/op_dft.py) on the [..., 1|2] representation."""
    z = _complex(x)
    n = a.length
    if a.inverse and a.onesided:
        return np.fft.irfft(z, n=n, axis=a.axis)[..., np.newaxis].astype(x.dtype)
    z = np.fft.ifft(z, n=n, axis=a.axis) if a.inverse else np.fft.fft(z, n=n, axis=a.axis)
    if a.onesided:
        z = np.take(z, np.arange(n // 2 + 1), axis=a.axis)
    return _split(z).astype(x.dtype)


def stft(x: np.ndarray, window, a: STFTAttrs) -> np.ndarray:
    """ONNX STFT (onnx/reference/ops/op_stft.py): frames [batch, frames, length, 1|2], each
    times the window, then a forward DFT of length ``length`` along the frame."""
    frames = 1 + (x.shape[1] - a.length) // a.step
    idx = np.arange(frames)[:, None] * a.step + np.arange(a.length)[None, :]
    framed = _complex(x)[:, idx]                      # [batch, frames, length]
    if window is not None:
        framed = framed * window.astype(np.float64)
    z = np.fft.fft(framed, n=a.length, axis=-1)
    if a.onesided:
        z = z[..., :a.length // 2 + 1]
    return _split(z).astype(x.dtype)


def window(op: str, size: int, periodic: bool) -> np.ndarray:
    """HannWindow, HammingWindow or BlackmanWindow of ``size`` points, in double (ONNX:
    N = size when periodic, size - 1 when symmetric)."""
    n = np.arange(size, dtype=np.float64)
    div = size if periodic else size - 1
    # the reference's order of operations: an integer output truncates, so 1 - 1e-16 is 0
    if op == "HannWindow":
        return np.sin(n * np.pi / div) ** 2
    if op == "HammingWindow":
        alpha = 25.0 / 46.0
        return alpha - np.cos(n * np.pi * 2 / div) * (1 - alpha)
    y = np.cos((n * (np.pi * 2)) / div) * -0.5
    y += np.cos((n * (np.pi * 4)) / div) * 0.08
    return y + 0.42


def mel_weight_matrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz,
                      upper_edge_hertz) -> np.ndarray:
    """ONNX MelWeightMatrix [dft_length // 2 + 1, num_mel_bins] in double, step for step as
    onnx/reference/ops/op_mel_weight_matrix.py computes it (same numpy types: the inputs'),
    since the bin edges are floored and a rounding difference moves a whole triangle."""
    num_spectrogram_bins = dft_length // 2 + 1
    frequency_bins = np.arange(0, num_mel_bins + 2)
    low_mel = 2595 * np.log1p(lower_edge_hertz / 700) / np.log(10)
    high_mel = 2595 * np.log1p(upper_edge_hertz / 700) / np.log(10)
    mel_step = (high_mel - low_mel) / frequency_bins.shape[0]
    frequency_bins = frequency_bins * mel_step + low_mel
    frequency_bins = 700 * np.expm1(frequency_bins / 2595 * np.log(10))
    frequency_bins = ((dft_length + 1) * frequency_bins) // sample_rate
    edges = frequency_bins.astype(int)
    out = np.zeros((int(num_spectrogram_bins), int(num_mel_bins)))
    for i in range(int(num_mel_bins)):
        left, center, right = int(edges[i]), int(edges[i + 1]), int(edges[i + 2])
        if center == left:
            out[center, i] = 1
        else:
            for j in range(left, center + 1):
                out[j, i] = float(j - left) / float(center - left)
        if right > center:
            for j in range(center, right):
                out[j, i] = float(right - j) / float(right - center)
    return out


def _dft_macs(graph, node):
    x, y = graph.types[node.inputs[0]], graph.types[node.outputs[0]]
    used = min(x.shape[node.attrs.axis], node.attrs.length)
    return int(np.prod(y.shape[:-1])) * used * 2 * x.shape[-1]


def _stft_macs(graph, node):
    x, y = graph.types[node.inputs[0]], graph.types[node.outputs[0]]
    return int(np.prod(y.shape[:-1])) * node.attrs.length * 2 * x.shape[-1]


ir_op("DFT", reference=lambda node, xs: [dft(xs[0], node.attrs)], macs=_dft_macs)

ir_op("STFT", reference=lambda node, xs: [stft(xs[0], xs[1] if len(xs) > 1 else None,
                                               node.attrs)], macs=_stft_macs)
