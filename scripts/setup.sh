#!/usr/bin/env bash
# Install what edgecc needs on Debian (as root) into ./.venv.
#   bash scripts/setup.sh          runtime deps (compile + verify), the Cortex-M toolchain
#                                  (arm-none-eabi-gcc, newlib, qemu-system-arm; cmake and make
#                                  for the emitted firmware project, as the README builds it)
#                                  and the aarch64 one (aarch64-linux-gnu-gcc, its libc,
#                                  qemu-user)
#   bash scripts/setup.sh test     also the test deps (pytest, torch CPU, scikit-learn),
#                                  at the versions in scripts/constraints-test.txt
# System packages come from apt-get, only when missing (so non-root runs work when they are
# already installed).
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing $*; install them (apt-get install $*) or run as root" >&2
        exit 1
    fi
    if [ -z "${EDGECC_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        export EDGECC_APT_UPDATED=1
    fi
    echo "setup: apt-get install $*" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v gcc >/dev/null 2>&1 || apt_install gcc libc6-dev
command -v python3 >/dev/null 2>&1 || apt_install python3
# Cortex-M: cross compiler, its C library (newlib, nano.specs) and the emulated boards.
if ! command -v arm-none-eabi-gcc >/dev/null 2>&1 \
        || [ ! -f "$(arm-none-eabi-gcc -print-file-name=libc_nano.a)" ] \
        || ! command -v qemu-system-arm >/dev/null 2>&1; then
    apt_install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
fi
# aarch64 (Cortex-A): cross compiler and C library, and user-mode QEMU (qemu-aarch64 runs
# the programs and counts their instructions; the tests also run x86-avx2 programs under
# qemu-x86_64 -cpu Westmere, a CPU without AVX2, to check their run function refuses it).
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 \
        || [ ! -f /usr/aarch64-linux-gnu/lib/libc.a ] \
        || ! command -v qemu-aarch64 >/dev/null 2>&1 || ! command -v qemu-x86_64 >/dev/null 2>&1; then
    apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
fi
# The emitted firmware project (--emit-project): CMake, whose default generator needs make.
if ! command -v cmake >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    apt_install cmake make
fi
if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        apt_install python3-venv
        python3 -m venv .venv
    fi
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if [ "$extra" = "test" ]; then
    # Pinned: the versions the suite last passed with (onnx, onnxruntime, torch and the rest).
    .venv/bin/python -m pip install -q -c scripts/constraints-test.txt -e ".[test]"
else
    .venv/bin/python -m pip install -q -e .
fi
echo "setup: edgecc installed in $(pwd)/.venv (activate: . .venv/bin/activate)"
