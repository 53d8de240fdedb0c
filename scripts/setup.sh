#!/usr/bin/env bash
# Create .venv (if missing) and install the core, its extras and the first-party adapters, editable.
# Idempotent: a stamp holding a hash of every install input skips pip when nothing changed.
# Also makes Fashion-MNIST available: Debian's dataset-fashion-mnist when run as root with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

fmnist_dir="${SPHERE_PLUGINS_DATA:-/usr/share/datasets}/fashion-mnist"
fmnist_hint="get them with 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu) or copy the four idx files (train-images-idx3-ubyte.gz, ...) into $fmnist_dir"
if [ ! -f "$fmnist_dir/t10k-labels-idx1-ubyte.gz" ] && [ ! -f "$fmnist_dir/t10k-labels-idx1-ubyte" ]; then
    if [ "$(id -u)" = 0 ] && [ -z "${SPHERE_PLUGINS_DATA:-}" ] && command -v apt-get >/dev/null; then
        echo "setup: installing Fashion-MNIST (dataset-fashion-mnist) with apt-get"
        if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; }; then
            echo "setup: apt-get could not install dataset-fashion-mnist; Fashion-MNIST benchmarks need its files: $fmnist_hint"
        fi
    else
        echo "setup: Fashion-MNIST files are not in $fmnist_dir; $fmnist_hint"
    fi
fi

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
