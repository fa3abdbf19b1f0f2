"""Bit-exact tests of the int8 arithmetic kernels (QAdd, QMul, QAveragePool, QReduceMean,
QSoftmax, QMatMul) against the numpy model of their integer arithmetic, and fold-qdq tests of
the arithmetic rules (QDQ ONNX -> integer ops, bit-exact and within 1 LSB of onnxruntime).

Per kernel, ~12 random cases (fixed seed) are built as one IR graph and compiled to one C
program with sanitizers (see int8_testlib.py); every output must equal
edgecc/ir/quant_ref.py's result exactly (np.array_equal). Cases cover broadcasting, constant
and scalar operands, padding and ceil mode, int8 and uint8, fused clamps, and scales that are
powers of two so that requantization lands on exact halves.
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from int8_testlib import (
    I8,
    SEED,
    U8,
    WIDE,
    Program,
    bounds,
    dtypes,
    fit_scale,
    near,
    near_q,
    qp,
    rand_act,
    rand_int,
    rand_q,
    spatial_sizes,
)
from onnx import TensorProto, helper, numpy_helper

from edgecc.ir import Activation
from edgecc.ir import quant_ref as R
from edgecc.ir.ops.gemm import MatMulAttrs
from edgecc.ir.ops.int8_arith_ops import QBinaryAttrs
from edgecc.ir.ops.pool import PoolAttrs
from edgecc.ir.ops.reduce import ReduceAttrs
from edgecc.ir.ops.softmax import SoftmaxAttrs
from edgecc.ir.quant import dequantize, quant_range, quantize
from edgecc.runner import build_host, run_host

# -- QAdd, QMul, QAveragePool, QReduceMean, QSoftmax, QMatMul ----------------------------------

def _broadcast_pair(rng):
    rank = int(rng.integers(1, 5))
    base = [int(d) for d in rng.integers(1, 6, rank)]
    a = [1 if rng.random() < 0.3 else d for d in base]
    b = [1 if rng.random() < 0.3 else d for d in base]
    b = b[int(rng.integers(0, rank)):] if rng.random() < 0.3 else b  # fewer leading dims
    return tuple(a), tuple(b)


@pytest.mark.parametrize("op", ["QAdd", "QMul"])
def test_qadd_qmul(tmp_path, op):
    rng = np.random.default_rng(SEED + (4 if op == "QAdd" else 5))
    p = Program(op.lower())
    for i in range(14):
        sa, sb = _broadcast_pair(rng)
        if i == 12:
            sb = ()  # a scalar operand
        ta, tb = dtypes(rng)
        ty = (I8, U8)[i % 2]
        halves = i % 3 == 0
        if halves:  # Add: output multiplier 2^-20 (or 2^-21): (a' + b') / 2 lands on halves
            s_a = s_b = 2.0**-5
            s_y = 2.0 ** -int(rng.integers(3, 5)) if op == "QAdd" else 2.0**-9
        else:
            s_a, s_b = rng.uniform(0.005, 0.1, 2)
            s_y = (s_a + s_b) * rng.uniform(0.6, 1.5) if op == "QAdd" else \
                s_a * s_b * rng.uniform(40, 150)
        qa, qb, qy = rand_q(rng, ta, s_a), rand_q(rng, tb, s_b), rand_q(rng, ty, s_y)
        if halves and op == "QMul":  # multiplier 0.5 at shift 0: SRDHM's own tie rule
            a, b = near(rng, ta, qa, sa, 15), near(rng, tb, qb, sb, 15)
        else:
            a, b = rand_int(rng, ta, sa), rand_int(rng, tb, sb)
        act = rand_act(rng, i % 4, qy)
        ref = R.qadd if op == "QAdd" else R.qmul
        want = ref(a, qa, b, qb, qy, ty, bounds(act, ty, qy))
        b_name = p.const(b, qb) if i == 13 else p.input(b, qb)   # a constant operand
        p.node(op, [p.input(a, qa), b_name], QBinaryAttrs(act), want, qy,
               f"{sa}x{sb} {ta.__name__},{tb.__name__}->{ty.__name__} act={act}")
    assert p.check(tmp_path) == 14


def test_qaverage_pool(tmp_path):
    rng = np.random.default_rng(SEED + 6)
    p = Program("qavgpool")
    for i in range(16):
        nsp = (1, 2, 2, 3)[i % 4]
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 6))
        if i in (14, 15):  # GlobalAveragePool: a full kernel, no padding
            size = tuple(int(d) for d in rng.integers(1, 9, nsp))
            attrs = PoolAttrs(size, (1,) * nsp, (0,) * (2 * nsp), (1,) * nsp)
            out_sp = (1,) * nsp
        else:
            kernel = tuple(int(rng.integers(1, 4)) for _ in range(nsp))
            strides = tuple(int(rng.integers(1, 4)) for _ in range(nsp))
            dil = tuple(int(rng.integers(1, 3)) if i % 3 == 1 else 1 for _ in range(nsp))
            pads = tuple(int(rng.integers(0, k)) for k in kernel) + \
                tuple(int(rng.integers(0, k)) for k in kernel)
            ceil = i % 2 == 1
            if i == 0:  # count 2, equal scales: multiplier 0.5 at shift 0 (SRDHM ties)
                kernel, strides, dil, pads = (2,), (1,), (1,), (0, 0)
            size, out_sp = spatial_sizes(rng, 9 if nsp < 3 else 5, kernel, strides, dil, pads,
                                         ceil)
            attrs = PoolAttrs(kernel, strides, pads, dil, count_include_pad=i % 4 >= 2)
        tx, ty = dtypes(rng)
        x = rand_int(rng, tx, (n, c) + size)
        if i % 3 == 0:   # equal power-of-two scales: counts 2, 4, ... give exact halves
            s_x = s_y = 2.0**-4
        else:
            s_x = rng.uniform(0.01, 0.1)
            s_y = s_x * rng.uniform(0.4, 1.2)
        qx, qy = rand_q(rng, tx, s_x), near_q(rng, ty, s_y)
        want = R.qaverage_pool(x, qx, qy, attrs, out_sp, ty)
        p.node("QAveragePool", [p.input(x, qx)], attrs, want, qy,
               f"{size} {attrs} {tx.__name__}->{ty.__name__}")
    assert p.check(tmp_path) == 16


def test_qreduce_mean(tmp_path):
    rng = np.random.default_rng(SEED + 7)
    p = Program("qreducemean")
    for i in range(12):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 7, rank))
        axes = tuple(sorted(set(int(a) for a in rng.choice(rank, int(rng.integers(1, rank + 1)),
                                                           replace=False))))
        keepdims = bool(i % 2)
        tx, ty = dtypes(rng)
        x = rand_int(rng, tx, shape)
        s_x = 2.0**-4 if i % 3 == 0 else rng.uniform(0.01, 0.1)
        s_y = s_x if i % 3 == 0 else s_x * rng.uniform(0.4, 1.2)
        qx, qy = rand_q(rng, tx, s_x), near_q(rng, ty, s_y)
        want = R.qreduce_mean(x, qx, qy, axes, keepdims, ty)
        p.node("QReduceMean", [p.input(x, qx)], ReduceAttrs(axes, keepdims), want, qy,
               f"{shape} axes={axes} keepdims={keepdims} {tx.__name__}->{ty.__name__}")
    assert p.check(tmp_path) == 12


def test_qsoftmax(tmp_path):
    rng = np.random.default_rng(SEED + 8)
    p = Program("qsoftmax")
    for i in range(13):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 8, rank))
        axis = int(rng.integers(0, rank))
        end = axis + 1 if i % 3 else rank          # opset < 13: all axes from ``axis``
        if i == 12:
            shape, axis, end = (2, 70000), 1, 2    # past 65535 elements: a uint64 sum
        tx, ty = dtypes(rng)
        x = rand_int(rng, tx, shape)
        s_x = rng.uniform(0.01, 0.3) if i % 4 else 2.0**-3
        if i % 2:   # onnxruntime's fixed softmax output params: [0, 1] over the type
            qy = qp(1 / 256, -128) if ty == I8 else qp(1 / 256, 0)
        else:
            qy = qp(rng.uniform(1 / 255, 1 / 100), quant_range(ty)[0] + rng.integers(0, 10))
        qx = rand_q(rng, tx, s_x)
        want = R.qsoftmax(x, qx, qy, axis, end, ty)
        p.node("QSoftmax", [p.input(x, qx)], SoftmaxAttrs(axis, end), want, qy,
               f"{shape} axes [{axis}, {end}) {tx.__name__}->{ty.__name__}")
    assert p.check(tmp_path) == 13


def test_qsoftmax_close_to_float():
    """The integer softmax is within 1 LSB of quantizing the float softmax of the input."""
    rng = np.random.default_rng(SEED + 9)
    for ty, qy in ((I8, qp(1 / 256, -128)), (U8, qp(1 / 255, 0))):
        x = rand_int(rng, I8, (64, 10))
        qx = qp(0.1, 3)
        real = dequantize(x, 0.1, 3).astype(np.float64)
        e = np.exp(real - real.max(axis=1, keepdims=True))
        want = quantize(e / e.sum(axis=1, keepdims=True), qy.scale[0], qy.zero_point[0], ty)
        got = R.qsoftmax(x, qx, qy, 1, 2, ty)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_qmatmul(tmp_path):
    rng = np.random.default_rng(SEED + 10)
    p = Program("qmatmul")
    for i in range(14):
        m, k, n = (int(v) for v in rng.integers(1, 9, 3))
        batch = [int(d) for d in rng.integers(1, 4, int(rng.integers(0, 3)))]
        ba = [1 if rng.random() < 0.4 else d for d in batch]
        bb = [1 if rng.random() < 0.4 else d for d in batch][int(rng.integers(0, len(batch) + 1)):]
        sa, sb = tuple(ba) + (m, k), tuple(bb) + (k, n)
        if i == 10:
            sa = (k,)          # 1-D operands are promoted, then their axis dropped
        if i == 11:
            sb = (k,)
        ta, tb = dtypes(rng)
        ty = (I8, U8)[i % 2]
        halves, tie = i % 3 == 0, i % 7 == 6
        s_a, s_b = (2.0**-4, 2.0**-5) if halves or tie else rng.uniform(0.01, 0.05, 2)
        qa, qb = rand_q(rng, ta, s_a), rand_q(rng, tb, s_b)
        if tie:  # multiplier 0.25: SRDHM ties, then RDBP ties
            a, b = near(rng, ta, qa, sa, 4), near(rng, tb, qb, sb, 4)
        else:
            a, b = rand_int(rng, ta, sa), rand_int(rng, tb, sb)
        s_y = 2.0**-7 if tie else fit_scale(
            lambda sy: R.qmatmul(a, qa, b, qb, qp(sy, 0), np.int64, WIDE), s_a * s_b, halves)
        qy = rand_q(rng, ty, s_y)
        act = None if tie else rand_act(rng, i % 4, qy)
        want = R.qmatmul(a, qa, b, qb, qy, ty, bounds(act, ty, qy))
        b_name = p.const(b, qb) if i == 13 else p.input(b, qb)
        p.node("QMatMul", [p.input(a, qa), b_name], MatMulAttrs(act), want, qy,
               f"{sa}@{sb} {ta.__name__},{tb.__name__}->{ty.__name__} act={act}")
    assert p.check(tmp_path) == 14


# -- fold-qdq rules of the arithmetic ops (passes/fold_qdq_arith.py) ----------------------------

def _arith_qdq_model(path):
    """One QDQ model, a branch per rule: input -> Q -> DQ -> float op -> Q -> DQ -> output."""
    rng = np.random.default_rng(SEED + 11)
    q = {"a": (0.02, 3, I8), "b": (0.03, 128, U8), "c": (0.025, -7, I8), "d": (0.015, 0, I8)}
    shapes = {"a": (1, 4, 7, 6), "b": (1, 4, 7, 6), "c": (1, 1, 7, 6), "d": (1, 4, 6, 3)}
    nodes, inits = [], {}

    def qparams(name, scale, zp, dtype):
        inits[f"{name}_s"] = np.float32(scale)
        inits[f"{name}_z"] = np.array(zp, dtype=dtype)
        return [f"{name}_s", f"{name}_z"]

    for x, (s, z, t) in q.items():
        nodes.append(helper.make_node("QuantizeLinear", [x] + qparams(x, s, z, t), [f"{x}_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{x}_q", f"{x}_s", f"{x}_z"],
                                      [f"{x}_f"]))
    w = rng.integers(-127, 128, (1, 4, 1, 1)).astype(I8)
    inits["w_q"] = w
    inits["bias"] = rng.uniform(-0.5, 1.5, (1, 4, 1, 1)).astype(np.float32)  # a float constant
    nodes.append(helper.make_node("DequantizeLinear", ["w_q"] + qparams("w", 0.01, 0, I8),
                                  ["w_f"]))
    outs = {  # output -> (float nodes, output params)
        "add": ([helper.make_node("Add", ["a_f", "b_f"], ["add_r"])], (0.04, -10, I8)),
        "addrelu": ([helper.make_node("Add", ["a_f", "c_f"], ["addrelu_t"]),
                     helper.make_node("Relu", ["addrelu_t"], ["addrelu_r"])], (0.02, -128, I8)),
        "mul": ([helper.make_node("Mul", ["a_f", "w_f"], ["mul_r"])], (0.005, 5, I8)),
        "addc": ([helper.make_node("Add", ["b_f", "bias"], ["addc_r"])], (0.03, 120, U8)),
        "pool": ([helper.make_node("AveragePool", ["c_f"], ["pool_r"], kernel_shape=[3, 3],
                                   strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)],
                 (0.02, -5, I8)),
        "gap": ([helper.make_node("GlobalAveragePool", ["b_f"], ["gap_r"])], (0.01, 100, U8)),
        "mean": ([helper.make_node("ReduceMean", ["a_f"], ["mean_r"], axes=[2, 3],
                                   keepdims=0)], (0.01, 2, I8)),
        "softmax": ([helper.make_node("Softmax", ["b_f"], ["softmax_r"], axis=1)],
                    (1 / 256, 0, U8)),
        "matmul": ([helper.make_node("MatMul", ["a_f", "d_f"], ["matmul_r"])], (0.06, 1, I8)),
    }
    out_shapes = {"add": (1, 4, 7, 6), "addrelu": (1, 4, 7, 6), "mul": (1, 4, 7, 6),
                  "addc": (1, 4, 7, 6),
                  "pool": (1, 1, 4, 4), "gap": (1, 4, 1, 1), "mean": (1, 4),
                  "softmax": (1, 4, 7, 6), "matmul": (1, 4, 7, 3)}
    for name, (fnodes, (s, z, t)) in outs.items():
        nodes += fnodes
        nodes.append(helper.make_node("QuantizeLinear", [f"{name}_r"] + qparams(name, s, z, t),
                                      [f"{name}_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s",
                                                           f"{name}_z"], [name]))
    graph = helper.make_graph(
        nodes, "arith_qdq",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, shapes[x]) for x in q],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, out_shapes[n]) for n in outs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    qparams_of = {k: qp(s, z) for k, (s, z, _) in q.items()}
    qparams_of.update({k: qp(s, z) for k, (_, (s, z, _)) in outs.items()})
    dtype_of = {k: t for k, (_, (_, _, t)) in outs.items()}
    return shapes, q, qparams_of, dtype_of, w


def test_fold_arith_rules(tmp_path):
    from edgecc.compiler.driver import compile_model
    path = str(tmp_path / "arith_qdq.onnx")
    shapes, q, Q, T, w = _arith_qdq_model(path)
    r = compile_model(path)
    g = r.graph
    ops = [n.op for n in g.nodes]
    assert set(ops) == {"QuantizeLinear", "DequantizeLinear", "QAdd", "QMul", "QAveragePool",
                        "QReduceMean", "QSoftmax", "QMatMul"}, ops
    assert sorted(ops).count("QAdd") == 3
    fused = [n for n in g.nodes if n.op == "QAdd" and n.attrs.activation is not None]
    addc = next(n for n in g.nodes if n.op == "QAdd" and g.is_constant(n.inputs[1]))
    c_q, c_qp = g.constants[addc.inputs[1]], g.types[addc.inputs[1]].quant
    assert len(fused) == 1 and fused[0].attrs.activation.kind == "Relu"
    pool = next(n for n in g.nodes if n.op == "QAveragePool" and n.attrs.kernel == (3, 3))
    gap = next(n for n in g.nodes if n.op == "QAveragePool" and n.attrs.kernel == (7, 6))

    rng = np.random.default_rng(SEED + 12)
    feeds = {x: (rng.standard_normal(shapes[x]) * 1.2).astype(np.float32) for x in q}
    build = build_host(r.files, g, "model", str(tmp_path / "build"), sanitize=True, opt="-O1")
    ours = dict(zip(g.outputs, run_host(build, [feeds[x] for x in g.inputs])))
    qi = {x: quantize(feeds[x], s, z, t) for x, (s, z, t) in q.items()}
    relu = bounds(Activation("Relu"), T["addrelu"], Q["addrelu"])
    ref = {
        "add": R.qadd(qi["a"], Q["a"], qi["b"], Q["b"], Q["add"], T["add"]),
        "addrelu": R.qadd(qi["a"], Q["a"], qi["c"], Q["c"], Q["addrelu"], T["addrelu"], relu),
        "mul": R.qmul(qi["a"], Q["a"], w, qp(0.01, 0), Q["mul"], T["mul"]),
        "addc": R.qadd(qi["b"], Q["b"], c_q, c_qp, Q["addc"], T["addc"]),
        "pool": R.qaverage_pool(qi["c"], Q["c"], Q["pool"], pool.attrs, (4, 4), T["pool"]),
        "gap": R.qaverage_pool(qi["b"], Q["b"], Q["gap"], gap.attrs, (1, 1), T["gap"]),
        "mean": R.qreduce_mean(qi["a"], Q["a"], Q["mean"], (2, 3), False, T["mean"]),
        "softmax": R.qsoftmax(qi["b"], Q["b"], Q["softmax"], 1, 2, T["softmax"]),
        "matmul": R.qmatmul(qi["a"], Q["a"], qi["d"], Q["d"], Q["matmul"], T["matmul"]),
    }
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    theirs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    for name, want in ref.items():
        s, z = Q[name].scale[0], Q[name].zero_point[0]
        np.testing.assert_array_equal(ours[name], dequantize(want, s, z), err_msg=name)
        lsb = np.abs(ours[name].astype(np.float64) - theirs[name]) / s
        assert lsb.max() <= 1.0 + 1e-3, (name, lsb.max())  # ties: onnxruntime rounds to even


def test_resnet8_qdq_folds_to_integer(tmp_path):
    """onnxruntime's QDQ ResNet-8: the residual Adds, GlobalAveragePool and Softmax fold too,
    leaving only the input Quantize and the output Dequantize in float."""
    import model_zoo
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from edgecc.analyze import analysis
    from edgecc.compiler.driver import compile_model

    float_path, q_path = str(tmp_path / "resnet8.onnx"), str(tmp_path / "resnet8_qdq.onnx")
    model_zoo.build("resnet8", float_path, seed=0)
    name = onnx.load(float_path).graph.input[0].name
    rng = np.random.default_rng(SEED + 13)
    samples = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(6)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter({name: x} for x in samples[:4])

        def get_next(self):
            return next(self.it, None)

    quantize_static(float_path, q_path, Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8)
    r = compile_model(q_path)
    info = analysis(r)["totals"]
    assert info["float_layers"] == []
    ops = [n.op for n in r.graph.nodes]
    assert ops[0] == "QuantizeLinear" and ops[-1] == "DequantizeLinear"
    assert ops.count("QAdd") == 3 and "QAveragePool" in ops and "QSoftmax" in ops
    assert not {"QuantizeLinear", "DequantizeLinear"} & set(ops[1:-1])
    build = build_host(r.files, r.graph, "model", str(tmp_path / "build"), sanitize=True,
                       opt="-O1")
    sess = ort.InferenceSession(q_path, providers=["CPUExecutionProvider"])
    s_out = r.graph.types[r.graph.nodes[-1].inputs[0]].quant.scale[0]
    for x in samples:
        ours = run_host(build, [x])[0]
        theirs = sess.run(None, {name: x})[0]
        assert np.abs(ours - theirs).max() <= 2 * s_out + 1e-6  # end to end: a few LSB at most
