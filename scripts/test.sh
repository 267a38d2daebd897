#!/usr/bin/env bash
# The whole test suite, slow end-to-end tests included (installs first when needed).
# pytest's exit code is passed through: 5 ("no tests ran") fails like any other non-zero code.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import ganbench, torch, mlflow, pytest, ray, importlinter, pyflakes" 2>/dev/null || ! .venv/bin/ganbench data verify >/dev/null 2>&1; then
  bash scripts/setup.sh
fi
exec .venv/bin/python -m pytest -m "slow or not slow" "$@"
