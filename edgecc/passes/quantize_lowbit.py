"""Post-training quantization to fewer than 8 bits (--quantize w4a8, w4a4, w2a2, w1a1; --bits).

Runs after passes/quantize.py has put int8 Q/DQ around the layers, on the layers given a
narrower width (by default every 2-D Conv of group 1 between the first and the last layer
with MACs, which stay 8-bit):

Before:  x_q = Q[s, z](x);  x_dq = DQ[s, z](x_q);  y = Conv(x_dq, W, b)
After:   x_q = Q[s', z'](x);  x_c = Clip[levels](x_q);  x_dq = DQ[s', z'](x_c)   (a < 8)
         W_dq = DQ[s_w, bits=k](W_levels);  y = Conv(x_dq, W_dq, b)              (k < 8)

the integer form QONNX models have (compiler/lowering/qonnx.py), so fold-qdq and lower-bits
take the layer as they take a Brevitas layer: a QConv, on bit planes when both widths are <= 4.

Math: weights symmetric per output channel, s_w[c] = max|W[c]| / (2^(k-1) - 1), levels
round(W / s_w) (half to even) in [-(2^(k-1) - 1), 2^(k-1) - 1]; 1 bit: levels sign(W) (+1
for 0), s_w[c] = mean |W[c]| (XNOR-Net), run as -1/+1 weights against the input's codes.
Activations from the calibrated range [lo, hi] of x: unsigned a-bit codes when lo >= 0
(after a Relu), s' = hi / (2^a - 1), zero point -128 (int8 carrier, codes q + 128 in
[0, 2^a - 1]); else signed symmetric, s' =
max(|lo|, |hi|) / (2^(a-1) - 1), zero point 0, levels [-(2^(a-1) - 1), 2^(a-1) - 1]
(1 bit: unsigned codes {0, 1} only; a signed input stays 8-bit).

``auto`` (a per-layer width): the layer takes the mode's widths unless the SQNR of its weights
quantized at that width is more than AUTO_MARGIN_DB below the median of the layers given
widths, then it stays 8-bit (a heuristic: those weights lose the most).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import EdgeccError
from ..ir import DType, Graph, Node, QuantParams, TensorType, UnaryAttrs
from ..ir.ops.quantize_linear import QuantAttrs, QuantizeAttrs
from ..ir.ops import op_macs

MODES = {"w4a8": (4, 8), "w4a4": (4, 4), "w2a2": (2, 2), "w1a1": (1, 1)}
AUTO_MARGIN_DB = 3.0


def candidates(graph: Graph):
    """Layers the modes narrow: 2-D Convs of group 1, not the first or last layer with MACs."""
    macs = [n for n in graph.nodes if op_macs(graph, n)]
    middle = macs[1:-1]
    return [n for n in middle if n.op == "Conv" and len(n.attrs.kernel) == 2
            and n.attrs.group == 1 and n.inputs[1] in graph.constants]


def weight_levels(w: np.ndarray, bits: int) -> Tuple[np.ndarray, np.ndarray]:
    if bits == 1:  # binary: sign(W) (+1 for 0), scale mean |W[c]| (XNOR-Net)
        mean = np.abs(w.astype(np.float64)).reshape(w.shape[0], -1).mean(axis=1)
        scale = np.where(mean > 0, mean, 1.0).astype(np.float32).astype(np.float64)
        return np.where(w >= 0, 1, -1).astype(np.int8), scale
    top = (1 << (bits - 1)) - 1
    flat = np.abs(w.astype(np.float64)).reshape(w.shape[0], -1).max(axis=1)
    scale = np.where(flat > 0, flat / top, 1.0).astype(np.float32).astype(np.float64)
    shape = (-1,) + (1,) * (w.ndim - 1)
    levels = np.clip(np.rint(w / scale.reshape(shape)), -top, top).astype(np.int8)
    return levels, scale


def weight_sqnr(w: np.ndarray, bits: int) -> float:
    levels, scale = weight_levels(w, bits)
    err = w - levels * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    power = float(np.sum(w.astype(np.float64) ** 2))
    return 10 * np.log10(power / max(float(np.sum(err ** 2)), 1e-30)) if power else np.inf


def activation_params(lo: float, hi: float, bits: int):
    """(scale, zero point, levels lo, levels hi) of a-bit codes in an int8 carrier (1 bit:
    unsigned only, the caller keeps a signed tensor wider)."""
    if lo >= 0:
        scale = max(hi, 1e-12) / ((1 << bits) - 1)
        return float(np.float32(scale)), -128, -128, -128 + (1 << bits) - 1
    top = (1 << (bits - 1)) - 1
    scale = max(abs(lo), abs(hi), 1e-12) / top
    return float(np.float32(scale)), 0, -top, top


def read_widths(spec: Optional[str], graph: Graph, label: str) -> Dict[str, object]:
    """--bits: "auto" (every candidate layer "auto"), or a file of lines ``NAME WIDTHS`` with
    WIDTHS one of w4a8, w4a4, w2a2, int8 (w8a8) or auto; # starts a comment."""
    if not spec:
        return {}
    names = [n.name for n in candidates(graph)]
    if spec == "auto":
        return {n: "auto" for n in names}
    try:
        with open(spec) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise EdgeccError(f"--bits {spec}: {e.strerror}") from None
    known = {"int8": (8, 8), "w8a8": (8, 8), "auto": "auto", **MODES}
    out: Dict[str, object] = {}
    for k, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2 or words[1] not in known:
            raise EdgeccError(f"--bits {spec}:{k}: expected 'LAYER WIDTHS' with WIDTHS one of "
                              f"{', '.join(known)}, got '{line.strip()}'")
        if words[0] not in names:
            raise EdgeccError(f"--bits {spec}:{k}: {label} has no layer '{words[0]}' that can "
                              f"take low bits (2-D convolutions of one group between the first "
                              f"and last layers: {', '.join(names) or 'none'})")
        out[words[0]] = known[words[1]]
    return out


def choose_widths(graph: Graph, mode: str, overrides: Dict[str, object]) -> Dict[str, tuple]:
    """Layer name -> (weight bits, activation bits) for the layers below 8 bits. ``overrides``:
    name -> (wbits, abits) or "auto" (the mode's widths where the weights allow)."""
    default = MODES.get(mode)
    widths = {}
    for n in candidates(graph):
        choice = overrides.get(n.name, default)
        if choice == "auto":
            choice = ("auto", default)
        if choice is not None:
            widths[n.name] = choice
    auto = [name for name, c in widths.items() if c[0] == "auto"]
    if auto:
        by_name = {n.name: n for n in graph.nodes}
        sq = {name: weight_sqnr(graph.constants[by_name[name].inputs[1]], widths[name][1][0])
              for name in auto}
        median = float(np.median(list(sq.values())))
        for name in auto:
            if sq[name] < median - AUTO_MARGIN_DB:
                del widths[name]
            else:
                widths[name] = widths[name][1]
    return {k: v for k, v in widths.items() if v != (8, 8)}


def narrow(graph: Graph, widths: Dict[str, Tuple[int, int]], ranges) -> Graph:
    g = graph.copy()
    producers = g.producers()
    acts: Dict[int, tuple] = {}     # id(Q) or id(DQ) -> the narrowed node(s)
    for node in g.nodes:
        if node.name not in widths or widths[node.name][1] >= 8:
            continue
        dq = producers.get(node.inputs[0])
        q = producers.get(dq.inputs[0]) if dq is not None and dq.op == "DequantizeLinear" \
            else None
        if q is None or q.op != "QuantizeLinear" or id(q) in acts:
            continue
        bits = widths[node.name][1]
        rng = ranges.get(dq.outputs[0], ranges.get(q.inputs[0]))  # passes/quantize.py names
        if rng is None or (bits == 1 and rng[0] < 0):  # 1 bit: codes {0, 1}, unsigned only
            continue
        scale, zp, lo, hi = activation_params(float(rng[0]), float(rng[1]), bits)
        quant = QuantParams((scale,), (zp,), None, bits)
        xq = q.outputs[0]
        g.types[xq] = TensorType(DType.INT8, g.types[xq].shape, quant)
        clipped = g.fresh_name(xq + f"_a{bits}")
        g.types[clipped] = TensorType(DType.INT8, g.types[xq].shape, quant)
        clip = Node("Clip", (xq,), (clipped,), UnaryAttrs(alpha=lo, beta=hi),
                    q.name + f".a{bits}", q.origin)
        acts[id(q)] = (q.replace(attrs=QuantizeAttrs(quant, q.attrs.unsigned)), clip)
        acts[id(dq)] = (dq.replace(inputs=(clipped,), attrs=QuantAttrs(quant)),)
    nodes = []
    for node in g.nodes:
        if id(node) in acts:
            nodes.extend(acts[id(node)])
            continue
        if node.name in widths and widths[node.name][0] < 8:
            bits = widths[node.name][0]
            levels, scale = weight_levels(g.constants[node.inputs[1]], bits)
            name = g.fresh_name(node.inputs[1] + f"_w{bits}")
            quant = QuantParams(tuple(float(s) for s in scale), (0,) * len(scale), 0, bits)
            g.constants[name] = levels
            g.types[name] = TensorType(DType.INT8, levels.shape, quant)
            wdq = g.fresh_name(name + "_dq")
            g.types[wdq] = TensorType(DType.FLOAT32, levels.shape)
            nodes.append(Node("DequantizeLinear", (name,), (wdq,), QuantAttrs(quant),
                              node.name + ".weights", node.origin))
            node = node.replace(inputs=(node.inputs[0], wdq) + tuple(node.inputs[2:]))
        nodes.append(node)
    g.nodes = nodes
    g.remove_unused()
    return g
