"""Memory benchmark: activation arena of the int8 reference models, layer by layer and patched.

    python bench/memory.py [--models resnet8,dscnn,...] [--json]

Models: the reference architectures of tests/model_zoo.py (exported from torch with seeded
random weights; needs torch), quantized by onnxruntime's quantize_static (QDQ, per-channel int8
weights, int8 activations, 8 seeded N(0, 1) calibration inputs), imported by edgecc. Figures
are for the int8 graph with its input QuantizeLinear removed (the caller passes the int8
image, as on a microcontroller; `float in` is the arena of the graph as compiled, with the
float image copied into the arena). Columns:

* lower bound: largest sum of live buffers around one layer (no layer-by-layer plan can do
  better); arena: edgecc's plan; greedy: greedy by size without in-place sharing (TFLite
  Micro's planner); arena/lb and greedy/arena: the ratios.
* patched: the arena with the first stage run tile by tile (passes/patch_plan.py, one stage):
  the plan of the smallest arena among those whose halos add at most 25 % of the model's MACs
  (compile_model weighs the target's estimated instructions instead, and also tries two
  stages: --patch-overhead, bench/patch_m7.py); its stage (node
  indices), grid, the extra MACs of the halos and their share of the model's MACs; pt/ar:
  patched / arena. smallest: the smallest arena at any cost in MACs (what edgecc falls back to
  when the capped plan does not fit), its grid and extra MACs. "-": no stage to patch, or no
  plan beats layer by layer.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAC_OVERHEAD = 0.25  # the "patched" column's cap on the halos' extra MACs
sys.path.insert(0, os.path.join(ROOT, "tests"))

from edgecc.compiler.driver import optimize  # noqa: E402
from edgecc.ir.ops import op_macs  # noqa: E402
from edgecc.passes.memory_plan import greedy_by_size_arena, plan_memory  # noqa: E402
from edgecc.passes.patch_plan import plan_patches, strip_input_quantize  # noqa: E402


def quantized_model(name: str, workdir: str) -> str:
    import model_zoo
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    float_path, out_path = (os.path.join(workdir, f"{name}{s}.onnx") for s in ("", "_q"))
    model_zoo.build(name, float_path, seed=0)
    shape = model_zoo.INPUT_SHAPES[name]
    calib = np.random.default_rng(0).standard_normal((8,) + shape[1:]).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": x[None]} for x in calib])

        def get_next(self):
            return next(self.items, None)

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(float_path, out_path, Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8)
    return out_path


def measure(name: str, path: str) -> dict:
    compiled = optimize(path)
    graph = strip_input_quantize(compiled)
    plan = plan_memory(graph)
    greedy = greedy_by_size_arena(graph)
    row = dict(model=name, macs=sum(op_macs(graph, n) for n in graph.nodes),
               float_in=plan_memory(compiled).arena_bytes, lower_bound=plan.lower_bound,
               arena=plan.arena_bytes, greedy=greedy,
               arena_over_lb=plan.arena_bytes / plan.lower_bound,
               greedy_over_arena=greedy / plan.arena_bytes,
               patched=None, smallest=None)
    cap = int(MAC_OVERHEAD * row["macs"])
    for key, limit in (("patched", cap), ("smallest", None)):
        patch = plan_patches(graph, max_extra_macs=limit)
        if patch is not None:
            row[key] = dict(arena=patch.arena_after, stage=[patch.start, patch.end],
                            grid=list(patch.grid), extra_macs=patch.extra_macs,
                            over_arena=patch.arena_after / plan.arena_bytes)
    return row


def format_table(rows) -> str:
    head = (f"{'model':<16}{'MACs':>12}{'float in':>10}{'lower bd':>10}{'arena':>10}"
            f"{'greedy':>10}{'ar/lb':>7}{'gr/ar':>7}"
            f"{'patched':>10}{'pt/ar':>7}{'stage':>8}{'grid':>6}{'extra MACs':>12}{'extra':>7}"
            f"{'smallest':>10}{'grid':>6}{'extra':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        p, m = r["patched"], r["smallest"]
        cells = (f"{'-':>10}{'-':>7}{'-':>8}{'-':>6}{'-':>12}{'-':>7}" if p is None else
                 f"{p['arena']:>10,}{p['over_arena']:>7.2f}{'%d..%d' % tuple(p['stage']):>8}"
                 f"{'%dx%d' % tuple(p['grid']):>6}{p['extra_macs']:>12,}"
                 f"{100 * p['extra_macs'] / r['macs']:>6.1f}%")
        cells += (f"{'-':>10}{'-':>6}{'-':>8}" if m is None else
                  f"{m['arena']:>10,}{'%dx%d' % tuple(m['grid']):>6}"
                  f"{100 * m['extra_macs'] / r['macs']:>7.1f}%")
        lines.append(
            f"{r['model']:<16}{r['macs']:>12,}{r['float_in']:>10,}{r['lower_bound']:>10,}"
            f"{r['arena']:>10,}{r['greedy']:>10,}{r['arena_over_lb']:>7.2f}"
            f"{r['greedy_over_arena']:>7.2f}" + cells)
    return "\n".join(lines)


def main(argv=None) -> int:
    import model_zoo
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(model_zoo.NAMES))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(measure(name, quantized_model(name, tmp)))
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
