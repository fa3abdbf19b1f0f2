"""Patch-based execution on Cortex-M7 (issue 12, acceptance 4): MobileNetV2-0.35@144 int8 under
--sram 256K, arena and executed instructions against its own layer-by-layer build.

    python bench/patch_m7.py [--model q.onnx] [--json]

The model: tests/model_zoo.py's mobilenetv2_035 (seeded random weights; needs torch) quantized
by onnxruntime's quantize_static as bench/memory.py does (QDQ, per-channel int8 weights, int8
activations, 8 seeded N(0, 1) calibration inputs), or ``--model``, an int8 QDQ file of it.
Built twice for cortex-m7 from the same file: layer by layer (`compile_model(q, "cortex-m7")`,
which fits the board's 320K) and with `sram=256K` (edgecc patches its first layers because the
layer-by-layer arena does not fit). Both firmwares run once under qemu-system-arm with
-icount shift=0 on the input np.random.default_rng(1).standard_normal((1, 3, 144, 144)), in
this same run. Printed: arena of each (kernel scratch included), executed instructions of
each and their ratio, whether the two firmwares' outputs are bit-identical with each other and
with their host builds, and the targets: arena <= 64 KiB, ratio <= 1.10.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

KIB = 1024
SRAM = 256 * KIB
ARENA_TARGET = 64 * KIB
RATIO_TARGET = 1.10
INPUT_SHAPE = (1, 3, 144, 144)


def measure(path: str, workdir: str) -> dict:
    from edgecc.compiler.driver import compile_model
    from edgecc.runner import build_host, run_host
    from edgecc.targets.cortex_m import build_firmware, run_qemu
    x = np.random.default_rng(1).standard_normal(INPUT_SHAPE).astype(np.float32)
    row = {}
    for key, sram in (("layer_by_layer", None), ("patched", SRAM)):
        result = compile_model(path, "cortex-m7", sram=sram)
        host = run_host(build_host(result.files, result.graph, "model",
                                   os.path.join(workdir, f"h_{key}")), [x])[0]
        fw = build_firmware(result.files, os.path.join(workdir, f"fw_{key}"), "cortex-m7",
                            sram=sram, flash=4096 * KIB, input_arrays=[x])
        run = run_qemu(fw.elf, "cortex-m7", timeout=900)
        row[key] = dict(arena=result.plan.arena_bytes, instructions=run.instructions,
                        flash=fw.sizes["flash"], plan=result.patch.describe() if result.patch
                        else None, fw_equals_host=bool(len(run.outputs) == 1 and np.array_equal(
                            run.outputs[0], host)), out=run.outputs[0] if run.outputs else None)
    lbl, pt = row["layer_by_layer"], row["patched"]
    same = lbl["out"] is not None and pt["out"] is not None and np.array_equal(lbl["out"],
                                                                             pt["out"])
    for r in (lbl, pt):
        del r["out"]
    ratio = pt["instructions"] / lbl["instructions"]
    return dict(row, ratio=ratio, outputs_identical=bool(same),
                arena_ok=pt["arena"] <= ARENA_TARGET, ratio_ok=ratio <= RATIO_TARGET)


def format_report(r: dict) -> str:
    lbl, pt = r["layer_by_layer"], r["patched"]
    ok = "OK" if r["arena_ok"] and r["ratio_ok"] and r["outputs_identical"] else "MISSED"
    return "\n".join([
        "MobileNetV2-0.35@144 int8, cortex-m7 (QEMU mps2-an500, -icount shift=0)",
        f"  layer by layer : arena {lbl['arena']:>9,} B  instructions {lbl['instructions']:>12,}"
        f"  fw == host {lbl['fw_equals_host']}",
        f"  --sram 256K    : arena {pt['arena']:>9,} B  instructions {pt['instructions']:>12,}"
        f"  fw == host {pt['fw_equals_host']}",
        f"  plan: {pt['plan']}",
        f"  arena {pt['arena']:,} B vs 64 KiB ({ARENA_TARGET:,} B): "
        f"{'within' if r['arena_ok'] else 'over'}; instructions patched / layer by layer "
        f"{r['ratio']:.4f} vs {RATIO_TARGET:.2f}: {'within' if r['ratio_ok'] else 'over'}; "
        f"outputs bit-identical: {r['outputs_identical']}  [{ok}]"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="int8 QDQ ONNX of mobilenetv2_035 (default: build one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            path = args.model
        else:
            from memory import quantized_model
            path = quantized_model("mobilenetv2_035", tmp)
        report = measure(path, tmp)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
