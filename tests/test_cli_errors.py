"""Bad input: one-line error naming model (and node, op, opset where there is one), exit 2."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def run_edgecc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


def assert_user_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("edgecc: error: ")
    for n in needles:
        assert n in lines[0], lines[0]


def relu_model(dim="N"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [dim, 4])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu0")], "g", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_missing_file(tmp_path):
    assert_user_error(run_edgecc(tmp_path / "nope.onnx", "-o", tmp_path / "o"),
                      "nope.onnx", "no such file")


def test_not_onnx(tmp_path):
    p = tmp_path / "photo.onnx"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert_user_error(run_edgecc(p), "photo.onnx", "not an ONNX model")


def test_truncated_model(tmp_path):
    good = tmp_path / "good.onnx"
    w = numpy_helper.from_array(np.ones((64, 4), np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "g", [x], [y],
                          [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    assert_user_error(run_edgecc(bad), "truncated.onnx")


def test_unsupported_op_names_node_op_opset(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    node = helper.make_node("Bernoulli", ["x"], ["y"], name="my_bernoulli")
    m = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 15)])
    p = tmp_path / "bernoulli.onnx"
    onnx.save(m, p)
    assert_user_error(run_edgecc(p), "bernoulli.onnx", "my_bernoulli", "Bernoulli", "opset 15",
                      "unsupported op")


def test_every_unsupported_op_in_one_error(tmp_path):
    """Three unsupported ops: one error, a line for each (node, op, opset), exit 2."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Bernoulli", ["r"], ["b"], name="coin"),
             helper.make_node("Warp", ["b"], ["w"], name="warp", domain="acme"),
             helper.make_node("Glow", ["w"], ["y"], name="glow", domain="acme")]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 15),
                                         helper.make_opsetid("acme", 1)])
    p = tmp_path / "three.onnx"
    onnx.save(m, p)
    proc = run_edgecc(p, "-o", tmp_path / "o")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[0] == "edgecc: error: three.onnx: 3 nodes use unsupported ops:", lines
    assert lines[1:] == [
        "  three.onnx: node 'coin' (Bernoulli, opset 15): unsupported op",
        "  three.onnx: node 'warp' (acme.Warp, acme opset 1): unsupported op domain 'acme'",
        "  three.onnx: node 'glow' (acme.Glow, acme opset 1): unsupported op domain 'acme'"], lines


def test_dynamic_dim_needs_input_shape(tmp_path):
    p = tmp_path / "dyn.onnx"
    onnx.save(relu_model("N"), p)
    assert_user_error(run_edgecc(p, "-o", tmp_path / "o"), "dyn.onnx", "'x'", "--input-shape")
    ok = run_edgecc(p, "-o", tmp_path / "o", "--input-shape", "x=2,4")
    assert ok.returncode == 0, ok.stderr
    assert "MODEL_INPUT0_SHAPE { 2, 4 }" in (tmp_path / "o" / "model.h").read_text()


@pytest.mark.parametrize("spec", ["x", "x=2,a", "y=2,4", "x=2,4,1"])
def test_bad_input_shape_option(tmp_path, spec):
    p = tmp_path / "dyn.onnx"
    onnx.save(relu_model("N"), p)
    assert_user_error(run_edgecc(p, "--input-shape", spec, "-o", tmp_path / "o"))


def test_unknown_target_and_option(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(relu_model(2), p)
    assert_user_error(run_edgecc(p, "--target", "z80"))
    assert_user_error(run_edgecc("analyze", p, "--no-such-flag"))
