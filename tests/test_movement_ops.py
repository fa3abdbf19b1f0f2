"""Data-movement ops in small models the ONNX node tests do not cover, compiled to C, built
with sanitizers and compared with onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host

F = TensorProto.FLOAT


def make(nodes, inputs, outputs, inits=(), opset=21):
    """A checked model; ``outputs`` are names, typed by onnx shape inference."""
    graph = helper.make_graph(nodes, "t", inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outputs],
                              [numpy_helper.from_array(v, k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=10)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def check(model, feeds, tmp_path, label="m"):
    """Compile, build with ASan/UBSan, run; compare every output with onnxruntime exactly."""
    result = compile_model(f"{label}.onnx", model=model)
    g = result.graph
    build = build_host(result.files, g, result.prefix, str(tmp_path / label), sanitize=True,
                       opt="-O1")
    got = run_host(build, [feeds[n] for n in g.inputs])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    return result


def ints(name, values):
    return (name, np.array(values, dtype=np.int64))


def test_reshape_chain_to_graph_output(tmp_path):
    """Reshape -> Flatten -> Unsqueeze -> Squeeze: no code, no buffer, output copied out."""
    nodes = [
        helper.make_node("Reshape", ["x", "s"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=2),
        helper.make_node("Unsqueeze", ["f", "ax"], ["u"]),
        helper.make_node("Squeeze", ["u", "ax0"], ["y"]),
    ]
    model = make(nodes, [vi("x", F, [2, 3, 4])], ["y"],
                 [ints("s", [4, 0, -1]), ints("ax", [0, 3]), ints("ax0", [0])])
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    r = check(model, {"x": x}, tmp_path)
    assert [n.op for n in r.graph.nodes] == ["Reshape"] * 4
    # all the caller's input bytes (graph inputs are not copied into the arena): y is copied out
    assert all(r.plan.external[t] == "x" for t in ("x", "r", "f", "u", "y"))
    assert r.plan.arena_bytes == 0


def test_reshape_alias_keeps_source_alive(tmp_path):
    """An alias extends its source buffer's life: Sigmoid must not overwrite a, still read
    by the Add after it."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Reshape", ["a", "s"], ["r"]),
        helper.make_node("Sigmoid", ["r"], ["y0"]),
        helper.make_node("Add", ["a", "a"], ["y1"]),
    ]
    model = make(nodes, [vi("x", F, [2, 6])], ["y0", "y1"],
                 [ints("s", [3, 4])])
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6)
    result = compile_model("m.onnx", model=model)
    build = build_host(result.files, result.graph, result.prefix, str(tmp_path / "m"),
                       sanitize=True, opt="-O1")
    y0, y1 = run_host(build, [x])
    np.testing.assert_allclose(y0, 1 / (1 + np.exp(-np.maximum(x, 0).reshape(3, 4))),
                               rtol=1e-6)
    np.testing.assert_array_equal(y1, 2 * np.maximum(x, 0))


def test_reshape_of_constant_output_is_folded(tmp_path):
    model = make([helper.make_node("Reshape", ["c", "s"], ["y"]),
                  helper.make_node("Relu", ["x"], ["z"])],
                 [vi("x", F, [2])], ["y", "z"],
                 [("c", np.arange(6, dtype=np.float32)), ints("s", [2, 3])])
    r = check(model, {"x": np.array([-1, 2], np.float32)}, tmp_path)
    assert "y" in r.graph.constants


def test_transpose_nchw_to_nhwc(tmp_path):
    model = make([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])],
                 [vi("x", F, [2, 3, 4, 5])], ["y"])
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    check(model, {"x": x}, tmp_path)


def test_concat_three_inputs_along_channels(tmp_path):
    nodes = [helper.make_node("Relu", ["b"], ["rb"]),
             helper.make_node("Concat", ["a", "rb", "w"], ["y"], axis=1)]
    model = make(nodes, [vi("a", F, [2, 3, 4, 4]), vi("b", F, [2, 1, 4, 4])],
                 ["y"],
                 [("w", np.arange(2 * 2 * 16, dtype=np.float32).reshape(2, 2, 4, 4))])
    rng = np.random.default_rng(1)
    check(model, {"a": rng.standard_normal((2, 3, 4, 4)).astype(np.float32),
                  "b": rng.standard_normal((2, 1, 4, 4)).astype(np.float32)}, tmp_path)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_int32_negative_indices(tmp_path, axis):
    model = make([helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)],
                 [vi("x", F, [4, 5, 3]), vi("i", TensorProto.INT32, [2, 2])], ["y"])
    x = np.arange(60, dtype=np.float32).reshape(4, 5, 3)
    i = np.array([[-1, 0], [2, -3]], dtype=np.int32)
    check(model, {"x": x, "i": i}, tmp_path, label=f"g{axis % 3}")


def test_gather_constant_scalar_index(tmp_path):
    model = make([helper.make_node("Gather", ["x", "i"], ["y"], axis=1)],
                 [vi("x", F, [2, 5, 3])], ["y"],
                 [("i", np.array(-2, dtype=np.int64))])
    check(model, {"x": np.arange(30, dtype=np.float32).reshape(2, 5, 3)}, tmp_path)


def test_split_slice_pad_on_runtime_tensor(tmp_path):
    """Split into Slices, a negative-step Slice, and Pad with both growth and cropping."""
    nodes = [
        helper.make_node("Split", ["x", "sp"], ["s0", "s1"], axis=1),
        helper.make_node("Slice", ["s1", "st", "en", "ax", "stp"], ["y0"]),
        helper.make_node("Pad", ["s0", "pads", "val"], ["y1"]),
        helper.make_node("Pad", ["s0", "pads"], ["y2"], mode="reflect"),
    ]
    model = make(nodes, [vi("x", F, [2, 6, 5])],
                 ["y0", "y1", "y2"],
                 [ints("sp", [2, 4]), ints("st", [-1, 100]), ints("en", [0, -100]),
                  ints("ax", [1, 2]), ints("stp", [-2, -2]),
                  ints("pads", [1, 0, -1, 0, 1, 2]), ("val", np.array(7.5, np.float32))])
    x = np.arange(60, dtype=np.float32).reshape(2, 6, 5)
    check(model, {"x": x}, tmp_path)
