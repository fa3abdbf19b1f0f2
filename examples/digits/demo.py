"""Quickstart demo: compile the bundled digits CNN with edgecc, build it with gcc, classify
the bundled held-out images, compare with onnxruntime, and print the analysis table."""
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.getcwd(), "build", "digits")
MODEL = os.path.join(HERE, "digits_cnn.onnx")


def sh(*cmd):
    shown = ["edgecc"] + list(cmd[3:]) if cmd[0] == sys.executable else list(cmd)
    print("$ " + " ".join(os.path.relpath(c) if os.path.isabs(c) else c for c in shown),
          flush=True)
    subprocess.run(cmd, check=True)


def main():
    edgecc = [sys.executable, "-m", "edgecc"]
    sh(*edgecc, MODEL, "--target", "generic", "--name", "digits", "-o", OUT)
    print("generated:", ", ".join(sorted(os.listdir(OUT))))
    exe = os.path.join(OUT, "digits_demo")
    sh("gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", OUT,
       os.path.join(HERE, "demo_main.c"), os.path.join(OUT, "digits.c"),
       os.path.join(OUT, "digits_weights.c"), "-lm", "-o", exe)

    data = np.load(os.path.join(HERE, "heldout.npz"))
    images, labels = data["images"].astype(np.float32), data["labels"]
    images_bin = os.path.join(OUT, "heldout_images.bin")
    images.tofile(images_bin)
    print(f"$ {os.path.relpath(exe)} {os.path.relpath(images_bin)}")
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
    sh(*edgecc, "verify", MODEL, "--inputs", os.path.join(HERE, "heldout.npz"))
    return 0 if agree == len(labels) else 1


if __name__ == "__main__":
    sys.exit(main())
