#!/usr/bin/env bash
# Create .venv (if missing) and install the core, its extras and the first-party adapters, editable.
# Idempotent: a stamp holding a hash of every install input skips pip when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $("$python_bin" --version)"
    "$python_bin" -m venv .venv
fi

inputs=(constraints.txt pyproject.toml adapters/*/pyproject.toml scripts/setup.sh)
stamp=.venv/.sphere-setup-stamp
wanted=$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    exit 0
fi

echo "setup: installing (torch is a large wheel; the first run takes a few minutes)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt \
    -e ".[bench,test]" \
    -e adapters/stylegan2 \
    -e adapters/diffusers \
    -e adapters/timm
echo "$wanted" > "$stamp"
echo "setup: done"
