#!/usr/bin/env bash
# Install what edgecc needs on Debian (as root) into ./.venv.
#   bash scripts/setup.sh          runtime deps (compile + verify)
#   bash scripts/setup.sh test     also the test deps (pytest, torch CPU, scikit-learn)
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
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v gcc >/dev/null 2>&1 || apt_install gcc libc6-dev
command -v python3 >/dev/null 2>&1 || apt_install python3
if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        apt_install python3-venv
        python3 -m venv .venv
    fi
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if [ "$extra" = "test" ]; then
    .venv/bin/python -m pip install -q -e ".[test]"
else
    .venv/bin/python -m pip install -q -e .
fi
echo "setup: edgecc installed in $(pwd)/.venv (activate: . .venv/bin/activate)"
