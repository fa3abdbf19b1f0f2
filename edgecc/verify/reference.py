"""The reference edgecc is verified against: onnxruntime, made exact where its answer depends
on the CPU.

onnxruntime's integer GEMM/convolution kernels (MLAS) multiply 8-bit activations by int8
weights with ``vpmaddubsw`` on x86 CPUs that have AVX2 but no VNNI: it adds two u8 x s8
products into an int16 with saturation, so an accumulator can be wrong by thousands
(255 * 127 * 2 = 64,770 > 32,767). With VNNI, on Arm, or in float the sums are exact. Which
kernel runs depends on the CPU, so onnxruntime's value of such a node is not a reference.

``ReferenceSession`` runs a model as onnxruntime does, except the nodes in ``EXACT_OPS``: those
are computed here in numpy with exact int64 accumulation and onnxruntime's own requantization
(float32 ``x_scale * w_scale / y_scale``, round half to even, saturate). Everything else
(float ops, DQ/Q, the elementwise QLinear* contrib ops) is onnxruntime's. When a model has no
such node, it is one plain onnxruntime session (graph optimizations off). Otherwise each node
runs alone (one small onnxruntime session per node), values flowing between them, and the
session also records, per exact node, how far onnxruntime's own value of that node (on the
same inputs) is from the exact one: ``disagreement`` (output units: LSB, or the int32 value).

``integer_kernels_exact()`` probes onnxruntime once: a u8 x s8 MatMulInteger whose int16 pair
sums overflow. False on CPUs where onnxruntime saturates.
"""
from __future__ import annotations

import functools
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import EdgeccError

EXACT_OPS = {("", "QLinearConv"), ("", "ConvInteger"), ("", "MatMulInteger"),
             ("", "QLinearMatMul"), ("com.microsoft", "QGemm")}


def _session(model: onnx.ModelProto):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


# -- exact integer ops ---------------------------------------------------------------------------

def _zp(z, like_dtype=None) -> np.ndarray:
    return np.zeros((), np.int64) if z is None else np.asarray(z).astype(np.int64)


def _requantize(acc: np.ndarray, scale: np.ndarray, zp, out_dtype) -> np.ndarray:
    """onnxruntime's requantization: float32 acc * float32 scale, round half to even, + zp,
    saturate to the output type."""
    y = np.rint(acc.astype(np.float32) * scale.astype(np.float32)).astype(np.int64)
    info = np.iinfo(out_dtype)
    return np.clip(y + _zp(zp), info.min, info.max).astype(out_dtype)


def conv_int(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    """Exact N-D grouped convolution of int64 arrays (zero points already subtracted):
    x [N, C, *S], w [M, C/group, *K] -> int64 [N, M, *O]."""
    nsp = x.ndim - 2
    ks = list(w.shape[2:])
    strides = list(attrs.get("strides", [1] * nsp))
    dil = list(attrs.get("dilations", [1] * nsp))
    group = int(attrs.get("group", 1))
    pads = list(attrs.get("pads", [0] * (2 * nsp)))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        for d in range(nsp):
            out = -(-x.shape[2 + d] // strides[d])
            total = max(0, (out - 1) * strides[d] + (ks[d] - 1) * dil[d] + 1 - x.shape[2 + d])
            small, big = total // 2, total - total // 2
            pads[d], pads[nsp + d] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * nsp)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[d], pads[nsp + d]) for d in range(nsp)])
    span = [(ks[d] - 1) * dil[d] + 1 for d in range(nsp)]
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=tuple(range(2, 2 + nsp)))
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
              + tuple(slice(None, None, d) for d in dil)]
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    outs = []
    for g in range(group):
        wg = w[g * (m // group):(g + 1) * (m // group)]
        xg = win[:, g * cg:(g + 1) * cg]
        outs.append(np.tensordot(xg, wg, axes=([1] + list(range(2 + nsp, 2 + 2 * nsp)),
                                              [1] + list(range(2, 2 + nsp)))))
    y = np.concatenate(outs, axis=-1)                        # [N, *O, M]
    return np.moveaxis(y, -1, 1)


def _per_channel(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    v = np.asarray(v)
    if v.size <= 1:
        return v.reshape(())
    shape = [1] * ndim
    shape[axis] = v.size
    return v.reshape(shape)


def exact_node(node: onnx.NodeProto, ins: List[Optional[np.ndarray]]) -> List[np.ndarray]:
    """The outputs of one EXACT_OPS node from its input values (None for a missing input)."""
    a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
    ins = ins + [None] * (9 - len(ins))
    op = node.op_type
    if op == "ConvInteger":
        x, w, xz, wz = ins[:4]
        wzc = _per_channel(_zp(wz), w.ndim, 0)
        acc = conv_int(x.astype(np.int64) - _zp(xz), w.astype(np.int64) - wzc, a)
        return [acc.astype(np.int32)]
    if op == "MatMulInteger":
        x, w, xz, wz = ins[:4]
        xzr = _zp(xz)
        if xzr.ndim == 1 and x.ndim >= 2:           # per-row zero point of A
            xzr = xzr.reshape(-1, 1)
        acc = np.matmul(x.astype(np.int64) - xzr, w.astype(np.int64) - _zp(wz))
        return [acc.astype(np.int32)]
    if op == "QLinearConv":
        x, xs, xz, w, ws, wz, ys, yz, b = ins
        wzc = _per_channel(_zp(wz), w.ndim, 0)
        acc = conv_int(x.astype(np.int64) - _zp(xz), w.astype(np.int64) - wzc, a)
        if b is not None:
            acc = acc + b.astype(np.int64).reshape((1, -1) + (1,) * (acc.ndim - 2))
        scale = (np.float32(xs) * np.asarray(ws, np.float32) / np.float32(ys))
        scale = scale.reshape((1, -1) + (1,) * (acc.ndim - 2)) if scale.size > 1 else scale
        return [_requantize(acc, scale, yz, (yz if yz is not None else x).dtype)]
    if op == "QLinearMatMul":
        x, xs, xz, w, ws, wz, ys, yz = ins[:8]
        acc = np.matmul(x.astype(np.int64) - _zp(xz), w.astype(np.int64) - _zp(wz))
        scale = np.float32(xs) * np.asarray(ws, np.float32) / np.asarray(ys, np.float32)
        return [_requantize(acc, scale, yz, yz.dtype)]
    if op == "QGemm":
        x, xs, xz, w, ws, wz, c, ys, yz = ins
        if a.get("transA", 0):
            x = x.T
        if a.get("transB", 0):
            w = w.T
        wzc = np.asarray(_zp(wz)).reshape(-1) if np.size(wz) > 1 else _zp(wz)
        acc = (x.astype(np.int64) - _zp(xz)) @ (w.astype(np.int64) - wzc)
        if c is not None:
            acc = acc + c.astype(np.int64)
        scale = (np.float32(a.get("alpha", 1.0)) * np.float32(xs) * np.asarray(ws, np.float32))
        if ys is None:
            return [(acc.astype(np.float32) * scale).astype(np.float32)]
        return [_requantize(acc, scale / np.float32(ys), yz,
                            yz.dtype if yz is not None else np.uint8)]
    raise ValueError(f"no exact reference for {op}")


# -- the session ---------------------------------------------------------------------------------

def is_exact_op(node: onnx.NodeProto) -> bool:
    return (node.domain if node.domain != "ai.onnx" else "", node.op_type) in EXACT_OPS


QONNX_OPS = ("Quant", "BipolarQuant", "Trunc")


def is_qonnx_op(node: onnx.NodeProto) -> bool:
    from ..compiler.loader import QONNX_DOMAINS
    return node.domain in QONNX_DOMAINS and node.op_type in QONNX_OPS


def qonnx_node(node: onnx.NodeProto, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
    """QONNX's Quant / BipolarQuant / Trunc as the qonnx package executes them (its own
    functions: the reference for QONNX, as onnxruntime is for the standard ops)."""
    try:
        from qonnx.custom_op.general.bipolar_quant import binary_quant
        from qonnx.custom_op.general.intquant import int_quant
        from qonnx.custom_op.general.trunc import trunc_v1, trunc_v2
    except ImportError:
        raise EdgeccError("verifying a QONNX model needs its reference, the qonnx package "
                          "(pip install qonnx)") from None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    default = "FLOOR" if node.op_type == "Trunc" else "ROUND"
    rounding = attrs.get("rounding_mode", default)
    rounding = (rounding.decode() if isinstance(rounding, bytes) else rounding).upper()
    rounding = "DOWN" if rounding == "ROUND_TO_ZERO" else rounding  # qonnx's name
    signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    if node.op_type == "BipolarQuant":
        out = binary_quant(inputs[0], inputs[1])
    elif node.op_type == "Quant":
        out = int_quant(*inputs[:4], signed, narrow, rounding)
    elif len(inputs) >= 6:
        out = trunc_v2(*inputs[:4], narrow, signed, inputs[4], inputs[5], rounding)
    else:
        out = trunc_v1(*inputs[:5], rounding)
    return [np.asarray(out, np.float32)]


class ReferenceSession:
    """onnxruntime (graph optimizations off) with the EXACT_OPS nodes computed exactly.
    ``run(feed)`` returns every graph output, the ``extra`` tensors and the inputs by name."""

    def __init__(self, model: onnx.ModelProto, extra: Sequence[str] = ()):
        self.model = model
        self.exact_nodes = [n for n in model.graph.node if is_exact_op(n)]
        self.qonnx_nodes = [n for n in model.graph.node if is_qonnx_op(n)]
        subgraphs = any(at.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                        for n in model.graph.node for at in n.attribute)
        self.per_node = bool(self.exact_nodes or self.qonnx_nodes) and not subgraphs
        self.disagreement: Dict[str, float] = {}   # exact node output -> max |ort - exact|
        self.output_names = [o.name for o in model.graph.output]
        self.extra = list(dict.fromkeys(extra))
        if not self.per_node:
            m = onnx.ModelProto()
            m.CopyFrom(model)
            have = {o.name for o in m.graph.output} | {i.name for i in m.graph.input}
            for name in self.extra:
                if name not in have:  # untyped: onnxruntime knows the type
                    m.graph.output.append(onnx.ValueInfoProto(name=name))
            self.sess = _session(m)
            self.names = [o.name for o in self.sess.get_outputs()]
        else:
            self.consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
            self._node_sessions: Dict[int, object] = {}

    @property
    def exact_layers(self) -> List[str]:
        return [n.output[0] for n in self.exact_nodes]

    def _ort_node(self, k: int, node: onnx.NodeProto, values: Dict[str, np.ndarray]):
        sess = self._node_sessions.get(k)
        if sess is None:
            runtime = [i for i in dict.fromkeys(node.input) if i and i not in self.consts]
            g = helper.make_graph(
                [node], f"n{k}",
                [helper.make_tensor_value_info(
                    i, helper.np_dtype_to_tensor_dtype(values[i].dtype), values[i].shape)
                 for i in runtime],
                [onnx.ValueInfoProto(name=o) for o in node.output if o],
                [numpy_helper.from_array(self.consts[i], i)
                 for i in dict.fromkeys(node.input) if i in self.consts])
            m = helper.make_model(g, opset_imports=self.model.opset_import,
                                  ir_version=self.model.ir_version)
            sess = self._node_sessions[k] = (_session(m), runtime,
                                             [o for o in node.output if o])
        s, runtime, outs = sess
        return dict(zip(outs, s.run(outs, {i: values[i] for i in runtime})))

    def run(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if not self.per_node:
            return dict(feed, **dict(zip(self.names, self.sess.run(self.names, feed))))
        values = dict(self.consts)
        values.update(feed)
        for k, node in enumerate(self.model.graph.node):
            if is_qonnx_op(node):  # onnxruntime has no such op
                outs = qonnx_node(node, [values[i] for i in node.input])
                values.update(zip([o for o in node.output if o], outs))
                continue
            got = self._ort_node(k, node, values)
            if is_exact_op(node):
                exact = exact_node(node, [values.get(i) if i else None for i in node.input])
                for o, e in zip([o for o in node.output if o], exact):
                    d = float(np.max(np.abs(got[o].astype(np.float64) - e.astype(np.float64)))
                              ) if e.size else 0.0
                    self.disagreement[o] = max(self.disagreement.get(o, 0.0), d)
                    got[o] = e
            values.update(got)
        keep = set(self.output_names) | set(self.extra)
        return dict(feed, **{k: v for k, v in values.items()
                             if k in keep and k not in self.consts})

    def note(self) -> str:
        """One line: which reference decided the exact nodes, and whether onnxruntime agreed."""
        qonnx = (f"reference: {len(self.qonnx_nodes)} QONNX quantizers as the qonnx package "
                 "computes them (float32), the other nodes by onnxruntime"
                 if self.qonnx_nodes and self.per_node else "")
        if not self.exact_nodes or not self.per_node:
            return qonnx
        ops = sorted({n.op_type for n in self.exact_nodes})
        worst = max(self.disagreement.values(), default=0.0)
        off = sum(d > 1 for d in self.disagreement.values())
        n = len(self.exact_nodes)
        head = (f"reference: {n} integer layer{'s' if n != 1 else ''} ({', '.join(ops)}) "
                "computed exactly in numpy (int64 accumulation, onnxruntime's requantization)")
        if off:
            return (f"{head}; onnxruntime differs on {off} of them by up to {worst:g}: its "
                    "8-bit integer kernels saturate on this CPU (int16 pair sums, AVX2 without "
                    "VNNI), so the exact reference decided")
        return f"{head}; onnxruntime agrees within 1 LSB on this CPU (largest difference {worst:g})"


@functools.lru_cache(maxsize=None)
def integer_kernels_exact() -> bool:
    """Whether onnxruntime's u8 x s8 integer matrix product is exact on this CPU: a
    MatMulInteger whose pairs of products overflow int16 (255 * 127 * 2)."""
    g = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "probe",
        [helper.make_tensor_value_info("a", onnx.TensorProto.UINT8, (2, 64))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT32, (2, 16))],
        [numpy_helper.from_array(np.full((64, 16), 127, np.int8), "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    a = np.full((2, 64), 255, np.uint8)
    (y,) = _session(m).run(["y"], {"a": a})
    return bool(np.array_equal(y, np.full((2, 16), 255 * 127 * 64, np.int32)))
