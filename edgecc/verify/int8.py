"""edgecc verify for quantized graphs (QDQ/QOperator models, and float models quantized by edgecc).

Per layer (QUANT.md): onnxruntime requantizes in float, edgecc in fixed point, so the two may
differ by one LSB in a layer and drift further through a deep net. Each layer is therefore
checked in isolation: a one-layer program (the IR nodes between two tensors onnxruntime also
has, usually one node) is fed onnxruntime's own values of its inputs and compared with
onnxruntime's value of its output. Integer outputs pass within 1 LSB on every element; float
layers left in a quantized graph pass within the float tolerance. All one-layer programs are
generated as disjoint pieces of a few C programs (a handful of gcc runs, in parallel).

End to end (figures and tables in verify/int8_report.py): share of output elements equal /
within 1 LSB and the largest difference, top-1 agreement. For a float model quantized by edgecc
(--quantize int8): SQNR and top-1 agreement against onnxruntime running the float model.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import onnx

from ..backends.codegen import generate
from ..compiler.driver import layer_by_layer
from ..ir import DType, Graph, Node
from ..ir.ops.quantize_linear import _broadcast as broadcast_quant
from ..passes.memory_plan import plan_memory
from ..runner import build_host, read_trace, run_host
from ..targets.registry import get_target
from .int8_report import (  # noqa: F401
    INT_DTYPES,
    OutputStats,
    format_quant_report,
    output_lsb,
    output_stats,
    sqnr_db,
)
from .reference import ReferenceSession

MAX_LAYER_SAMPLES = 8  # per-layer checks use the first samples (all of them for end to end)


@dataclass
class LayerCheck:
    index: int                 # position of the layer's last node in the compiled graph
    tensor: str                # the output compared (an ONNX tensor name)
    ops: str                   # IR ops of the one-layer program, e.g. "QConv" or "MaxPool+QLut"
    integer: bool              # int8/uint8 or quantized output, or a DequantizeLinear's (a
                               # QONNX quantizer's float output): 1 LSB; else float (tolerance;
                               # other integer outputs, e.g. ConvInteger's int32: exact)
    max_diff: float = 0.0      # LSB for integer layers, abs for float ones
    off_by_one: float = 0.0    # share of elements off by exactly 1 LSB (integer layers)
    max_rel: float = 0.0       # float layers: max |diff| / max |onnxruntime|
    sqnr_db: Optional[float] = None  # edgecc's own quantization (--quantize): vs float
    elements: int = 0
    ok: bool = True
    note: str = ""             # why a layer could not be checked
    lsb: Optional[object] = None  # the DequantizeLinear's QuantParams (a float output's step)


@dataclass
class QuantReport:
    mode: str                                  # "int8" (quantized model) or "ptq"
    layers: List[LayerCheck] = field(default_factory=list)
    outputs: List[OutputStats] = field(default_factory=list)
    unchecked: List[str] = field(default_factory=list)  # integer nodes no check covered
    got: List[List[np.ndarray]] = field(default_factory=list)  # edgecc's outputs per sample
    ok: bool = True
    criterion: str = ""
    notes: List[str] = field(default_factory=list)  # printed before the criterion


def is_integer_node(graph: Graph, node: Node) -> bool:
    """A node with an int8/uint8 output, or a quantized integer one (e.g. int32 with params)."""
    return any(o and (graph.types[o].dtype in (DType.INT8, DType.UINT8)
                      or (graph.types[o].dtype in INT_DTYPES and graph.types[o].quant is not None))
               for o in node.outputs)


def has_integer_ops(graph: Graph) -> bool:
    return any(is_integer_node(graph, n) for n in graph.nodes)


def onnx_tensor_names(model: onnx.ModelProto) -> set:
    names = {i.name for i in model.graph.input}
    for n in model.graph.node:
        names.update(o for o in n.output if o)
    return names


# -- one-layer programs ----------------------------------------------------------------------

@dataclass
class Region:
    index: int
    nodes: List[Node]
    inputs: List[str]    # runtime inputs: tensors onnxruntime has
    outputs: List[str]   # compared outputs


def layer_regions(graph: Graph, known: set) -> List[Region]:
    """One region per node with an output onnxruntime also computes, extended backwards over
    producers of intermediate tensors onnxruntime does not have (e.g. the requantizing QLut
    edgecc puts before a Concat input)."""
    producers = graph.producers()
    index = {id(n): k for k, n in enumerate(graph.nodes)}
    regions = []
    for k, node in enumerate(graph.nodes):
        outs = [o for o in node.outputs if o and o in known and o not in graph.constants]
        if not outs:
            continue
        members, inputs, stack = {id(node): node}, [], [node]
        while stack:
            for i in stack.pop().inputs:
                if not i or i in graph.constants or i in inputs:
                    continue
                p = producers.get(i)
                if i in known or p is None:
                    inputs.append(i)
                elif id(p) not in members:
                    members[id(p)] = p
                    stack.append(p)
        nodes = sorted(members.values(), key=lambda n: index[id(n)])
        regions.append(Region(k, nodes, inputs, outs))
    return regions


def combined_graph(graph: Graph, regions: Sequence[Region], name: str) -> Graph:
    """The regions side by side in one graph, their runtime tensors renamed apart."""
    g = Graph(name, [], [], [], {}, {}, graph.source)
    for r in regions:
        rename = {}
        for node in r.nodes:
            for t in list(node.inputs) + list(node.outputs):
                if t and t not in graph.constants and t not in rename:
                    rename[t] = f"L{r.index}:{t}"
                    g.types[rename[t]] = graph.types[t]
                elif t in graph.constants:
                    g.constants[t] = graph.constants[t]
                    g.types[t] = graph.types[t]
            g.nodes.append(node.replace(inputs=tuple(rename.get(i, i) for i in node.inputs),
                                        outputs=tuple(rename.get(o, o) for o in node.outputs)))
        g.inputs += [rename[i] for i in r.inputs]
        g.outputs += [rename[o] for o in r.outputs]
    g.verify()
    return g


def split_regions(graph: Graph, regions: List[Region], parts: int) -> List[List[Region]]:
    """Balance the programs by weight bytes (what dominates gcc's time)."""
    chunks: List[List[Region]] = [[] for _ in range(max(1, min(parts, len(regions))))]
    load = [0] * len(chunks)
    weight = {id(r): sum(graph.constants[i].nbytes for n in r.nodes for i in n.inputs
                         if i in graph.constants) + 4096 for r in regions}
    for r in sorted(regions, key=lambda r: -weight[id(r)]):
        c = load.index(min(load))
        chunks[c].append(r)
        load[c] += weight[id(r)]
    return [sorted(c, key=lambda r: r.index) for c in chunks if c]


def build_programs(jobs: List[tuple], workdir: str, sanitize: bool, workers: int,
                   trace: bool = False, target: str = "generic"):
    """Build (files, graph, prefix) programs with gcc in parallel (with ``target``'s host
    flags); returns HostBuilds."""
    options = get_target(target).build_options()  # compiler, flags, launcher (e.g. QEMU)

    def one(k):
        files, g, prefix = jobs[k]
        return build_host(files, g, prefix, os.path.join(workdir, f"{k}_{prefix}"),
                          sanitize=sanitize, trace=trace, **options)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, range(len(jobs))))


def layer_programs(graph: Graph, regions: List[Region], target, parts: int):
    """The one-layer programs, in ``parts`` C programs, with the target's kernels (``target``: a
    targets.registry.Target): its backend chain, kernel scratch in the plan, and the runtime
    files its kernels call (e.g. the cmsis_nn sources)."""
    chain = target.backend_chain()
    jobs = []
    for k, chunk in enumerate(split_regions(graph, regions, parts)):
        g = combined_graph(graph, chunk, f"layers{k}")
        prefix = f"edgecc_layers{k}"
        scratch = {i: target.scratch(g, n) for i, n in enumerate(g.nodes)}
        files = generate(g, plan_memory(g, scratch=scratch), prefix, chain)
        files.update(target.runtime_files(files))
        jobs.append((files, g, prefix, chunk))
    return jobs


def check_layers(graph: Graph, chunk_builds, refs: List[Dict[str, np.ndarray]],
                 tol: float) -> List[LayerCheck]:
    """Run every one-layer program on onnxruntime's inputs and compare with its outputs."""
    diffs: Dict[int, list] = {}
    results: Dict[int, LayerCheck] = {}
    for build, chunk in chunk_builds:
        usable = []
        for r in chunk:
            ops = "+".join(n.op for n in r.nodes)
            dq = r.nodes[-1] if r.nodes[-1].op == "DequantizeLinear" else None
            check = LayerCheck(r.index, r.outputs[0], ops,
                               is_integer_node(graph, r.nodes[-1]) or dq is not None)
            check.lsb = dq.attrs.quant if dq is not None else None
            results[r.index] = check
            bad = [n for n in r.inputs + r.outputs if n not in refs[0]
                   or refs[0][n].shape != graph.types[n].shape
                   or refs[0][n].dtype != graph.types[n].dtype.np_dtype]
            if bad:
                check.note = f"onnxruntime has no {graph.types[bad[0]]} '{bad[0]}'"
                continue
            usable.append(r)
            diffs[r.index] = []
        if not usable:
            continue
        for s, ref in enumerate(refs):
            feed = [ref[i] for r in chunk for i in r.inputs]
            got = run_host(build, feed, tag=f"s{s}")
            pos = 0
            for r in chunk:
                outs, pos = got[pos:pos + len(r.outputs)], pos + len(r.outputs)
                if r.index in diffs:
                    diffs[r.index] += [(g, ref[o]) for g, o in zip(outs, r.outputs)]
    for idx, pairs in diffs.items():
        c = results[idx]
        if c.integer and c.lsb is not None:  # a float quantizer output (QONNX): in its levels
            d = np.concatenate([np.rint(np.abs(g.astype(np.float64) - w.astype(np.float64))
                                        / broadcast_quant(c.lsb, w.shape)[0]).ravel() for g, w in pairs])
            d = np.nan_to_num(d, nan=np.inf)
            c.max_diff = float(d.max()) if d.size else 0.0
            c.off_by_one = float(np.mean(d == 1)) if d.size else 0.0
            c.elements, c.ok = int(d.size), bool(d.size == 0 or d.max() <= 1)
        elif c.integer:
            d = np.concatenate([np.abs(g.astype(np.int64) - w.astype(np.int64)).ravel()
                                for g, w in pairs])
            c.max_diff = float(d.max()) if d.size else 0.0
            c.off_by_one = float(np.mean(d == 1)) if d.size else 0.0
            c.elements, c.ok = int(d.size), bool(d.size == 0 or d.max() <= 1)
        else:
            g = np.concatenate([g.astype(np.float64).ravel() for g, _ in pairs])
            w = np.concatenate([w.astype(np.float64).ravel() for _, w in pairs])
            d, scale = np.abs(g - w), float(np.max(np.abs(w))) if w.size else 0.0
            c.max_diff = float(d.max()) if d.size else 0.0
            c.max_rel = c.max_diff / scale if scale > 0 else (0.0 if c.max_diff == 0 else np.inf)
            c.elements = int(d.size)
            if pairs and pairs[0][1].dtype.kind in "iub":  # e.g. an int32 accumulator: exact
                c.ok = c.max_diff == 0
            else:
                c.ok = bool(np.all((d <= tol * scale) | (np.isnan(g) & np.isnan(w))))
    return [results[k] for k in sorted(results)]


# -- the two checks ---------------------------------------------------------------------------

def _ort_refs(model, samples, extra: Sequence[str], first: int):
    """The reference's values (reference.py: onnxruntime, exact where its integer kernels
    depend on the CPU), with the ``extra`` tensors for the first samples only; and the
    reference's one-line note ("" when onnxruntime alone decided)."""
    sess = ReferenceSession(model, extra)
    refs = [sess.run(feed) for feed in samples[:first]]
    if len(samples) > first:
        plain = sess if sess.per_node else ReferenceSession(model)
        refs += [plain.run(feed) for feed in samples[first:]]
    return refs, sess.note()


def layer_report(result, regions, refs, samples, workdir: str, tol: float, sanitize: bool,
                 workers: int, layer_samples: int, what: str) -> QuantReport:
    """Build the whole model and the one-layer programs (layer_programs, with the kernels of
    the result's target), check each layer on the reference's values ``refs``, and summarize
    the model's outputs over ``samples``."""
    graph = result.graph
    workers = workers or min(4, os.cpu_count() or 1)
    jobs = (layer_programs(graph, regions, result.target_record(), workers)
            if regions else [])
    builds = build_programs([(result.files, graph, result.prefix)] + [j[:3] for j in jobs],
                            workdir, sanitize, workers, target=result.target)
    layers = check_layers(graph, [(b, j[3]) for b, j in zip(builds[1:], jobs)],
                          refs[:layer_samples], tol)
    gots = [run_host(builds[0], [feed[n] for n in graph.inputs], tag=f"e{k}")
            for k, feed in enumerate(samples)]
    rep = QuantReport("int8", layers, got=gots)
    covered = {id(n) for r in regions for n in r.nodes}
    rep.unchecked = [n.name or n.outputs[0] for n in graph.nodes
                     if is_integer_node(graph, n) and id(n) not in covered]
    rep.outputs = [output_stats(graph, n, [g[i] for g in gots], [r[n] for r in refs],
                                output_lsb(graph, n)) for i, n in enumerate(graph.outputs)]
    rep.ok = bool(layers) and all(c.ok for c in layers)
    n = min(len(samples), layer_samples)
    rep.criterion = (f"criterion: on {'the first ' if n < len(samples) else ''}{n} "
                     f"sample{'s' if n != 1 else ''}, {what} within 1 LSB of "
                     f"onnxruntime and every float layer within {tol:g} * max|onnxruntime|")
    return rep


def verify_quantized(result, model: onnx.ModelProto, samples, workdir: str, tol: float = 1e-4,
                     sanitize: bool = False, workers: int = 0,
                     layer_samples: int = MAX_LAYER_SAMPLES) -> QuantReport:
    """A compiled graph with integer ops vs onnxruntime running the same quantized model."""
    if result.patch is not None:
        return verify_patched(result, lambda base: verify_quantized(
            base, model, samples, workdir, tol, sanitize, workers, layer_samples),
            samples, workdir, sanitize)
    graph = result.graph
    regions = layer_regions(graph, onnx_tensor_names(model))
    extra = [n for r in regions for n in r.inputs + r.outputs]
    refs, note = _ort_refs(model, samples, extra, layer_samples)
    rep = layer_report(result, regions, refs, samples, workdir, tol, sanitize, workers,
                       layer_samples, "every integer layer")
    rep.notes += [note] if note else []
    return rep


def verify_ptq(result, model: onnx.ModelProto, samples, workdir: str, min_sqnr: float,
               sanitize: bool = False, per_layer: bool = False) -> QuantReport:
    """A float model quantized by edgecc vs onnxruntime running the float model. With
    ``per_layer``: SQNR of each int8 tensor edgecc computes (dequantized) against the float
    tensor it stands for (``<t>_q`` stands for ``t``), on the first sample, full network."""
    graph = result.graph
    known = onnx_tensor_names(model)
    stands_for = {}
    if per_layer:
        for n in graph.nodes:
            for o in n.outputs:
                base = o[:-2] if o.endswith("_q") else o
                q = graph.types[o].quant if o else None
                if base in known and q is not None and len(q.scale) == 1:
                    stands_for[o] = base
    refs, note = _ort_refs(model, samples, list(stands_for.values()), 1)
    build = build_programs([(result.files, graph, result.prefix)], workdir, sanitize, 1,
                           trace=per_layer, target=result.target)[0]
    gots, traced = [], {}
    for k, feed in enumerate(samples):
        trace_dir = os.path.join(workdir, "trace") if per_layer and k == 0 else ""
        gots.append(run_host(build, [feed[n] for n in graph.inputs], tag=f"e{k}",
                             trace_dir=trace_dir))
        if trace_dir:
            traced = read_trace(graph, trace_dir)
    rep = QuantReport("ptq", got=gots, notes=[note] if note else [])
    for k, n in enumerate(graph.nodes):
        for o in n.outputs:
            if o in stands_for and o in traced and stands_for[o] in refs[0]:
                q = graph.types[o].quant
                got = (traced[o].astype(np.float64) - q.zero_point[0]) * q.scale[0]
                c = LayerCheck(k, o, n.op, False)
                want = refs[0][stands_for[o]].astype(np.float64)
                c.max_diff = float(np.max(np.abs(got - want))) if got.size else 0.0
                c.sqnr_db, c.elements = sqnr_db(got, want), int(got.size)
                rep.layers.append(c)
    rep.outputs = [output_stats(graph, n, [g[i] for g in gots], [r[n] for r in refs],
                                with_sqnr=True) for i, n in enumerate(graph.outputs)]
    rep.ok = all(s.sqnr_db is not None and s.sqnr_db >= min_sqnr for s in rep.outputs)
    rep.criterion = f"criterion: SQNR of every output >= {min_sqnr:g} dB"
    return rep


def verify_patched(result, check: Callable, samples, workdir: str, sanitize: bool) -> QuantReport:
    """A patched build (passes/patch_plan.py) in two steps: ``check(build)`` (the per-layer
    report) runs on the layer-by-layer build of the same graph, whose layers are onnxruntime's;
    then the patched build's outputs must equal that build's on every sample."""
    rep = check(layer_by_layer(result))
    graph = result.graph
    build = build_programs([(result.files, graph, result.prefix)],
                           os.path.join(workdir, "patched"), sanitize, 1, target=result.target)[0]
    gots = [run_host(build, [feed[n] for n in graph.inputs], tag=f"p{k}")
            for k, feed in enumerate(samples)]
    same = sum(len(g) == len(r) and all(np.array_equal(a, b) for a, b in zip(g, r))
               for g, r in zip(gots, rep.got))
    rep.notes.append(f"patched build ({result.patch.describe()}) vs the layer-by-layer build: "
                     f"{same} of {len(samples)} samples bit-exact (layers above: checked on "
                     "the layer-by-layer build)")
    rep.got = gots
    rep.ok = rep.ok and same == len(samples)
    return rep
