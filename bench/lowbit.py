"""Low-bit layer benchmark (issue 15): bit-plane convolutions against edgecc's int8 kernels on
the same layer, in executed instructions under qemu-aarch64 and in time on this x86.

    python bench/lowbit.py [--layers 0,1,2] [--precisions int8,w4a4,w2a2,w1a1] [--reps 30]
                           [--no-aarch64] [--no-x86]

Layers (stride 1, "same" padding): a 3x3 convolution 64 -> 64 at 56x56, a 1x1 128 -> 128 at
28x28 and a 3x3 256 -> 256 at 14x14, as one IR node each with seeded random weights and input:
int8 is a QConv (int8 per-channel weights, int32 bias, fused Relu) with int8 NCHW input and
output; wNaM is a QConvBits with M-bit unsigned activation codes and N-bit signed weights in
and out as bit planes (NHWC; the next layer's input), w1a1 binary (-1/+1) weights, input and
output (the output is the sign). The graph's input and output are the layer's own, so a run
is the layer (plus the run function's copies of its input and output, the same for all rows).

aarch64: each row is built with aarch64-linux-gnu-gcc -static -O3 for its target (int8:
aarch64-neon and aarch64-neon-dotprod; low-bit: aarch64-neon) and run under qemu-aarch64 with
edgecc's instruction-counting plugin: executed instructions of one inference (a run of 2 minus
a run of 1), per MAC, and int8 aarch64-neon's (and dotprod's) count over the row's. Required
(issue 15): w1a1 >= 8x fewer than int8 aarch64-neon and >= 3x fewer than int8 dotprod; w2a2
>= 2.5x fewer than int8 aarch64-neon.
x86: each row as a shared library (gcc -O3, the target's flags) called through ctypes, int8 on
x86-avx2 (edgecc's AVX2 kernel) and low-bit on x86-avx2, alternating calls, thread CPU time,
best of --reps (and the median); int8 x86-avx2's time over the row's. Required: w1a1 >= 2.5x
faster than int8 x86-avx2.
Checks (exit 1 when one fails): every build of a row gives the same output bytes as the
portable build (generic) of that row.
"""
import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from edgecc.backends.codegen import generate  # noqa: E402
from edgecc.compiler.driver import _layout_and_plan  # noqa: E402
from edgecc.ir import Activation, DType, Graph, Node, QuantParams, TensorType  # noqa: E402
from edgecc.ir.lowbit import Bits, pack  # noqa: E402
from edgecc.ir.ops.conv import ConvAttrs  # noqa: E402
from edgecc.ir.ops.lowbit_ops import BitsConvAttrs, packed_type  # noqa: E402
from edgecc.runner import build_host, run_host  # noqa: E402
from edgecc.targets.registry import get_target  # noqa: E402
from edgecc.verify.host import instructions_per_inference  # noqa: E402

LAYERS = [(64, 64, 3, 56), (128, 128, 1, 28), (256, 256, 3, 14)]
PRECISIONS = {"int8": None, "w4a4": (4, 4), "w2a2": (2, 2), "w1a1": (1, 1)}
NEED_NEON = {"w1a1": (8.0, 3.0), "w2a2": (2.5, None)}  # vs int8 aarch64-neon, vs dotprod
NEED_X86 = {"w1a1": 2.5}
OPT = "-O3"


def label(layer):
    cin, cout, k, hw = layer
    return f"{k}x{k} {cin}->{cout} @{hw}x{hw}"


def layer_graph(precision, layer, seed=15):
    """(IR graph of the one layer, its input as the program reads it, MACs)."""
    cin, cout, k, hw = layer
    rng = np.random.default_rng(seed)
    p = k // 2
    g = Graph(f"{precision}", [], ["x"], ["y"], {}, {})
    macs = hw * hw * cout * k * k * cin
    if precision == "int8":
        x = rng.integers(-128, 128, (1, cin, hw, hw)).astype(np.int8)
        w = rng.integers(-127, 128, (cout, cin, k, k)).astype(np.int8)
        s_w = tuple(float(v) for v in np.float32(rng.uniform(0.5, 1.0, cout) / 2**10))
        g.types["x"] = TensorType(DType.INT8, x.shape, QuantParams((0.05,), (-3,)))
        g.types["w"] = TensorType(DType.INT8, w.shape, QuantParams(s_w, (0,) * cout, 0))
        g.types["b"] = TensorType(DType.INT32, (cout,))
        g.types["y"] = TensorType(DType.INT8, (1, cout, hw, hw),
                                  QuantParams((0.05 * np.sqrt(k * k * cin) / 8,), (-10,)))
        g.constants.update(w=w, b=rng.integers(-5000, 5000, cout).astype(np.int32))
        attrs = ConvAttrs((k, k), (1, 1), (p, p, p, p), (1, 1), 1, Activation("Relu"))
        g.nodes = [Node("QConv", ("x", "w", "b"), ("y",), attrs, "conv")]
        return g, x, macs
    wb, ab = PRECISIONS[precision]
    xc = Bits(1, binary=True) if ab == 1 else Bits(ab)
    wc = Bits(1, binary=True) if wb == 1 else Bits(wb, signed=True)
    lo, hi = xc.levels
    codes = rng.integers(lo, hi + 1, (1, hw, hw, cin))
    wv = rng.integers(wc.levels[0], wc.levels[1] + 1, (cout, k, k, cin))
    if xc.binary:
        codes, wv = np.where(codes == 0, 1, codes), np.where(wv == 0, -1, wv)
    s_w = np.float32(rng.uniform(0.5, 1.0, cout))
    g.types["x"] = packed_type(xc, (1, hw, hw, cin), 0.1)
    g.types["w"] = packed_type(wc, (cout, k, k, cin), s_w, axis=0)
    spread = np.sqrt(k * k * cin) * (hi - lo) / 2 * max(wc.levels) / max(hi, 1)
    g.types["y"] = packed_type(xc, (1, hw, hw, cout), 0.1 * float(spread) / 2)
    g.types["b"] = TensorType(DType.INT32, (cout,))
    g.constants.update(w=pack(wv, wc), b=rng.integers(-20, 20, cout).astype(np.int32))
    attrs = BitsConvAttrs((k, k), (1, 1), (p, p, p, p), (1, 1), lo, hi)
    g.nodes = [Node("QConvBits", ("x", "w", "b"), ("y",), attrs, "conv")]
    return g, pack(codes, xc), macs


def files_for(graph, target):
    record = get_target(target)
    laid, plan = _layout_and_plan(graph, target)
    files = generate(laid, plan, "model", record.backend_chain())
    files.update(record.runtime_files(files))
    return files, laid


def aarch64_rows(layer, precisions, work):
    neon = get_target("aarch64-neon")
    rows, counts, bad = [], {}, []
    for prec in precisions:
        graph, x, macs = layer_graph(prec, layer)
        targets = ["aarch64-neon", "aarch64-neon-dotprod"] if prec == "int8" else \
            ["aarch64-neon"]
        ref = None
        for target in ["generic"] + targets:
            record = neon if target == "generic" else get_target(target)
            files, laid = files_for(graph, target)
            tag = f"a-{layer[0]}-{layer[1]}-{layer[2]}-{layer[3]}-{prec}-{target}"
            build = build_host(files, laid, "model", os.path.join(work, tag),
                               opt=OPT, **record.build_options())
            out = run_host(build, [x])[0]
            if ref is None:
                ref = out
                continue
            if not np.array_equal(out, ref):
                bad.append(f"{label(layer)} {prec} {target}: output differs from generic")
            counts[(prec, target)] = instructions_per_inference(build, [x], record)
            rows.append((prec, target, counts[(prec, target)], macs))
    return rows, counts, bad


class Lib:
    """A compiled layer as a shared library, its run function called through ctypes."""

    def __init__(self, graph, target, folder):
        files, laid = files_for(graph, target)
        os.makedirs(folder, exist_ok=True)
        for name, text in files.items():
            if name.endswith((".c", ".h")) and "/" not in name:
                with open(os.path.join(folder, name), "w") as f:
                    f.write(text)
        lib = os.path.join(folder, "libmodel.so")
        subprocess.run(["gcc", "-std=c99", OPT, *get_target(target).host_cflags, "-shared",
                        "-fPIC", "-o", lib, os.path.join(folder, "model.c"),
                        os.path.join(folder, "model_weights.c"), "-lm"],
                       check=True, capture_output=True, text=True)
        self.lib = ctypes.CDLL(lib)
        from edgecc.runner import storage_dtype, storage_shape
        ti, to = laid.types[laid.inputs[0]], laid.types[laid.outputs[0]]
        self.x = np.zeros(storage_shape(ti), storage_dtype(ti))
        self.y = np.zeros(storage_shape(to), storage_dtype(to))
        self._in = (ctypes.c_void_p * 1)(self.x.ctypes.data)
        self._out = (ctypes.c_void_p * 1)(self.y.ctypes.data)
        self.lib.model_run_v.restype = ctypes.c_int

    def __call__(self):
        if self.lib.model_run_v(self._in, self._out) != 0:
            raise SystemExit("bench: model_run failed")


def x86_rows(layer, precisions, work, reps):
    libs, bad = {}, []
    for prec in precisions:
        graph, x, _ = layer_graph(prec, layer)
        outs = []
        for target in ("generic", "x86-avx2"):
            tag = f"x-{layer[0]}-{layer[1]}-{layer[2]}-{layer[3]}-{prec}-{target}"
            lib = Lib(graph, target, os.path.join(work, tag))  # one folder a layer: dlopen
            lib.x[...] = x.reshape(lib.x.shape)
            lib()
            outs.append(lib.y.copy())
            libs[prec] = lib
        if not np.array_equal(*outs):
            bad.append(f"{label(layer)} {prec} x86-avx2: output differs from generic")
    times = {p: [] for p in libs}
    for p in libs:
        libs[p]()
    for i in range(reps):
        order = list(libs) if i % 2 == 0 else list(libs)[::-1]
        for p in order:
            t0 = time.thread_time_ns()
            libs[p]()
            times[p].append((time.thread_time_ns() - t0) / 1e3)
    return {p: (min(t), float(np.median(t))) for p, t in times.items()}, bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", default="0,1,2")
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--no-aarch64", action="store_true")
    ap.add_argument("--no-x86", action="store_true")
    args = ap.parse_args(argv)
    layers = [LAYERS[int(i)] for i in args.layers.split(",")]
    precisions = [p for p in args.precisions.split(",") if p]
    if "int8" not in precisions:
        precisions.insert(0, "int8")
    bad, unmet = [], []
    qemu = shutil.which("qemu-aarch64") and shutil.which("aarch64-linux-gnu-gcc")
    with tempfile.TemporaryDirectory() as work:
        for layer in layers:
            print(f"== {label(layer)}")
            if not args.no_aarch64 and qemu:
                rows, counts, b = aarch64_rows(layer, precisions, work)
                bad += b
                base, dot = counts[("int8", "aarch64-neon")], counts[("int8",
                                                                      "aarch64-neon-dotprod")]
                print(f"  {'aarch64':9} {'target':22} {'instructions':>14} {'instr/MAC':>10} "
                      f"{'neon int8/this':>15} {'dotprod/this':>13}  need")
                for prec, target, n, macs in rows:
                    need = NEED_NEON.get(prec) if prec != "int8" else None
                    text = ""
                    if need:
                        ok = base / n >= need[0] and (need[1] is None or dot / n >= need[1])
                        text = f">= {need[0]}x" + (f", >= {need[1]}x" if need[1] else "") + \
                            ("  met" if ok else "  NOT MET")
                        if not ok:
                            unmet.append(f"{label(layer)} {prec} aarch64")
                    print(f"  {prec:9} {target:22} {n:>14,} {n / macs:>10.4f} {base / n:>14.2f}x "
                          f"{dot / n:>12.2f}x  {text}")
            if not args.no_x86:
                t, b = x86_rows(layer, precisions, work, args.reps)
                bad += b
                print(f"  {'x86':9} {'target':22} {'best us':>14} {'median us':>10} "
                      f"{'int8/this':>15}  need")
                for prec, (best, med) in t.items():
                    need = NEED_X86.get(prec)
                    ratio = t["int8"][0] / best
                    text = ""
                    if need:
                        text = f">= {need}x  " + ("met" if ratio >= need else "NOT MET")
                        if ratio < need:
                            unmet.append(f"{label(layer)} {prec} x86")
                    print(f"  {prec:9} {'x86-avx2':22} {best:>14.1f} {med:>10.1f} "
                          f"{ratio:>14.2f}x  {text}")
    print(f"checks: {'all outputs equal the portable build' if not bad else 'FAILED'}")
    for line in bad:
        print("  " + line)
    print("requirements: " + ("all met" if not unmet else "not met: " + "; ".join(unmet)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
