"""Cast to and from the narrow float types (float16, bfloat16, float8, float4; compiler/
lowering/cast.py, backends/generic/cast.py) bit for bit against onnx's reference Cast: every
code of each type decoded to float, and float32/double values (every float16 value, random
float32 bits, ties, overflow, NaN, Inf, subnormals) encoded, with and without saturate, in
ASan/UBSan builds; and a float16 model computed in float32 between its casts."""
import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.reference.ops.op_cast import cast_to

from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host

NARROW = {
    TensorProto.FLOAT16: np.float16, TensorProto.BFLOAT16: ml_dtypes.bfloat16,
    TensorProto.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn,
    TensorProto.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
    TensorProto.FLOAT8E5M2: ml_dtypes.float8_e5m2,
    TensorProto.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz,
    TensorProto.FLOAT8E8M0: ml_dtypes.float8_e8m0fnu,
    TensorProto.FLOAT4E2M1: ml_dtypes.float4_e2m1fn,
}


def _run(model, inputs, tmp_path):
    result = compile_model("cast.onnx", model=model)
    build = build_host(result.files, result.graph, result.prefix, str(tmp_path), sanitize=True,
                       opt="-O1")
    return run_host(build, inputs)


def _same(got, want, what):
    """Equal bits, or both NaN."""
    got, want = np.asarray(got), np.asarray(want).astype(got.dtype)
    bits = np.dtype(f"u{got.dtype.itemsize}")
    nan = np.isnan(got.astype(np.float32)) & np.isnan(want.astype(np.float32))
    bad = ~nan & (got.view(bits) != want.view(bits))
    assert not bad.any(), (f"{what}: {np.flatnonzero(bad)[:8]} got {got[bad][:8]} "
                           f"want {want[bad][:8]}")


def _float_values():
    rng = np.random.default_rng(0)
    f16 = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    rand = rng.integers(0, 2 ** 32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 448, 464, 480, 240, 248,
                      57344, 61440, 65504, 65520, 6, 7, 5, 0.25, 0.75, 1e-45, -1e-40, 3e38,
                      2.0 ** -127, 2.0 ** -128, 1.5 * 2.0 ** -127], np.float32)
    return np.concatenate([f16, rand, edges, -edges])


def test_narrow_floats_encode_like_onnx(tmp_path):
    x = _float_values()
    nodes, outs, want = [], [], []
    for to, np_type in NARROW.items():
        modes = ["up", "down", "nearest"] if to == TensorProto.FLOAT8E8M0 else ["up"]
        for sat in (1, 0):
            for mode in modes:
                name = f"y{len(outs)}"
                nodes.append(helper.make_node("Cast", ["x"], [name], to=to, saturate=sat,
                                              round_mode=mode))
                outs.append(helper.make_tensor_value_info(name, to, [x.size]))
                with np.errstate(all="ignore"):
                    want.append(cast_to(x, to, bool(sat), mode))
    nodes.append(helper.make_node("Cast", ["d"], ["h"], to=TensorProto.FLOAT16))
    outs.append(helper.make_tensor_value_info("h", TensorProto.FLOAT16, [x.size]))
    with np.errstate(all="ignore"):
        d = x.astype(np.float64) * (1 + 2.0 ** -30)  # double -> float16 rounds once
        want.append(d.astype(np.float16))
    graph = helper.make_graph(nodes, "g", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [x.size]),
        helper.make_tensor_value_info("d", TensorProto.DOUBLE, [x.size])], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])
    got = _run(model, [x, d], tmp_path)
    for k, (g, w) in enumerate(zip(got, want)):
        _same(g, w, nodes[k].output[0] + " " + str(nodes[k].attribute))


def test_narrow_floats_decode_like_onnx(tmp_path):
    inputs, nodes, ins, outs, want = [], [], [], [], []
    for k, (to, np_type) in enumerate(NARROW.items()):
        bits = 16 if np.dtype(np_type).itemsize == 2 else 8
        codes = np.arange(2 ** bits, dtype=f"u{bits // 8}")
        if to == TensorProto.FLOAT4E2M1:
            codes = codes[:16]
        value = codes.view(np_type)
        inputs.append(value)
        ins.append(helper.make_tensor_value_info(f"x{k}", to, [codes.size]))
        for dst, np_dst in ((TensorProto.FLOAT, np.float32), (TensorProto.DOUBLE, np.float64)):
            name = f"y{len(outs)}"
            nodes.append(helper.make_node("Cast", [f"x{k}"], [name], to=dst))
            outs.append(helper.make_tensor_value_info(name, dst, [codes.size]))
            with np.errstate(all="ignore"):
                want.append(value.astype(np.float32).astype(np_dst))
    model = helper.make_model(helper.make_graph(nodes, "g", ins, outs),
                              opset_imports=[helper.make_opsetid("", 25)])
    got = _run(model, inputs, tmp_path)
    for k, (g, w) in enumerate(zip(got, want)):
        _same(g, w, nodes[k].output[0])


def test_float16_model_computes_in_float32(tmp_path):
    """Max of two float16 inputs and a float16 weight: one Cast in per input, one out, and the
    weight widened at compile time."""
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((2, 5)).astype(np.float16) for _ in range(2))
    w = onnx.numpy_helper.from_array(rng.standard_normal((5,)).astype(np.float16), "w")
    graph = helper.make_graph(
        [helper.make_node("Max", ["a", "b", "w"], ["m"]), helper.make_node("Neg", ["m"], ["y"])],
        "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT16, [2, 5]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, 5])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    g = compile_model("f16.onnx", model=model).graph
    assert [n.op for n in g.nodes].count("Cast") == 3
    (got,) = _run(model, [a, b], tmp_path)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, -np.maximum(np.maximum(a, b), onnx.numpy_helper.to_array(w)))
