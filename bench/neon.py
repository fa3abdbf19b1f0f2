"""aarch64 NEON benchmark (issue 14): executed instructions per inference and per MAC of the
aarch64-neon targets against edgecc's portable kernels compiled for aarch64, under qemu-aarch64.

    python bench/neon.py [--models digits,dscnn,...] [--precisions int8,float] [--json]

Models: tests/model_zoo.py's reference architectures (seeded random weights; needs torch) and
the bundled digits CNN (bench/models.py), float32 and int8 (onnxruntime's quantize_static, QDQ,
per-channel int8 weights, calibrated on 8 inputs). The input is the first calibration input.

Rows, per model and precision: the model compiled for aarch64-neon, aarch64-neon-dotprod and
generic (the portable kernels), each built with aarch64-linux-gnu-gcc -static -O3 and its
target's -march (generic: -march=armv8-a; -O3 auto-vectorizes), run under qemu-aarch64 (-cpu
max for dotprod) with edgecc's instruction-counting plugin (targets/qemu_user.py): executed
instructions of one inference (a run doing 2 inferences minus one doing 1) and per MAC (the
graph's MACs, `edgecc analyze`), and the portable build's count over the row's. Check: int8
outputs bit-identical with the portable build's, float within 1e-4 of its largest output.
The run exits 1 when a check fails.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from edgecc.analyze import analysis  # noqa: E402
from edgecc.compiler.driver import compile_model  # noqa: E402
from edgecc.runner import build_host, run_host  # noqa: E402
from edgecc.targets.registry import get_target  # noqa: E402
from edgecc.verify.host import instructions_per_inference  # noqa: E402
from models import ALL, float_model, ort_qdq  # noqa: E402

TARGETS = ("aarch64-neon", "aarch64-neon-dotprod")
PORTABLE = "generic"
OPT = "-O3"


def measure(path, target, record, x, work, tag):
    """(instructions per inference, MACs, outputs) of ``path`` compiled for ``target`` and
    built and run as ``record`` (compiler, flags, QEMU) says."""
    result = compile_model(path, target, prefix="model")
    build = build_host(result.files, result.graph, "model", os.path.join(work, tag), opt=OPT,
                       **record.build_options())
    outs = run_host(build, [x])
    return (instructions_per_inference(build, [x], record), analysis(result)["totals"]["macs"],
            outs)


def rows_for(name, precision, work):
    float_path, _, samples = float_model(name, work)
    path = float_path if precision == "float" else ort_qdq(float_path, samples, work, name)
    x = samples[0]
    # the portable kernels built like aarch64-neon (compiler, -march, QEMU)
    base, macs, want = measure(path, PORTABLE, get_target(TARGETS[0]), x, work,
                               f"{name}_{precision}_portable")
    rows = [dict(model=name, precision=precision, target="portable -O3", insns=base, macs=macs,
                 per_mac=base / macs, speedup=1.0, check="-", ok=True)]
    for target in TARGETS:
        n, _, got = measure(path, target, get_target(target), x, work,
                            f"{name}_{precision}_{target}")
        if precision == "int8":
            ok = all(np.array_equal(a, b) for a, b in zip(got, want))
            check = "bit-exact" if ok else "DIFFERS"
        else:
            err = max(float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-30)
                      for a, b in zip(got, want))
            ok, check = err <= 1e-4, f"{err:.1e}"
        rows.append(dict(model=name, precision=precision, target=target, insns=n, macs=macs,
                         per_mac=n / macs, speedup=base / n, check=check, ok=ok))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="digits,dscnn")
    ap.add_argument("--precisions", default="int8,float")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in ALL]
    if unknown:
        raise SystemExit(f"bench: unknown model(s) {unknown}; known: {', '.join(ALL)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecc-neon-") as work:
        for name in models:
            for precision in args.precisions.split(","):
                rows += rows_for(name, precision, work)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'model':<16} {'prec':<6} {'target':<22} {'insns/inference':>16} {'MACs':>10} "
              f"{'insns/MAC':>10} {'portable/this':>14}  check")
        for r in rows:
            print(f"{r['model']:<16} {r['precision']:<6} {r['target']:<22} {r['insns']:>16,} "
                  f"{r['macs']:>10,} {r['per_mac']:>10.3f} {r['speedup']:>13.2f}x  {r['check']}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
