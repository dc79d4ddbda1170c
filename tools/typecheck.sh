#!/usr/bin/env bash
# mypy --strict over the package as installed: adapters/ is scaler.adapters (a package-dir mapping
# mypy cannot follow), so check a mirror tree of symlinks with that layout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
cp -rs "$root/scaler" "$tree/scaler"
rm -rf "$tree/scaler/adapters"
cp -rs "$root/adapters" "$tree/scaler/adapters"
find "$tree" -name __pycache__ -prune -exec rm -rf {} +
cd "$tree"
"${PYTHON:-python3}" -m mypy --config-file "$root/pyproject.toml" -p scaler
"${PYTHON:-python3}" -m mypy --config-file "$root/pyproject.toml" "$root/examples/provider/nice_provider.py"
