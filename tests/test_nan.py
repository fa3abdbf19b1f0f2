"""NaN and infinities through the float kernels, against onnxruntime.

Every float kernel gives NaN wherever onnxruntime 1.32 does, and the same infinities: NaN in
an input reaches the output instead of turning finite (Relu's ``v > 0 ? v : 0`` mapped NaN to
0; max pooling only kept a NaN in the first tap of its window). One-node models with NaN,
+Inf, -Inf and ordinary values, the activations fused into Conv/Gemm, and the digits CNN.

Max-type reductions (MaxPool, GlobalMaxPool, ReduceMax) are where onnxruntime's own answer is
an accident of its implementation: its kernels keep a NaN only in some window positions
(a 2x2/2 MaxPool: the last tap; ReduceMax: the first element; a NaN elsewhere can even hide
the true maximum of a ReduceMax row), and which ones depends on the kernel and the CPU.
edgecc's kernels propagate a NaN from any position, as numpy's max does: they give NaN
everywhere onnxruntime does, NaN where onnxruntime drops it, and onnxruntime's value in
windows without NaN (``_check_max_like``).
"""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx_helpers import make_model
from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAN, INF = np.float32(np.nan), np.float32(np.inf)
# NaN, the infinities, signed zeros, values either side of the activations' corners
SPECIAL = np.array([NAN, INF, -INF, 0.0, -0.0, 1.5, -2.0, 7.0, -0.5, 3.0, -3.0, 100.0],
                   np.float32)


def ort_run(model, feeds):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def edgecc_run(model, feeds, workdir, name="nan", opt="-O2", cflags=(), path=None):
    result = compile_model(path or f"{name}.onnx", model=None if path else model)
    g = result.graph
    build = build_host(result.files, g, result.prefix, str(workdir), opt=opt, cflags=cflags)
    return run_host(build, [feeds[n] for n in g.inputs]), g


def assert_same(got, want, rtol=1e-5, atol=1e-6):
    """Equal NaN positions, equal infinities (sign too), finite values within tolerance."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="NaN positions")
    np.testing.assert_array_equal(np.where(np.isinf(want), want, 0),
                                  np.where(np.isinf(want), got, 0), err_msg="infinities")
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def check(model, feeds, tmp_path, name="nan"):
    want = ort_run(model, feeds)
    got, g = edgecc_run(model, feeds, tmp_path / name, name)
    for a, b in zip(got, want):
        assert_same(a, b)
    return g


def _unary(op, opset=17, **attrs):
    n = SPECIAL.size
    return make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", [n])],
                      [("y", [n])], opset=opset)


UNARY_CASES = [("Relu", {}), ("LeakyRelu", {"alpha": 0.1}), ("LeakyRelu", {"alpha": 0.0}),
               ("HardSigmoid", {}), ("HardSigmoid", {"alpha": 0.5, "beta": 0.1}),
               ("HardSwish", {}), ("Sigmoid", {}), ("Tanh", {}), ("Elu", {"alpha": 0.7}),
               ("Softsign", {}), ("Abs", {}), ("Neg", {}), ("Exp", {}), ("Log", {}),
               ("Sqrt", {}), ("Erf", {})]


@pytest.mark.parametrize("op,attrs", UNARY_CASES,
                         ids=[f"{op}-{'-'.join(map(str, a.values()))}" if a else op
                              for op, a in UNARY_CASES])
def test_unary(op, attrs, tmp_path):
    check(_unary(op, **attrs), {"x": SPECIAL}, tmp_path)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate, tmp_path):
    check(_unary("Gelu", opset=20, approximate=approximate), {"x": SPECIAL}, tmp_path)


CLIP_BOUNDS = [(-1.0, 1.0), (None, 1.0), (-1.0, None), (0.0, 6.0), (None, None),
               (-np.inf, np.inf), (-np.inf, None), (None, np.inf), (2.0, 1.0)]


@pytest.mark.parametrize("lo,hi", CLIP_BOUNDS, ids=[f"{lo}_{hi}" for lo, hi in CLIP_BOUNDS])
def test_clip(lo, hi, tmp_path):
    """NaN stays NaN; a missing bound is the type's largest finite value (ONNX's
    numeric_limits lowest()/max(), as onnxruntime), so +-Inf clip to +-FLT_MAX there, while an
    explicit infinite bound leaves them."""
    n = SPECIAL.size
    inits = {k: np.float32(v) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
    node = helper.make_node("Clip", ["x", "lo" if lo is not None else "",
                                     "hi" if hi is not None else ""], ["y"])
    check(make_model([node], [("x", [n])], [("y", [n])], inits), {"x": SPECIAL}, tmp_path)


def test_clip_opset6_attributes(tmp_path):
    n = SPECIAL.size
    for k, attrs in enumerate([{}, {"min": 0.0}, {"max": 6.0}]):
        model = make_model([helper.make_node("Clip", ["x"], ["y"], **attrs)], [("x", [n])],
                           [("y", [n])], opset=6)
        check(model, {"x": SPECIAL}, tmp_path, f"clip6_{k}")


# every pair of {NaN, +Inf, -Inf, 1, -2}: NaN on either side, and both
_PAIR = np.array([NAN, INF, -INF, 1.0, -2.0], np.float32)
PAIR_A, PAIR_B = (v.ravel() for v in np.meshgrid(_PAIR, _PAIR, indexing="ij"))


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean", "Add", "Sub", "Mul", "Div",
                                "PRelu", "Pow"])
def test_binary(op, tmp_path):
    n = PAIR_A.size
    model = make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", [n]), ("b", [n])],
                       [("y", [n])])
    check(model, {"a": PAIR_A, "b": PAIR_B}, tmp_path)


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_variadic_max_min(op, tmp_path):
    """Three inputs, and a broadcast [1] input: a NaN in any of them gives NaN."""
    n = PAIR_A.size
    c = np.tile(np.array([2.0, NAN, -INF], np.float32), n)[:n]
    model = make_model([helper.make_node(op, ["a", "b", "c"], ["y"])],
                       [("a", [n]), ("b", [n]), ("c", [n])], [("y", [n])])
    check(model, {"a": PAIR_A, "b": PAIR_B, "c": c}, tmp_path, "three")
    model = make_model([helper.make_node(op, ["a", "s"], ["y"])], [("a", [n]), ("s", [1])],
                       [("y", [n])])
    for k, s in enumerate([NAN, INF, -INF, np.float32(0.5)]):
        check(model, {"a": PAIR_A, "s": np.array([s], np.float32)}, tmp_path, f"bcast{k}")


def _windows_max(x, k, s):
    """numpy's max over each k x k window (stride s) of x [N, C, H, W]: NaN propagates."""
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.empty((n, c, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * s:i * s + k, j * s:j * s + k].max(axis=(2, 3))
    return out


def _check_max_like(got, ort_out, ref):
    """got is numpy's NaN-propagating result; onnxruntime's NaNs are a subset of its NaNs;
    where the reference is not NaN (no NaN in the window), got equals onnxruntime."""
    assert_same(got, ref, rtol=0, atol=0)
    assert np.isnan(got[np.isnan(ort_out)]).all()
    keep = ~np.isnan(ref)
    assert_same(got[keep], ort_out[keep], rtol=0, atol=0)


def _pool_input():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    x[0, 0, 1, 1] = NAN    # last tap of window (0, 0) in a 2x2/2 pool: onnxruntime keeps it
    x[0, 0, 2, 2] = NAN    # first tap of window (1, 1): onnxruntime drops it, numpy keeps it
    x[0, 0, 4, 5] = INF
    x[0, 1, 0:2, 0:2] = -INF                 # a window of -Inf only
    x[0, 1, 3, 3], x[0, 1, 5, 4] = -INF, NAN
    return x


def test_max_pool(tmp_path):
    x = _pool_input()
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2],
                                         strides=[2, 2])],
                       [("x", [1, 2, 6, 6])], [("y", [1, 2, 3, 3])])
    (want,) = ort_run(model, {"x": x})
    assert np.isnan(want[0, 0, 0, 0])        # onnxruntime propagates this one
    for opt, flags in (("-O2", ()), ("-O3", ("-march=native",))):   # x != x stays
        (got,), _ = edgecc_run(model, {"x": x}, tmp_path / opt, opt=opt, cflags=flags)
        _check_max_like(got, want, _windows_max(x, 2, 2))
        assert np.isnan(got[0, 0, 1, 1]) and got[0, 1, 0, 0] == -INF


def test_max_pool_overlapping_windows(tmp_path):
    x = _pool_input()
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3])],
                       [("x", [1, 2, 6, 6])], [("y", [1, 2, 4, 4])])
    (want,) = ort_run(model, {"x": x})
    (got,), _ = edgecc_run(model, {"x": x}, tmp_path / "p")
    _check_max_like(got, want, _windows_max(x, 3, 1))


def test_max_pool_indices(tmp_path):
    """With the Indices output: NaN propagates and its index is the first NaN's."""
    x = _pool_input()
    x[0, 0, 0, 0] = NAN                       # window (0, 0): NaN at taps 0 and 3
    graph = helper.make_graph(
        [helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], strides=[2, 2])],
        "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3]),
         helper.make_tensor_value_info("i", TensorProto.INT64, [1, 2, 3, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    want, want_i = ort_run(model, {"x": x})
    (got, got_i), _ = edgecc_run(model, {"x": x}, tmp_path / "p")
    ref = _windows_max(x, 2, 2)
    _check_max_like(got, want, ref)
    keep = ~np.isnan(ref)
    np.testing.assert_array_equal(got_i[keep], want_i[keep])
    assert got_i[0, 0, 0, 0] == 0 and want_i[0, 0, 0, 0] == 0   # both: the first NaN
    assert got_i[0, 0, 1, 1] == 2 * 6 + 2                       # the NaN at (2, 2)


def test_global_max_pool(tmp_path):
    x = _pool_input()
    model = make_model([helper.make_node("GlobalMaxPool", ["x"], ["y"])],
                       [("x", [1, 2, 6, 6])], [("y", [1, 2, 1, 1])])
    (want,) = ort_run(model, {"x": x})
    (got,), _ = edgecc_run(model, {"x": x}, tmp_path / "p")
    _check_max_like(got, want, x.max(axis=(2, 3), keepdims=True))
    y = x.copy()
    y[:, :, -1, -1] = NAN           # the last element: onnxruntime gives NaN too
    (want,) = ort_run(model, {"x": y})
    assert np.isnan(want).all()
    (got,), _ = edgecc_run(model, {"x": y}, tmp_path / "q")
    assert_same(got, want)


@pytest.mark.parametrize("op", ["AveragePool", "GlobalAveragePool"])
def test_average_pool(op, tmp_path):
    x = _pool_input()
    attrs = dict(kernel_shape=[2, 2], strides=[2, 2]) if op == "AveragePool" else {}
    shape = [1, 2, 3, 3] if op == "AveragePool" else [1, 2, 1, 1]
    model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", [1, 2, 6, 6])],
                       [("y", shape)])
    check(model, {"x": x}, tmp_path)


def _reduce_input():
    return np.array([[NAN, 1, 2, 0], [INF, 1, 2, -INF], [-INF, -INF, -INF, -INF],
                     [1, 5, INF, 2], [-1, 3, -2, 0], [2, 1, 0, NAN], [3, NAN, 1, 7]],
                    np.float32)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceSum", "ReduceMean"])
def test_reduce(op, tmp_path):
    x = _reduce_input()
    model = make_model([helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)],
                       [("x", [7, 4])], [("y", [7])],
                       {"axes": np.array([1], np.int64)}, opset=18)
    if op != "ReduceMax":
        check(model, {"x": x}, tmp_path)
        return
    (want,) = ort_run(model, {"x": x})
    assert np.isnan(want[0])                  # a NaN first in its row: onnxruntime keeps it
    (got,), _ = edgecc_run(model, {"x": x}, tmp_path / "r")
    _check_max_like(got, want, x.max(axis=1))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax(op, tmp_path):
    """A row with NaN, +Inf or only -Inf is NaN throughout (max subtraction: inf - inf)."""
    x = _reduce_input()
    model = make_model([helper.make_node(op, ["x"], ["y"], axis=1)], [("x", [7, 4])],
                       [("y", [7, 4])])
    check(model, {"x": x}, tmp_path)


def _fused_ops(g):
    return [(n.op, getattr(getattr(n.attrs, "activation", None), "kind", None))
            for n in g.nodes]


CONV_ACTS = [("Relu", {}, []), ("LeakyRelu", {"alpha": 0.2}, []), ("Clip", {}, ["lo", "hi"]),
             ("Clip", {}, ["lo", ""]), ("HardSigmoid", {}, []), ("HardSwish", {}, [])]
CONV_IDS = ["Relu", "LeakyRelu", "Clip-0-6", "Clip-0-none", "HardSigmoid", "HardSwish"]


@pytest.mark.parametrize("act,attrs,bounds", CONV_ACTS, ids=CONV_IDS)
def test_conv_fused_activation(act, attrs, bounds, tmp_path):
    """Conv 1x1 (one tap per output, so each input value reaches one output as is) and a
    3x3 Conv, each with its activation fused into the epilogue."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    x[0, 0, 0, 0], x[0, 0, 1, 1], x[0, 1, 2, 2], x[0, 0, 3, 0] = NAN, INF, -INF, -INF
    for k in (1, 3):
        w = rng.standard_normal((3, 2, k, k)).astype(np.float32)
        inits = {"w": w, "b": rng.standard_normal(3).astype(np.float32),
                 "lo": np.float32(0.0), "hi": np.float32(6.0)}
        ins = ["c"] + (bounds if act == "Clip" else [])
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[k // 2] * 4),
                 helper.make_node(act, ins, ["y"], **attrs)]
        model = make_model(nodes, [("x", [1, 2, 4, 4])], [("y", [1, 3, 4, 4])], inits)
        g = check(model, {"x": x}, tmp_path, f"conv{k}")
        assert _fused_ops(g) == [("Conv", act)]


@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
def test_gemm_fused_relu(op, tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    x[0, 1], x[1, 2], x[2, 0] = NAN, INF, -INF
    w = np.eye(4, dtype=np.float32)          # each output one input: -Inf -> Relu -> 0
    nodes = [helper.make_node(op, ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    model = make_model(nodes, [("x", [3, 4])], [("y", [3, 4])], {"w": w})
    g = check(model, {"x": x}, tmp_path)
    assert _fused_ops(g) == [(op, "Relu")]


DIGITS = os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx")


@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_digits_cnn(value, tmp_path):
    """The bundled float CNN (Conv+Relu x4, GlobalAveragePool, Gemm) with one non-finite
    pixel: onnxruntime's 10 logits are all NaN (an infinity meets weights of both signs, and
    inf - inf is NaN); edgecc's were finite (Relu turned NaN into 0). At -O2 and at -O3
    -march=native."""
    calib = np.load(os.path.join(ROOT, "examples", "digits", "calib.npz"))
    x = calib[calib.files[0]].astype(np.float32).reshape(-1, 1, 8, 8)[:1].copy()
    x[0, 0, 3, 4] = value
    model = onnx.load(DIGITS)
    (want,) = ort_run(model, {"image": x})
    assert np.isnan(want).all()
    for opt, flags in (("-O2", ()), ("-O3", ("-march=native",))):
        (got,), _ = edgecc_run(model, {"image": x}, tmp_path / opt, opt=opt, cflags=flags,
                               path=DIGITS)
        assert_same(got, want, rtol=1e-4, atol=1e-4)
