"""Targets and backends as data (issue 10, acceptance 2 and 3).

* No module outside edgecc/targets/ compares a target, backend or kernel-set (--kernels) name
  (in Python: a comparison, membership test, ``startswith`` or subscript with such a string;
  in templates: an ``{% if %}`` on one). The driver, codegen, verify and the CLI ask the
  target record instead.
* A backend's template is reached only as ``<backend>/<name>``: two backends with a template
  of the same name each get their own, and a kernel's template never falls back to another
  backend's folder.
* No import cycle between edgecc's modules or subpackages (top-level imports).
* A toy backend defined here (one kernel, one template folder, one target record) compiles and
  runs the digits CNN: its kernel for the one op it overrides, generic for the rest.
"""
import ast
import glob
import os
import re

import jinja2
import networkx as nx
import numpy as np
import pytest

from edgecc.backends import registry as backends
from edgecc.backends.codegen import make_env
from edgecc.backends.kernels import Backend, Kernel
from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host
from edgecc.targets import registry as targets
from edgecc.verify.host import verify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "edgecc")
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx")


def _names():
    return (set(targets.TARGETS) | set(backends.names()) | set(targets.kernel_set_names())
            | {"cortex-m", "cortex"})


def _is_name(node) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)
            and (node.value in _names() or node.value.startswith("cortex-m")))


def name_tests(source: str):
    """(line, code) of each comparison, membership test, startswith/endswith or subscript
    with a target or backend name in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(_is_name(n) for n in
                                                 [node.left] + node.comparators):
            found.append(node)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith")
              and any(_is_name(a) for a in node.args)):
            found.append(node)
        elif isinstance(node, ast.Subscript) and _is_name(node.slice):
            found.append(node)
    return [(n.lineno, ast.unparse(n)) for n in found]


def test_name_tests_are_found():
    """The checker below catches each form it looks for (and not a plain default value)."""
    src = ('a = t == "cortex-m7"\nb = "cmsis" in chain\nc = t.startswith("cortex-m")\n'
           'd = TARGETS["generic"]\ndef f(target="generic"): pass\n')
    assert [line for line, _ in name_tests(src)] == [1, 2, 3, 4]


def test_no_module_outside_the_registry_tests_a_target_or_backend_name():
    bad = []
    for path in glob.glob(os.path.join(PKG, "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, ROOT)
        if rel.startswith(os.path.join("edgecc", "targets") + os.sep):
            continue
        with open(path) as f:
            bad += [f"{rel}:{line}: {code}" for line, code in name_tests(f.read())]
    names = "|".join(sorted(map(re.escape, _names())))
    cond = re.compile(r"{%-?\s*(?:if|elif)\b[^%]*\b(?:" + names + r")\b")
    for path in glob.glob(os.path.join(PKG, "**", "*.j2"), recursive=True):
        with open(path) as f:
            for k, line in enumerate(f, 1):
                if cond.search(line):
                    bad.append(f"{os.path.relpath(path, ROOT)}:{k}: {line.strip()}")
    assert not bad, "target/backend names tested outside edgecc/targets/:\n" + "\n".join(bad)


def test_backend_templates_cannot_shadow_each_other(tmp_path):
    for name in ("a", "b"):
        os.makedirs(tmp_path / name)
        (tmp_path / name / "conv.c.j2").write_text(f"/* {name} */\n")
    a, b = (Backend(n, str(tmp_path / n), {}) for n in ("a", "b"))
    env = make_env(backends=[a, b])
    assert env.get_template("a/conv.c.j2").render() == "/* a */\n"
    assert env.get_template("b/conv.c.j2").render() == "/* b */\n"
    with pytest.raises(jinja2.TemplateNotFound):
        env.get_template("conv.c.j2")           # no unqualified lookup into a backend
    generic = backends.get_backend("generic")
    env = make_env(backends=[a, generic])
    with pytest.raises(jinja2.TemplateNotFound):
        env.get_template("a/pool_max.c.j2")     # no fall-through to another backend's folder
    # every built-in kernel's template lives in its own backend's folder
    for name in backends.BUILTIN:
        be = backends.get_backend(name)
        assert be.kernels and os.path.isdir(be.template_dir)


def test_registering_twice_is_an_error():
    with pytest.raises(ValueError):
        backends.register(Backend("generic", "", {}))
    with pytest.raises(ValueError):
        targets.register(targets.TARGETS["generic"])
    import types
    m = types.ModuleType("m")

    def k1(ctx, node):
        return None
    k1.kernel_ops, k1.__module__ = ("Relu",), "m"
    m.k1 = k1
    m.k2 = type(k1)(k1.__code__, {}, "k2")
    m.k2.kernel_ops, m.k2.__module__ = ("Relu",), "m"
    with pytest.raises(ValueError, match="two kernels for IR op Relu"):
        Backend.collect("x", "", [m])


def import_graph():
    """Module -> edgecc modules it imports at top level."""
    g = nx.DiGraph()
    for path in glob.glob(os.path.join(PKG, "**", "*.py"), recursive=True):
        mod = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        is_pkg = mod.endswith(".__init__")
        mod = mod[:-len(".__init__")] if is_pkg else mod
        pkg = mod if is_pkg else mod.rsplit(".", 1)[0]
        g.add_node(mod)
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.level or
                                                     (node.module or "").startswith("edgecc")):
                base = (".".join(pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                                 + ([node.module] if node.module else []))
                        if node.level else node.module)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    exists = os.path.exists(os.path.join(ROOT, *sub.split(".")) + ".py") or \
                        os.path.isdir(os.path.join(ROOT, *sub.split(".")))
                    g.add_edge(mod, sub if exists else base)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("edgecc"):
                        g.add_edge(mod, alias.name)
    return g


def test_no_import_cycle_between_modules_or_packages():
    """Modules, and the subpackages (ir, compiler, passes, backends, targets, verify, cli) as
    nodes: the IR depends on nothing above it, compiler/ only lowers ONNX to IR."""
    g = import_graph()
    cycles = list(nx.simple_cycles(g))
    assert not cycles, f"import cycles between modules: {cycles}"
    packages = nx.DiGraph()
    for a, b in g.edges():
        pa, pb = ".".join(a.split(".")[:2]), ".".join(b.split(".")[:2])
        if pa != pb:
            packages.add_edge(pa, pb)
    cycles = list(nx.simple_cycles(packages))
    assert not cycles, f"import cycles between packages: {cycles}"
    assert not any(b.startswith(("edgecc.compiler", "edgecc.passes", "edgecc.backends"))
                   for a, b in g.edges() if a.startswith("edgecc.ir"))


# -- a toy backend, defined only here ----------------------------------------------------------

TOY_POOL = """#ifndef EDGECC_TOY
#error "built without the toy target's host_cflags"
#endif
EDGECC_LAYER void {{ fn }}(const float *x, float *y)
{
    /* toy backend: global average of {{ channels }} planes of {{ plane }} */
    int32_t c, i;
    for (c = 0; c < {{ channels }}; ++c) {
        float s = 0.0f;
        for (i = 0; i < {{ plane }}; ++i)
            s += x[c * {{ plane }} + i];
        y[c] = s / {{ plane }}.0f;
    }
}
"""


def toy_global_average(ctx, node):
    """Global average pooling only (no pads, the kernel covers the input); else None."""
    x = ctx.graph.types[node.inputs[0]]
    if tuple(node.attrs.kernel) != x.shape[2:] or any(node.attrs.pads):
        return None
    return Kernel("pool.c.j2", dict(channels=x.shape[0] * x.shape[1],
                                    plane=int(np.prod(x.shape[2:]))),
                  [node.inputs[0], node.outputs[0]])


toy_global_average.kernel_ops = ("AveragePool",)


def test_toy_backend_compiles_and_runs_the_digits_cnn(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "pool.c.j2").write_text(TOY_POOL)
    toy = Backend("toy", str(tmp_path / "toy"), {"AveragePool": toy_global_average})
    monkeypatch.setitem(backends._LOADED, "toy", toy)
    monkeypatch.setitem(targets.TARGETS, "toy",
                        targets.Target("toy", "a test's toy backend", ("toy", "generic"),
                                       host_cflags=("-DEDGECC_TOY=1",)))
    result = compile_model(DIGITS, "toy")
    code = result.files["model.c"]
    assert code.count("toy backend: global average of 64 planes of 16") == 1
    generic = compile_model(DIGITS, "generic")
    assert "toy backend" not in generic.files["model.c"]
    # the rest is generic's: the same layers, only the pooling function differs
    layers = lambda c: re.findall(r"^EDGECC_LAYER void (L\d+_\w+)\(", c, re.M)  # noqa: E731
    assert layers(code)
    assert layers(code) == layers(generic.files["model.c"])
    x = np.load(os.path.join(ROOT, "examples", "digits", "heldout.npz"))
    x = x[x.files[0]][:4].astype(np.float32).reshape((-1, 1, 1, 8, 8))
    toy_build = build_host(result.files, result.graph, "model", str(tmp_path / "t"), sanitize=True,
                           cflags=targets.TARGETS["toy"].host_cflags)
    gen_build = build_host(generic.files, generic.graph, "model", str(tmp_path / "g"))
    for k, sample in enumerate(x):
        (a,) = run_host(toy_build, [sample], tag=f"t{k}")
        (b,) = run_host(gen_build, [sample], tag=f"g{k}")
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # edgecc verify builds it with the record's flags (the template refuses to build without)
    outputs, _, _ = verify(DIGITS, "toy", workdir=str(tmp_path / "v"))
    assert all(c.ok for c in outputs), outputs


def test_kernel_templates_declare_edgecc_layer():
    """Every layer function is EDGECC_LAYER (never cloned by GCC's ipa-cp, model.c.j2)."""
    templates = glob.glob(os.path.join(ROOT, "edgecc", "backends", "*", "templates", "*.c.j2"))
    plain = [t for t in templates
             if re.search(r"^static void \{\{ fn \}\}\(", open(t).read(), re.M)]
    assert templates and not plain, plain
