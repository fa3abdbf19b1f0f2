"""edgecc/verify/reference.py: the exact reference for the integer ONNX ops whose onnxruntime value
depends on the CPU (u8/s8 x s8 kernels that saturate int16 pair sums on AVX2 without VNNI).

The exact ops are checked two ways: against onnxruntime on inputs small enough that no int16
pair sum can saturate (so onnxruntime is exact on every CPU), and against a brute-force loop
over the definition on inputs that do saturate. The session test shows the reference decides
where onnxruntime saturates, and says so.
"""
import itertools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.verify.reference import (ReferenceSession, _session, conv_int, exact_node,
                              integer_kernels_exact)


def _model(node, inputs, inits, opset=21, domain=None):
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    g = helper.make_graph([node], "t",
                          [helper.make_tensor_value_info(n, e, s) for n, e, s in inputs],
                          [onnx.ValueInfoProto(name=node.output[0])],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=opsets, ir_version=10)


def _ort(model, feed):
    s = _session(model)
    return s.run(None, feed)[0]


def _ins(node, feed, inits):
    vals = dict(inits, **feed)
    return [np.asarray(vals[i]) if i else None for i in node.input]


def brute_conv(x, w, stride, pad, dil, group):
    """Direct loops over the definition (2-D), int64."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, m, oh, ow), np.int64)
    for b, o, i, j in itertools.product(range(n), range(m), range(oh), range(ow)):
        g = o // (m // group)
        for ci, a, e in itertools.product(range(cg), range(kh), range(kw)):
            r, s = i * stride - pad + a * dil, j * stride - pad + e * dil
            if 0 <= r < h and 0 <= s < wd:
                y[b, o, i, j] += int(x[b, g * cg + ci, r, s]) * int(w[o, ci, a, e])
    return y


@pytest.mark.parametrize("stride,pad,dil,group", [(1, 1, 1, 1), (2, 0, 1, 1), (1, 2, 2, 2),
                                                  (2, 1, 1, 4)])
def test_conv_int_matches_brute_force_loops(stride, pad, dil, group):
    rng = np.random.default_rng(stride * 7 + pad * 3 + dil + group)
    x = rng.integers(-255, 256, (2, 4, 7, 6))
    w = rng.integers(-128, 128, (8, 4 // group, 3, 3))
    attrs = {"strides": [stride] * 2, "pads": [pad] * 4, "dilations": [dil] * 2, "group": group}
    np.testing.assert_array_equal(conv_int(x, w, attrs), brute_conv(x, w, stride, pad, dil, group))


@pytest.mark.parametrize("act", [np.uint8, np.int8])
@pytest.mark.parametrize("case", ["plain", "grouped", "per_channel", "same_upper", "conv1d"])
def test_qlinear_conv_matches_onnxruntime_where_it_cannot_saturate(act, case):
    """|x - zx| <= 15 and |w| <= 15: each pair sum is at most 2 * 255 * 15 < 2^15."""
    rng = np.random.default_rng(len(case))
    lo = 0 if act == np.uint8 else -128
    zx = lo + 128
    c, m, group = (4, 6, 1) if case != "grouped" else (4, 4, 4)
    spatial, k = ((9, 8), (3, 3)) if case != "conv1d" else ((11,), (5,))
    x = rng.integers(zx - 15, zx + 16, (1, c) + spatial).astype(act)
    w = rng.integers(-15, 16, (m, c // group) + k).astype(np.int8)
    ws = (rng.uniform(0.01, 0.05, m) if case == "per_channel" else np.float32(0.02))
    attrs = dict(group=group, strides=[2] * len(k) if case == "plain" else [1] * len(k))
    if case == "same_upper":
        attrs["auto_pad"] = "SAME_UPPER"
    else:
        attrs["pads"] = [1] * (2 * len(k))
    inits = {"xs": np.float32(0.05), "xz": act(zx), "w": w, "ws": np.asarray(ws, np.float32),
             "wz": np.zeros(np.size(ws), np.int8) if np.size(ws) > 1 else np.int8(0),
             "ys": np.float32(0.05), "yz": act(zx), "b": rng.integers(-500, 500, m).astype(np.int32)}
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                            ["y"], **attrs)
    elem = TensorProto.UINT8 if act == np.uint8 else TensorProto.INT8
    model = _model(node, [("x", elem, x.shape)], inits)
    (got,) = exact_node(node, _ins(node, {"x": x}, inits))
    want = _ort(model, {"x": x})
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 5  # not a saturated constant


def test_matmul_integer_qlinear_matmul_and_qgemm_match_onnxruntime_where_exact():
    rng = np.random.default_rng(5)
    a = rng.integers(120, 137, (3, 20)).astype(np.uint8)
    b = rng.integers(-15, 16, (20, 7)).astype(np.int8)
    cases = [
        (helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"]),
         {"b": b, "az": np.uint8(128), "bz": rng.integers(-3, 4, 7).astype(np.int8)}, None),
        (helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"]),
         {"as": np.float32(0.1), "az": np.uint8(128), "b": b, "bs": np.float32(0.03),
          "bz": np.int8(0), "ys": np.float32(0.05), "yz": np.uint8(120)}, None),
        (helper.make_node("QGemm", ["a", "as", "az", "bt", "bs", "bz", "c", "ys", "yz"], ["y"],
                          domain="com.microsoft", transB=1, alpha=0.5),
         {"as": np.float32(0.1), "az": np.uint8(128), "bt": np.ascontiguousarray(b.T),
          "bs": rng.uniform(0.01, 0.04, 7).astype(np.float32), "bz": np.zeros(7, np.int8),
          "c": rng.integers(-300, 300, 7).astype(np.int32), "ys": np.float32(0.02),
          "yz": np.uint8(128)}, "com.microsoft"),
    ]
    for node, inits, domain in cases:
        model = _model(node, [("a", TensorProto.UINT8, a.shape)], inits, domain=domain)
        (got,) = exact_node(node, _ins(node, {"a": a}, inits))
        want = _ort(model, {"a": a})
        np.testing.assert_array_equal(got, want, err_msg=node.op_type)
        assert len(np.unique(want)) > 5, node.op_type


def test_saturating_u8s8_matmul_is_exact_and_onnxruntime_is_flagged():
    """Inputs whose int16 pair sums overflow: the session's value is the exact one (checked by
    loops), and where onnxruntime's kernel saturated, its disagreement is recorded and said."""
    rng = np.random.default_rng(6)
    a = rng.integers(200, 256, (4, 32)).astype(np.uint8)
    b = rng.integers(100, 128, (32, 5)).astype(np.int8)
    node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
    model = _model(node, [("a", TensorProto.UINT8, a.shape)], {"b": b})
    sess = ReferenceSession(model)
    y = sess.run({"a": a})["y"]
    want = np.array([[sum(int(a[i, k]) * int(b[k, j]) for k in range(32)) for j in range(5)]
                     for i in range(4)], np.int64)
    np.testing.assert_array_equal(y.astype(np.int64), want)
    ort = _ort(model, {"a": a})
    assert np.array_equal(ort, want) == integer_kernels_exact()
    note = sess.note()
    print(f"\nonnxruntime's u8 x s8 kernels exact on this CPU: {integer_kernels_exact()}\n{note}")
    assert note.startswith("reference: 1 integer layer (MatMulInteger) computed exactly")
    if integer_kernels_exact():
        assert "agrees" in note
    else:
        assert "saturate on this CPU" in note and sess.disagreement["y"] > 1000


def test_a_model_without_integer_kernels_is_one_plain_session():
    node = helper.make_node("Relu", ["x"], ["y"])
    model = _model(node, [("x", TensorProto.FLOAT, (3,))], {})
    sess = ReferenceSession(model)
    assert not sess.per_node and sess.note() == ""
    x = np.array([-1, 0, 2], np.float32)
    np.testing.assert_array_equal(sess.run({"x": x})["y"], [0, 0, 2])
