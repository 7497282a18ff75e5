#!/usr/bin/env bash
# The project's test command: make or check the environment, then run the test suite.
#   tests/run.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
utils/setup_env.sh
exec .venv/bin/python -m pytest -q "$@"
