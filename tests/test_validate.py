"""Validation before codegen (issue 11, first part: Conv geometry, quantization parameters). A QDQ model whose Conv
attributes disagree with its shapes (its output shape declared in value_info, as exporters
write it, so shape inference does not stop it) compiled with exit 0 and C that read out of
bounds; now each is one line naming the model, node, op, opset and the broken rule, exit 2."""
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


@pytest.mark.parametrize("target", ["generic", "cortex-m7"])
@pytest.mark.parametrize("attr", sorted(MUTATIONS))
def test_bad_conv_geometry_is_one_line_exit_2(models, attr, target, tmp_path, capsys):
    rc = main([models["qdq", attr], "--target", target, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"node 'conv' (Conv, opset 17): {MUTATIONS[attr][1]}" in err, err


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
