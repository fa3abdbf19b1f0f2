"""Run integer convolutions whose input and weights hold at most 4-bit levels on bit planes.

Before:  a = Clip[lo_a, hi_a](...)                      (int8, zero point z_a)
         t = QConv(a, W, b);  y = Clip[lo_y, hi_y](t)   (int8, W constant int8, zero point 0)
After:   a' = PackBits(a)                               (the codes a - z_a, bit planes NHWC)
         y' = QConvBits(a', W', b)                      (W' = W's planes, y' = the codes y - z_y)
         y = UnpackBits(y')                             (only while an int8 reader is left)

Preconditions: a 2-D QConv of group 1; its input is the output of an int8 Clip (the integer
form of a QONNX quantizer, compiler/lowering/qonnx.py) whose codes a - z_a fit 4 bits (signed
or unsigned: ir/lowbit.py ``fits``); the weights' values fit 4 bits. The output is packed when
it feeds only an int8 Clip whose codes fit 4 bits (that Clip and the QConv's fused Relu become
the kernel's clamp); otherwise it stays int8 NCHW with the QConv's own clamp. A QConvBits whose
input is the output of an UnpackBits reads that UnpackBits' packed input instead, so a chain of
low-bit layers keeps its activations packed.

Then a PackBits whose input is an int8 Clip's output that only it reads, of a 2-D QConv that
only the Clip reads, becomes that QConv's output: QConvPack(x, W, b) writes the codes y - z_y
directly, clamped as the Clip and the QConv's Relu clamp y (the first layer of a low-bit
network keeps no int8 copy of its output in the arena).

Math: the codes are the zero-point-free integers the int8 kernel multiplies (x - z_x) and w,
so acc = sum (x - z_x) w is computed from the same integers (ir/lowbit.py gives the bit-plane
form) and the requantization, bias and clamp are the int8 kernel's: the result is bit for bit
the int8 one. Padding is code 0 = real 0 in both.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ..ir import DType, Graph, NoAttrs, Node, TensorType
from ..ir.lowbit import Bits, fits, pack
from ..ir.ops.lowbit_ops import BitsConvAttrs, PackConvAttrs, packed_type
from ..ir.quant import activation_bounds, quant_range

MAX_BITS = 4


def _clip_codes(graph: Graph, node: Optional[Node]) -> Optional[Bits]:
    """The code of an int8 Clip's output (values minus zero point), if it fits MAX_BITS."""
    if node is None or node.op != "Clip":
        return None
    t = graph.types[node.outputs[0]]
    if t.dtype != DType.INT8 or t.quant is None or len(t.quant.zero_point) != 1:
        return None
    lo, hi = _clip_bounds(graph, node)
    if lo > hi:
        return None
    code = fits(lo - t.quant.zero_point[0], hi - t.quant.zero_point[0])
    return code if code.bits <= MAX_BITS else None


def _clip_bounds(graph: Graph, node: Node):
    qmin, qmax = quant_range(np.int8)
    return max(qmin, int(np.ceil(node.attrs.alpha))), min(qmax, int(np.floor(node.attrs.beta)))


def _code_clamp(graph: Graph, conv: Node, clip: Node):
    """The clamp of a QConv's output codes (y - z_y): its fused Relu's and the Clip's."""
    yt = graph.types[conv.outputs[0]]
    lo, hi = activation_bounds(conv.attrs.activation, yt)
    clo, chi = _clip_bounds(graph, clip)
    z = yt.quant.zero_point[0]
    return max(lo, clo) - z, min(hi, chi) - z


def _weights(graph: Graph, node: Node) -> Optional[np.ndarray]:
    w = graph.constants.get(node.inputs[1])
    wt = graph.types[node.inputs[1]]
    if w is None or wt.dtype != DType.INT8 or wt.quant is None or any(wt.quant.zero_point):
        return None
    return w if fits(int(w.min()), int(w.max())).bits <= MAX_BITS else None


def weight_code(w: np.ndarray) -> Bits:
    """-1/+1 weights (no zero) as binary (one plane), the others their narrowest code."""
    if w.size and np.all(np.abs(w.astype(np.int64)) == 1):
        return Bits(1, binary=True)
    return fits(int(w.min()), int(w.max()))


def _convertible(graph: Graph, node: Node, producers) -> bool:
    if node.op != "QConv" or len(node.attrs.kernel) != 2 or node.attrs.group != 1:
        return False
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    if bias and bias not in graph.constants:
        return False
    x = node.inputs[0]
    p = producers.get(x)
    return _weights(graph, node) is not None and (
        _clip_codes(graph, p) is not None or (p is not None and p.op == "UnpackBits"))


def nhwc(shape):
    return (shape[0], shape[2], shape[3], shape[1])


def lower_bits(graph: Graph) -> Graph:
    g = graph.copy()
    producers = g.producers()
    consumers = g.consumers()
    packed: Dict[str, str] = {}   # int8 tensor -> its packed twin
    absorbed = set()              # the Clips that became a QConvBits' clamp
    nodes = []
    for node in g.nodes:
        if id(node) in absorbed:
            continue
        if node.op == "Conv" and _binary_conv(g, node, producers, consumers, packed, absorbed,
                                              nodes):
            continue
        if not _convertible(g, node, producers):
            nodes.append(node)
            continue
        x = node.inputs[0]
        p = producers[x]
        if p.op == "UnpackBits":
            packed.setdefault(x, p.inputs[0])
        if x not in packed:
            xt = g.types[x]
            name = g.fresh_name(x + ".bits")
            g.types[name] = packed_type(_clip_codes(g, p), nhwc(xt.shape), xt.quant.scale)
            nodes.append(Node("PackBits", (x,), (name,), NoAttrs(), node.name + ".pack",
                              node.origin))
            packed[x] = name
        w = _weights(g, node)
        wcode = weight_code(w)
        wname = g.fresh_name(node.inputs[1] + ".bits")
        g.constants[wname] = pack(np.moveaxis(w, 1, -1), wcode)
        g.types[wname] = packed_type(wcode, (w.shape[0], w.shape[2], w.shape[3], w.shape[1]),
                                     g.types[node.inputs[1]].quant.scale, axis=0)
        y = node.outputs[0]
        yt = g.types[y]
        lo, hi = activation_bounds(node.attrs.activation, yt)
        users = consumers.get(y, [])
        clip = users[0] if len(users) == 1 and y not in g.outputs else None
        ycode = _clip_codes(g, clip)
        a = node.attrs
        geometry = dict(kernel=tuple(a.kernel), strides=tuple(a.strides), pads=tuple(a.pads),
                        dilations=tuple(a.dilations))
        inputs = (packed[x], wname) + tuple(node.inputs[2:3])
        if ycode is None:
            nodes.append(Node("QConvBits", inputs, (y,), BitsConvAttrs(lo=lo, hi=hi, **geometry),
                              node.name, node.origin))
            continue
        out = clip.outputs[0]
        name = g.fresh_name(out + ".bits")
        g.types[name] = packed_type(ycode, nhwc(yt.shape), yt.quant.scale)
        lo, hi = _code_clamp(g, node, clip)
        attrs = BitsConvAttrs(lo=lo, hi=hi, **geometry)
        nodes.append(Node("QConvBits", inputs, (name,), attrs, node.name, node.origin))
        unpack = Node("UnpackBits", (name,), (out,), NoAttrs(), clip.name + ".unpack",
                      clip.origin)
        nodes.append(unpack)
        producers[out] = unpack
        packed[out] = name
        absorbed.add(id(clip))
    g.nodes = nodes
    return _fuse_packs(_drop_unused_unpacks(g))


def _fuse_packs(g: Graph) -> Graph:
    producers, consumers = g.producers(), g.consumers()
    drop, fused = set(), {}
    for pk in g.nodes:
        if pk.op != "PackBits":
            continue
        clip = producers.get(pk.inputs[0])
        conv = producers.get(clip.inputs[0]) if clip is not None and clip.op == "Clip" else None
        if (conv is None or conv.op != "QConv" or len(conv.attrs.kernel) != 2
                or len(consumers.get(clip.outputs[0], [])) != 1
                or len(consumers.get(conv.outputs[0], [])) != 1
                or {clip.outputs[0], conv.outputs[0]} & set(g.outputs)):
            continue
        a = conv.attrs
        lo, hi = _code_clamp(g, conv, clip)
        attrs = PackConvAttrs(a.kernel, a.strides, a.pads, a.dilations, a.group, None, lo, hi)
        fused[id(conv)] = Node("QConvPack", conv.inputs, pk.outputs, attrs, conv.name,
                               conv.origin)
        drop.update((id(clip), id(pk)))
    g.nodes = [fused.get(id(n), n) for n in g.nodes if id(n) not in drop]
    g.remove_unused()
    return g


def _bipolar_scale(graph: Graph, node: Optional[Node]) -> Optional[float]:
    """The scale of a FakeQuant computing BipolarQuant with one constant scale, or None."""
    if node is None or node.op != "FakeQuant" or node.attrs.kind != "bipolar":
        return None
    s = graph.constants.get(node.inputs[1])
    return float(s.reshape(-1)[0]) if s is not None and s.size == 1 else None


def _binary_weights(graph: Graph, node: Node):
    """(signs as -1/+1, alpha[m] > 0) of float weights taking the values +-alpha[m] only."""
    w = graph.constants.get(node.inputs[1])
    if w is None or w.dtype != np.float32 or w.ndim != 4:
        return None
    a = np.abs(w.astype(np.float64)).reshape(w.shape[0], -1)
    alpha = a[:, 0]
    if not (np.all(a == alpha[:, None]) and np.all(alpha > 0) and np.all(np.isfinite(alpha))):
        return None
    return np.where(w > 0, 1, -1), alpha


def _binary_conv(g: Graph, node: Node, producers, consumers, packed, absorbed, nodes) -> bool:
    """A float Conv between two BipolarQuants (binary weights) -> QConvBits on signs:
    sign(alpha[m] s_a D + b[m]) = sign(D + floor(b[m] / (alpha[m] s_a))) for the integer dot
    product D of the signs (alpha[m] s_a > 0), so the bias becomes that integer threshold."""
    a = node.attrs
    if len(a.kernel) != 2 or a.group != 1 or a.activation is not None:
        return False
    users = consumers.get(node.outputs[0], [])
    q_out = users[0] if len(users) == 1 and node.outputs[0] not in g.outputs else None
    s_y = _bipolar_scale(g, q_out)
    x = node.inputs[0]
    p = producers.get(x)
    s_a = _bipolar_scale(g, p)
    from_unpack = p is not None and p.op == "UnpackBits" and g.types[p.inputs[0]].dtype == \
        DType.BINARY
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    signs = _binary_weights(g, node)
    if s_y is None or (s_a is None and not from_unpack) or signs is None or \
            (bias and bias not in g.constants):
        return False
    if from_unpack:
        packed.setdefault(x, p.inputs[0])
        s_a = float(g.types[p.inputs[0]].quant.scale[0])
    elif p.outputs[0] not in packed:
        src = p.inputs[0]
        name = g.fresh_name(src + ".bits")
        g.types[name] = packed_type(Bits(1, binary=True), nhwc(g.types[src].shape), s_a)
        nodes.append(Node("PackBits", (src,), (name,), NoAttrs(), node.name + ".pack",
                          node.origin))
        packed[p.outputs[0]] = name
    w, alpha = signs
    m, c, kh, kw = w.shape
    wname = g.fresh_name(node.inputs[1] + ".bits")
    g.constants[wname] = pack(np.moveaxis(w, 1, -1), Bits(1, binary=True))
    g.types[wname] = packed_type(Bits(1, binary=True), (m, kh, kw, c), alpha, axis=0)
    b = g.constants[bias].astype(np.float64).reshape(-1) if bias else np.zeros(m)
    reach = c * kh * kw + 1   # |D| <= C KH KW: a threshold beyond decides nothing more
    t = np.clip(np.floor(b / (alpha * s_a)), -reach, reach)
    t = np.where(np.isnan(t), -reach, t)  # a NaN bias: the sum is NaN, its sign -1
    tname = g.fresh_name(node.name + ".threshold")
    g.constants[tname] = t.astype(np.int32)
    g.types[tname] = TensorType(DType.INT32, (m,))
    out = q_out.outputs[0]
    yname = g.fresh_name(out + ".bits")
    g.types[yname] = packed_type(Bits(1, binary=True), nhwc(g.types[out].shape), s_y)
    geometry = dict(kernel=tuple(a.kernel), strides=tuple(a.strides), pads=tuple(a.pads),
                    dilations=tuple(a.dilations))
    nodes.append(Node("QConvBits", (packed[x], wname, tname), (yname,),
                      BitsConvAttrs(lo=-1, hi=1, **geometry), node.name, node.origin))
    unpack = Node("UnpackBits", (yname,), (out,), NoAttrs(), q_out.name + ".unpack",
                  q_out.origin)
    nodes.append(unpack)
    producers[out] = unpack
    absorbed.add(id(q_out))
    return True


def _drop_unused_unpacks(g: Graph) -> Graph:
    while True:
        dead = [n for n in g.nodes if n.op in ("UnpackBits", "PackBits")
                and g.use_count(n.outputs[0]) == 0]
        if not dead:
            break
        g.nodes = [n for n in g.nodes if n not in dead]
    g.remove_unused()
    return g
