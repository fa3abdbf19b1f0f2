"""Start-up and compile time of the edgecc command, each run in a fresh process.

    python bench/compile_time.py [--models resnet8,dscnn,...] [--repeat 3] [--json]

Models: the MLPerf Tiny reference architectures of tests/model_zoo.py (and MobileNetV2-0.35
with --models), float and quantized by onnxruntime (QDQ), compiled for generic and cortex-m7.
Each figure is the median wall time of ``--repeat`` runs of ``edgecc ...`` in a new Python
process (what a user waits for), printed beside its budget (issue 10: ``--help`` 0.5 s, each
MLPerf Tiny compile 2 s) as a ratio; and what the largest imports cost in the same run
(``python -X importtime``: onnx, whose ml_dtypes 0.7.0 alone took 1.2 s, numpy, jinja2).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
EDGECC = [sys.executable, "-m", "edgecc"]
HELP_BUDGET, COMPILE_BUDGET = 0.5, 2.0


def wall(cmd, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def import_cost(module):
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         capture_output=True, text=True).stderr.strip().splitlines()
    return int(out[-1].split("|")[1]) / 1e6 if out else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet8,dscnn,mobilenetv1_025,autoencoder")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import numpy as np
    import model_zoo
    from onnx_helpers import quantize_ort

    rows = [dict(what="edgecc --help", seconds=wall(EDGECC + ["--help"], args.repeat),
                 budget=HELP_BUDGET)]
    with tempfile.TemporaryDirectory(prefix="edgecc-bench-") as tmp:
        for name in args.models.split(","):
            path = model_zoo.build(name, os.path.join(tmp, f"{name}.onnx"))
            shape = model_zoo.INPUT_SHAPES[name]
            calib = np.random.default_rng(0).standard_normal((8,) + shape[1:]).astype(
                np.float32)
            qdq = quantize_ort(path, os.path.join(tmp, f"{name}_qdq.onnx"), "input", calib)
            for kind, model in (("float", path), ("int8", qdq)):
                for target in ("generic", "cortex-m7"):
                    cmd = EDGECC + [model, "--target", target, "--sram", "4M", "-o",
                                    os.path.join(tmp, "out")]
                    rows.append(dict(what=f"compile {name} {kind} {target}",
                                     seconds=wall(cmd, args.repeat), budget=COMPILE_BUDGET))
    imports = {m: import_cost(m) for m in ("onnx", "ml_dtypes", "numpy", "jinja2", "onnxruntime")}
    if args.json:
        print(json.dumps(dict(rows=rows, imports=imports), indent=1))
        return 0
    print(f"{'':40} {'seconds':>8} {'budget':>7} {'ratio':>6}")
    for r in rows:
        print(f"{r['what']:40} {r['seconds']:8.2f} {r['budget']:7.1f} "
              f"{r['seconds'] / r['budget']:6.2f}")
    print("import cost (s): " + ", ".join(f"{m} {s:.2f}" for m, s in imports.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
