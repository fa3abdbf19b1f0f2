"""x86 benchmark (issue 13): edgecc's x86 targets against onnxruntime, batch 1, one thread.

    python bench/x86.py [--models resnet8,dscnn,...] [--precisions float,int8] [--reps 200]
                        [--targets x86-avx2,x86-avx512-vnni] [--clock-ghz 2.6]
                        [--macs-per-cycle 16] [--json] [--keep DIR]

Models: the four MLPerf Tiny architectures and MobileNetV2-0.35@144 of tests/model_zoo.py
(seeded random weights; needs the test dependencies) and the bundled digits CNN, in float32
and int8 (onnxruntime's quantize_static, QDQ, per-channel int8 weights, calibrated on 8 seeded
N(0, 1) inputs; bench/models.py). The input is the first calibration input.

edgecc: the model compiled for each target of --targets (default: x86-avx2, and
x86-avx512-vnni when the CPU has AVX-512 F, BW, VL and VNNI; one row per target, model and
precision), built as a shared library with the target's flags (gcc -O3 and e.g. -mavx2 -mfma)
and called through ctypes. onnxruntime: an InferenceSession with
intra_op_num_threads=1, inter_op_num_threads=1 and its default graph optimizations (what a
user gets), called with the same input. Both are called from this process, alternately, one
call each per repetition (which goes first alternates), after warm-up calls; each call is
timed by thread CPU time (time.thread_time_ns), so another process on the machine does not
count, and both include Python's call overhead (a few microseconds). Columns:

* median and best microseconds per inference of each, and edgecc / onnxruntime (medians);
* GMAC/s of each (the graph's MACs, `edgecc analyze`, over the median) and edgecc's fraction
  of the core's float peak: clock x float MACs per cycle (the clock and MACs per cycle assumed
  are printed: --clock-ghz defaults to the clock measured at the start, a chain of dependent
  one-cycle adds over its thread CPU time (turbo included); --macs-per-cycle to 8 on
  AMD Zen 1, whose two FMA pipes are 128 bits wide, else 16: two 256-bit FMA pipes);
* check: float, the largest |edgecc - onnxruntime| over the largest |onnxruntime| (<= 1e-4);
  int8, edgecc's output bit-identical with its portable build (--target generic);
* need and ok: issue 13's bounds, float <= 1.0x and int8 <= 0.5x onnxruntime, on every row,
  except the int8 rows of x86-avx2 on a CPU with VNNI (need n/a): there onnxruntime's int8
  kernels use VNNI themselves, and the bound (set on a CPU without VNNI, where both sides
  have vpmaddubsw/vpmaddwd only) applies to x86-avx512-vnni, the target with the same
  instructions; those rows are still timed and checked. The run exits 1 when a row misses
  its bound or its check.
"""
import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from edgecc.analyze import analysis  # noqa: E402
from edgecc.compiler.driver import compile_model  # noqa: E402
from edgecc.targets.registry import get_target  # noqa: E402
from models import ALL, float_model, ort_qdq  # noqa: E402

DEFAULT_MODELS = ["resnet8", "dscnn", "mobilenetv1_025", "autoencoder", "mobilenetv2_035",
                  "digits"]
TARGETS = ("x86-avx2", "x86-avx512-vnni")
# the CPU flags (Linux's names) each target's builds need to run
NEEDS = {"x86-avx2": {"avx2", "fma"},
         "x86-avx512-vnni": {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"}}
OPT = "-O3"
BOUND = {"float": 1.0, "int8": 0.5}   # issue 13: edgecc / onnxruntime, medians
FLOAT_TOL = 1e-4
WARMUP = 20


def cpu_info():
    """(model name, MHz, family, model) from /proc/cpuinfo (Linux), else what platform says."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return (fields.get("model name", platform.processor() or "unknown"),
            float(fields.get("cpu MHz", "0") or 0), int(fields.get("cpu family", "0") or 0),
            int(fields.get("model", "0") or 0), fields.get("flags", "").split())


CLOCK_C = r"""
#include <stdint.h>
#include <stdio.h>
#include <time.h>
/* 8 dependent 1-cycle adds per iteration: 8 cycles per iteration on any x86 core */
int main(void) {
    uint64_t x = 0, i, n = 200000000u;
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (i = 0; i < n; ++i)
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    printf("%.4f\n", 8.0 * (double)n / ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)));
    return (int)(x & 1u);
}
"""


def measured_clock_ghz(work):
    """The core clock while busy, in GHz: 1.6e9 dependent adds (1 cycle each) over their
    thread CPU time, the best of 3 runs."""
    src, exe = os.path.join(work, "clock.c"), os.path.join(work, "clock")
    with open(src, "w") as f:
        f.write(CLOCK_C)
    subprocess.run(["gcc", "-O1", "-o", exe, src], check=True, capture_output=True)
    return max(float(subprocess.run([exe], capture_output=True, text=True).stdout)
               for _ in range(3))


def default_macs_per_cycle(vendor_family, model):
    """Float MACs per cycle with AVX2 + FMA: 8 on AMD Zen 1 (family 23, models below 0x30:
    two 128-bit FMA pipes), 16 on the others (two 256-bit FMA pipes)."""
    return 8 if vendor_family == 23 and model < 0x30 else 16


class EdgeccModel:
    """A compiled model as a shared library, its run function called through ctypes."""

    def __init__(self, path, target, work, tag):
        result = compile_model(path, target, prefix="model")
        self.macs = analysis(result)["totals"]["macs"]
        folder = os.path.join(work, tag)
        os.makedirs(folder, exist_ok=True)
        for name, text in result.files.items():
            if name.endswith((".c", ".h")) and "/" not in name:
                with open(os.path.join(folder, name), "w") as f:
                    f.write(text)
        lib = os.path.join(folder, "libmodel.so")
        cmd = ["gcc", "-std=c99", OPT, *get_target(target).host_cflags, "-shared", "-fPIC",
               "-o", lib, os.path.join(folder, "model.c"),
               os.path.join(folder, "model_weights.c"), "-lm"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        self.lib = ctypes.CDLL(lib)
        g = result.graph
        self.inputs = [np.zeros(g.types[n].shape, g.types[n].dtype.np_dtype) for n in g.inputs]
        self.outputs = [np.zeros(g.types[n].shape, g.types[n].dtype.np_dtype)
                        for n in g.outputs]
        self._in = (ctypes.c_void_p * len(self.inputs))(*[a.ctypes.data for a in self.inputs])
        self._out = (ctypes.c_void_p * len(self.outputs))(
            *[a.ctypes.data for a in self.outputs])
        self.lib.model_run_v.restype = ctypes.c_int
        self.run_v = self.lib.model_run_v

    def set_input(self, x):
        self.inputs[0][...] = x.reshape(self.inputs[0].shape)

    def __call__(self):
        status = self.run_v(self._in, self._out)
        if status != 0:
            raise SystemExit(f"bench: model_run returned status {status}")
        return [o.copy() for o in self.outputs]


def ort_session(path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def time_pair(edgecc_call, ort_call, reps):
    """Thread CPU nanoseconds of each call, alternating (which goes first alternates)."""
    for _ in range(WARMUP):
        edgecc_call()
        ort_call()
    times = {"edgecc": [], "ort": []}
    calls = (("edgecc", edgecc_call), ("ort", ort_call))
    for i in range(reps):
        for name, call in (calls if i % 2 == 0 else calls[::-1]):
            t0 = time.thread_time_ns()
            call()
            times[name].append(time.thread_time_ns() - t0)
    return {k: np.asarray(v, dtype=np.float64) / 1e3 for k, v in times.items()}  # us


def bound(precision, target, vnni_cpu: bool):
    """Issue 13's bound of a row, or None (see the docstring: int8 x86-avx2 on a VNNI CPU)."""
    if precision == "int8" and target == "x86-avx2" and vnni_cpu:
        return None
    return BOUND[precision]


def bench_one(name, precision, path, sample, work, reps, target, vnni_cpu=False):
    model = EdgeccModel(path, target, work, f"{name}-{precision}-{target}")
    model.set_input(sample)
    sess = ort_session(path)
    feed = {sess.get_inputs()[0].name: sample.reshape(model.inputs[0].shape)}
    got, want = model()[0], sess.run(None, feed)[0]
    if precision == "float":
        scale = float(np.max(np.abs(want))) or 1.0
        err = float(np.max(np.abs(got.astype(np.float64) - want))) / scale
        check, check_ok = f"rel err {err:.1e}", err <= FLOAT_TOL
    else:
        portable = EdgeccModel(path, "generic", work, f"{name}-{precision}-generic")
        portable.set_input(sample)
        same = got.tobytes() == portable()[0].tobytes()
        check, check_ok = ("== generic" if same else "!= generic"), same
    t = time_pair(model, lambda: sess.run(None, feed), reps)
    e_med, o_med = float(np.median(t["edgecc"])), float(np.median(t["ort"]))
    need = bound(precision, target, vnni_cpu)
    return dict(model=name, precision=precision, target=target, macs=model.macs,
                edgecc_median_us=e_med, edgecc_best_us=float(t["edgecc"].min()),
                ort_median_us=o_med, ort_best_us=float(t["ort"].min()),
                ratio=e_med / o_med, edgecc_gmacs=model.macs / e_med / 1e3,
                ort_gmacs=model.macs / o_med / 1e3, check=check, check_ok=check_ok,
                need=need, ok=check_ok and e_med / o_med <= (need or np.inf))


def table(rows, cpu, clock, mpc, reps, how):
    peak = clock * mpc  # GMAC/s
    head = (f"{'model':<16} {'prec':<5} {'target':<15} {'MACs':>7} {'edgecc med':>10} {'best':>8} "
            f"{'ORT med':>9} {'best':>8} {'ratio':>6} {'GMAC/s':>6} {'%peak':>5} "
            f"{'ORT GMAC/s':>10} {'check':>14} {'need':>5} {'ok':>3}")
    flags = "; ".join(f"{t}: {' '.join(get_target(t).host_cflags)}"
                      for t in dict.fromkeys(r["target"] for r in rows))
    lines = [f"edgecc (gcc {OPT}, ctypes; {flags}) vs onnxruntime (1 thread), batch 1, "
             f"median and best of {reps} alternating calls, thread CPU time in microseconds",
             f"CPU: {cpu}; float peak assumed: {clock:.2f} GHz ({how}) x {mpc} MACs/cycle = "
             f"{peak:.1f} GMAC/s", "", head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['model']:<16} {r['precision']:<5} {r['target']:<15} {r['macs'] / 1e6:>6.2f}M "
            f"{r['edgecc_median_us']:>10.1f} {r['edgecc_best_us']:>8.1f} "
            f"{r['ort_median_us']:>9.1f} {r['ort_best_us']:>8.1f} {r['ratio']:>6.3f} "
            f"{r['edgecc_gmacs']:>6.2f} {100 * r['edgecc_gmacs'] / peak:>4.0f}% "
            f"{r['ort_gmacs']:>10.2f} {r['check']:>14} "
            f"{'n/a' if r['need'] is None else format(r['need'], '.2f'):>5} "
            f"{'yes' if r['ok'] else 'NO':>3}")
    if any(r["need"] is None for r in rows):
        lines.append("n/a: onnxruntime's int8 kernels use VNNI on this CPU; the int8 bound applies "
                     "to x86-avx512-vnni (same instructions)")
    return "\n".join(lines)


def main(argv=None):
    cpu, mhz, family, model_no, flags = cpu_info()
    vnni = "VNNI" if {"avx512_vnni", "avx_vnni"} & set(flags) else "no VNNI"
    cpu = (f"{cpu} (family {family}, model {model_no}; "
           f"{'AVX-512' if 'avx512f' in flags else 'no AVX-512'}, {vnni})")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS),
                    help=f"comma-separated, from {','.join(ALL)}")
    ap.add_argument("--precisions", default="float,int8")
    ap.add_argument("--reps", type=int, default=200, help="timed calls of each (default 200)")
    ap.add_argument("--clock-ghz", type=float,
                    help="core clock assumed for the peak (default: measured, a chain of "
                         "dependent adds; /proc/cpuinfo says %.0f MHz)" % mhz)
    ap.add_argument("--macs-per-cycle", type=int,
                    default=default_macs_per_cycle(family, model_no),
                    help="float MACs per cycle assumed for the peak")
    ap.add_argument("--targets", default=",".join(t for t in TARGETS if NEEDS[t] <= set(flags)),
                    help=f"comma-separated, from {','.join(TARGETS)} (default: those this CPU "
                         "runs)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="keep models and builds in DIR")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bad = ([n for n in names if n not in ALL] + [p for p in precisions if p not in BOUND]
           + [t for t in targets if t not in NEEDS])
    if bad or not names or not precisions or not targets:
        ap.error(f"unknown model(s), precision(s) or target(s): {', '.join(bad) or '(none)'}")
    for t in targets:
        if not NEEDS[t] <= set(flags):
            raise SystemExit(f"bench: this CPU lacks {', '.join(sorted(NEEDS[t] - set(flags)))}; "
                             f"{t} builds cannot run here")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_x86_") as tmp:
        work = args.keep or tmp
        os.makedirs(work, exist_ok=True)
        clock = args.clock_ghz or measured_clock_ghz(work)
        for name in names:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            float_path, _, samples = float_model(name, work)
            paths = {"float": float_path}
            if "int8" in precisions:
                paths["int8"] = ort_qdq(float_path, samples, work, name)
            for precision in precisions:
                for target in targets:
                    rows.append(bench_one(name, precision, paths[precision], samples[:1], work,
                                          args.reps, target, vnni != "no VNNI"))
    if args.json:
        print(json.dumps(dict(cpu=cpu, clock_ghz=clock,
                              macs_per_cycle=args.macs_per_cycle, rows=rows), indent=2))
    else:
        print(table(rows, cpu, clock, args.macs_per_cycle, args.reps,
                    "given" if args.clock_ghz else "measured"))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
