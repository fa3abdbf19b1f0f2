#!/usr/bin/env bash
# The main job from a fresh clone: install (setup.sh: Python deps, gcc, arm-none-eabi-gcc,
# qemu-system-arm), compile the bundled digits CNN to C, build it with gcc, classify the
# bundled held-out images, and show the per-layer analysis; then quantize it to int8, compile
# it for cortex-m7, run it under QEMU (mps2-an500) and print its predictions and the memory
# report (examples/digits/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/digits/demo.py "$@"
