"""Post-training quantization (edgecc --quantize int8 --calib DATA).

- the bundled digits CNN, calibrated on 100 training images: edgecc's int8 C code classifies
  all held-out images within 1 percentage point of the float model (min-max and percentile);
- --quantize-exclude keeps a node float;
- calibration data formats, and bad data as one-line errors with exit code 2;
- the quantize pass on its own: Before/After op sequences, idempotence, what stays float.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from edgecc.compiler.calibrate import (Progress, entropy_threshold, load_calibration,
                                       percentile_range)
from edgecc.compiler.driver import compile_model, write_files
from edgecc.compiler.frontend import import_onnx
from edgecc.errors import EdgeccError
from edgecc.ir import DType, op_sequence
from edgecc.passes.cleanup import eliminate_dead_code
from edgecc.passes import fold_qdq, fold_qdq_rules  # noqa: F401  (the rules registered)
from edgecc.passes.fuse_activation import fuse_activation
from edgecc.passes.pipeline import run_pipeline
from edgecc.passes.quantize import quantize_graph
from edgecc.runner import SANITIZE, WARNINGS
from onnx_helpers import make_model, rand, trained_digits_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = trained_digits_onnx()  # trained on load_digits in this test run
HELDOUT = os.path.join(ROOT, "examples", "digits", "heldout.npz")
CALIB_COUNT = 100

# Runs every image of IN.bin through the model, appending the logits to OUT.bin.
BATCH_MAIN = r"""
#include <stdio.h>
#include "model.h"

int main(int argc, char **argv)
{
    static float x[MODEL_INPUT0_SIZE];
    static float y[MODEL_OUTPUT0_SIZE];
    FILE *in, *out;
    if (argc != 3) return 2;
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    if (!in || !out) return 2;
    while (fread(x, sizeof x, 1, in) == 1) {
        if (model_run(x, y) != MODEL_OK) return 1;
        if (fwrite(y, sizeof y, 1, out) != 1) return 1;
    }
    fclose(in);
    return fclose(out) != 0;
}
"""


def edgecc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def assert_user_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgecc: error: ") and "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


# -- the digits CNN ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The split of examples/digits/train.py (load_split), float accuracy, calibration file."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    x_train, x_test, _, y_test = train_test_split(X, y, test_size=0.22, random_state=0,
                                                  stratify=y)
    with np.load(HELDOUT) as bundled:  # the same split the bundled model was trained on
        np.testing.assert_array_equal(bundled["images"], x_test[:16])
    sess = ort.InferenceSession(DIGITS, providers=["CPUExecutionProvider"])
    logits = np.concatenate([sess.run(None, {"image": x})[0] for x in x_test[:, None]])
    tmp = tmp_path_factory.mktemp("digits")
    calib = str(tmp / "calib.npz")
    np.savez(calib, image=x_train[:CALIB_COUNT])
    return dict(x_test=x_test, y_test=y_test, float_top1=logits.argmax(1), calib=calib,
                float_acc=float((logits.argmax(1) == y_test).mean()), tmp=tmp)


def run_batch(result, images, workdir) -> np.ndarray:
    """Build the generated C with sanitizers and one harness that loops over the images."""
    write_files(result.files, workdir)
    main_c = os.path.join(workdir, "main.c")
    with open(main_c, "w") as f:
        f.write(BATCH_MAIN)
    sources = [os.path.join(workdir, n) for n in sorted(result.files) if n.endswith(".c")]
    exe = os.path.join(workdir, "digits")
    subprocess.run(["gcc", *WARNINGS, "-O1", *SANITIZE, "-o", exe, *sources, main_c, "-lm"],
                   check=True)
    images.astype(np.float32).tofile(os.path.join(workdir, "in.bin"))
    subprocess.run([exe, os.path.join(workdir, "in.bin"), os.path.join(workdir, "out.bin")],
                   check=True, env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    return np.fromfile(os.path.join(workdir, "out.bin"), dtype=np.float32).reshape(len(images), -1)


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_ptq_digits_accuracy_within_1_point(digits, method, capsys):
    result = compile_model(DIGITS, quantize="int8", calib=digits["calib"], calib_method=method)
    ops = op_sequence(result.graph)
    assert ops.count("QConv") == 4 and "QGemm" in ops
    assert "Conv" not in ops and "Gemm" not in ops
    g = result.graph
    assert g.types[g.inputs[0]].dtype == DType.FLOAT32  # float in, float out
    assert g.types[g.outputs[0]].dtype == DType.FLOAT32
    logits = run_batch(result, digits["x_test"], str(digits["tmp"] / method))
    acc = float((logits.argmax(1) == digits["y_test"]).mean())
    agree = float((logits.argmax(1) == digits["float_top1"]).mean())
    with capsys.disabled():
        print(f"\n[ptq {method}] held-out {len(logits)} images: float {digits['float_acc']:.4f}, "
              f"int8 {acc:.4f}, top-1 agreement {agree:.4f}")
    assert acc >= digits["float_acc"] - 0.01


def test_quantize_exclude_keeps_node_float(digits):
    result = compile_model(DIGITS, quantize="int8", calib=digits["calib"],
                           exclude=["/14/Gemm"])
    g = result.graph
    (gemm,) = [n for n in g.nodes if n.name == "/14/Gemm"]
    assert gemm.op == "Gemm" and g.types[gemm.outputs[0]].dtype == DType.FLOAT32
    assert g.constants[gemm.inputs[1]].dtype == np.float32
    assert "QGemm" not in op_sequence(g) and op_sequence(g).count("QConv") == 4


def test_cli_quantize_and_analyze(digits, tmp_path):
    proc = edgecc(DIGITS, "--quantize", "int8", "--calib", digits["calib"], "--calib-method",
                  "percentile", "--calib-percentile", "99.9", "-o", tmp_path / "out")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # no progress bar off a TTY
    assert "int8_t" in (tmp_path / "out" / "model.c").read_text()
    proc = edgecc("analyze", DIGITS, "--quantize", "int8", "--calib", digits["calib"],
                  "--quantize-exclude", "/14/Gemm", "--json")
    assert proc.returncode == 0, proc.stderr
    import json
    totals = json.loads(proc.stdout)["totals"]
    assert totals["quantized"] and "/14/Gemm" in totals["float_layers"]


# -- calibration data --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_graph():
    return import_onnx(DIGITS)


def _tensor_pb(path, array, name="image"):
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(array, name).SerializeToString())


def test_calibration_formats(digits_graph, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((5, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "keyed.npz", image=x, labels=np.arange(5))
    np.savez(tmp_path / "single.npz", x.astype(np.float64))     # any float dtype is cast
    np.savez(tmp_path / "fits.npz", images=x, labels=np.arange(5))  # the one that fits
    np.save(tmp_path / "batch.npy", x)
    (tmp_path / "samples").mkdir()
    for k in range(5):
        np.save(tmp_path / "samples" / f"s{k}.npy", x[k])
    (tmp_path / "named").mkdir()
    np.save(tmp_path / "named" / "image.npy", x)
    for k in range(5):
        d = tmp_path / "sets" / f"test_data_set_{k}"
        d.mkdir(parents=True)
        _tensor_pb(d / "input_0.pb", x[k][None])
    for spec in ("keyed.npz", "single.npz", "fits.npz", "batch.npy", "samples",
                 "named", "sets"):
        data = load_calibration(str(tmp_path / spec), digits_graph)
        assert list(data) == ["image"]
        # one sample per row, each in the input's shape (1, 1, 8, 8)
        assert data["image"].dtype == np.float32 and data["image"].shape == (5, 1, 1, 8, 8)
        np.testing.assert_array_equal(data["image"], x[:, None], err_msg=spec)
    one = load_calibration(str(tmp_path / "sets" / "test_data_set_0"), digits_graph)
    np.testing.assert_array_equal(one["image"], x[:1, None])


def test_calibration_two_inputs(tmp_path):
    model = make_model([helper.make_node("Add", ["a", "b"], ["y"])],
                       [("a", [1, 3]), ("b", [1, 3])], [("y", [1, 3])])
    graph = import_onnx("add.onnx", model=model)
    a, b = np.zeros((4, 1, 3), np.float32), np.ones((4, 3), np.float32)
    np.savez(tmp_path / "ab.npz", a=a, b=b)
    data = load_calibration(str(tmp_path / "ab.npz"), graph)
    assert data["a"].shape == data["b"].shape == (4, 1, 3) and data["b"].min() == 1
    d = tmp_path / "test_data_set_0"
    d.mkdir()
    _tensor_pb(d / "input_0.pb", b[:1], name="b")  # matched by the tensor's name
    _tensor_pb(d / "input_1.pb", a[0], name="a")
    data = load_calibration(str(tmp_path), graph)
    assert data["a"].max() == 0 and data["b"].min() == 1
    np.savez(tmp_path / "a_only.npz", a=a)
    with pytest.raises(EdgeccError, match="no array named 'b'"):
        load_calibration(str(tmp_path / "a_only.npz"), graph)
    np.savez(tmp_path / "uneven.npz", a=a, b=b[:3])
    with pytest.raises(EdgeccError, match="has 3 samples, the other inputs 4"):
        load_calibration(str(tmp_path / "uneven.npz"), graph)
    np.save(tmp_path / "one.npy", a)
    with pytest.raises(EdgeccError, match="the model has 2 inputs"):
        load_calibration(str(tmp_path / "one.npy"), graph)


def _write_bad(tmp_path, kind):
    if kind == "shape":
        path = tmp_path / "shape.npz"
        np.savez(path, image=np.zeros((4, 1, 7, 7), np.float32))
        return path, ("shape.npz", "'image'", "(4, 1, 7, 7)", "(1, 1, 8, 8)")
    if kind == "dtype":
        path = tmp_path / "dtype.npy"
        np.save(path, np.zeros((4, 1, 8, 8), np.int64))
        return path, ("dtype.npy", "'image'", "int64", "float32")
    if kind == "empty":
        path = tmp_path / "empty.npz"
        np.savez(path, image=np.zeros((0, 1, 8, 8), np.float32))
        return path, ("empty.npz", "empty calibration set")
    if kind == "empty_folder":
        path = tmp_path / "calib_dir"
        path.mkdir()
        return path, ("calib_dir", "empty calibration set")
    if kind == "missing":
        return tmp_path / "nope.npz", ("nope.npz", "no such file")
    if kind == "nan":
        path = tmp_path / "nan.npy"
        np.save(path, np.full((2, 1, 8, 8), np.nan, np.float32))
        return path, ("nan.npy", "NaN")
    if kind == "bad_pb":
        path = tmp_path / "test_data_set_0"
        path.mkdir()
        (path / "input_0.pb").write_bytes(b"\xff\xff not a tensor")
        return path, ("input_0.pb", "TensorProto")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["shape", "dtype", "empty", "empty_folder", "missing", "nan",
                                  "bad_pb"])
def test_bad_calibration_data_one_line_exit_2(kind, tmp_path):
    path, needles = _write_bad(tmp_path, kind)
    proc = edgecc(DIGITS, "--quantize", "int8", "--calib", path, "-o", tmp_path / "out")
    assert_user_error(proc, *needles)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, needle", [
    (["--quantize", "int8"], "needs calibration data: --calib"),
    (["--calib", "x.npz"], "--calib is only used with --quantize int8"),
    (["--quantize-exclude", "/14/Gemm"], "--quantize-exclude is only used with"),
    (["--quantize", "int8", "--calib", HELDOUT, "--quantize-exclude", "nope"],
     "no node named 'nope'"),
    (["--quantize", "int8", "--calib", HELDOUT, "--calib-method", "percentile",
      "--calib-percentile", "0"], "--calib-percentile 0"),
])
def test_bad_quantize_options_one_line_exit_2(args, needle, tmp_path):
    assert_user_error(edgecc(DIGITS, *args, "-o", tmp_path / "out"), needle)


def test_calibration_on_ptq_of_quantized_model_is_refused(digits_graph, tmp_path):
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("MatMul", ["xd", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 4])],
                              [helper.make_tensor_value_info("y", 1, [1, 4])], [
        w, numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    np.save(tmp_path / "c.npy", np.zeros((2, 1, 4), np.float32))
    with pytest.raises(EdgeccError, match="already quantized"):
        compile_model("qdq.onnx", model=model, quantize="int8", calib=str(tmp_path / "c.npy"))


def test_progress_bar():
    import io
    out = io.StringIO()
    bar = Progress(4, enabled=True, stream=out)
    for _ in range(4):
        bar.step()
    assert out.getvalue().split("\r")[-2:] == ["calibrating [###############.....] 3/4",
                                               "calibrating [####################] 4/4\n"]
    quiet = io.StringIO()
    Progress(4, stream=quiet).step()  # a StringIO is not a TTY: nothing written
    assert quiet.getvalue() == ""


def test_entropy_threshold_clips_outliers():
    rng = np.random.default_rng(0)
    values = np.abs(np.concatenate([rng.standard_normal(200_000), [40.0]]))
    hist, _ = np.histogram(values, bins=2048, range=(0.0, 40.0))
    t = entropy_threshold(hist, 40.0, 128)
    assert 2.5 < t < 8.0


def test_percentile_range_clips_outliers():
    values = np.concatenate([np.linspace(-1, 1, 100_000), [50.0]])
    hist, _ = np.histogram(values, bins=2048, range=(-1.0, 50.0))
    lo, hi = percentile_range(hist, -1.0, 50.0, 99.9)
    assert -1.0 <= lo < -0.95 and 0.95 < hi < 1.1
    assert percentile_range(hist, -1.0, 50.0, 100.0) == (-1.0, 50.0)


# -- the quantize pass on its own --------------------------------------------------------------

def small_cnn(seed=0, second_act="Relu"):
    """x -> Conv -> Relu -> Flatten -> Gemm -> <second_act> -> y"""
    rng = np.random.default_rng(seed)
    inits = {"w": rand(rng, 4, 2, 3, 3), "b": rand(rng, 4), "w2": rand(rng, 6, 64),
             "b2": rand(rng, 6)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["g"], transB=1, name="gemm"),
             helper.make_node(second_act, ["g"], ["y"], name="act")]
    return make_model(nodes, [("x", [1, 2, 4, 4])], [("y", [1, 6])], inits)


def float_ir(model):
    """The optimized float IR as the driver hands it to the quantize pass."""
    return run_pipeline(import_onnx("m.onnx", model=model),
                        skip=("fuse-activation", "fold-qdq", "dead-code", "reorder"))


def ranges_of(model, n=8, seed=1):
    """min-max of every tensor over random inputs (what calibrate() computes)."""
    names = ["x"] + [o for nd in model.graph.node for o in nd.output]
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for name in names[1:]:
        if name not in {o.name for o in m.graph.output}:
            m.graph.output.append(helper.make_tensor_value_info(name, 1, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    xs = [rand(rng, 1, 2, 4, 4) for _ in range(n)]
    outs = [dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})))
            for x in xs]
    vals = {k: np.stack([o[k] for o in outs]) for k in names[1:]}
    vals["x"] = np.stack(xs)
    return {k: (float(v.min()), float(v.max())) for k, v in vals.items()}


def finish(graph, exclude=()):
    """What the driver runs after the quantize pass."""
    return eliminate_dead_code(fold_qdq.fold_qdq(fuse_activation(graph), keep_float=exclude))


def check_pass(graph, ranges, exclude=()):
    """Run the pass; verify; the input graph untouched; a second run changes nothing."""
    before = (list(graph.nodes), dict(graph.types))
    out = quantize_graph(graph, ranges, exclude)
    out.verify()
    assert (list(graph.nodes), dict(graph.types)) == before
    again = quantize_graph(out, ranges, exclude)
    assert again.nodes == out.nodes and again.types == out.types
    return out


Q, DQ = "QuantizeLinear", "DequantizeLinear"


def test_quantize_pass_before_after():
    model = small_cnn()
    graph = float_ir(model)
    assert op_sequence(graph) == ["Conv", "Relu", "Reshape", "Gemm", "Relu"]
    out = check_pass(graph, ranges_of(model))
    # Conv -> Relu gets no Q/DQ: fuse-activation makes the pair one QConv with a clamp
    assert op_sequence(out) == [Q, DQ, "Conv", "Relu", Q, DQ, "Reshape", Q, DQ,
                                "Gemm", "Relu", Q, DQ]
    assert out.outputs == ["y"] and out.types["y"].dtype == DType.FLOAT32
    assert out.types["f_q"].quant == out.types["r_q"].quant  # Reshape shares its params
    final = finish(out)
    final.verify()
    assert op_sequence(final) == [Q, "QConv", "Reshape", "QGemm", DQ]
    assert [n.attrs.activation.kind for n in final.nodes if n.op in ("QConv", "QGemm")] == \
        ["Relu", "Relu"]
    assert finish(final).nodes == final.nodes  # the rest of the pipeline is idempotent too


def test_quantize_pass_non_clamp_activation_stays_separate():
    model = small_cnn(second_act="Sigmoid")
    out = check_pass(float_ir(model), ranges_of(model))
    assert op_sequence(finish(out)) == [Q, "QConv", "Reshape", "QGemm", "QLut", DQ]


def test_quantize_pass_exclude_and_missing_ranges():
    model = small_cnn()
    graph, ranges = float_ir(model), ranges_of(model)
    out = check_pass(graph, ranges, exclude=["gemm"])
    final = finish(out, exclude=["gemm"])
    # the Relu after the float Gemm is not worth int8 on its own: both stay float (and fuse)
    assert op_sequence(final) == [Q, "QConv", "Reshape", DQ, "Gemm"]
    assert final.types["y"].dtype == DType.FLOAT32
    assert final.nodes[-1].attrs.activation.kind == "Relu"
    # no range for the Gemm's output: it stays float as well
    ranges.pop("g")
    assert op_sequence(finish(check_pass(graph, ranges))) == [Q, "QConv", "Reshape", DQ, "Gemm"]
    # no ranges at all: nothing changes
    assert quantize_graph(graph, {}).nodes == graph.nodes


def test_quantize_pass_leaves_ops_the_rules_refuse(monkeypatch):
    """An op whose fold rule refuses, or that has none, gets no Q/DQ: it stays plain float."""
    nodes = [helper.make_node("MatMul", ["x", "x"], ["y"], name="mm")]
    model = make_model(nodes, [("x", [4, 4])], [("y", [4, 4])])
    graph = float_ir(model)
    ranges = {"x": (-1.0, 1.0), "y": (-4.0, 4.0)}
    monkeypatch.setitem(fold_qdq.FOLD_RULES, "MatMul", lambda g, node, ins, q_out: None)
    assert quantize_graph(graph, ranges).nodes == graph.nodes
    monkeypatch.delitem(fold_qdq.FOLD_RULES, "MatMul")
    assert quantize_graph(graph, ranges).nodes == graph.nodes


def test_quantize_pass_add_relu_become_one_op():
    """Add -> Relu: no Q/DQ between them when the Relu's rule folds both (QAdd + clamp)."""
    rng = np.random.default_rng(0)
    inits = {"wa": rand(rng, 3, 2, 1, 1), "wb": rand(rng, 3, 2, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="ca"),
             helper.make_node("Conv", ["x", "wb"], ["b"], name="cb"),
             helper.make_node("Add", ["a", "b"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    model = make_model(nodes, [("x", [1, 2, 4, 4])], [("y", [1, 3, 4, 4])], inits)
    out = check_pass(float_ir(model), ranges_of(model))
    if "QAdd" not in {n.op for n in finish(out).nodes}:
        pytest.skip("no QAdd fold rule")
    assert op_sequence(out) == [Q, DQ, "Conv", Q, DQ, "Conv", Q, DQ, "Add", "Relu", Q, DQ]
    final = finish(out)
    assert op_sequence(final) == [Q, "QConv", "QConv", "QAdd", DQ]
    assert final.nodes[3].attrs.activation.kind == "Relu"


def test_quantize_pass_output_close_to_float(tmp_path):
    """The quantized small CNN, compiled and run, stays near the float model."""
    model = small_cnn()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    rng = np.random.default_rng(3)
    calib = np.stack([rand(rng, 1, 2, 4, 4) for _ in range(32)])
    np.save(tmp_path / "calib.npy", calib)
    result = compile_model(str(path), quantize="int8", calib=str(tmp_path / "calib.npy"))
    assert op_sequence(result.graph) == [Q, "QConv", "Reshape", "QGemm", DQ]
    from edgecc.runner import build_host, run_host
    build = build_host(result.files, result.graph, "model", str(tmp_path / "b"), sanitize=True,
                       opt="-O1")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for x in calib[:4]:
        (got,) = run_host(build, [x])
        (want,) = sess.run(None, {"x": x})
        scale = result.graph.types["y_q"].quant.scale[0]
        assert np.abs(got - want).max() <= 8 * scale + 0.05 * np.abs(want).max()
