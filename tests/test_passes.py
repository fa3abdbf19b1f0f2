"""Unit tests of the graph passes (TVM Relax style: Before -> Expected, idempotent, same outputs).

Each test builds a tiny ONNX model with onnx.helper, imports it, runs ONE pass and checks
  1. the expected graph (op sequence, attrs) and that it verifies;
  2. idempotence: the pass run again changes nothing, and it never mutates its input;
  3. outputs: the model compiled with and without the pass, built with sanitizers and run, both
     match onnxruntime on the original model;
and, per fusion/fold pass, that the graph is unchanged when a precondition fails.
"""
import jinja2
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx_helpers import make_model, rand

from edgecc.compiler import lowering, registry  # noqa: F401  (lowering: registers)
from edgecc.compiler.driver import compile_model
from edgecc.compiler.frontend import import_onnx
from edgecc.errors import UnsupportedError
from edgecc.ir import Activation, DType, Graph, Node, TensorType, op_sequence
from edgecc.ir.ops.gemm import MatMulAttrs
from edgecc.ir.ops.movement import TransposeAttrs
from edgecc.passes.cleanup import eliminate_dead_code, remove_identities
from edgecc.passes.constant_folding import fold_constants
from edgecc.passes.fold_batchnorm import fold_batchnorm
from edgecc.passes.fuse_activation import fuse_activation
from edgecc.passes.pipeline import PIPELINE, run_pipeline
from edgecc.runner import build_host, run_host

F32 = TensorProto.FLOAT


# -- helpers -----------------------------------------------------------------------------------

def bn_params(rng, c, prefix="bn"):
    return {f"{prefix}_g": rand(rng, c, lo=0.5, hi=1.5), f"{prefix}_b": rand(rng, c),
            f"{prefix}_m": rand(rng, c), f"{prefix}_v": rand(rng, c, lo=0.3, hi=2.0)}


def bn_node(x, y, prefix="bn", epsilon=1e-3):
    return helper.make_node("BatchNormalization",
                            [x, f"{prefix}_g", f"{prefix}_b", f"{prefix}_m", f"{prefix}_v"], [y],
                            epsilon=epsilon)


def snapshot(g: Graph):
    return (list(g.nodes), list(g.inputs), list(g.outputs), dict(g.types),
            {k: v.copy() for k, v in g.constants.items()})


def assert_same_graph(a: Graph, b: Graph):
    if isinstance(a, Graph):
        a = snapshot(a)
    if isinstance(b, Graph):
        b = snapshot(b)
    assert [n.op for n in a[0]] == [n.op for n in b[0]]
    assert a[0] == b[0], "nodes differ"
    assert a[1:4] == b[1:4], "graph I/O or types differ"
    assert sorted(a[4]) == sorted(b[4]), "constant names differ"
    for name in a[4]:
        assert a[4][name].dtype == b[4][name].dtype
        np.testing.assert_array_equal(a[4][name], b[4][name], err_msg=name)


def apply_pass(fn, graph: Graph) -> Graph:
    """Run ``fn``; check verify, that the input is untouched, and idempotence."""
    before = snapshot(graph)
    out = fn(graph)
    out.verify()
    assert_same_graph(before, graph)
    again = fn(out)
    again.verify()
    assert_same_graph(out, again)
    return out


def assert_unchanged(fn, graph: Graph):
    out = apply_pass(fn, graph)
    assert_same_graph(graph, out)


def node(graph: Graph, op: str) -> Node:
    (found,) = [n for n in graph.nodes if n.op == op]
    return found


def ort_run(model, inputs):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, inputs)))


def assert_close(outs, refs, what):
    assert len(outs) == len(refs)
    for k, (out, ref) in enumerate(zip(outs, refs)):
        assert out.shape == ref.shape, f"{what}: output {k} shape {out.shape} != {ref.shape}"
        tol = 1e-5 * max(float(np.abs(ref).max()), 1e-3)
        err = float(np.abs(out.astype(np.float64) - ref).max())
        assert err <= tol, f"{what}: output {k} differs from onnxruntime by {err} (tol {tol})"


def check_outputs(model, label, pass_name, tmp_path, seed=0):
    """Compile with and without ``pass_name``, run both, compare both with onnxruntime.

    Returns (graph with the pass, graph without it)."""
    assert pass_name in {name for name, _ in PIPELINE}
    rng = np.random.default_rng(seed)
    shapes = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    inputs = [rand(rng, *s) for s in shapes]
    refs = ort_run(model, inputs)
    graphs = []
    for tag, skip in (("with", []), ("without", [pass_name])):
        try:
            result = compile_model(f"{label}.onnx", model=model, skip_passes=skip, prefix=label)
        except (UnsupportedError, jinja2.TemplateNotFound) as e:  # kernel still being written
            pytest.skip(f"no C kernel yet: {e}")
        build = build_host(result.files, result.graph, result.prefix, str(tmp_path / tag),
                           sanitize=True, opt="-O1")
        assert_close(run_host(build, inputs), refs, f"{label} {tag} {pass_name}")
        graphs.append(result.graph)
    return graphs


# -- models ------------------------------------------------------------------------------------

def conv_bn_relu_model(seed=0, group=1, bias=True, extra_outputs=(), conv_output=False):
    rng = np.random.default_rng(seed)
    inits = {"w": rand(rng, 4, 4 // group, 3, 3), **bn_params(rng, 4)}
    if bias:
        inits["b"] = rand(rng, 4)
    nodes = [helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["c"],
                              pads=[1, 1, 1, 1], group=group),
             bn_node("c", "bn"),
             helper.make_node("Relu", ["bn"], ["y"])]
    outputs = [("y", [1, 4, 5, 5])]
    if conv_output:
        outputs.append(("c", [1, 4, 5, 5]))
    for name in extra_outputs:
        nodes.append(helper.make_node("Sigmoid", ["c"], [name]))
        outputs.append((name, [1, 4, 5, 5]))
    return make_model(nodes, [("x", [1, 4, 5, 5])], outputs, inits)


GEMM_CASES = {
    # name: (trans_b, alpha, beta, C shape or None)
    "transB_alpha_beta_vecC": (1, 0.7, 1.3, (6,)),
    "noC": (0, 1.0, 1.0, None),
    "fullC_alpha": (0, 2.0, 0.5, (3, 6)),
    "rowC_transB": (1, 1.0, 1.0, (1, 6)),
}


def gemm_bn_model(case, seed=0):
    trans_b, alpha, beta, c_shape = GEMM_CASES[case]
    rng = np.random.default_rng(seed)
    inits = {"w": rand(rng, *((6, 5) if trans_b else (5, 6))), **bn_params(rng, 6)}
    ins = ["x", "w"]
    if c_shape is not None:
        inits["c0"] = rand(rng, *c_shape)
        ins.append("c0")
    nodes = [helper.make_node("Gemm", ins, ["t"], transB=trans_b, alpha=alpha, beta=beta),
             bn_node("t", "y")]
    return make_model(nodes, [("x", [3, 5])], [("y", [3, 6])], inits)


def conv_transpose_bn_model(seed=0, bias=True):
    """ConvTranspose with group=2: W is (C_in=4, M/group=3, 3, 3), so M = 6 channels."""
    rng = np.random.default_rng(seed)
    inits = {"w": rand(rng, 4, 3, 3, 3), **bn_params(rng, 6)}
    if bias:
        inits["b"] = rand(rng, 6)
    nodes = [helper.make_node("ConvTranspose", ["x", "w"] + (["b"] if bias else []), ["t"],
                              group=2, strides=[2, 2], pads=[1, 1, 1, 1]),
             bn_node("t", "y")]
    return make_model(nodes, [("x", [1, 4, 3, 3])], [("y", [1, 6, 5, 5])], inits)


ACTIVATIONS = {
    # name: (onnx node kwargs, extra inputs as {name: value}, expected (alpha, beta))
    "Relu": ({}, {}, (0.0, 0.0)),
    "Clip": ({}, {"lo": np.float32(0.0), "hi": np.float32(6.0)}, (0.0, 6.0)),
    "LeakyRelu": ({"alpha": 0.2}, {}, (0.2, 0.0)),
    "Sigmoid": ({}, {}, (0.0, 0.0)),
    "HardSigmoid": ({"alpha": 0.3, "beta": 0.4}, {}, (0.3, 0.4)),
    "HardSwish": ({}, {}, (0.0, 0.0)),
    "Tanh": ({}, {}, (0.0, 0.0)),
}


def act_node(kind, x, y):
    kwargs, extra, _ = ACTIVATIONS[kind]
    return helper.make_node(kind, [x] + list(extra), [y], **kwargs), dict(extra)


def producer_act_model(producer, kind, seed=0):
    """Conv / Gemm / MatMul followed by activation ``kind``."""
    rng = np.random.default_rng(seed)
    if producer == "Conv":
        inits = {"w": rand(rng, 3, 2, 3, 3), "b": rand(rng, 3)}
        prod = helper.make_node("Conv", ["x", "w", "b"], ["t"], strides=[2, 2])
        x_shape, y_shape = [1, 2, 7, 7], [1, 3, 3, 3]
    elif producer == "Gemm":
        inits = {"w": rand(rng, 4, 5), "b": rand(rng, 4)}
        prod = helper.make_node("Gemm", ["x", "w", "b"], ["t"], transB=1)
        x_shape, y_shape = [2, 5], [2, 4]
    else:  # MatMul with a batch dim
        inits = {"w": rand(rng, 4, 5)}
        prod = helper.make_node("MatMul", ["x", "w"], ["t"])
        x_shape, y_shape = [1, 3, 4], [1, 3, 5]
    act, extra = act_node(kind, "t", "y")
    inits.update(extra)
    return make_model([prod, act], [("x", x_shape)], [("y", y_shape)], inits)


# -- fold-constants ----------------------------------------------------------------------------

def test_fold_constants_transpose_of_constant():
    """Before: wt = Transpose(w_const); y = MatMul(x, wt).  After: y = MatMul(x, wt_const)."""
    f = DType.FLOAT32
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    g = Graph("t", [], ["x"], ["y"], {"x": TensorType(f, (2, 4)), "wt": TensorType(f, (4, 3)),
                                      "y": TensorType(f, (2, 3))})
    g.add_constant("w", w)
    g.nodes = [Node("Transpose", ("w",), ("wt",), TransposeAttrs((1, 0))),
               Node("MatMul", ("x", "wt"), ("y",), MatMulAttrs())]
    g.verify()
    out = apply_pass(fold_constants, g)
    assert op_sequence(out) == ["MatMul"]
    assert out.nodes[0].inputs == ("x", "wt")
    np.testing.assert_array_equal(out.constants["wt"], w.T)
    assert out.constants["wt"].flags.c_contiguous
    assert "w" not in out.constants  # no longer used
    assert out.types["wt"] == TensorType(f, (4, 3))


def test_fold_constants_skips_a_node_whose_reference_declines():
    """A MatMul with a fused activation has no numpy reference (it returns None): keep it."""
    f = DType.FLOAT32
    g = Graph("t", [], [], ["y"], {"m": TensorType(f, (2, 2)), "y": TensorType(f, (2, 2))})
    g.add_constant("a", np.ones((2, 3), np.float32))
    g.add_constant("b", -np.ones((3, 2), np.float32))
    g.nodes = [Node("MatMul", ("a", "b"), ("m",), MatMulAttrs(Activation("Relu"))),
               Node("Add", ("m", "m"), ("y",))]
    g.verify()
    assert_unchanged(fold_constants, g)


def test_fold_constants_layernorm_outputs_by_position():
    """LayerNormalization of constants asking for Y and InvStdDev but not Mean: each output
    folds to its own value."""
    from edgecc.ir.ops.layernorm import LayerNormAttrs
    f = DType.FLOAT32
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    g = Graph("t", [], [], ["y", "inv"], {"y": TensorType(f, (2, 4)),
                                          "inv": TensorType(f, (2, 1))})
    g.add_constant("x", x)
    g.add_constant("s", np.ones(4, np.float32))
    g.nodes = [Node("LayerNormalization", ("x", "s", ""), ("y", "", "inv"),
                    LayerNormAttrs(1, 1e-5))]
    g.verify()
    out = apply_pass(fold_constants, g)
    want = 1 / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out.constants["inv"], want, rtol=1e-6)
    np.testing.assert_allclose(out.constants["y"], (x - x.mean(1, keepdims=True)) * want,
                               rtol=1e-5, atol=1e-6)


def constant_output_model():
    """c = Add(c1, c2) is a graph output, so the loader keeps it for fold_constants."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Add", ["c1", "c2"], ["c"]),
             helper.make_node("Mul", ["x", "c"], ["y"])]
    return make_model(nodes, [("x", [2, 4])], [("y", [2, 4]), ("c", [1, 4])],
                      {"c1": rand(rng, 1, 4), "c2": rand(rng, 1, 4)})


def test_fold_constants_graph_output(tmp_path):
    model = constant_output_model()
    g = import_onnx("const_out.onnx", model=model)
    assert op_sequence(g) == ["Add", "Mul"]
    out = apply_pass(fold_constants, g)
    assert op_sequence(out) == ["Mul"]
    assert out.outputs == ["y", "c"]
    np.testing.assert_array_equal(out.constants["c"], g.constants["c1"] + g.constants["c2"])
    assert set(out.constants) == {"c"}
    with_pass, without = check_outputs(model, "const_out", "fold-constants", tmp_path)
    assert op_sequence(with_pass) == ["Mul"] and op_sequence(without) == ["Add", "Mul"]


def test_fold_constants_negative():
    g = import_onnx("no_const.onnx", model=producer_act_model("Gemm", "Relu"))
    assert_unchanged(fold_constants, g)


# -- remove-identities -------------------------------------------------------------------------

def identity_model():
    """x -> Relu -> Identity -> Dropout -> Identity -> Sigmoid -> y;
    x -> Conv -> Identity -> out (a graph output)."""
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Identity", ["a"], ["b"]),
             helper.make_node("Dropout", ["b"], ["c"]),
             helper.make_node("Identity", ["c"], ["d"]),
             helper.make_node("Sigmoid", ["d"], ["y"]),
             helper.make_node("Conv", ["x", "w"], ["t"]),
             helper.make_node("Identity", ["t"], ["out"])]
    return make_model(nodes, [("x", [1, 2, 4, 4])], [("y", [1, 2, 4, 4]), ("out", [1, 3, 4, 4])],
                      {"w": rand(rng, 3, 2, 1, 1)})


def test_remove_identities(tmp_path):
    model = identity_model()
    g = import_onnx("identities.onnx", model=model)
    assert op_sequence(g) == ["Relu", "Identity", "Identity", "Identity", "Sigmoid", "Conv",
                              "Identity"]
    out = apply_pass(remove_identities, g)
    assert op_sequence(out) == ["Relu", "Sigmoid", "Conv"]
    assert node(out, "Sigmoid").inputs == ("a",)
    assert node(out, "Conv").outputs == ("out",)   # the producer now writes the graph output
    assert out.outputs == ["y", "out"] and "t" not in out.types
    with_pass, without = check_outputs(model, "identities", "remove-identities", tmp_path)
    assert "Identity" not in op_sequence(with_pass) and "Identity" in op_sequence(without)


def test_remove_identities_enables_fusion(tmp_path):
    """Conv -> Identity -> Relu: once the Identity is gone the Relu fuses into the Conv."""
    rng = np.random.default_rng(3)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["t"]),
                        helper.make_node("Identity", ["t"], ["u"]),
                        helper.make_node("Relu", ["u"], ["y"])],
                       [("x", [1, 2, 3, 3])], [("y", [1, 2, 3, 3])], {"w": rand(rng, 2, 2, 1, 1)})
    with_pass, without = check_outputs(model, "id_fuse", "remove-identities", tmp_path)
    assert op_sequence(with_pass) == ["Conv"]
    assert with_pass.nodes[0].attrs.activation.kind == "Relu"
    assert op_sequence(without) == ["Conv", "Identity", "Relu"]


def test_remove_identities_keeps_required_copies(tmp_path):
    """An output copied from a graph input, or from another graph output, stays a copy."""
    model = make_model([helper.make_node("Identity", ["x"], ["o1"]),
                        helper.make_node("Relu", ["x"], ["r"]),
                        helper.make_node("Identity", ["r"], ["o2"]),
                        helper.make_node("Identity", ["o2"], ["o3"])],
                       [("x", [2, 3])], [("o1", [2, 3]), ("o2", [2, 3]), ("o3", [2, 3])])
    g = import_onnx("copies.onnx", model=model)
    out = apply_pass(remove_identities, g)
    assert op_sequence(out) == ["Identity", "Relu", "Identity"]
    assert node(out, "Relu").outputs == ("o2",)
    assert [n.inputs + n.outputs for n in out.nodes if n.op == "Identity"] == [("x", "o1"),
                                                                              ("o2", "o3")]
    check_outputs(model, "copies", "remove-identities", tmp_path)


def test_remove_identities_negative():
    g = import_onnx("no_id.onnx", model=conv_bn_relu_model())
    assert_unchanged(remove_identities, g)


# -- dead-code ---------------------------------------------------------------------------------

def dead_branch_model():
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Exp", ["x"], ["dead1"]),            # dead branch ...
             helper.make_node("Add", ["dead1", "k"], ["dead2"]),   # ... with its own constant
             helper.make_node("Sigmoid", ["a"], ["y"])]
    return make_model(nodes, [("x", [2, 3])], [("y", [2, 3])], {"k": rand(rng, 2, 3)})


def test_eliminate_dead_code(tmp_path):
    model = dead_branch_model()
    g = import_onnx("dead.onnx", model=model)
    assert op_sequence(g) == ["Relu", "Exp", "Add", "Sigmoid"]
    out = apply_pass(eliminate_dead_code, g)
    assert op_sequence(out) == ["Relu", "Sigmoid"]
    assert "k" not in out.constants and "dead1" not in out.types and "dead2" not in out.types
    with_pass, without = check_outputs(model, "dead", "dead-code", tmp_path)
    assert op_sequence(with_pass) == ["Relu", "Sigmoid"]
    # without dead-code the reorder pass runs the dead branch first (its buffers die before
    # Relu's output is born): the same nodes, maybe in another order
    assert sorted(op_sequence(without)) == ["Add", "Exp", "Relu", "Sigmoid"]


def test_eliminate_dead_code_negative():
    g = import_onnx("live.onnx", model=identity_model())
    assert_unchanged(eliminate_dead_code, g)


# -- fold-batchnorm ----------------------------------------------------------------------------

@pytest.mark.parametrize("group,bias", [(1, True), (2, False)])
def test_fold_batchnorm_conv(group, bias, tmp_path):
    model = conv_bn_relu_model(group=group, bias=bias)
    g = import_onnx("conv_bn.onnx", model=model)
    assert op_sequence(g) == ["Conv", "BatchNormalization", "Relu"]
    out = apply_pass(fold_batchnorm, g)
    assert op_sequence(out) == ["Conv", "Relu"]
    conv = node(out, "Conv")
    assert conv.outputs == ("bn",) and len(conv.inputs) == 3
    assert all(out.is_constant(i) for i in conv.inputs[1:])
    assert conv.attrs == g.nodes[0].attrs  # kernel, pads, group unchanged
    assert not any(k.startswith("bn_") for k in out.constants)
    with_pass, without = check_outputs(model, "conv_bn", "fold-batchnorm", tmp_path)
    assert op_sequence(with_pass) == ["Conv"]
    assert with_pass.nodes[0].attrs.activation.kind == "Relu"
    assert op_sequence(without) == ["Conv", "BatchNormalization", "Relu"]


@pytest.mark.parametrize("case", sorted(GEMM_CASES))
def test_fold_batchnorm_gemm(case, tmp_path):
    model = gemm_bn_model(case)
    g = import_onnx("gemm_bn.onnx", model=model)
    assert op_sequence(g) == ["Gemm", "BatchNormalization"]
    out = apply_pass(fold_batchnorm, g)
    assert op_sequence(out) == ["Gemm"]
    gemm = out.nodes[0]
    assert gemm.outputs == ("y",)
    assert gemm.attrs.alpha == 1.0 and gemm.attrs.beta == 1.0
    assert gemm.attrs.trans_b == bool(GEMM_CASES[case][0])
    with_pass, without = check_outputs(model, "gemm_bn", "fold-batchnorm", tmp_path)
    assert op_sequence(with_pass) == ["Gemm"]
    assert op_sequence(without) == ["Gemm", "BatchNormalization"]


@pytest.mark.parametrize("bias", [True, False])
def test_fold_batchnorm_conv_transpose_group2(bias, tmp_path):
    model = conv_transpose_bn_model(bias=bias)
    g = import_onnx("convt_bn.onnx", model=model)
    assert op_sequence(g) == ["ConvTranspose", "BatchNormalization"]
    out = apply_pass(fold_batchnorm, g)
    assert op_sequence(out) == ["ConvTranspose"]
    ct = out.nodes[0]
    assert ct.outputs == ("y",) and ct.attrs.group == 2
    # The folded weights in onnxruntime give the original model's output (no C needed).
    x = rand(np.random.default_rng(5), 1, 4, 3, 3)
    folded = make_model(
        [helper.make_node("ConvTranspose", ["x", "w2", "b2"], ["y"], group=2, strides=[2, 2],
                          pads=[1, 1, 1, 1])],
        [("x", [1, 4, 3, 3])], [("y", [1, 6, 5, 5])],
        {"w2": out.constants[ct.inputs[1]], "b2": out.constants[ct.inputs[2]]})
    assert_close(ort_run(folded, [x]), ort_run(model, [x]), "folded ConvTranspose")
    with_pass, without = check_outputs(model, "convt_bn", "fold-batchnorm", tmp_path)
    assert op_sequence(without) == ["ConvTranspose", "BatchNormalization"]


def test_fold_batchnorm_negative_conv_output_used_twice():
    g = import_onnx("neg.onnx", model=conv_bn_relu_model(extra_outputs=("s",)))
    assert_unchanged(fold_batchnorm, g)


def test_fold_batchnorm_negative_conv_output_is_graph_output():
    g = import_onnx("neg.onnx", model=conv_bn_relu_model(conv_output=True))
    assert_unchanged(fold_batchnorm, g)


def test_fold_batchnorm_negative_weights_not_constant():
    rng = np.random.default_rng(6)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"]), bn_node("c", "y")],
                       [("x", [1, 2, 3, 3]), ("w", [2, 2, 1, 1])], [("y", [1, 2, 3, 3])],
                       bn_params(rng, 2))
    assert_unchanged(fold_batchnorm, import_onnx("neg.onnx", model=model))


def test_fold_batchnorm_negative_producer_has_activation():
    """Conv -> Relu -> BN: after fusion the Conv carries a Relu, and BN must not move past it."""
    rng = np.random.default_rng(7)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"]),
                        helper.make_node("Relu", ["c"], ["r"]), bn_node("r", "y")],
                       [("x", [1, 2, 3, 3])], [("y", [1, 2, 3, 3])],
                       {"w": rand(rng, 2, 2, 1, 1), **bn_params(rng, 2)})
    fused = fuse_activation(import_onnx("neg.onnx", model=model))
    assert op_sequence(fused) == ["Conv", "BatchNormalization"]
    assert_unchanged(fold_batchnorm, fused)


def test_fold_batchnorm_negative_matmul_producer():
    rng = np.random.default_rng(8)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["t"]), bn_node("t", "y")],
                       [("x", [3, 4])], [("y", [3, 5])],
                       {"w": rand(rng, 4, 5), **bn_params(rng, 5)})
    assert_unchanged(fold_batchnorm, import_onnx("neg.onnx", model=model))


# -- fuse-activation ---------------------------------------------------------------------------

FUSE_CASES = [("Conv", k) for k in ACTIVATIONS] + [("Gemm", "LeakyRelu"), ("Gemm", "Relu"),
                                                  ("MatMul", "Sigmoid"), ("MatMul", "Clip")]


@pytest.mark.parametrize("producer,kind", FUSE_CASES)
def test_fuse_activation(producer, kind, tmp_path):
    model = producer_act_model(producer, kind)
    g = import_onnx("fuse.onnx", model=model)
    assert op_sequence(g) == [producer, kind]
    out = apply_pass(fuse_activation, g)
    assert op_sequence(out) == [producer]
    prod = out.nodes[0]
    assert prod.outputs == ("y",)
    act = prod.attrs.activation
    assert act.kind == kind
    assert (act.alpha, act.beta) == pytest.approx(ACTIVATIONS[kind][2])
    assert prod.inputs == g.nodes[0].inputs
    with_pass, without = check_outputs(model, "fuse", "fuse-activation", tmp_path)
    assert op_sequence(with_pass) == [producer]
    assert op_sequence(without) == [producer, kind]


@pytest.mark.parametrize("clip_min", [0.0, None], ids=["relu6", "max_only"])
def test_fuse_activation_conv_transpose_clip(clip_min, tmp_path):
    rng = np.random.default_rng(9)
    inits = {"w": rand(rng, 2, 2, 3, 3), "hi": np.float32(1.5)}
    if clip_min is not None:
        inits["lo"] = np.float32(clip_min)
    model = make_model([helper.make_node("ConvTranspose", ["x", "w"], ["t"], group=2),
                        helper.make_node("Clip", ["t", "lo" if clip_min is not None else "",
                                                  "hi"], ["y"])],
                       [("x", [1, 2, 3, 3])], [("y", [1, 4, 5, 5])], inits)
    out = apply_pass(fuse_activation, import_onnx("fuse_ct.onnx", model=model))
    assert op_sequence(out) == ["ConvTranspose"]
    lo = -float(np.finfo(np.float32).max) if clip_min is None else clip_min  # ONNX: lowest()
    assert out.nodes[0].attrs.activation == Activation("Clip", lo, 1.5)
    with_pass, without = check_outputs(model, "fuse_ct", "fuse-activation", tmp_path)
    assert op_sequence(with_pass) == ["ConvTranspose"]
    assert op_sequence(without) == ["ConvTranspose", "Clip"]


def test_fuse_after_fold_full_pipeline():
    g = run_pipeline(import_onnx("conv_bn.onnx", model=conv_bn_relu_model()))
    assert op_sequence(g) == ["Conv"]
    assert g.nodes[0].attrs.activation.kind == "Relu" and g.nodes[0].outputs == ("y",)


def test_fuse_activation_negative_output_used_twice():
    rng = np.random.default_rng(10)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["t"]),
                        helper.make_node("Relu", ["t"], ["y"]),
                        helper.make_node("Add", ["t", "y"], ["z"])],
                       [("x", [1, 2, 3, 3])], [("z", [1, 2, 3, 3])], {"w": rand(rng, 2, 2, 1, 1)})
    assert_unchanged(fuse_activation, import_onnx("neg.onnx", model=model))


def test_fuse_activation_negative_output_is_graph_output():
    rng = np.random.default_rng(11)
    model = make_model([helper.make_node("Gemm", ["x", "w"], ["t"]),
                        helper.make_node("Relu", ["t"], ["y"])],
                       [("x", [2, 3])], [("y", [2, 4]), ("t", [2, 4])], {"w": rand(rng, 3, 4)})
    assert_unchanged(fuse_activation, import_onnx("neg.onnx", model=model))


def test_fuse_activation_negative_already_fused():
    """Conv -> Relu -> Sigmoid: the Relu fuses, the Sigmoid then has a fused producer."""
    rng = np.random.default_rng(12)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["t"]),
                        helper.make_node("Relu", ["t"], ["r"]),
                        helper.make_node("Sigmoid", ["r"], ["y"])],
                       [("x", [1, 2, 3, 3])], [("y", [1, 2, 3, 3])], {"w": rand(rng, 2, 2, 1, 1)})
    out = apply_pass(fuse_activation, import_onnx("neg.onnx", model=model))
    assert op_sequence(out) == ["Conv", "Sigmoid"]
    assert out.nodes[0].attrs.activation.kind == "Relu"
    assert out.nodes[1].inputs == ("r",)


@pytest.mark.parametrize("first,second", [("Add", "Relu"), ("Conv", "Exp"),
                                          ("BatchNormalization", "Relu")])
def test_fuse_activation_negative_not_fusable(first, second):
    rng = np.random.default_rng(13)
    inits = {"w": rand(rng, 2, 2, 1, 1), "k": rand(rng, 1, 2, 3, 3), **bn_params(rng, 2)}
    if first == "Conv":
        n1 = helper.make_node("Conv", ["x", "w"], ["t"])
    elif first == "Add":
        n1 = helper.make_node("Add", ["x", "k"], ["t"])
    else:
        n1 = bn_node("x", "t")
    model = make_model([n1, helper.make_node(second, ["t"], ["y"])],
                       [("x", [1, 2, 3, 3])], [("y", [1, 2, 3, 3])], inits)
    assert_unchanged(fuse_activation, import_onnx("neg.onnx", model=model))


def test_pipeline_pass_names():
    names = [name for name, _ in PIPELINE]
    assert names == ["fold-constants", "remove-identities", "fold-batchnorm", "fuse-activation",
                     "fold-qdq", "lower-bits", "dead-code", "reorder"]
