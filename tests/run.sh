#!/usr/bin/env bash
# The project's test command: make or check the environment, then run the test suite.
#   tests/run.sh [pytest arguments]
# LM2AM_VENV names the environment (default: .venv in the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${LM2AM_VENV:-$PWD/.venv}
LM2AM_VENV=$venv utils/setup_env.sh
exec "$venv/bin/python" -m pytest -q "$@"
