"""Calibration for post-training quantization (``edgecc --quantize int8 --calib DATA``).

1. ``load_calibration`` reads DATA and checks it against the model's inputs:
     .npz   arrays keyed by input name; other keys (``labels``) are ignored. A single-input
            model also takes, when no key is its input's name, the file's only array or the
            one array whose shape fits (``images`` next to ``labels``), with a warning naming
            the key used; otherwise (several or no arrays fit, or any input of a multi-input
            model missing) an error names the missing inputs and the unknown keys
     .npy   one array (single-input models)
     DIR/   ``<input>.npy`` per input, or (single input) any number of .npy files, each one
            sample or a batch; or ONNX ``test_data_set_*`` folders (``input_0.pb``, ...), or
            one such folder itself
   An array holds one sample (the input's shape) or a batch of N: (N,) + shape, or, when
   the input's leading (batch) dim is 1, (N,) + shape[1:] (shape[1:] alone is one sample).
   Float inputs take any float data (cast to float32); a wrong dtype, a wrong shape, zero
   samples, NaN/Inf values (with their count) or a file that is not an .npz archive / .npy
   array is an EdgeccError. Constant float data (one value in every sample) is a warning
   (``driver.post_training_quantize``, which also names the layers with zero-width ranges).
2. ``calibrate`` runs the float model with onnxruntime (graph optimizations off) on every
   sample, with each requested tensor added as a graph output, and reduces the values to one
   range [lo, hi] per tensor (from the finite values; ``stats["nonfinite"]`` names the
   tensors where the float model gave only inf/NaN, which get no range):
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
import zipfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import EdgeccError
from ..ir import DType, Graph, TensorType

METHODS = ("minmax", "percentile", "entropy")
HIST_BINS = 2048

Ranges = Dict[str, Tuple[float, float]]


def warn(message: str) -> None:
    """A one-line warning on stderr, in the style of the CLI's ``edgecc: error:`` lines."""
    print(f"edgecc: warning: {' '.join(str(message).split())}", file=sys.stderr)


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
    renamed: Dict[str, Tuple[str, str]] = {}  # input name -> (.npz key used for it, why)
    try:
        if os.path.isdir(spec):
            found = _read_folder(spec, types)
        elif spec.endswith(".npz"):
            found = _read_npz(spec, types, renamed)
        elif spec.endswith(".npy"):
            if len(types) != 1:
                raise EdgeccError(f"--calib {spec}: the model has {len(types)} inputs; give an "
                                  ".npz keyed by input name or a folder of <input>.npy")
            found = {next(iter(types)): [(spec, _load_npy(spec))]}
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
    for name, (key, why) in renamed.items():
        warn(f"--calib {spec}: no array named '{name}' (the model's input); using '{key}', "
             f"{why}")
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
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        raise EdgeccError(f"--calib {src}: input '{name}' holds {bad:,} non-finite values "
                          f"(NaN or Inf) out of {a.size:,}")
    return np.ascontiguousarray(a.astype(want, copy=False))


def _load_npy(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":  # else numpy tries pickle and talks about allow_pickle
        raise EdgeccError(f"--calib {path}: not a valid .npy file")
    return np.load(path, allow_pickle=False)


def _fits(a: np.ndarray, shape: Tuple[int, ...]) -> bool:
    """Could ``a`` be one sample or a batch of samples of an input of this shape?"""
    return (a.shape == shape or a.shape[1:] == shape
            or (bool(shape) and shape[0] == 1 and (a.shape[1:] == shape[1:]
                                                   or a.shape == shape[1:])))


def _read_npz(spec: str, types: Dict[str, TensorType], renamed: Dict[str, Tuple[str, str]]):
    if not zipfile.is_zipfile(spec):  # e.g. a text or .npy file named .npz
        raise EdgeccError(f"--calib {spec}: not a valid .npz archive")
    try:
        with np.load(spec, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except zipfile.BadZipFile:
        raise EdgeccError(f"--calib {spec}: not a valid .npz archive") from None
    if not arrays:
        raise EdgeccError(f"--calib {spec}: empty calibration set (no arrays in the file)")
    if all(n in arrays for n in types):
        return {n: [(spec, arrays[n])] for n in types}
    missing = [n for n in types if n not in arrays]
    unknown = [k for k in arrays if k not in types]
    listed = ", ".join(f"'{k}'" for k in unknown) or "none"
    if len(types) == 1:
        (name, t), = types.items()
        if len(arrays) == 1:  # its shape is checked under the input's name
            renamed[name] = (unknown[0], "the only array in the file")
            return {name: [(spec, arrays[unknown[0]])]}
        fits = [k for k in unknown if _fits(np.asarray(arrays[k]), tuple(t.shape))]
        if len(fits) == 1:
            renamed[name] = (fits[0], "the one array in the file whose shape fits")
            return {name: [(spec, arrays[fits[0]])]}
        how = (f"{len(fits)} of them fit its shape {tuple(t.shape)}: name the one to use "
               f"'{name}'" if fits else f"none fits its shape {tuple(t.shape)}")
        raise EdgeccError(f"--calib {spec}: no array named '{name}' (missing model input); "
                          f"unknown keys: {listed} ({how})")
    raise EdgeccError(f"--calib {spec}: no array named {', '.join(repr(n) for n in missing)} "
                      f"(missing model input{'s' if len(missing) > 1 else ''}); unknown keys: "
                      f"{listed}; the model's inputs: {', '.join(repr(n) for n in types)}")


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
        return {n: [(by_name[n], _load_npy(by_name[n]))] for n in types}
    if len(types) != 1:
        missing = [n + ".npy" for n in types if n not in by_name]
        unknown = [n + ".npy" for n in by_name if n not in types]
        raise EdgeccError(f"--calib {spec}: the model has {len(types)} inputs; name the files "
                          f"{', '.join(n + '.npy' for n in types)} (missing: "
                          f"{', '.join(missing)}; unknown: {', '.join(unknown) or 'none'})")
    return {next(iter(types)): [(p, _load_npy(p)) for p in npys]}


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
              progress: Optional[bool] = None, stats: Optional[dict] = None) -> Ranges:
    """Ranges of ``tensors`` (float tensors of the static ONNX model that also exist in
    ``graph`` with the same shape) over all samples in ``data``. ``stats``: when given,
    ``stats["nonfinite"]`` is set to {tensor: count of inf/NaN values} for the tensors where
    the float model computed no finite value at all (they get no range)."""
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
    bad = {n: 0 for n in names}  # inf/NaN values seen
    shapes = {n: tuple(graph.types[n].shape) for n in names}
    for values in _runs(sess, data, names, bar, label):
        for n in names:
            v = values[n]
            if tuple(v.shape) != shapes[n]:
                shapes[n] = None  # not the same tensor as the IR's: no range
                continue
            finite = v[np.isfinite(v)]
            bad[n] += v.size - finite.size
            if finite.size:
                lo[n] = min(lo[n], float(finite.min()))
                hi[n] = max(hi[n], float(finite.max()))
    if stats is not None:
        stats["nonfinite"] = {n: bad[n] for n in names
                              if shapes[n] is not None and bad[n] and not lo[n] <= hi[n]}
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
                if span[n][1] - span[n][0] > float(np.finfo(np.float32).max):
                    v = v.astype(np.float64)  # float32 bin arithmetic would overflow
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
