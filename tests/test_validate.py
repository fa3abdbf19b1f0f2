"""Validation before codegen (issue 11, first part: Conv geometry, quantization parameters). A QDQ model whose Conv
attributes disagree with its shapes (its output shape declared in value_info, as exporters
write it, so shape inference does not stop it) compiled with exit 0 and C that read out of
bounds; now each is one line naming the model, node, op, opset and the broken rule, exit 2."""
import os

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgecc.cli.main import main
from onnx_helpers import make_model, quantize_ort, rand

MUTATIONS = {
    "strides": ([0, 0], "strides [0, 0] must be 2 values >= 1"),
    "pads": ([-1, -1, -1, -1], "pads [-1, -1, -1, -1] must be 4 values >= 0"),
    "dilations": ([0, 1], "dilations [0, 1] must be 2 values >= 1"),
    "group": (3, "group 3 must divide the 4 input and 6 output channels"),
    "kernel_shape": ([5, 5], "kernel_shape [5, 5] differs from the weight's [3, 3]"),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate")
    rng = np.random.default_rng(0)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])
    float_path = str(root / "conv.onnx")
    onnx.save(make_model([conv], [("x", (1, 4, 8, 8))], [("y", (1, 6, 8, 8))],
                         {"w": rand(rng, 6, 4, 3, 3), "b": rand(rng, 6)}), float_path)
    qdq = quantize_ort(float_path, str(root / "conv_qdq.onnx"), "x",
                       rng.standard_normal((4, 4, 8, 8)).astype(np.float32))
    out = {("qdq", ""): qdq}  # the model as quantized, then one mutation per (kind, attribute)
    for kind, path in (("float", float_path), ("qdq", qdq)):
        for attr, (value, _) in MUTATIONS.items():
            m = onnx.load(path)
            node = next(n for n in m.graph.node if n.op_type == "Conv")
            for a in [a for a in node.attribute if a.name == attr]:
                node.attribute.remove(a)
            node.attribute.append(helper.make_attribute(attr, value))
            if node.output[0] not in {o.name for o in m.graph.output}:
                m.graph.value_info.append(helper.make_tensor_value_info(
                    node.output[0], onnx.TensorProto.FLOAT, (1, 6, 8, 8)))
            out[kind, attr] = str(root / f"{kind}_{attr}.onnx")
            onnx.save(m, out[kind, attr])
    return out


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("target", ["generic", "cortex-m7"])
@pytest.mark.parametrize("attr", sorted(MUTATIONS))
def test_bad_conv_geometry_is_one_line_exit_2(models, attr, target, strict, tmp_path, capsys,
                                               monkeypatch):
    """onnx's strict shape inference (loader) refuses some of these first, with its message;
    without it (strict=False), edgecc's own rule (Conv's check) must refuse every one."""
    if not strict:
        monkeypatch.setattr("edgecc.compiler.loader._strict_check", lambda *a: None)
    rc = main([models["qdq", attr], "--target", target, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "node 'conv' (Conv, opset 17): " in err, err
    if not strict:
        assert MUTATIONS[attr][1] in err, err


@pytest.mark.parametrize("attr", sorted(MUTATIONS))
def test_float_models_are_held_to_the_same_rules(models, attr, tmp_path, capsys):
    rc = main([models["float", attr], "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "node 'conv' (Conv" in err, err


@pytest.mark.parametrize("value", [-0.1, 0.0, float("nan"), float("inf")])
@pytest.mark.parametrize("tensor", ["x_scale", "y_scale"])
def test_bad_quantization_scales_are_one_line_exit_2(models, tensor, value, tmp_path, capsys):
    """Negative, zero, NaN or infinite scales were internal errors (exit 3) in fold-qdq."""
    m = onnx.load(models["qdq", ""])
    for init in m.graph.initializer:
        if init.name == tensor:
            init.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(init).shape,
                                                          value, np.float32), init.name))
    path = str(tmp_path / "bad_scale.onnx")
    onnx.save(m, path)
    rc = main([path, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "(QuantizeLinear, opset 17): quantization scale" in err and "must be finite" in err


def _digits_variant(tmp_path, name, edit, base=None):
    m = onnx.load(base or DIGITS)
    edit(m)
    path = str(tmp_path / f"{name}.onnx")
    onnx.save(m, path)
    return path


DIGITS = os.path.join(os.path.dirname(__file__), "..", "examples", "digits", "digits_cnn.onnx")


def _set_dim(k, value):
    return lambda m: setattr(m.graph.input[0].type.tensor_type.shape.dim[k], "dim_value", value)


GRAPH_DEFECTS = {  # exit 0 and C that did not build (or read out of bounds) before
    "duplicate_output": (lambda m: m.graph.output.add().CopyFrom(m.graph.output[0]),
                         "graph output 'logits' is listed twice"),
    "no_outputs": (lambda m: m.graph.ClearField("output"), "the graph has no outputs"),
    "huge_dim": (_set_dim(2, 1 << 40), "tensor 'image' [1, 1, 1099511627776, 8]"),
    "huge_batch": (_set_dim(0, 1 << 31), "exceeds 2147483647, the largest size or dim"),
    "zero_dim": (_set_dim(2, 0), "(Conv, opset 17): input and weight must not be empty"),
}


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("target", ["generic", "cortex-m7"])
@pytest.mark.parametrize("kind", ["float", "qdq"])
@pytest.mark.parametrize("defect", sorted(GRAPH_DEFECTS))
def test_graph_rules_are_one_line_exit_2(models, tmp_path, capsys, monkeypatch, defect, kind,
                                         target, strict):
    """With onnx's strict shape inference (the loader's first check) a declared output shape
    may disagree first; edgecc's own rule must hold without it."""
    if not strict:
        monkeypatch.setattr("edgecc.compiler.loader._strict_check", lambda *a: None)
    edit, message = GRAPH_DEFECTS[defect]
    digits_qdq = quantize_ort(DIGITS, str(tmp_path / "digits_qdq.onnx"), "image",
                              np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(
                                  np.float32)) if kind == "qdq" else None
    path = _digits_variant(tmp_path, defect, edit, digits_qdq)
    rc = main([path, "--target", target, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and (message in err or strict), err


def test_huge_pads_with_huge_strides_are_refused(models, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("edgecc.compiler.loader._strict_check", lambda *a: None)
    """A 2^40 pad with a 2^40 stride keeps the output small; the C's index arithmetic
    (32-bit) would still overflow."""
    m = onnx.load(models["qdq", ""])
    node = next(n for n in m.graph.node if n.op_type == "Conv")
    for a in [a for a in node.attribute if a.name in ("pads", "strides")]:
        node.attribute.remove(a)
    node.attribute.extend([helper.make_attribute("pads", [1 << 40] * 4),
                           helper.make_attribute("strides", [1 << 41] * 2)])
    m.graph.value_info.append(helper.make_tensor_value_info(
        node.output[0], onnx.TensorProto.FLOAT, (1, 6, 1, 1)))
    path = str(tmp_path / "huge_pads.onnx")
    onnx.save(m, path)
    rc = main([path, "--target", "cortex-m7", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "the limit of generated index arithmetic" in err


@pytest.mark.parametrize("edit,message", [
    (lambda a: a.reshape(-1)[:0], "the scale must be a scalar or a non-empty 1-D tensor, not [0]"),
    (lambda a: np.full((2, 2), a.reshape(-1)[0]), "not [2, 2]"),
])
def test_scale_shapes(models, tmp_path, capsys, edit, message):
    """A zero-size scale compiled (exit 0); a zero point longer than its scale was a
    traceback (numpy broadcasting)."""
    m = onnx.load(models["qdq", ""])
    init = next(i for i in m.graph.initializer if i.name == "x_scale")
    init.CopyFrom(numpy_helper.from_array(edit(numpy_helper.to_array(init)), init.name))
    path = str(tmp_path / "scale.onnx")
    onnx.save(m, path)
    rc = main([path, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err, err


def test_zero_point_longer_than_scale(models, tmp_path, capsys):
    m = onnx.load(models["qdq", ""])
    zp = next(i for i in m.graph.initializer if i.name.endswith("zero_point")
              and numpy_helper.to_array(i).size > 1)
    a = numpy_helper.to_array(zp)
    zp.CopyFrom(numpy_helper.from_array(np.concatenate([a, a[:1]]), zp.name))
    path = str(tmp_path / "zp.onnx")
    onnx.save(m, path)
    rc = main([path, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"the zero point's shape [{a.size + 1}] differs from the scale's [{a.size}]" in err


def _edit_initializer(path, tmp_path, name_pred, fn, out="edited.onnx"):
    m = onnx.load(path)
    init = next(i for i in m.graph.initializer if name_pred(i.name))
    init.CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(init)), init.name))
    dst = str(tmp_path / out)
    onnx.save(m, dst)
    return dst


@pytest.fixture(scope="module")
def digits_qdq(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits_qdq")
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    return quantize_ort(DIGITS, str(root / "digits_qdq.onnx"), "image", x)


@pytest.mark.parametrize("target", ["generic", "cortex-m7"])
@pytest.mark.parametrize("case,message", [
    # the fuzzer's finds (tests/test_fuzz.py): exit 0 and C that read past an array before
    ("gemm_k", "(Gemm, opset 17): ShapeInferenceError: Dimension mismatch"),
    ("conv_bias", "(Conv, opset 17): bias [31] must be [32] (one per output channel)"),
    ("gemm_c", "(Gemm, opset 17): C [5] does not broadcast to [1, 10]"),
])
def test_float_shape_defects(tmp_path, capsys, case, message, target):
    edit = {"gemm_k": ("14.weight", lambda a: a[:, :-1]),
            "conv_bias": ("onnx::Conv_50", lambda a: a[:-1]),
            "gemm_c": ("14.bias", lambda a: a[:5])}[case]
    path = _edit_initializer(DIGITS, tmp_path, lambda n: n == edit[0], edit[1])
    rc = main([path, "--target", target, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err, err


def test_int32_accumulator_overflow_is_refused(digits_qdq, tmp_path, capsys):
    """A bias of 2^31 - 1 overflowed the int32 accumulator (UBSan: signed integer overflow in
    the depthwise kernel on cortex-m7)."""
    path = _edit_initializer(digits_qdq, tmp_path, lambda n: n.endswith("bias_quantized"),
                             lambda a: np.where(np.arange(a.size) == 0, 2**31 - 1, a).astype(
                                 a.dtype))
    rc = main([path, "--target", "cortex-m7", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "output channel 0 can overflow the int32 accumulator" in err, err


def test_int32_activations_are_not_folded_into_int8_kernels(digits_qdq, tmp_path):
    """A QuantizeLinear to int32 (its zero point's type) made an int8 kernel write int32: the
    cortex-m7 C did not build (incompatible pointer types). Now that layer stays float."""
    import fuzzlib
    from edgecc.compiler.driver import compile_model
    m = onnx.load(digits_qdq)
    zp = next(i for i in m.graph.initializer if i.name == "/2/Relu_output_0_zero_point")
    zp.data_type = onnx.TensorProto.INT32
    path = str(tmp_path / "int32_zp.onnx")
    onnx.save(m, path)
    for target in ("generic", "cortex-m7"):
        result = compile_model(path, target)
        assert all(result.graph.types[n.outputs[0]].dtype.name in ("INT8", "UINT8")
                   for n in result.graph.nodes if n.op.startswith("QConv")), target
        outcome, detail = fuzzlib.build_and_run(result.files, result.prefix, result.graph, target,
                                                str(tmp_path / target), 0)
        assert outcome == "clean", detail


def test_zero_weight_scale_keeps_the_layer_float(digits_qdq, tmp_path):
    """A per-channel weight scale of 0 (DequantizeLinear allows it) has no int32 bias scale:
    fold-qdq divided by zero (numpy warning) and folded a bias it could not represent. Now that
    conv stays float between its DequantizeLinear and QuantizeLinear."""
    import warnings
    from edgecc.compiler.driver import compile_model
    path = _edit_initializer(digits_qdq, tmp_path, lambda n: n == "onnx::Conv_46_scale",
                             lambda a: np.where(np.arange(a.size) == 0, 0, a).astype(a.dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph = compile_model(path, "generic").graph
    assert [n.op for n in graph.nodes].count("Conv") == 1
    assert [n.op for n in graph.nodes].count("QConv") == 3
