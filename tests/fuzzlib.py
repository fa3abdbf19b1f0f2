"""A fuzzer for edgecc's promise: every model it accepts yields safe C (issue 11).

One case = a reference model, a target and a seed. The seed picks one or two mutations (of the
protobuf: attributes, dims, initializers, inputs, outputs, nodes, opset; or of the bytes: flips,
truncation), the mutated model is compiled in a forked child (time and memory capped), and the
outcome is one of:

  rejected   exit 2: an EdgeccError, one line                                      (good)
  clean      accepted; the C builds with -Wall -Wextra -Werror -pedantic and the target's
             host flags, and runs under ASan + UBSan on random and extreme inputs (NaN, +-Inf,
             +-1e30, denormals; integer extremes) with exit 0 and no report          (good)
  internal   any other exception while compiling (a bug: exit 3 from the CLI)
  multiline  an EdgeccError whose message is empty or not one line
  build      the generated C does not build
  sanitizer  the program fails or ASan/UBSan report (the stderr tail is kept)
  hang       compile, build or run over its time limit, or the compiler over its memory cap

``run_case`` returns a Case; ``bench/fuzz.py`` and ``tests/test_fuzz.py`` drive it.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import resource
import subprocess
import tempfile
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

GOOD = ("rejected", "clean")
BAD = ("internal", "multiline", "build", "sanitizer", "hang")
COMPILE_SECONDS, BUILD_SECONDS, RUN_SECONDS = 60, 120, 60
COMPILE_MEMORY = 6 << 30  # address space of the compiling child

INTS = [0, 1, 2, 3, 7, -1, -2, 1 << 30, (1 << 31) - 1, -(1 << 31), 1 << 40, 16, 5]
FLOATS = [0.0, -1.0, 1e-45, 1e30, -1e30, float("nan"), float("inf"), float("-inf"), 0.5, 2.0]
DIMS = [0, 1, 2, 3, 7, 1 << 31, 1 << 40, -1]
ATTRS = {  # attributes a mutation may add to a node, with the kind of value
    "group": "int", "axis": "int", "strides": "ints", "pads": "ints", "dilations": "ints",
    "kernel_shape": "ints", "perm": "ints", "keepdims": "int", "transA": "int",
    "transB": "int", "alpha": "float", "beta": "float", "ceil_mode": "int",
    "count_include_pad": "int", "auto_pad": "str", "axes": "ints", "epsilon": "float",
}
STRINGS = ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET", "", "bogus"]


@dataclass
class Case:
    model: str
    target: str
    seed: int
    mutations: List[str]
    outcome: str = ""
    detail: str = ""

    def line(self) -> str:
        what = "; ".join(self.mutations)
        return f"{self.outcome:9s} {self.model} {self.target} seed {self.seed}: {what}: " \
               f"{self.headline()[:300]}"

    def headline(self) -> str:
        """The telling line of the detail: a sanitizer's or compiler's error, else the last."""
        lines = [x.strip() for x in self.detail.strip().splitlines() if x.strip()]
        for key in ("runtime error", "ERROR: AddressSanitizer", "error:", "Error"):
            found = [x for x in lines if key in x]
            if found:
                return found[0]
        return lines[-1] if lines else ""


# -- mutations ---------------------------------------------------------------------------------

def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _int_like(rng, old: int) -> int:
    return int(_pick(rng, INTS + [old + 1, old - 1, -old, old * 2]))


def _some_attribute(m, rng):
    """(node, attribute) picked among the nodes that have attributes, or None."""
    nodes = [n for n in m.graph.node if n.attribute]
    if not nodes:
        return None
    node = _pick(rng, nodes)
    return node, _pick(rng, list(node.attribute))


def mutate_attribute(m, rng) -> str:
    picked = _some_attribute(m, rng)
    if picked is None:
        return mutate_add_attribute(m, rng)
    node, a = picked
    if a.type == onnx.AttributeProto.INT:
        a.i = _int_like(rng, a.i)
    elif a.type == onnx.AttributeProto.INTS and len(a.ints):
        k = int(rng.integers(len(a.ints)))
        if rng.random() < 0.2:
            del a.ints[k]
        else:
            a.ints[k] = _int_like(rng, a.ints[k])
    elif a.type == onnx.AttributeProto.FLOAT:
        a.f = float(_pick(rng, FLOATS))
    elif a.type == onnx.AttributeProto.STRING:
        a.s = _pick(rng, STRINGS).encode()
    elif a.type == onnx.AttributeProto.TENSOR:
        return f"{_mutate_tensor(a.t, rng)} of {node.op_type} '{node.name}'.{a.name}"
    else:
        node.attribute.remove(a)
        return f"drop {node.op_type} '{node.name}'.{a.name}"
    return f"{node.op_type} '{node.name}'.{a.name} = {helper.get_attribute_value(a)}"


def mutate_add_attribute(m, rng) -> str:
    node = _pick(rng, list(m.graph.node))
    name = _pick(rng, sorted(ATTRS))
    kind = ATTRS[name]
    for a in [a for a in node.attribute if a.name == name]:
        node.attribute.remove(a)
    if kind == "int":
        value = _int_like(rng, 1)
    elif kind == "ints":
        value = [_int_like(rng, 1) for _ in range(int(rng.integers(0, 5)))]
    elif kind == "float":
        value = float(_pick(rng, FLOATS))
    else:
        value = _pick(rng, STRINGS)
    types = {"ints": onnx.AttributeProto.INTS, "int": onnx.AttributeProto.INT,
             "float": onnx.AttributeProto.FLOAT, "str": onnx.AttributeProto.STRING}
    node.attribute.append(helper.make_attribute(name, value, attr_type=types[kind]))
    return f"add {node.op_type} '{node.name}'.{name} = {value}"


def mutate_drop_attribute(m, rng) -> str:
    picked = _some_attribute(m, rng)
    if picked is None:
        return mutate_add_attribute(m, rng)
    node, a = picked
    node.attribute.remove(a)
    return f"drop {node.op_type} '{node.name}'.{a.name}"


def mutate_dim(m, rng) -> str:
    infos = list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info)
    infos = [v for v in infos if v.type.HasField("tensor_type")]
    v = _pick(rng, infos)
    dims = v.type.tensor_type.shape.dim
    r = rng.random()
    if r < 0.1 or not len(dims):
        dims.add().dim_value = int(_pick(rng, DIMS[:5]))
        return f"{v.name}: add a dim"
    k = int(rng.integers(len(dims)))
    if r < 0.2:
        del dims[k]
        return f"{v.name}: drop dim {k}"
    if r < 0.3:
        dims[k].dim_param = "N"
        return f"{v.name}: dim {k} = N"
    if r < 0.4:
        v.type.tensor_type.elem_type = int(_pick(rng, [1, 2, 3, 6, 7, 10, 11, 9, 16]))
        return f"{v.name}: elem_type {v.type.tensor_type.elem_type}"
    dims[k].dim_value = int(_pick(rng, DIMS))
    return f"{v.name}: dim {k} = {dims[k].dim_value}"


def _mutate_tensor(t, rng) -> str:
    a = numpy_helper.to_array(t).copy()
    r = rng.random()
    if a.size and r < 0.6:
        flat = a.reshape(-1)
        n = 1 if rng.random() < 0.5 else flat.size
        idx = rng.choice(flat.size, size=n, replace=False)
        if a.dtype.kind == "f":
            value = _pick(rng, FLOATS)
        elif a.dtype.kind in "iu":
            info = np.iinfo(a.dtype)
            value = _pick(rng, [info.min, info.max, 0, 1, -1 if info.min < 0 else 2])
        else:
            value = 0
        flat[idx] = value
        new, what = a, f"{n} value(s) = {value}"
    elif r < 0.8 and a.size > 1:
        new, what = a.reshape(-1)[: a.size // 2], "half its values"
    else:
        shape = list(a.shape) or [1]
        k = int(rng.integers(len(shape)))
        shape[k] = max(0, shape[k] + _pick(rng, [-1, 1]))
        new = np.zeros(shape, a.dtype)
        what = f"shape {shape}"
    t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(new), t.name))
    return f"tensor {t.name or '(attr)'}: {what}"


def mutate_initializer(m, rng) -> str:
    inits = list(m.graph.initializer)
    if not inits:
        return mutate_dim(m, rng)
    t = _pick(rng, inits)
    if rng.random() < 0.1:
        t.dims.append(int(_pick(rng, DIMS[:5])))
        return f"tensor {t.name}: extra dim (data unchanged)"
    if rng.random() < 0.1:
        t.data_type = int(_pick(rng, [1, 2, 3, 6, 7, 10, 11]))
        return f"tensor {t.name}: data_type {t.data_type} (data unchanged)"
    return _mutate_tensor(t, rng)


def mutate_outputs(m, rng) -> str:
    outs = m.graph.output
    r = rng.random()
    if r < 0.3 and len(outs):
        outs.add().CopyFrom(outs[0])
        return f"output {outs[0].name} twice"
    if r < 0.5:
        del outs[:]
        return "no outputs"
    produced = [o for n in m.graph.node for o in n.output if o]
    if r < 0.8 and produced:
        name = _pick(rng, produced)
        outs.add().CopyFrom(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        return f"intermediate {name} as an output"
    outs.add().CopyFrom(helper.make_tensor_value_info("nowhere", onnx.TensorProto.FLOAT, [1]))
    return "an output nothing produces"


def mutate_node_inputs(m, rng) -> str:
    node = _pick(rng, list(m.graph.node))
    r = rng.random()
    names = [i.name for i in m.graph.input] + [t.name for t in m.graph.initializer] + \
        [o for n in m.graph.node for o in n.output]
    if r < 0.25 and len(node.input):
        k = int(rng.integers(len(node.input)))
        node.input[k] = "missing_tensor"
        return f"{node.op_type} '{node.name}' input {k} = missing"
    if r < 0.5 and len(node.input):
        k = int(rng.integers(len(node.input)))
        node.input[k] = _pick(rng, names)
        return f"{node.op_type} '{node.name}' input {k} = {node.input[k]}"
    if r < 0.7 and len(node.input):
        del node.input[-1]
        return f"{node.op_type} '{node.name}' last input dropped"
    if r < 0.8:
        node.input.append(_pick(rng, names))
        return f"{node.op_type} '{node.name}' extra input {node.input[-1]}"
    if len(node.output):
        node.input.append(node.output[0])  # a cycle through the node itself
        return f"{node.op_type} '{node.name}' reads its own output"
    return "nothing"


def mutate_nodes(m, rng) -> str:
    nodes = m.graph.node
    k = int(rng.integers(len(nodes)))
    r = rng.random()
    if r < 0.3:
        name = nodes[k].name
        del nodes[k]
        return f"node {name} removed"
    if r < 0.5:
        nodes.add().CopyFrom(nodes[k])
        return f"node {nodes[k].name} twice"
    if r < 0.6 and len(nodes) > 1:
        j = int(rng.integers(len(nodes)))
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(nodes[k])
        b.CopyFrom(nodes[j])
        nodes[k].CopyFrom(b)
        nodes[j].CopyFrom(a)
        return f"nodes {k} and {j} swapped"
    if r < 0.7 and len(nodes) > 1:
        nodes[k].name = nodes[(k + 1) % len(nodes)].name
        return f"node {k} renamed to {nodes[k].name}"
    if r < 0.8 and k + 1 < len(nodes) and len(nodes[k + 1].output):
        nodes[k].input.append(nodes[k + 1].output[0])
        return f"node {nodes[k].name} reads a later node's output"
    ops = sorted({n.op_type for n in nodes} | {"Relu", "Add", "MaxPool", "Softmax", "Identity"})
    old = nodes[k].op_type
    nodes[k].op_type = _pick(rng, ops)
    return f"node {nodes[k].name}: {old} -> {nodes[k].op_type}"


def mutate_opset(m, rng) -> str:
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = int(_pick(rng, [1, 6, 7, 9, 11, 13, 99, 0, -1]))
            return f"opset {o.version}"
    return "nothing"


PROTO_MUTATIONS: Dict[str, Callable] = {
    "attribute": mutate_attribute, "add-attribute": mutate_add_attribute,
    "drop-attribute": mutate_drop_attribute, "dim": mutate_dim,
    "initializer": mutate_initializer, "outputs": mutate_outputs,
    "node-inputs": mutate_node_inputs, "nodes": mutate_nodes, "opset": mutate_opset,
}
WEIGHTS = {"attribute": 5, "add-attribute": 2, "drop-attribute": 2, "dim": 3,
           "initializer": 4, "outputs": 1, "node-inputs": 2, "nodes": 2, "opset": 1, "bytes": 2}


def mutate_bytes(data: bytes, rng) -> (bytes, str):
    b = bytearray(data)
    if rng.random() < 0.3:
        cut = int(rng.integers(1, len(b)))
        return bytes(b[:cut]), f"truncated to {cut} of {len(b)} bytes"
    n = int(rng.integers(1, 9))
    for k in rng.choice(len(b), size=n, replace=False):
        b[k] = int(rng.integers(256))
    return bytes(b), f"{n} random bytes"


def mutate(data: bytes, seed: int) -> (bytes, List[str]):
    """One or two mutations of the serialized model ``data``, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    kinds = list(WEIGHTS)
    p = np.array([WEIGHTS[k] for k in kinds], float)
    done = []
    for _ in range(1 if rng.random() < 0.7 else 2):
        kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
        if kind == "bytes":
            data, what = mutate_bytes(data, rng)
        else:
            m = onnx.ModelProto()
            try:
                m.ParseFromString(data)
            except Exception:
                done.append("(unparsable: proto mutation skipped)")
                continue
            what = PROTO_MUTATIONS[kind](m, rng)
            data = m.SerializeToString()
        done.append(f"{kind}: {what}")
    return data, done


# -- running one case --------------------------------------------------------------------------

def _compile_child(conn, path: str, target: str):
    resource.setrlimit(resource.RLIMIT_AS, (COMPILE_MEMORY, resource.getrlimit(
        resource.RLIMIT_AS)[1]))
    from edgecc.compiler.driver import compile_model
    from edgecc.errors import EdgeccError
    try:
        result = compile_model(path, target)
        g = result.graph
        conn.send(("ok", (result.files, result.prefix, g)))
    except EdgeccError as e:
        conn.send(("rejected", str(e)))
    except MemoryError:
        conn.send(("hang", "compiler over its memory cap"))
    except BaseException:
        conn.send(("internal", traceback.format_exc()))
    conn.close()


def compile_isolated(path: str, target: str):
    """(kind, payload) of compiling ``path`` in a forked child; ('hang', ...) on timeout."""
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_compile_child, args=(send, path, target))
    child.start()
    send.close()
    try:
        if recv.poll(COMPILE_SECONDS):
            return recv.recv()
        return "hang", f"compile over {COMPILE_SECONDS} s"
    except EOFError:
        return "internal", f"compiler process died (exit code {child.exitcode})"
    finally:
        child.kill()
        child.join()


def extreme_inputs(graph, seed: int) -> List[List[np.ndarray]]:
    """Input sets: random; a mix of NaN, +-Inf, +-1e30, denormals (integer extremes)."""
    rng = np.random.default_rng(seed)
    sets = []
    for style in ("random", "extreme", "huge"):
        xs = []
        for name in graph.inputs:
            t = graph.types[name]
            dt = np.dtype(t.dtype.np_dtype)
            shape = tuple(t.shape)
            if dt.kind == "f":
                x = rng.standard_normal(shape).astype(dt)
                if style == "extreme":
                    pool = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-40, -1e-40, 0.0],
                                    dt)
                    x = pool[rng.integers(len(pool), size=shape)]
                elif style == "huge":
                    x = (np.sign(x) * 1e30).astype(dt)
            elif dt.kind in "iu":
                info = np.iinfo(dt)
                x = rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dt)
                if style != "random":
                    x = np.where(rng.random(shape) < 0.5, info.min, info.max).astype(dt)
            else:
                x = (rng.random(shape) < 0.5).astype(dt)
            xs.append(x)
        sets.append(xs)
    return sets


def build_and_run(files, prefix: str, graph, target: str, workdir: str, seed: int):
    """(outcome, detail) of building with warnings as errors + sanitizers and running."""
    from edgecc.runner import build_host, run_host
    from edgecc.targets.registry import get_target
    try:
        build = build_host(files, graph, prefix, workdir, sanitize=True, opt="-O1",
                           cflags=get_target(target).host_cflags)
    except RuntimeError as e:
        return "build", str(e)
    for k, xs in enumerate(extreme_inputs(graph, seed)):
        try:
            run_host(build, xs, timeout=RUN_SECONDS, tag=f"r{k}")
        except subprocess.TimeoutExpired:
            return "hang", f"run {k} over {RUN_SECONDS} s"
        except RuntimeError as e:
            return "sanitizer", str(e)
    return "clean", ""


@dataclass
class Fuzzer:
    """Runs cases against reference models {name: path}; remembers C already found clean."""
    models: Dict[str, str]
    workdir: str
    seen: Dict[str, str] = field(default_factory=dict)

    def run_case(self, model: str, target: str, seed: int) -> Case:
        with open(self.models[model], "rb") as f:
            data, what = mutate(f.read(), seed)
        case = Case(model, target, seed, what)
        path = os.path.join(self.workdir, f"{model}_{seed}.onnx")
        with open(path, "wb") as f:
            f.write(data)
        kind, payload = compile_isolated(path, target)
        if kind == "rejected":
            one_line = payload.strip() and "\n" not in payload
            case.outcome, case.detail = ("rejected" if one_line else "multiline"), payload
        elif kind != "ok":
            case.outcome, case.detail = kind, payload
        else:
            files, prefix, graph = payload
            key = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
            if key in self.seen:
                case.outcome, case.detail = "clean", f"same C as seed {self.seen[key]}"
            else:
                with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
                    case.outcome, case.detail = build_and_run(files, prefix, graph, target,
                                                              tmp, seed)
                if case.outcome == "clean":
                    self.seen[key] = str(seed)
        if case.outcome in GOOD:
            os.remove(path)  # keep the models of failures to reproduce them
        return case


def load_reference_models(root: str, names=("digits",)) -> Dict[str, str]:
    """{name: path}: the digits CNN (float, and int8 QDQ from onnxruntime's quantizer); with
    'qonnx' in ``names`` three QONNX CNNs (qonnx_w4a4, qonnx_floor, qonnx_w1a1); with 'dscnn'
    also DS-CNN (tests/model_zoo.py, needs torch), float and QDQ."""
    from onnx_helpers import quantize_ort
    here = os.path.dirname(os.path.abspath(__file__))
    digits = os.path.join(here, "..", "examples", "digits")
    out = {"digits_float": os.path.join(digits, "digits_cnn.onnx")}
    calib = np.load(os.path.join(digits, "calib.npz"))
    x = calib[calib.files[0]][:8].astype(np.float32)
    inp = onnx.load(out["digits_float"]).graph.input[0].name
    out["digits_int8"] = quantize_ort(out["digits_float"], os.path.join(root, "digits_qdq.onnx"),
                                      inp, x.reshape((-1,) + x.shape[-3:]) if x.ndim > 4 else x)
    if "qonnx" in names:  # QONNX graphs as Brevitas exports them (tests/test_qonnx.py's CNN):
        # integer quantizers (QuantizeLinear/Clip/DequantizeLinear, integer layers), FLOOR
        # rounding (FakeQuant, float layers), binary (BipolarQuant)
        from onnx_helpers import qonnx_cnn
        for name, args in (("qonnx_w4a4", (4, 4)), ("qonnx_floor", (3, 2, "FLOOR")),
                           ("qonnx_w1a1", (1, 1))):
            out[name] = os.path.join(root, f"{name}.onnx")
            onnx.save(qonnx_cnn(np.random.default_rng(len(out)), *args), out[name])
    if "dscnn" in names:
        import model_zoo
        out["dscnn_float"] = model_zoo.build("dscnn", os.path.join(root, "dscnn.onnx"), seed=0)
        shape = model_zoo.INPUT_SHAPES["dscnn"]
        cal = np.random.default_rng(0).standard_normal((8,) + shape[1:]).astype(np.float32)
        out["dscnn_int8"] = quantize_ort(out["dscnn_float"], os.path.join(root, "dscnn_qdq.onnx"),
                                         "input", cal)
    return out
