"""Quickstart demo, in two parts.

Host: compile the bundled digits CNN with edgecc (float, generic target), build it with gcc,
classify the bundled held-out images, compare with onnxruntime, print the analysis table and
`edgecc verify`.

Cortex-M7: quantize the same model to int8 with edgecc's PTQ (calibrated on calib.npz, 100
training images), compile it for cortex-m7 (CMSIS-NN calls; a CMake firmware project is
emitted too), link it with board_main.c into one firmware that classifies all held-out
images, run it under qemu-system-arm on the mps2-an500 board, check its logits bit for bit
against a host build of the same C, and print the predictions and the memory report (flash,
SRAM, executed instructions per inference)."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(os.getcwd(), "build")
OUT = os.path.join(BUILD, "digits")
MODEL = os.path.join(HERE, "digits_cnn.onnx")
HELDOUT = os.path.join(HERE, "heldout.npz")
CALIB = os.path.join(HERE, "calib.npz")
TARGET = "cortex-m7"


def rel(path):
    return os.path.relpath(path) if os.path.isabs(path) else path


def sh(*cmd):
    shown = ["edgecc"] + list(cmd[3:]) if cmd[0] == sys.executable else list(cmd)
    print("$ " + " ".join(rel(c) for c in shown), flush=True)
    subprocess.run(cmd, check=True)


def host_part(edgecc, images, labels):
    """Float model on the host. Returns (edgecc's predictions, all agree with onnxruntime)."""
    sh(*edgecc, MODEL, "--target", "generic", "--name", "digits", "-o", OUT)
    print("generated:", ", ".join(sorted(os.listdir(OUT))))
    exe = os.path.join(OUT, "digits_demo")
    sh("gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", OUT,
       os.path.join(HERE, "demo_main.c"), os.path.join(OUT, "digits.c"),
       os.path.join(OUT, "digits_weights.c"), "-lm", "-o", exe)

    images_bin = os.path.join(OUT, "heldout_images.bin")
    images.tofile(images_bin)
    print(f"$ {rel(exe)} {rel(images_bin)}")
    lines = subprocess.run([exe, images_bin], check=True, capture_output=True,
                           text=True).stdout.split("\n")
    preds = [int(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("image")]

    import onnxruntime as ort
    sess = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    ort_preds = [int(np.argmax(sess.run(None, {"image": img[None]})[0])) for img in images]
    print(f"\n{'image':>5} {'label':>5} {'edgecc':>6} {'onnxruntime':>11}")
    for i, (lab, p, q) in enumerate(zip(labels, preds, ort_preds)):
        print(f"{i:>5} {int(lab):>5} {p:>6} {q:>11}")
    correct = sum(int(p == lab) for p, lab in zip(preds, labels))
    agree = sum(int(p == q) for p, q in zip(preds, ort_preds))
    print(f"\nedgecc: {correct}/{len(labels)} correct; agrees with onnxruntime on "
          f"{agree}/{len(labels)}\n")
    sh(*edgecc, "analyze", MODEL)
    sh(*edgecc, "verify", MODEL, "--inputs", HELDOUT)
    return preds, agree == len(labels)


def images_header(images, labels):
    """heldout_images.h for board_main.c: the images as exact float literals, and labels."""
    from edgecc.backends.codegen import c_literal
    from edgecc.ir import DType
    rows = []
    for img in images:
        vals = [c_literal(v, DType.FLOAT32) for v in img.reshape(-1)]
        rows.append("    {\n" + "".join("        " + ", ".join(vals[i:i + 8]) + ",\n"
                                        for i in range(0, len(vals), 8)) + "    },")
    return ("/* heldout_images.h: the held-out digits (pixels / 16), written by demo.py. */\n"
            "#ifndef HELDOUT_IMAGES_H\n#define HELDOUT_IMAGES_H\n\n#include <stdint.h>\n\n"
            '#include "digits.h"\n\n'
            f"#define HELDOUT_COUNT {len(images)}u\n\n"
            "static const float heldout_images[HELDOUT_COUNT][DIGITS_INPUT0_SIZE] = {\n"
            + "\n".join(rows) + "\n};\n\n"
            "static const uint8_t heldout_labels[HELDOUT_COUNT] = {\n    "
            + ", ".join(str(int(v)) for v in labels) + "\n};\n\n#endif\n")


def missing_tools():
    return [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]


def cortex_m_part(edgecc, images, labels, float_preds):
    """int8 on the Cortex-M7 board under QEMU. Returns True when the board's logits are
    bit-exact with the host build of the same generated C."""
    from edgecc.analyze import analysis
    from edgecc.compiler.driver import compile_model
    from edgecc.runner import build_host, run_host
    from edgecc.targets.cortex_m import (DEFAULT_STACK, build_program, get_board,
                                         qemu_command, run_qemu)
    board = get_board(TARGET)
    print(f"\n== int8 on a Cortex-M7: QEMU's {board.machine} board ==\n")
    out = os.path.join(BUILD, "digits_m7")
    sh(*edgecc, MODEL, "--target", TARGET, "--quantize", "int8", "--calib", CALIB,
       "--name", "digits", "-o", out, "--emit-project", os.path.join(out, "project"))
    # The same compilation in-process (the output is deterministic), for the sources and the
    # graph; board_main.c replaces the project's single-sample main.c.
    result = compile_model(MODEL, TARGET, prefix="digits", quantize="int8", calib=CALIB)
    totals = analysis(result)["totals"]
    # build_program compiles with -I. only: the CMSIS-NN-compatible sources (cmsis_nn/*,
    # which include each other by bare name) go next to the model's.
    sources = {os.path.basename(name): text for name, text in result.files.items()}
    with open(os.path.join(HERE, "board_main.c")) as f:
        sources["board_main.c"] = f.read()
    sources["heldout_images.h"] = images_header(images, labels)
    fw_dir = os.path.join(out, "firmware")
    print(f"$ arm-none-eabi-gcc {' '.join(board.cpu_flags)} -O2 -o {rel(fw_dir)}/firmware.elf "
          f"board_main.c digits*.c arm_*.c + board support   (edgecc's build_program)",
          flush=True)
    fw = build_program(sources, fw_dir, TARGET)
    print("$ " + " ".join(qemu_command(board)) + f" -kernel {rel(fw.elf)}", flush=True)
    run = run_qemu(fw.elf, TARGET)
    found = re.findall(r"^image (\d+) label (\d+) predicted (\d+) instructions (\d+) "
                       r"logits ([0-9a-f]+)$", run.log, re.M)
    if len(found) != len(images):
        print(run.log, file=sys.stderr)
        raise SystemExit(f"demo: expected {len(images)} results from the board, "
                         f"got {len(found)}")

    host = build_host(result.files, result.graph, "digits", os.path.join(out, "host"))
    exact = 0
    for (i, _, _, _, hexbytes), img in zip(found, images):
        want = run_host(host, [img[None]])[0]
        exact += int(bytes.fromhex(hexbytes) == want.astype(np.float32).tobytes())
    preds = [int(p) for _, _, p, _, _ in found]
    instr = sorted({int(n) for _, _, _, n, _ in found})

    print(f"\n{'image':>5} {'label':>5} {'float (host)':>12} {'int8 (cortex-m7)':>16}")
    for i, (lab, fp, p) in enumerate(zip(labels, float_preds, preds)):
        print(f"{i:>5} {int(lab):>5} {fp:>12} {p:>16}")
    correct = sum(int(p == lab) for p, lab in zip(preds, labels))
    same = sum(int(p == q) for p, q in zip(preds, float_preds))
    print(f"\ncortex-m7 int8: {correct}/{len(labels)} correct; same class as the float model "
          f"on {same}/{len(labels)}; logits bit-exact with the host (gcc) build of the same "
          f"C on {exact}/{len(labels)}")

    sizes, arena = fw.sizes, result.plan.arena_bytes
    weights = totals["weights_flash_bytes"] + totals["kernel_tables_flash_bytes"]
    image_bytes = int(images.astype(np.float32).nbytes)
    span = f"{instr[0]:,}" if len(instr) == 1 else f"{instr[0]:,} to {instr[-1]:,}"
    print(f"\nmemory report: {TARGET} on {board.machine} (budget {board.default_flash:,} B "
          f"flash / {board.default_sram:,} B SRAM: the {TARGET} default, --flash / --sram)")
    rows = [("flash", sizes["flash"], ".text + .data of firmware.elf"),
            ("", weights, "int8 weights, biases and requantization tables"),
            ("", image_bytes, f"the {len(images)} test images (float32)"),
            ("", sizes["flash"] - weights - image_bytes,
             "code (model, CMSIS-NN kernels, board support) and other constants"),
            ("SRAM", sizes["sram"], ".data + .bss of firmware.elf"),
            ("", arena, "activation arena (including CMSIS-NN scratch)"),
            ("", DEFAULT_STACK, f"stack reservation (peak use {run.stack_bytes:,} B)"),
            ("", sizes["sram"] - arena - DEFAULT_STACK,
             "other static data (logits buffer, console buffer)")]
    for what, n, note in rows:
        print(f"  {what:<6}{n:>9,} B   {note}" if what else f"  {'':<6}{n:>9,} B     - {note}")
    print(f"  executed instructions per inference: {span} ({totals['macs']:,} MACs: "
          f"{instr[0] / totals['macs']:.1f} per MAC)\n"
          f"    counted with SysTick under QEMU -icount shift=0: 1 tick = "
          f"{1000 / board.cpu_mhz:g} instructions")
    print(f"\nThe CMake project for your own firmware: {rel(os.path.join(out, 'project'))}/ "
          "(see README.md, Cortex-M)")
    return exact == len(images)


def main():
    edgecc = [sys.executable, "-m", "edgecc"]
    data = np.load(HELDOUT)
    images, labels = data["images"].astype(np.float32), data["labels"]
    float_preds, host_ok = host_part(edgecc, images, labels)
    missing = missing_tools()
    if missing:
        print(f"\ndemo: skipping the Cortex-M7 part: {' and '.join(missing)} not found "
              "(bash scripts/setup.sh installs them)", file=sys.stderr)
        return 1
    board_ok = cortex_m_part(edgecc, images, labels, float_preds)
    return 0 if host_ok and board_ok else 1


if __name__ == "__main__":
    sys.exit(main())
