"""edgecc's float32 AVX2 + FMA kernels (edgecc/backends/x86/float_conv.py, float_gemm.py;
issue 13) against onnxruntime.

Random layers (fixed seeds) are built as one ONNX model per kernel family, one node (plus its
fused activation) per case with its own input and output, compiled for x86-avx2, built with
-mavx2 -mfma under ASan + UBSan, run once, and compared case by case: every output element
within 1e-4 x the largest |onnxruntime output| of its case. Cases cover odd channel counts,
output counts that are not multiples of 8, strides 1-3, dilations, asymmetric padding, 1x1
and kxk kernels, batches, depthwise and one group, and each fused activation path (Relu and
Clip in registers, LeakyRelu after the layer). Every case must be computed by an x86 kernel:
the test fails if a node silently falls back to the portable C."""
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from onnx_helpers import make_model

from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


pytestmark = pytest.mark.skipif(not {"avx2", "fma"} <= _cpu_flags(),
                                reason="the host CPU lacks AVX2 or FMA")

TOL = 1e-4
ACTIVATIONS = [None, "Relu", "Clip6", "ClipLo", "LeakyRelu"]


def _activation(y_in, y_out, kind, inits, tag):
    """The node applying activation ``kind`` to y_in (written to y_out)."""
    if kind == "Relu":
        return [helper.make_node("Relu", [y_in], [y_out])]
    if kind == "LeakyRelu":
        return [helper.make_node("LeakyRelu", [y_in], [y_out], alpha=0.1)]
    lo, hi = (0.0, 6.0) if kind == "Clip6" else (-0.5, None)
    inits[f"lo{tag}"] = np.float32(lo)
    names = [y_in, f"lo{tag}"]
    if hi is not None:
        inits[f"hi{tag}"] = np.float32(hi)
        names.append(f"hi{tag}")
    return [helper.make_node("Clip", names, [y_out])]


def _out_size(size, k, s, d, p0, p1):
    return (size + p0 + p1 - (k - 1) * d - 1) // s + 1


def conv_cases(rng, count, depthwise):
    """Random 2-D convolutions: (n, c, h, w, m, kernel, strides, dilations, pads, act)."""
    cases = []
    while len(cases) < count:
        i = len(cases)
        if depthwise:
            c = int(rng.choice([2, 3, 8, 9, 13, 16, 24, 29, 37, 64]))
            m = c
        else:
            c = int(rng.choice([1, 2, 3, 5, 7, 13, 16, 17, 32]))
            m = int(rng.choice([1, 3, 5, 8, 13, 16, 24, 29, 33, 40, 57, 64, 100]))
        if i % 4 == 0:  # pointwise (a matrix product when stride 1 and no pads)
            k, s, d = (1, 1), (1, 1) if i % 8 == 0 else (int(rng.integers(1, 4)),) * 2, (1, 1)
            pads = (0, 0, 0, 0) if i % 8 == 0 else tuple(int(v) for v in rng.integers(0, 2, 4))
        else:
            k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
            s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            pads = tuple(int(rng.integers(0, (k[j % 2] - 1) * d[j % 2] + 1)) for j in range(4))
        n = 2 if i % 5 == 2 else 1
        h, w = int(rng.integers(1, 14)), int(rng.integers(1, 17))
        oh = _out_size(h, k[0], s[0], d[0], pads[0], pads[2])
        ow = _out_size(w, k[1], s[1], d[1], pads[1], pads[3])
        if oh < 1 or ow < 1:
            continue
        act = ACTIVATIONS[i % len(ACTIVATIONS)]
        cases.append((n, c, h, w, m, k, s, d, pads, act))
    return cases


def conv_model(rng, cases, depthwise):
    nodes, inputs, outputs, inits = [], [], [], {}
    for i, (n, c, h, w, m, k, s, d, pads, act) in enumerate(cases):
        inits[f"w{i}"] = rng.standard_normal((m, 1 if depthwise else c) + k).astype(np.float32)
        names = [f"x{i}", f"w{i}"]
        if i % 3 != 1:
            inits[f"b{i}"] = rng.standard_normal(m).astype(np.float32)
            names.append(f"b{i}")
        conv_out = f"c{i}" if act else f"y{i}"
        nodes.append(helper.make_node("Conv", names, [conv_out], kernel_shape=list(k),
                                      strides=list(s), dilations=list(d), pads=list(pads),
                                      group=c if depthwise else 1))
        if act:
            nodes += _activation(conv_out, f"y{i}", act, inits, i)
        oh = _out_size(h, k[0], s[0], d[0], pads[0], pads[2])
        ow = _out_size(w, k[1], s[1], d[1], pads[1], pads[3])
        inputs.append((f"x{i}", [n, c, h, w]))
        outputs.append((f"y{i}", [n, m, oh, ow]))
    return make_model(nodes, inputs, outputs, inits)


def gemm_model(rng, count):
    nodes, inputs, outputs, inits, labels = [], [], [], {}, []
    for i in range(count):
        rows = int(rng.choice([1, 1, 2, 3]))
        k = int(rng.choice([1, 7, 64, 130]))
        n = int(rng.choice([1, 7, 8, 13, 64, 65, 100, 130]))
        act = ACTIVATIONS[i % len(ACTIVATIONS)]
        out = f"g{i}" if act else f"y{i}"
        if i % 4 == 3:  # MatMul by a constant [K, N]
            inits[f"w{i}"] = rng.standard_normal((k, n)).astype(np.float32)
            nodes.append(helper.make_node("MatMul", [f"x{i}", f"w{i}"], [out]))
        else:
            trans_b = i % 2
            inits[f"w{i}"] = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
            names = [f"x{i}", f"w{i}"]
            if i % 3 != 2:
                inits[f"b{i}"] = rng.standard_normal((1, n) if i % 5 == 0 else n).astype(
                    np.float32)
                names.append(f"b{i}")
            nodes.append(helper.make_node("Gemm", names, [out], transB=trans_b))
        if act:
            nodes += _activation(out, f"y{i}", act, inits, i)
        inputs.append((f"x{i}", [rows, k]))
        outputs.append((f"y{i}", [rows, n]))
        labels.append(f"{rows}x{k} by {k}x{n} {act}")
    return make_model(nodes, inputs, outputs, inits), labels


def run_both(model, tmp_path):
    """(edgecc outputs, onnxruntime outputs, the compile result) for random N(0, 1) inputs."""
    path = str(tmp_path / "model.onnx")
    onnx.save(model, path)
    result = compile_model(path, target="x86-avx2")
    g = result.graph
    rng = np.random.default_rng(3)
    feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim])
             .astype(np.float32) for i in model.graph.input}
    build = build_host(result.files, g, result.prefix, str(tmp_path / "build"), sanitize=True,
                       cflags=get_target("x86-avx2").host_cflags)
    got = run_host(build, [feeds[name] for name in g.inputs])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    ref = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(
        list(g.outputs), feeds)
    return got, ref, result


def check_outputs(got, ref, labels):
    bad = []
    for label, o, r in zip(labels, got, ref):
        o = np.asarray(o).reshape(r.shape)
        scale = max(float(np.abs(r).max()), 1e-30)
        err = float(np.abs(o - r).max()) / scale
        if not err <= TOL:
            bad.append(f"{label}: max error {err:.2e} x max|ref|")
    assert not bad, "\n".join(bad)


def x86_layers(result, op, marker):
    """The numbers of the nodes of IR op ``op``, checking that each one's C is an x86 kernel
    (its layer function carries ``marker``), not the portable fallback."""
    text = result.files[f"{result.prefix}.c"]
    nodes = [i for i, n in enumerate(result.graph.nodes) if n.op == op]
    for i in nodes:
        found = re.search(rf"/\* node {i}: {op} .*?\*/\n(.*?)(?=\n/\* node |\Z)", text, re.S)
        if found is None:  # the same code as an earlier layer: named in the run function
            same = re.search(rf"/\* node {i}: {op} .*same code as (\w+)", text)
            assert same, f"node {i} ({op}) has no layer function"
            found = re.search(rf"void {same.group(1)}\(.*?(?=\n/\* node |\Z)", text, re.S)
            body = found.group(0)
        else:
            body = found.group(1)
        assert marker in body and "_mm256_" in body, \
            f"node {i} ({op}) is not computed by the x86 kernel"
    return nodes


@pytest.mark.parametrize("depthwise", [False, True], ids=["group1", "depthwise"])
def test_conv_kernels_match_onnxruntime(depthwise, tmp_path):
    rng = np.random.default_rng(13 if depthwise else 12)
    cases = conv_cases(rng, 40, depthwise)
    got, ref, result = run_both(conv_model(rng, cases, depthwise), tmp_path)
    assert "Conv" not in [n.op for n in result.graph.nodes], "a Conv stayed NCHW (portable C)"
    marker = "depthwise convolution" if depthwise else "channels, NHWC, AVX2 + FMA"
    assert len(x86_layers(result, "ConvNHWC", marker)) == len(cases)
    check_outputs(got, ref, [f"case {i} {c}" for i, c in enumerate(cases)])


def test_fully_connected_kernels_match_onnxruntime(tmp_path):
    rng = np.random.default_rng(21)
    model, labels = gemm_model(rng, 16)
    got, ref, result = run_both(model, tmp_path)
    count = len(x86_layers(result, "Gemm", "fully connected")) + \
        len(x86_layers(result, "MatMul", "fully connected"))
    assert count == len(labels)
    check_outputs(got, ref, labels)


@pytest.mark.parametrize("c", [12, 16, 29])
def test_residual_block_stays_nhwc(c, tmp_path):
    """conv -> conv -> add(residual) -> relu -> global average -> gemm: the add and the relu
    fuse into the second convolution (passes/layout_nhwc.py), the mean runs on the NHWC tensor
    (no transpose but the input's), all within tolerance; odd channel counts for the masked
    residual loads."""
    rng = np.random.default_rng(5)
    inits = {"w1": rng.standard_normal((c, 3, 3, 3)).astype(np.float32) * 0.3,
             "w2": rng.standard_normal((c, c, 3, 3)).astype(np.float32) * 0.3,
             "fc": rng.standard_normal((10, c)).astype(np.float32),
             "fb": rng.standard_normal(10).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "w2"], ["b"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Add", ["b", "ar"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1)]
    model = make_model(nodes, [("x", [1, 3, 9, 11])], [("y", [1, 10])], inits)
    got, ref, result = run_both(model, tmp_path)
    ops = [n.op for n in result.graph.nodes]
    assert ops.count("Transpose") == 1 and "ReduceMean" in ops and "AveragePool" not in ops, ops
    assert "Add" not in ops and "Relu" not in ops, ops
    fused = [n for n in result.graph.nodes if n.op == "ConvNHWC" and len(n.inputs) == 4]
    assert len(fused) == 1 and fused[0].attrs.activation.kind == "Relu"
    x86_layers(result, "ConvNHWC", "channels, NHWC, AVX2 + FMA")
    assert "the residual r added" in result.files[f"{result.prefix}.c"]
    x86_layers(result, "ReduceMean", "mean over")
    check_outputs(got, ref, ["residual block"])


def test_generated_c_is_byte_identical(tmp_path):
    rng = np.random.default_rng(12)
    path = str(tmp_path / "model.onnx")
    onnx.save(conv_model(rng, conv_cases(rng, 6, False), False), path)
    assert compile_model(path, target="x86-avx2").files == \
        compile_model(path, target="x86-avx2").files
