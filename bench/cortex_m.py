"""Cortex-M benchmark: int8 models with CMSIS-NN calls on QEMU's Cortex-M boards.

    python bench/cortex_m.py [--models resnet8,dscnn,...] [--target cortex-m7]
                             [--kernels edgecc|cmsis-nn] [--json]

Models: the five reference architectures of tests/model_zoo.py (exported from torch with
seeded random weights into a temporary folder; needs torch) and the bundled digits CNN
(examples/digits/digits_cnn.onnx). Each is quantized to int8 by edgecc's PTQ (per-channel
int8 weights, per-tensor int8 activations), calibrated on 8 seeded N(0, 1) random inputs
(the digits CNN on its bundled calibration images, examples/digits/calib.npz), then built
twice from the same quantized graph:

* for --target (default cortex-m7): NHWC layout, edgecc's generated Cortex-M kernels for the
  convolutions they take (edgecc/backends/cortex_m/), CMSIS-NN calls, linked with edgecc's
  CMSIS-NN-compatible sources (--kernels cmsis-nn: CMSIS-NN calls only);
* for the `generic` target: edgecc's portable int8 C kernels, on the same board.

Each build is linked into the firmware that `edgecc --emit-project` describes (the model, a
main that runs one inference on a bundled sample input, startup code, semihosting) with
arm-none-eabi-gcc at FIRMWARE_OPT (edgecc/targets/cortex_m.py, -O2: the level of `edgecc
verify` and of the emitted CMake project too), and run once under qemu-system-arm. Columns:

* MACs: multiply-accumulates of the graph (`edgecc analyze`).
* flash: .text + .data of the ELF (`arm-none-eabi-size`): code, weights, requantization
  tables, the bundled sample input (float32, in .rodata; `sample_input_flash` in --json) and
  the .data initializers.
* SRAM: .data + .bss of the ELF. That is the model's static activation arena (including
  CMSIS-NN scratch buffers; also shown alone as `arena`), the 8 KB stack reservation (a
  NOLOAD section that `size` counts in .bss), main's output buffers, and the board support's
  statics (console buffer). The model's float input is read in place from flash.
* instructions: executed instructions of one inference (main brackets the model call with
  SysTick reads). QEMU runs with `-icount shift=0`, so its virtual clock advances exactly
  1 ns per executed instruction, and SysTick counts the board's CPU clock: 25 MHz on the MPS2
  boards (mps2-an500 for cortex-m7, mps2-an386 for cortex-m4), so 1 tick = 40 instructions,
  and 32 MHz on mps3-an547 (cortex-m55), 1 tick = 31.25 instructions; the 24-bit counter's
  wraps are counted in its interrupt. Resolution: one tick. The count is deterministic for
  a given input (the sample). It is instructions, not cycles: QEMU models no pipeline, caches
  or wait states. See edgecc/targets/cortex_m.py for how the tick rate was measured.
* instr/MAC: instructions / MACs.
* vs generic: instructions of the target build / instructions of the generic build. The
  target build's CMSIS-NN calls link edgecc's CMSIS-NN-compatible sources (portable C99),
  not Arm's optimized library.
* same out: whether both builds' outputs are bit-identical (both follow the TFLite int8
  arithmetic).

Models are built with the board's whole memory as the budget (4 MB / 4 MB on the MPS2 boards,
512 KB / 512 KB on mps3-an547); a `*` marks flash or SRAM over the target's default budget
(cortex-m7: 1 MB / 320 KB). A model that does not fit the board at all gets a one-line row.
"""
import argparse
import json
import os
import sys
import tempfile
import textwrap
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from edgecc.analyze import analysis  # noqa: E402
from edgecc.compiler.driver import compile_model  # noqa: E402
from edgecc.errors import EdgeccError  # noqa: E402
from edgecc.targets.cortex_m import (BOARDS, DEFAULT_STACK, FIRMWARE_OPT,  # noqa: E402
                                     build_firmware, get_board, run_qemu)
from edgecc.targets.registry import kernel_set_names  # noqa: E402

ZOO = ["resnet8", "dscnn", "mobilenetv1_025", "autoencoder", "mobilenetv2_035"]
ALL = ZOO + ["digits"]
DIGITS_DIR = os.path.join(ROOT, "examples", "digits")
CALIB_SAMPLES = 8


def prepare(name, work):
    """(onnx path, calibration .npz path, sample input) for one model."""
    if name == "digits":
        calib = os.path.join(DIGITS_DIR, "calib.npz")
        sample = np.load(os.path.join(DIGITS_DIR, "heldout.npz"))["images"][:1]
        return os.path.join(DIGITS_DIR, "digits_cnn.onnx"), calib, sample.astype(np.float32)
    try:
        import model_zoo
    except ImportError as e:
        raise SystemExit(f"bench: {name} is built with torch ({e}); install the test "
                         "dependencies (bash scripts/setup.sh test) or use --models digits")
    path = model_zoo.build(name, os.path.join(work, f"{name}.onnx"), seed=0)
    shape = model_zoo.INPUT_SHAPES[name]
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((CALIB_SAMPLES,) + shape[1:]).astype(np.float32)
    calib = os.path.join(work, f"{name}_calib.npz")
    np.savez(calib, input=samples)
    return path, calib, samples[:1]


def build_and_run(path, calib, sample, compile_target, board, work, timeout,
                  kernels="edgecc"):
    result = compile_model(path, compile_target, prefix="model", quantize="int8", calib=calib,
                           sram=board.sram_max, kernels=kernels)
    info = analysis(result)["totals"]
    fw = build_firmware(result.files, os.path.join(work, compile_target), board.target,
                        sram=board.sram_max, flash=board.flash_max, input_arrays=[sample])
    run = run_qemu(fw.elf, board.target, timeout=timeout)
    return dict(macs=info["macs"], arena=result.plan.arena_bytes, flash=fw.sizes["flash"],
                sram=fw.sizes["sram"], text=fw.sizes["text"], data=fw.sizes["data"],
                bss=fw.sizes["bss"], stack_used=run.stack_bytes, ticks=run.ticks,
                instructions=run.instructions, outputs=run.outputs)


def bench_model(name, target, timeout, keep, kernels="edgecc"):
    board = get_board(target)
    row = dict(model=name, target=target, kernels=kernels, board=board.machine)
    with tempfile.TemporaryDirectory(prefix=f"bench_{name}_") as tmp:
        work = os.path.join(keep, name) if keep else tmp
        os.makedirs(work, exist_ok=True)
        t0 = time.perf_counter()
        try:
            path, calib, sample = prepare(name, work)
            cm = build_and_run(path, calib, sample, target, board, work, timeout, kernels)
            gen = build_and_run(path, calib, sample, "generic", board, work, timeout)
        except EdgeccError as e:
            row["error"] = str(e).splitlines()[0]
            return row
        same = (len(cm["outputs"]) == len(gen["outputs"]) and all(
            a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            for a, b in zip(cm["outputs"], gen["outputs"])))
        row.update({k: v for k, v in cm.items() if k != "outputs"})
        row.update(
            instr_per_mac=cm["instructions"] / cm["macs"] if cm["macs"] else None,
            generic={k: v for k, v in gen.items() if k not in ("outputs", "macs")},
            ratio_vs_generic=cm["instructions"] / gen["instructions"],
            same_outputs=same, stack_reserved=DEFAULT_STACK,
            sample_input_flash=int(sample.nbytes),
            over_default_budget=[what for what, used, budget in
                                 (("flash", cm["flash"], board.default_flash),
                                  ("sram", cm["sram"], board.default_sram)) if used > budget],
            seconds=round(time.perf_counter() - t0, 1))
    return row


def table(rows, target, kernels="edgecc"):
    board = get_board(target)
    head = (f"{'model':<16} {'MACs':>11} {'flash B':>10} {'SRAM B':>10} {'arena B':>9} "
            f"{'instructions':>14} {'instr/MAC':>9} {'generic instr':>14} {'vs generic':>10} "
            f"{'same out':>8}")
    intro = (f"int8 (edgecc PTQ) on {board.machine} ({target}, --kernels {kernels}): edgecc's "
             f"Cortex-M kernels unless cmsis-nn, CMSIS-NN calls (edgecc's cmsis_nn/ sources) "
             f"for the rest, vs the generic target's portable int8 kernels on the same "
             f"board, built at {FIRMWARE_OPT}. instructions: executed per inference, QEMU "
             f"-icount shift=0, 1 SysTick tick = {1000 / board.cpu_mhz:g} instructions. flash = .text + .data; SRAM = "
             f".data + .bss = arena + {DEFAULT_STACK // 1024} KB stack reservation + output "
             f"buffers + board statics.")
    lines = textwrap.wrap(intro, len(head)) + ["", head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<16} does not fit: {r['error']}")
            continue
        over = r["over_default_budget"]
        flash = f"{r['flash']:,}" + ("*" if "flash" in over else "")
        sram = f"{r['sram']:,}" + ("*" if "sram" in over else "")
        lines.append(
            f"{r['model']:<16} {r['macs']:>11,} {flash:>10} {sram:>10} {r['arena']:>9,} "
            f"{r['instructions']:>14,} {r['instr_per_mac']:>9.2f} "
            f"{r['generic']['instructions']:>14,} {r['ratio_vs_generic']:>10.3f} "
            f"{'yes' if r['same_outputs'] else 'no':>8}")
    if any(r.get("over_default_budget") for r in rows):
        lines.append(f"* over {target}'s default budget ({board.default_flash:,} B flash, "
                     f"{board.default_sram:,} B SRAM); built with the board's "
                     f"{board.flash_max:,} B / {board.sram_max:,} B")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ALL),
                    help=f"comma-separated, from {','.join(ALL)} (default: all)")
    ap.add_argument("--target", default="cortex-m7", choices=sorted(BOARDS))
    ap.add_argument("--kernels", default="edgecc", choices=kernel_set_names(),
                    help="the target's kernel set (default edgecc; cmsis-nn: CMSIS-NN calls only)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds per QEMU run (default 1800)")
    ap.add_argument("--keep", metavar="DIR", help="keep the models and firmware in DIR")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL]
    if unknown or not names:
        ap.error(f"unknown model(s) {', '.join(unknown) or '(none)'}; choose from "
                 f"{', '.join(ALL)}")
    rows = []
    for name in names:
        print(f"bench: {name} on {args.target} ...", file=sys.stderr, flush=True)
        rows.append(bench_model(name, args.target, args.timeout, args.keep, args.kernels))
    print(json.dumps(rows, indent=2) if args.json else table(rows, args.target, args.kernels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
