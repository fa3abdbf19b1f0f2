"""--bind NAME=FILE: graph inputs that decide shapes, compiled for one value; verify --inputs
binds them from its data; the front end's error says how."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgecc.compiler.bind import shape_operand_inputs


def run_edgecc(*args):
    return subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)],
                          capture_output=True, text=True)


def reshape_model():
    """y = Relu(Reshape(x, Concat(s, [-1]))): the shape comes from graph input s."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])
    s = helper.make_tensor_value_info("s", TensorProto.INT64, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])
    nodes = [helper.make_node("Constant", [], ["m1"], value=helper.make_tensor(
                 "m1", TensorProto.INT64, [1], [-1])),
             helper.make_node("Concat", ["s", "m1"], ["shape"], axis=0, name="cat"),
             helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
             helper.make_node("Relu", ["r"], ["y"], name="relu")]
    return helper.make_model(helper.make_graph(nodes, "g", [x, s], [y]),
                             opset_imports=[helper.make_opsetid("", 17)])


def test_bind_shape_input(tmp_path):
    p = tmp_path / "reshape.onnx"
    onnx.save(reshape_model(), p)
    assert shape_operand_inputs(reshape_model()) == ["s"]
    proc = run_edgecc(p, "-o", tmp_path / "o")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "node 'reshape' (Reshape, opset 17)" in proc.stderr
    assert "must be a compile-time constant" in proc.stderr
    assert "--bind s=FILE.npy" in proc.stderr, proc.stderr

    np.save(tmp_path / "s.npy", np.array([3], dtype=np.int64))
    proc = run_edgecc(p, "-o", tmp_path / "o", "--bind", f"s={tmp_path / 's.npy'}")
    assert proc.returncode == 0, proc.stderr
    header = (tmp_path / "o" / "model.h").read_text()
    assert "MODEL_OUTPUT0_SHAPE { 3, 4 }" in header, header
    assert "MODEL_INPUT1" not in header  # s is no longer an input

    # verify --inputs binds s from its data and feeds it to onnxruntime
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x, s=np.array([4], dtype=np.int64))
    proc = run_edgecc("verify", p, "--inputs", tmp_path / "in.npz")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "PASS" in proc.stdout, proc.stdout
    assert "input 's' compiled as a constant (--bind or --inputs): shape [1], values [4]" \
        in proc.stdout, proc.stdout


def test_bind_errors(tmp_path):
    p = tmp_path / "reshape.onnx"
    onnx.save(reshape_model(), p)
    np.save(tmp_path / "f.npy", np.array([3.0], dtype=np.float32))
    for args, needle in [
            (["--bind", "s"], "expected NAME=FILE"),
            (["--bind", f"nope={tmp_path / 'f.npy'}"], "the model has no input 'nope'"),
            (["--bind", f"s={tmp_path / 'f.npy'}"], "the value is float32, the input is int64"),
            (["--bind", f"s={tmp_path / 'missing.npy'}"], "cannot read")]:
        proc = run_edgecc(p, "-o", tmp_path / "o", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and needle in proc.stderr, (args, proc.stderr)
