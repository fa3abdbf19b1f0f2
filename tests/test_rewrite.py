"""passes/rewrite.py: ordered rules run to a fixed point; a rule registered twice is an error;
the local passes (identity removal, BatchNorm folding, activation fusion, QDQ folding) are
rule lists run by it."""
import pytest

from edgecc.ir import DType, Graph, Node, TensorType, UnaryAttrs
from edgecc.passes import cleanup, fold_batchnorm, fold_qdq, fuse_activation
from edgecc.passes.rewrite import Rule, rewrite, rule_table


def _chain(ops):
    t = TensorType(DType.FLOAT32, (4,))
    names = [f"t{i}" for i in range(len(ops) + 1)]
    g = Graph("g", [], [names[0]], [names[-1]], {n: t for n in names}, {})
    g.nodes = [Node(op, (names[i],), (names[i + 1],), UnaryAttrs(), f"n{i}")
               for i, op in enumerate(ops)]
    return g


def _replace(new_op):
    def apply(g, node, view):
        g.nodes = [n.replace(op=new_op) if n is node else n for n in g.nodes]
        return True
    return apply


def test_first_rule_of_an_op_wins_and_runs_to_a_fixed_point():
    g = _chain(["Neg", "Abs", "Neg"])
    never = Rule("never", ("Neg",), lambda g, n, v: False)
    rules = [never, Rule("neg-to-relu", ("Neg",), _replace("Relu")),
             Rule("neg-to-exp", ("Neg",), _replace("Exp")),
             Rule("relu-to-tanh", ("Relu",), _replace("Tanh"))]
    out = rewrite(g, rules)
    assert [n.op for n in out.nodes] == ["Tanh", "Abs", "Tanh"]
    assert [n.op for n in g.nodes] == ["Neg", "Abs", "Neg"]  # the input graph is untouched


def test_a_rule_registered_twice_is_an_error():
    r = Rule("a", ("Neg",), _replace("Relu"))
    with pytest.raises(ValueError, match="registered twice: a"):
        rule_table([r, r])
    with pytest.raises(ValueError, match="registered twice"):
        rule_table([r, Rule("b", ("Abs",), r.apply)])
    with pytest.raises(ValueError):
        fold_qdq.rule_table(fold_qdq.RULE_ORDER + fold_qdq.RULE_ORDER[:1])


def test_the_local_passes_are_rule_lists():
    for module in (cleanup, fold_batchnorm, fuse_activation):
        assert module.RULES and all(isinstance(r, Rule) for r in module.RULES)
        rule_table(module.RULES)
    rules = [fold_qdq.as_rewrite_rule(fn, set()) for fn in fold_qdq.RULE_ORDER]
    table = rule_table(rules)
    assert [r.name for r in table["MatMul"]] == ["fold_matmul", "fold_qmatmul"]
    assert [r.name for r in table["Relu"]] == ["fold_clamp", "fold_lut"]
