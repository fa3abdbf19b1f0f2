"""verify on the host: build the generated C with gcc, run it, and compare with the reference:
onnxruntime, made exact where its integer kernels depend on the CPU (reference.py).

Tolerance (float): every element within ``tol * max|reference|`` of onnxruntime's output
(relative to the largest magnitude in that output). Reported per output: max abs error,
max error relative to max|ref|, cosine similarity. ``--per-layer`` repeats this for every
layer output that also exists in the ONNX graph, using a -DEDGECC_TRACE build.

Quantized graphs (integer ops from a QDQ or QOperator model, or ``--quantize int8``) take the
path of int8.py instead; ``host_report`` picks the path.
"""
from __future__ import annotations

import contextlib
import io
import glob
import os
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import numpy_helper

from ..compiler.driver import compile_model
from ..compiler.loader import read_model
from ..errors import EdgeccError
from ..ir import Graph
from ..runner import build_host, read_trace, run_host, write_inputs
from ..targets.qemu_user import run_counted
from . import int8 as q
from .reference import ReferenceSession


@dataclass
class Comparison:
    name: str
    max_abs: float
    max_rel: float
    cosine: float
    ok: bool
    shape_ok: bool = True
    samples: int = 1


@contextlib.contextmanager
def onnxruntime_errors(path: str, only_onnxruntime: bool = True):
    """Turn onnxruntime's failure to run the reference model into a one-line user error.
    only_onnxruntime: let other exceptions (edgecc bugs) through unchanged."""
    try:
        yield
    except EdgeccError:
        raise
    except Exception as e:
        if only_onnxruntime and "onnxruntime" not in type(e).__module__:
            raise
        raise EdgeccError(f"{os.path.basename(path)}: onnxruntime cannot run the model: "
                          f"{str(e).splitlines()[0]}") from None


def compare(name: str, got: np.ndarray, want: np.ndarray, tol: float) -> Comparison:
    if got.shape != want.shape:
        return Comparison(name, float("inf"), float("inf"), 0.0, False, shape_ok=False)
    g, w = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    if g.size == 0:
        return Comparison(name, 0.0, 0.0, 1.0, True)
    diff = np.abs(g - w)
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    max_abs = float(np.max(diff))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    denom = float(np.linalg.norm(g) * np.linalg.norm(w))
    cosine = float(np.dot(g, w) / denom) if denom > 0 else (1.0 if max_abs == 0 else 0.0)
    if want.dtype.kind in "fc":
        ok = bool(np.all((diff <= tol * scale) | (np.isnan(g) & np.isnan(w))))
    else:
        ok = max_abs == 0
    return Comparison(name, max_abs, max_rel, cosine, ok)


def compare_samples(name: str, gots: List[np.ndarray], refs: List[np.ndarray],
                    tol: float) -> Comparison:
    """Compare sample by sample; report the worst sample's figures."""
    cs = [compare(name, g, r, tol) for g, r in zip(gots, refs)]
    return Comparison(name, max(c.max_abs for c in cs), max(c.max_rel for c in cs),
                      min(c.cosine for c in cs), all(c.ok for c in cs),
                      all(c.shape_ok for c in cs), len(cs))


def random_inputs(graph: Graph, seed: int = 0) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feed = {}
    for name in graph.inputs:
        t = graph.types[name]
        if t.dtype.is_float:
            feed[name] = rng.standard_normal(t.shape).astype(t.dtype.np_dtype)
        else:
            feed[name] = rng.integers(0, 2, size=t.shape).astype(t.dtype.np_dtype)
    return feed


def load_inputs(spec: Optional[str], graph: Graph, seed: int = 0) -> List[Dict[str, np.ndarray]]:
    """Samples (input name -> array) from an .npz/.npy file (one sample, or a batch of them
    along a new leading axis), a folder of .npy or input_N.pb files, or one seeded random."""
    if not spec:
        return [random_inputs(graph, seed)]
    names = graph.inputs
    arrays: Dict[str, np.ndarray] = {}
    try:
        if os.path.isdir(spec):
            pbs = sorted(glob.glob(os.path.join(spec, "input_*.pb")))
            if pbs:
                for path, name in zip(pbs, names):
                    t = onnx.TensorProto()
                    with open(path, "rb") as f:
                        t.ParseFromString(f.read())
                    arrays[name] = numpy_helper.to_array(t)
            else:
                for name in names:
                    path = os.path.join(spec, f"{name}.npy")
                    if os.path.exists(path):
                        arrays[name] = np.load(path)
                npys = sorted(glob.glob(os.path.join(spec, "*.npy")))
                if not arrays and len(npys) == len(names):
                    arrays = {n: np.load(p) for n, p in zip(names, npys)}
        elif spec.endswith(".npz"):
            data = np.load(spec)
            for k, name in enumerate(names):
                key = name if name in data.files else (data.files[k] if k < len(data.files)
                                                       else None)
                if key is not None:
                    arrays[name] = data[key]
        elif spec.endswith(".npy"):
            arrays[names[0]] = np.load(spec)
        else:
            raise EdgeccError(f"--inputs {spec}: expected a .npz, .npy or a folder")
    except (OSError, ValueError) as e:
        raise EdgeccError(f"--inputs {spec}: cannot read: {e}") from None
    samples = None
    for name in names:
        if name not in arrays:
            raise EdgeccError(f"--inputs {spec}: no data for model input '{name}'")
        t = graph.types[name]
        a = np.asarray(arrays[name])
        if a.dtype.kind != t.dtype.np_dtype.kind and not (a.dtype.kind in "iu" and
                                                          t.dtype.np_dtype.kind in "iu"):
            raise EdgeccError(f"--inputs {spec}: '{name}' is {a.dtype}, the model expects "
                              f"{t.dtype.np_dtype}")
        if t.numel == 0 or a.size % max(t.numel, 1) or a.size == 0:
            raise EdgeccError(f"--inputs {spec}: '{name}' has shape {a.shape}, the model "
                              f"expects {t.shape} (or a batch of them)")
        count = a.size // t.numel
        if samples is not None and count != samples:
            raise EdgeccError(f"--inputs {spec}: inputs hold different numbers of samples")
        samples = count
        arrays[name] = a.reshape((count,) + t.shape).astype(t.dtype.np_dtype)
    return [{n: arrays[n][k] for n in names} for k in range(samples or 1)] if names else [{}]


def reference_run(model: onnx.ModelProto, feed: Dict[str, np.ndarray],
                  extra_outputs: Sequence[str] = ()) -> Dict[str, np.ndarray]:
    """The reference's outputs (and ``extra_outputs``) by name: onnxruntime, graph
    optimizations off, with the integer ops whose onnxruntime value depends on the CPU computed
    exactly (reference.py)."""
    return ReferenceSession(model, extra_outputs).run(feed)


def verify(path: str, target: str = "generic", inputs: Optional[str] = None,
           per_layer: bool = False, input_shapes=None, tol: float = 1e-4,
           sanitize: bool = False, workdir: Optional[str] = None, result=None,
           bind: Optional[Dict[str, np.ndarray]] = None):
    """Returns (output comparisons over all samples, per-layer comparisons on the first, the
    reference's note: reference.py). ``bind``: inputs compiled as constants (--bind), fed to
    the reference with every sample."""
    result = result or compile_model(path, target, input_shapes)
    graph = result.graph
    samples = load_inputs(inputs, graph)
    model = read_model(path)
    onnx_names = {o for n in model.graph.node for o in n.output}
    got_all, traced = [], {}
    with tempfile.TemporaryDirectory(prefix="edgecc-verify-") as tmp:
        wd = workdir or tmp
        build = build_host(result.files, graph, result.prefix, wd, sanitize=sanitize,
                           trace=per_layer, **result.target_record().build_options())
        for k, feed in enumerate(samples):
            trace_dir = os.path.join(wd, "trace") if per_layer and k == 0 else ""
            got_all.append(run_host(build, [feed[n] for n in graph.inputs], tag=f"s{k}",
                                    trace_dir=trace_dir))
            if trace_dir:
                traced = read_trace(graph, trace_dir)
    layer_names = [n for n in traced if n in onnx_names and n not in graph.outputs]
    ref_all = []
    with onnxruntime_errors(path, only_onnxruntime=False):
        sess = ReferenceSession(model, layer_names)
        for feed in samples:
            ref_all.append(sess.run({**(bind or {}), **feed}))
    outputs = [compare_samples(n, [got[i] for got in got_all], [r[n] for r in ref_all], tol)
               for i, n in enumerate(graph.outputs)]
    layers = [compare(n, traced[n], ref_all[0][n], tol) for n in layer_names
              if n in ref_all[0]]
    return outputs, layers, sess.note()


DEFAULT_MIN_SQNR = 20.0


def host_report(path: str, target: str = "generic", inputs: Optional[str] = None,
                per_layer: bool = False, input_shapes=None, tol: float = 1e-4,
                sanitize: bool = False, min_sqnr: float = DEFAULT_MIN_SQNR,
                workdir: Optional[str] = None, flash: Optional[int] = None,
                **compile_options) -> Tuple[str, bool]:
    """`edgecc verify` for a target whose programs run on the host (``flash`` unused).

    A float graph: the tolerance check above. A graph with integer ops (a QDQ or QOperator
    model): int8.verify_quantized, each layer alone within 1 LSB of the reference. A float
    model compiled with ``quantize="int8"`` (``compile_options`` go to compile_model: prefix,
    skip_passes, quantize, calib, sram, stack, ...): SQNR and top-1 agreement against the float
    model.
    """
    quantize = compile_options.get("quantize")
    result = compile_model(path, target, input_shapes, **compile_options)
    samples = load_inputs(inputs, result.graph)
    if not quantize and not q.has_integer_ops(result.graph):
        outputs, layers, note = verify(path, target, inputs, per_layer, input_shapes, tol,
                                       sanitize, workdir, result=result,
                                       bind=compile_options.get("bind"))
        text, ok = format_report(outputs, layers, tol, note), all(c.ok for c in outputs)
        for name, value in sorted((compile_options.get("bind") or {}).items()):
            shown = np.array2string(np.asarray(value).reshape(-1)[:8], separator=", ")
            text += (f"\ninput '{name}' compiled as a constant (--bind or --inputs): shape "
                     f"{list(np.shape(value))}, values {shown}")
    else:
        if compile_options.get("bind"):
            raise EdgeccError("verify: --bind (or --inputs feeding a shape operand) is "
                              "supported for float models only")
        model = read_model(path)
        with tempfile.TemporaryDirectory(prefix="edgecc-verify-") as tmp:
            with onnxruntime_errors(path):
                if quantize:
                    rep = q.verify_ptq(result, model, samples, workdir or tmp, min_sqnr,
                                       sanitize, per_layer)
                else:
                    rep = q.verify_quantized(result, model, samples, workdir or tmp, tol,
                                             sanitize)
        text, ok = q.format_quant_report(rep, per_layer), rep.ok
    record = result.target_record()
    if record.qemu_user:
        with tempfile.TemporaryDirectory(prefix="edgecc-count-") as tmp:
            wd = os.path.join(workdir, "count") if workdir else tmp
            build = build_host(result.files, result.graph, result.prefix, wd,
                               **record.build_options())
            n = instructions_per_inference(build, [samples[0][k] for k in result.graph.inputs],
                                           record)
        launcher = " ".join(record.launcher)
        text += f"\nexecuted instructions per inference ({launcher}, first sample): {n}"
    return text, ok


def calibration_loss(path: str, input_shapes=None, **compile_options) -> str:
    """The accuracy a low-bit PTQ (--quantize wNaM) keeps on its own calibration data: the
    model compiled for the portable kernels (every target computes the same integers), run
    on the calibration samples against onnxruntime running the float model: top-1 agreement
    and SQNR of each output, as one phrase. Needs a host C compiler."""
    with contextlib.redirect_stderr(io.StringIO()):  # its warnings were printed already
        result = compile_model(path, "generic", input_shapes, **compile_options)
    samples = load_inputs(compile_options["calib"], result.graph)
    with tempfile.TemporaryDirectory(prefix="edgecc-loss-") as tmp, onnxruntime_errors(path):
        rep = q.verify_ptq(result, read_model(path), samples, tmp, 0.0)
    parts = [(f"top-1 agreement {100 * s.top1:.1f} %, " if s.top1 is not None else "")
             + f"SQNR {s.sqnr_db:.1f} dB" + (f" ({s.name})" if len(rep.outputs) > 1 else "")
             for s in rep.outputs]
    return (f"on the {len(samples)} calibration sample{'s' if len(samples) > 1 else ''} "
            f"against the float model: " + "; ".join(parts))


def instructions_per_inference(build, inputs: Sequence[np.ndarray], record) -> int:
    """Guest instructions one inference executes under the target record's user-mode QEMU
    (targets/qemu_user.py's counting plugin): the count of a run doing 2 inferences on
    ``inputs`` minus that of a run doing 1 (the harness's RUNS argument; both parse a
    one-digit count and read and write the same files, so what differs is one call of the
    run function plus one pass of the harness's loop, a compare, a branch and the status test)."""
    args, outs = write_inputs(build, inputs, "count")
    runs = [run_counted(record.qemu_user, build.exe, [*args, *outs, str(n)], build.workdir,
                        cpu=record.qemu_cpu) for n in (1, 2)]
    bad = [r for r in runs if r.returncode != 0]
    if bad:
        raise EdgeccError(f"the program failed under {record.qemu_user} "
                          f"({bad[0].returncode}):\n{bad[0].stderr[-2000:]}")
    return runs[1].instructions - runs[0].instructions


def format_report(outputs: List[Comparison], layers: List[Comparison], tol: float,
                  note: str = "") -> str:
    head = f"{'tensor':<40} {'max abs err':>12} {'max rel err':>12} {'cosine':>10}  status"
    lines = []
    if layers:
        lines += ["per layer (edgecc's layer outputs vs onnxruntime's, first sample):", head]
        lines += [_row(c) for c in layers]
        lines.append("")
    n = outputs[0].samples if outputs else 1
    lines += [f"outputs over {n} sample{'s' if n != 1 else ''} (worst sample shown; tolerance: "
              f"|edgecc - ort| <= {tol:g} * max|ort|):", head]
    lines += [_row(c) for c in outputs]
    ok = all(c.ok for c in outputs)
    lines += [note] if note else []
    lines.append("verify: PASS" if ok else "verify: FAIL")
    return "\n".join(lines)


def _row(c: Comparison) -> str:
    status = "ok" if c.ok else ("SHAPE MISMATCH" if not c.shape_ok else "MISMATCH")
    return f"{c.name[:40]:<40} {c.max_abs:>12.3e} {c.max_rel:>12.3e} {c.cosine:>10.6f}  {status}"
