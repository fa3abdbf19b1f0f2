"""Calibration for post-training quantization (``edgecc --quantize int8 --calib DATA``).

1. ``load_calibration`` reads DATA and checks it against the model's inputs:
     .npz   arrays keyed by input name (a single-input model also takes the one array whose
            shape fits, e.g. ``images`` next to ``labels``)
     .npy   one array (single-input models)
     DIR/   ``<input>.npy`` per input, or (single input) any number of .npy files, each one
            sample or a batch; or ONNX ``test_data_set_*`` folders (``input_0.pb``, ...), or
            one such folder itself
   An array holds one sample (the input's shape) or a batch of N: (N,) + shape, or, when
   the input's leading (batch) dim is 1, (N,) + shape[1:] (shape[1:] alone is one sample).
   Float inputs take any float data (cast to float32); a wrong dtype, a wrong shape or zero
   samples is an EdgeccError.
2. ``calibrate`` runs the float model with onnxruntime (graph optimizations off) on every
   sample, with each requested tensor added as a graph output, and reduces the values to one
   range [lo, hi] per tensor:
     minmax      the smallest and largest value seen (default)
     percentile  the (100 - p)-th and p-th percentiles of all values, from a 2048-bin
                 histogram over the min-max range (a second pass over the samples)
     entropy     the clipping threshold T of |x| whose int8 quantization loses the least
                 information (KL divergence, TensorRT's method, on a 2048-bin histogram of
                 |x|; a second pass): [max(min, -T), min(max, T)]
"""
from __future__ import annotations

import glob
import os
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import EdgeccError
from ..ir import DType, Graph, TensorType

METHODS = ("minmax", "percentile", "entropy")
HIST_BINS = 2048

Ranges = Dict[str, Tuple[float, float]]


# -- reading the data --------------------------------------------------------------------------

def load_calibration(spec: str, graph: Graph) -> Dict[str, np.ndarray]:
    """DATA -> {input name: array of shape (N,) + input shape}, N >= 1, checked."""
    if not spec:
        raise EdgeccError("--quantize int8 needs calibration data: --calib DATA "
                          "(.npz, .npy, a folder of .npy or test_data_set_* folders)")
    if not os.path.exists(spec):
        raise EdgeccError(f"--calib {spec}: no such file or folder")
    types = {n: graph.types[n] for n in graph.inputs}
    if not types:
        raise EdgeccError(f"--calib {spec}: the model has no inputs to calibrate")
    try:
        if os.path.isdir(spec):
            found = _read_folder(spec, types)
        elif spec.endswith(".npz"):
            found = _read_npz(spec, types)
        elif spec.endswith(".npy"):
            if len(types) != 1:
                raise EdgeccError(f"--calib {spec}: the model has {len(types)} inputs; give an "
                                  ".npz keyed by input name or a folder of <input>.npy")
            found = {next(iter(types)): [(spec, np.load(spec, allow_pickle=False))]}
        else:
            raise EdgeccError(f"--calib {spec}: expected a .npz, a .npy, a folder of .npy "
                              "files or test_data_set_* folders")
    except (OSError, ValueError, EOFError) as e:
        raise EdgeccError(f"--calib {spec}: cannot read: {str(e).splitlines()[0]}") from None
    data, count = {}, None
    for name, t in types.items():
        parts = found.get(name)
        if not parts:
            raise EdgeccError(f"--calib {spec}: no data for model input '{name}'")
        batches = [_check_array(src, name, t, a) for src, a in parts]
        data[name] = np.concatenate(batches) if len(batches) > 1 else batches[0]
        if count is not None and len(data[name]) != count:
            raise EdgeccError(f"--calib {spec}: input '{name}' has {len(data[name])} samples, "
                              f"the other inputs {count}")
        count = len(data[name])
    if not count:
        raise EdgeccError(f"--calib {spec}: empty calibration set (0 samples)")
    return data


def _check_array(src: str, name: str, t: TensorType, a) -> np.ndarray:
    a = np.asarray(a)
    want = t.dtype.np_dtype
    if want.kind == "f":
        ok = a.dtype.kind == "f"
    elif want.kind in "iu":
        ok = a.dtype.kind in "iu"
    else:
        ok = a.dtype.kind == want.kind
    if not ok:
        raise EdgeccError(f"--calib {src}: input '{name}' data is {a.dtype}, expected {want}")
    shape = tuple(t.shape)
    if a.shape == shape or (shape and shape[0] == 1 and a.shape == shape[1:]):
        a = a.reshape((1,) + shape)
    elif a.shape[1:] == shape:
        pass
    elif shape and shape[0] == 1 and a.ndim == len(shape) and a.shape[1:] == shape[1:]:
        a = a.reshape((a.shape[0],) + shape)
    else:
        batch = shape[1:] if shape and shape[0] == 1 else shape
        raise EdgeccError(f"--calib {src}: input '{name}' has shape {a.shape}, expected "
                          f"{shape} or a batch (N, {', '.join(map(str, batch))})")
    if a.shape[0] == 0:
        raise EdgeccError(f"--calib {src}: empty calibration set (0 samples for '{name}')")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise EdgeccError(f"--calib {src}: input '{name}' holds NaN or infinite values")
    return np.ascontiguousarray(a.astype(want, copy=False))


def _read_npz(spec: str, types: Dict[str, TensorType]):
    with np.load(spec, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if not arrays:
        raise EdgeccError(f"--calib {spec}: empty calibration set (no arrays in the file)")
    if all(n in arrays for n in types):
        return {n: [(spec, arrays[n])] for n in types}
    if len(types) == 1:
        (name, t), = types.items()
        if len(arrays) == 1:
            return {name: [(spec, next(iter(arrays.values())))]}
        fits = [k for k, a in arrays.items() if a.shape[1:] == t.shape or a.shape == t.shape
                or (t.shape and t.shape[0] == 1 and a.shape[1:] == t.shape[1:])]
        if len(fits) == 1:
            return {name: [(spec, arrays[fits[0]])]}
        raise EdgeccError(f"--calib {spec}: holds arrays {', '.join(sorted(arrays))}; name "
                          f"the one for input '{name}' after it")
    missing = [n for n in types if n not in arrays]
    raise EdgeccError(f"--calib {spec}: no array named '{missing[0]}' (holds "
                      f"{', '.join(sorted(arrays))})")


def _read_folder(spec: str, types: Dict[str, TensorType]):
    sets = sorted(d for d in glob.glob(os.path.join(spec, "test_data_set_*")) if os.path.isdir(d))
    if glob.glob(os.path.join(spec, "input_*.pb")):
        sets = [spec]
    if sets:
        found: Dict[str, list] = {n: [] for n in types}
        for d in sets:
            for name, (path, value) in _read_pb_set(d, list(types)).items():
                found[name].append((path, value))
        return found
    npys = sorted(glob.glob(os.path.join(spec, "*.npy")))
    if not npys:
        raise EdgeccError(f"--calib {spec}: empty calibration set (no .npy files or "
                          "test_data_set_* folders in the folder)")
    by_name = {os.path.splitext(os.path.basename(p))[0]: p for p in npys}
    if all(n in by_name for n in types):
        return {n: [(by_name[n], np.load(by_name[n], allow_pickle=False))] for n in types}
    if len(types) != 1:
        raise EdgeccError(f"--calib {spec}: the model has {len(types)} inputs; name the files "
                          f"{', '.join(n + '.npy' for n in types)}")
    return {next(iter(types)): [(p, np.load(p, allow_pickle=False)) for p in npys]}


def _read_pb_set(folder: str, names: List[str]):
    import onnx
    from onnx import numpy_helper

    pbs = sorted(glob.glob(os.path.join(folder, "input_*.pb")),
                 key=lambda p: int(''.join(c for c in os.path.basename(p) if c.isdigit()) or 0))
    out = {}
    for pos, path in enumerate(pbs):
        t = onnx.TensorProto()
        try:
            with open(path, "rb") as f:
                t.ParseFromString(f.read())
            value = numpy_helper.to_array(t)
        except Exception as e:
            raise EdgeccError(f"--calib {path}: not an ONNX TensorProto "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                              ) from None
        name = t.name if t.name in names else (names[pos] if pos < len(names) else None)
        if name is not None:
            out[name] = (path, value)
    return out


# -- running the float model -------------------------------------------------------------------

class Progress:
    """``calibrating [#####.....] 42/100`` on stderr, redrawn in place."""

    def __init__(self, total: int, enabled: Optional[bool] = None, label: str = "calibrating",
                 stream=None):
        self.stream = stream or sys.stderr
        self.total, self.label, self.done = max(total, 1), label, 0
        self.enabled = self.stream.isatty() if enabled is None else enabled

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            filled = 20 * self.done // self.total
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (20 - filled)}] "
                              f"{self.done}/{self.total}")
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()


def _session(model, names: Iterable[str]):
    import onnx
    import onnxruntime as ort
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                                None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _runs(sess, data: Dict[str, np.ndarray], names: List[str], progress: Progress, label: str):
    count = len(next(iter(data.values())))
    for k in range(count):
        try:
            values = sess.run(names, {n: a[k] for n, a in data.items()})
        except Exception as e:
            raise EdgeccError(f"{label}: onnxruntime cannot run the float model for "
                              f"calibration: {str(e).splitlines()[0]}") from None
        progress.step()
        yield dict(zip(names, values))


def calibrate(static_model, graph: Graph, data: Dict[str, np.ndarray],
              tensors: Sequence[str], method: str = "minmax", percentile: float = 99.99,
              progress: Optional[bool] = None) -> Ranges:
    """Ranges of ``tensors`` (float tensors of the static ONNX model that also exist in
    ``graph`` with the same shape) over all samples in ``data``."""
    if method not in METHODS:
        raise EdgeccError(f"--calib-method {method}: expected one of {', '.join(METHODS)}")
    if not 0.0 < percentile <= 100.0:
        raise EdgeccError(f"--calib-percentile {percentile:g}: expected a value in (0, 100]")
    onnx_names = {i.name for i in static_model.graph.input}
    onnx_names.update(o for n in static_model.graph.node for o in n.output if o)
    names = [t for t in dict.fromkeys(tensors) if t in onnx_names
             and graph.types[t].dtype == DType.FLOAT32 and not graph.is_constant(t)]
    if not names:
        return {}
    sess = _session(static_model, names)
    count = len(next(iter(data.values())))
    passes = 1 if method == "minmax" else 2
    bar = Progress(count * passes, progress)
    label = graph.source
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    shapes = {n: tuple(graph.types[n].shape) for n in names}
    for values in _runs(sess, data, names, bar, label):
        for n in names:
            v = values[n]
            if tuple(v.shape) != shapes[n]:
                shapes[n] = None  # not the same tensor as the IR's: no range
                continue
            finite = v[np.isfinite(v)]
            if finite.size:
                lo[n] = min(lo[n], float(finite.min()))
                hi[n] = max(hi[n], float(finite.max()))
    names = [n for n in names if shapes[n] is not None and lo[n] <= hi[n]]
    if method == "minmax":
        return {n: (lo[n], hi[n]) for n in names}
    # second pass: histograms over [lo, hi] (percentile) or of |x| over [0, max|x|] (entropy)
    span = {n: (lo[n], hi[n]) if method == "percentile" else (0.0, max(-lo[n], hi[n]))
            for n in names}
    hists = {n: np.zeros(HIST_BINS, dtype=np.int64) for n in names}
    for values in _runs(sess, data, names, bar, label):
        for n in names:
            v = values[n]
            if method == "entropy":  # exact zeros (ReLU's) quantize exactly: leave them out
                v = np.abs(v[v != 0])
            if span[n][1] > span[n][0]:
                hists[n] += np.histogram(v, bins=HIST_BINS, range=span[n])[0]
    if method == "percentile":
        return {n: percentile_range(hists[n], lo[n], hi[n], percentile) for n in names}
    ranges = {}
    for n in names:
        t = entropy_threshold(hists[n], span[n][1], 256 if lo[n] >= 0 else 128)
        ranges[n] = (max(lo[n], -t), min(hi[n], t))
    return ranges


def percentile_range(hist: np.ndarray, lo: float, hi: float, p: float) -> Tuple[float, float]:
    """[lo', hi'] holding all but (100 - p)% of the values at each end of the histogram."""
    total = int(hist.sum())
    if total == 0 or hi <= lo or p >= 100.0:
        return lo, hi
    edges = np.linspace(lo, hi, len(hist) + 1)
    cdf = np.cumsum(hist) / total
    tail = (100.0 - p) / 100.0
    first = int(np.searchsorted(cdf, tail, side="right"))   # first bin past the low tail
    last = int(np.searchsorted(cdf, 1.0 - tail, side="left"))  # bin holding the p-th value
    return float(edges[min(first, len(hist) - 1)]), float(edges[min(last + 1, len(hist))])


def entropy_threshold(hist: np.ndarray, amax: float, levels: int, stride: int = 16) -> float:
    """The clipping threshold T of a histogram of |x| over [0, amax] whose ``levels``-level
    quantization keeps the distribution closest in KL divergence (TensorRT's calibrator:
    values past T are folded into the last bin of the reference distribution)."""
    n = len(hist)
    if amax <= 0 or hist.sum() == 0:
        return amax
    hist = hist.astype(np.float64)
    best, best_i = np.inf, n
    for i in range(levels, n + 1, stride):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        nonzero = hist[:i] != 0
        starts = (np.arange(levels) * i) // levels
        sums = np.add.reduceat(hist[:i], starts)
        counts = np.add.reduceat(nonzero.astype(np.float64), starts)
        level = np.divide(sums, counts, out=np.zeros(levels), where=counts > 0)
        q = np.where(nonzero, np.repeat(level, np.diff(np.append(starts, i))), 0.0)
        p, q = p / p.sum(), q / max(q.sum(), 1e-30)
        mask = p > 0
        kl = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
        if kl < best:
            best, best_i = kl, i
    return amax * best_i / n
