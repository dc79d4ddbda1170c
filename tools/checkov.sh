#!/usr/bin/env bash
# Installs checkov (pinned) into a venv of its own, once per version and interpreter, and prints its path.
# It is kept apart from the test extra: its exact pins would make pip backtrack Ray below the version the
# compat layer is checked against. test.sh runs this before the suite and hands the path to
# tests/test_terraform_aws.py in $SCALER_CHECKOV, so no test installs anything.
set -euo pipefail
python="${PYTHON:-$(command -v python3 || command -v python)}"
version="3.3.30"  # a new release may bring new checks: raise it on purpose, not by surprise
cache="${XDG_CACHE_HOME:-$HOME/.cache}/scaler"
venv="$cache/checkov-$version"
made_by="checkov==$version by $("$python" -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')"
if [ ! -x "$venv/bin/checkov" ] || [ "$(cat "$venv/installed" 2>/dev/null)" != "$made_by" ]; then
    mkdir -p "$cache"
    "$python" -m venv --clear "$venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "checkov==$version" >&2
    printf '%s' "$made_by" > "$venv/installed"
fi
printf '%s\n' "$venv/bin/checkov"
