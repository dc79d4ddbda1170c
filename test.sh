#!/usr/bin/env bash
# Installs the test extras and runs everything CI runs: lint, types, the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -q -e '.[test]'
python -m ruff check .
python -m ruff format --check .
tools/typecheck.sh
python -m pytest -q "$@"
