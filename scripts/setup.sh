#!/usr/bin/env bash
# Create .venv with the pinned versions (constraints.txt) and install this project into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# A first install unpacks torch and its CUDA libraries: .venv ends up near 6.5 GiB, and pip
# needs room to unpack beside it. Say so before starting rather than fail minutes in on a
# full disk. NETINV_SETUP_MIN_FREE_GB=0 turns the check off.
MIN_FREE_GB="${NETINV_SETUP_MIN_FREE_GB:-8}"
if ! [[ "$MIN_FREE_GB" =~ ^[0-9]+$ ]]; then
    echo "setup.sh: NETINV_SETUP_MIN_FREE_GB=$MIN_FREE_GB is not a whole number of GiB" >&2
    exit 2
fi
# Whether torch is installed, asked without importing it (an import costs seconds on every run).
if ! { [ -x .venv/bin/python ] && .venv/bin/python -c \
        "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; }; then
    for dir in . "${TMPDIR:-/tmp}"; do
        free_gb=$(( $(df -Pk "$dir" | awk 'NR == 2 {print $4}') / 1048576 ))
        if (( free_gb < MIN_FREE_GB )); then
            echo "setup.sh: $(cd "$dir" && pwd) has ${free_gb} GiB free; a first install needs" \
                 "about ${MIN_FREE_GB} GiB (set NETINV_SETUP_MIN_FREE_GB to change)" >&2
            exit 2
        fi
    done
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade "pip>=24"
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
