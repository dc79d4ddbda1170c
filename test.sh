#!/usr/bin/env bash
# Installs the test extras and runs everything CI runs: lint, types, the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
python="$(command -v python3 || command -v python)"  # a clean Debian has only python3
"$python" -m pip install -q -e '.[test]'
"$python" -m ruff check .
"$python" -m ruff format --check .
PYTHON="$python" tools/typecheck.sh
SCALER_CHECKOV="$(PYTHON="$python" tools/checkov.sh)"  # terraform/aws's policy check, installed once
export SCALER_CHECKOV
# Two pytest processes, each taking whole files (module fixtures such as the sshd hosts are made once):
# most tests wait on real processes, so two cores run the suite in about half the time. Tests marked
# `alone` (the shared-memory sweep, which any scheduler starting on the host may do) run after, by themselves.
# (pytest exits 5 when a selection has no test, e.g. ./test.sh tests/test_one_file.py: not a failure)
"$python" -m pytest -q -n 2 --dist loadfile -m "not alone" "$@" || [ $? -eq 5 ]
"$python" -m pytest -q -m alone "$@" || [ $? -eq 5 ]
