#!/usr/bin/env bash
# The main job from a fresh clone: install, compile the bundled digits CNN to C, build it
# with gcc, classify the bundled held-out images, and show the per-layer analysis.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/digits/demo.py "$@"
