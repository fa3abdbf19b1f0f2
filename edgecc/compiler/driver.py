"""compile_model: ONNX file -> IR -> passes -> memory plan -> C files."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from ..backends.codegen import generate
from ..errors import EdgeccError
from ..ir import Graph
from ..passes.fold_qdq import fold_qdq
from ..passes.memory_plan import MemoryPlan, plan_memory
from ..passes.patch_plan import plan_patches
from ..passes.patch_split import plan_two_stages
from ..passes.pipeline import PIPELINE, run_pipeline
from ..passes.validate import check_arena, validate
from ..passes.quantize import quantize_graph
from ..passes.quantize_lowbit import MODES as LOWBIT_MODES
from ..passes.quantize_lowbit import choose_widths, narrow, read_widths
from ..targets.registry import DEFAULT_KERNELS, get_target
from .budget import DEFAULT_STACK, check_sram, sram_needed
from .calibrate import calibrate, load_calibration, warn
from .frontend import import_onnx
from .loader import load_static_model

QUANTIZE_MODES = (None, "int8", "w4a8", "w4a4", "w2a2", "w1a1")
CALIB_METHODS = ("minmax", "percentile", "entropy")
PATCH_MODES = ("auto", True, False)
PATCH_OVERHEAD = 0.10  # default cap on the tiles' extra instructions (estimated), a fraction of
                       # the model's



@dataclass
class CompileResult:
    graph: Graph
    plan: MemoryPlan
    files: Dict[str, str]
    prefix: str
    target: str
    const_bytes: Dict[str, int] = None  # weights_bytes, table_bytes (see codegen.generate)
    patch: object = None  # passes.patch_plan.PatchPlan when compile_model patched the graph
    unpatched: Graph = None  # with ``patch``: the graph before patching (see layer_by_layer)
    kernels: str = DEFAULT_KERNELS  # the target's kernel set (targets/registry.py, --kernels)

    def target_record(self):
        """The target record with the kernel set this result was compiled with."""
        return get_target(self.target, self.kernels)


def check_name(prefix: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise EdgeccError(f"--name '{prefix}' is not a valid C identifier")
    return prefix


def optimize(path: str, input_shapes=None, model=None, skip_passes: Sequence[str] = (),
             quantize: Optional[str] = None, calib: Optional[str] = None,
             calib_method: str = "minmax", calib_percentile: float = 99.99,
             exclude: Sequence[str] = (), progress: Optional[bool] = None,
             bits: Optional[str] = None) -> Graph:
    """Import and run the pass pipeline. With ``quantize="int8"``: the passes before
    fuse-activation, then calibration on ``calib`` and the quantize pass, then the rest
    (fuse-activation, fold-qdq, dead-code), so only Relu/Clip fuse into integer ops."""
    if quantize not in QUANTIZE_MODES:
        raise EdgeccError(f"--quantize {quantize}: expected one of "
                          f"{', '.join(m for m in QUANTIZE_MODES if m)}")
    if quantize is None and (calib or exclude):
        raise EdgeccError(f"{'--calib' if calib else '--quantize-exclude'} is only used with "
                          "--quantize int8")
    if bits and quantize in (None, "int8"):
        raise EdgeccError("--bits is only used with --quantize w4a8, w4a4, w2a2 or w1a1")
    if quantize and calib_method not in CALIB_METHODS:
        raise EdgeccError(f"--calib-method {calib_method}: expected one of "
                          f"{', '.join(CALIB_METHODS)}")
    if quantize and not 0.0 < calib_percentile <= 100.0:
        raise EdgeccError(f"--calib-percentile {calib_percentile:g}: expected a value in "
                          "(0, 100]")
    graph = validate(import_onnx(path, input_shapes, model=model))
    if quantize is None:
        return validate(run_pipeline(graph, skip=skip_passes))
    names = [name for name, _ in PIPELINE]
    cut = names.index("fuse-activation")
    graph = run_pipeline(graph, skip=set(skip_passes) | set(names[cut:]))
    graph = post_training_quantize(graph, path, input_shapes, model, calib, calib_method,
                                   calib_percentile, exclude, progress, quantize, bits)
    for name, fn in PIPELINE[cut:]:
        if name not in skip_passes:
            graph = fold_qdq(graph, keep_float=exclude) if name == "fold-qdq" else fn(graph)
            graph.verify()
    return validate(graph)


def post_training_quantize(graph: Graph, path: str, input_shapes, model, calib, method: str,
                           percentile: float, exclude: Sequence[str],
                           progress: Optional[bool], mode: str = "int8",
                           bits: Optional[str] = None) -> Graph:
    """Calibrate the float model on ``calib`` and insert Q/DQ (passes/quantize.py); for the
    low-bit modes, narrow the middle convolutions (passes/quantize_lowbit.py; ``bits``: a
    widths file or "auto"). Warns (one line each, stderr) about constant float calibration
    inputs, with the layers whose range has zero width, about layers that stay float though
    not in ``exclude``, with the reason, and about layers below 4 bits."""

    label = os.path.basename(path)
    if any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in graph.nodes):
        raise EdgeccError(f"{label}: the model is already quantized (it holds QuantizeLinear/"
                          "DequantizeLinear); compile it without --quantize")
    known = [n.name for n in graph.nodes]
    for name in exclude:
        if name not in known:
            shown = ", ".join(dict.fromkeys(known[:8]))
            raise EdgeccError(f"--quantize-exclude: {label} has no node named '{name}' after "
                              f"optimization (nodes: {shown}{', ...' if len(known) > 8 else ''})")
    data = load_calibration(calib, graph)
    static, _ = load_static_model(path, input_shapes, model=model)
    tensors = list(graph.inputs) + [o for n in graph.nodes for o in n.outputs if o]
    stats: Dict[str, dict] = {}
    ranges = calibrate(static, graph, data, tensors, method, percentile, progress, stats)
    _warn_degenerate(graph, calib, data, ranges)
    why_float: Dict[str, str] = {}
    quantized = quantize_graph(graph, ranges, exclude, why_float, stats.get("nonfinite", ()))
    quantized.verify()
    if why_float:
        groups: Dict[str, list] = {}
        for name, reason in why_float.items():
            groups.setdefault(reason, []).append(name)
        n = len(why_float)
        warn(f"--quantize int8: {n} layer{'s' if n > 1 else ''} stay{'' if n > 1 else 's'} "
             f"float: " + "; ".join(f"{', '.join(names)} ({reason})"
                                    for reason, names in groups.items()))
    if mode in LOWBIT_MODES:
        widths = choose_widths(quantized, mode, read_widths(bits, quantized, label))
        quantized = narrow(quantized, widths, ranges)
        quantized.verify()
        low = sorted(n for n, (w, a) in widths.items() if min(w, a) < 4)
        if low:
            warn(f"--quantize {mode}: {len(low)} layer{'s' if len(low) > 1 else ''} below 4 "
                 f"bits ({', '.join(low)}): accuracy below 4 bits needs quantization-aware "
                 "training (e.g. Brevitas, exported with export_qonnx); the edgecc command and "
                 "`edgecc verify` measure the loss against the float model")
    return quantized


def _warn_degenerate(graph: Graph, calib: str, data, ranges) -> None:
    """Float inputs with one value in every sample: a warning naming them and the layers
    whose calibrated range has zero width (lo == hi)."""
    constant = [f"'{name}' is {a.flat[0]:g}" for name, a in data.items()
                if a.dtype.kind == "f" and a.size and a.min() == a.max()]
    if not constant:
        return
    flat = [n.name or n.outputs[0] for n in graph.nodes
            if n.outputs and n.outputs[0] in ranges
            and ranges[n.outputs[0]][0] == ranges[n.outputs[0]][1]]
    count = len(next(iter(data.values())))
    warn(f"--calib {calib}: degenerate data: input {', '.join(constant)} in all {count} "
         f"sample{'s' if count > 1 else ''}; layers with a zero-width range: "
         f"{', '.join(flat) or 'none'}")


def compile_model(path: str, target: str = "generic", input_shapes=None, prefix: str = "model",
                  model=None, skip_passes: Sequence[str] = (), quantize: Optional[str] = None,
                  calib: Optional[str] = None, calib_method: str = "minmax",
                  calib_percentile: float = 99.99, exclude: Sequence[str] = (),
                  progress: Optional[bool] = None, sram: Optional[int] = None,
                  stack: Optional[int] = None, patch="auto",
                  patch_overhead: float = PATCH_OVERHEAD,
                  kernels: str = DEFAULT_KERNELS, bits: Optional[str] = None,
                  bind: Optional[dict] = None) -> CompileResult:
    """ONNX -> C sources. ``quantize="int8"`` with ``calib`` (calibration data, see
    compiler/calibrate.py) quantizes a float model after training (int8 activations per
    tensor, int8 weights per channel); nodes named in ``exclude`` stay float.
    ``patch``: run the first stage tile by tile (passes/patch_plan.py; or the first two,
    passes/patch_split.py) with the plan of the smallest arena on this target among those
    whose tiles add at most ``patch_overhead`` x the model's instructions, as the target's cost
    model estimates them (targets/costs.py; any plan when none of those fits); ``"auto"``
    (default) only when the layer-by-layer build does not fit ``sram`` (or the board's SRAM),
    ``True`` whenever it lowers the arena, ``False`` never. On Cortex-M targets the tiles run
    NHWC on the target's kernels like the rest. When the SRAM is too small even so, the
    one-line error gives the smallest SRAM edgecc can reach. ``kernels``: the target's kernel
    set (``"edgecc"``, its own chain, or e.g. ``"cmsis-nn"``: CMSIS-NN API calls only;
    targets/registry.py). ``bind``: graph inputs compiled for one value (name -> array;
    compiler/bind.py), as ``--bind NAME=FILE``."""
    record = get_target(target, kernels)
    check_name(prefix)
    if bind:
        from .bind import bind_inputs
        from .loader import read_model
        model = bind_inputs(model if model is not None else read_model(path), bind,
                            os.path.basename(path))
    graph = optimize(path, input_shapes, model=model, skip_passes=skip_passes,
                     quantize=quantize, calib=calib, calib_method=calib_method,
                     calib_percentile=calib_percentile, exclude=exclude, progress=progress,
                     bits=bits)
    if patch not in PATCH_MODES:
        raise EdgeccError(f"patch={patch!r}: expected one of {PATCH_MODES}")
    patch_plan = None
    budget_sram = record.default_sram if sram is None else sram
    stack = DEFAULT_STACK if stack is None else stack
    unpatched = graph
    laid_out, plan = _layout_and_plan(graph, record)
    fits = budget_sram is None or sram_needed(laid_out, plan, stack) <= budget_sram
    if patch is True or (patch == "auto" and not fits):
        io = sram_needed(laid_out, plan, stack) - plan.arena_bytes
        patch_plan = find_patch_plan(
            graph, record, lambda a: budget_sram is None or a + io <= budget_sram,
            patch_overhead)
        if patch_plan is not None:
            laid_out, plan = _layout_and_plan(patch_plan.graph, record)
    files, stats = _emit(laid_out, plan, prefix, record)
    result = CompileResult(laid_out, plan, files, prefix, target, stats, patch_plan,
                           unpatched if patch_plan is not None else None, record.kernels)
    if budget_sram is not None:
        check_sram(result, budget_sram, stack,
                   reachable=lambda: smallest_reachable(unpatched, record, patch_plan,
                                                        searched=patch_plan is not None))
    return result


def layer_by_layer(result: CompileResult) -> CompileResult:
    """The layer-by-layer build of a patched result's graph (the result itself if unpatched)."""
    if result.patch is None:
        return result
    record = result.target_record()
    graph, plan = _layout_and_plan(result.unpatched, record)
    files, stats = _emit(graph, plan, result.prefix, record)
    return CompileResult(graph, plan, files, result.prefix, result.target, stats,
                         kernels=result.kernels)


def _emit(graph: Graph, plan: MemoryPlan, prefix: str, target):
    """(C files, const byte stats) of a laid-out, planned graph; CMSIS-NN sources when called.
    ``target``: a name or a record (get_target), as in the functions below."""
    record = get_target(target)
    validate(graph)  # what the passes built, held to the same rules
    check_arena(graph.source, plan.arena_bytes)
    stats: Dict[str, int] = {"weights_bytes": 0, "table_bytes": 0}
    files = generate(graph, plan, prefix, record.backend_chain(), stats=stats,
                     cflags=record.host_cflags)
    files.update(record.runtime_files(files))
    return files, stats


def find_patch_plan(graph: Graph, target, fits=lambda arena: True,
                    overhead: Optional[float] = PATCH_OVERHEAD):
    """The patch plan with the smallest arena on ``target`` among those whose tiles execute at
    most ``overhead`` x the model's instructions more than layer by layer, as the target's cost
    model estimates them (targets/costs.py): one stage (passes/patch_plan.py) or two
    (passes/patch_split.py); ties go to the cheaper. When none of those is found or
    ``fits(arena)`` fails, the one-stage plan of the smallest arena at any cost (kept if
    smaller). None when patching does not lower the arena."""
    record = get_target(target)

    def measure(g: Graph) -> int:
        return _layout_and_plan(g, target)[1].arena_bytes

    cost = record.costs
    limit = None if overhead is None else overhead * sum(cost(graph, n) for n in graph.nodes)
    # the search plans NCHW graphs: the portable in-place depthwise stands in for the
    # target's own (Cortex-M's NHWC rows); without one, elementwise ops only
    inplace = True if record.inplace_depthwise else "elementwise"
    found = plan_patches(graph, measure=measure, allow_inplace=inplace, cost=cost,
                         max_extra_cost=limit)
    found = ([found] if found is not None else []) + plan_two_stages(
        graph, cost, measure=measure, allow_inplace=inplace, max_extra_cost=limit)
    plan = min(found, key=lambda p: (p.arena_after, p.extra_cost), default=None)
    if limit is not None and (plan is None or not fits(plan.arena_after)):
        anyhow = plan_patches(graph, measure=measure, allow_inplace=inplace)
        if anyhow is not None and (plan is None or anyhow.arena_after < plan.arena_after):
            plan = anyhow
    return plan


def _layout_and_plan(graph: Graph, target):
    """The target's layout pass (NHWC for CMSIS-NN) and the memory plan with kernel scratch
    and the in-place variants of the target's kernels."""
    record = get_target(target)
    layout = record.layout_pass()
    if layout is not None:
        graph = layout(graph)
        graph.verify()
    scratch = {i: record.scratch(graph, n) for i, n in enumerate(graph.nodes)}
    return graph, plan_memory(graph, scratch={i: b for i, b in scratch.items() if b},
                              variants=record.inplace_scratch)


def smallest_reachable(graph: Graph, target, patched=None, searched: bool = False):
    """(arena bytes, PatchPlan or None): the smallest arena edgecc reaches for ``graph`` (before
    patching) on ``target``: layer by layer, or patched. ``searched``: ``patched`` is already
    the result of the search."""
    best = _layout_and_plan(graph, target)[1].arena_bytes, None
    cand = patched if searched else find_patch_plan(graph, target, overhead=None)
    if cand is not None and cand.arena_after < best[0]:
        best = cand.arena_after, cand
    return best


def write_files(files: Dict[str, str], out_dir: str) -> None:
    try:
        os.makedirs(out_dir, exist_ok=True)
        for name, text in sorted(files.items()):
            os.makedirs(os.path.dirname(os.path.join(out_dir, name)), exist_ok=True)
            with open(os.path.join(out_dir, name), "w", newline="\n") as f:
                f.write(text)
    except OSError as e:
        raise EdgeccError(f"cannot write to {out_dir}: {e.strerror}") from None
