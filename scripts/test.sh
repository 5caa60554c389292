#!/usr/bin/env bash
# The README's test command: set up .venv (pinned), lint with ruff, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NETINV_DATA="${NETINV_DATA:-$(cd .. && pwd)/shared/data}"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
