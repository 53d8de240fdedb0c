#!/usr/bin/env sh
# The GPU check (benchmarks/gpu_check.py): results/gpu/ in about 8 minutes on one GPU.
# Smoke run without a GPU: benchmarks/gpu_check.sh --device cpu --size tiny --no-compile
# On a machine that has a CUDA PyTorch but not this project, and maybe no network:
#   benchmarks/gpu_check.sh --install DIR [options]
# first installs the wheels in DIR (scripts/offline_wheels.sh DIR makes them here) and this checkout,
# both without reaching any index, then runs the check with the same interpreter.
set -eu
cd "$(dirname "$0")/.."

if [ -x .venv/bin/python ]; then
    python=.venv/bin/python
elif command -v python3 >/dev/null 2>&1; then
    python=python3
else
    python=python
fi

if [ "${1:-}" = "--install" ]; then
    wheels="${2:?--install needs a folder of wheels (make one with scripts/offline_wheels.sh DIR)}"
    shift 2
    if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
        echo "gpu_check: --install $wheels holds no .whl files; make them with scripts/offline_wheels.sh $wheels" >&2
        exit 2
    fi
    "$python" -m pip install --quiet --no-index --no-deps "$wheels"/*.whl
    "$python" -m pip install --quiet --no-index --no-deps --no-build-isolation \
        -e . -e adapters/stylegan2 -e adapters/diffusers -e adapters/timm
fi

if ! "$python" -c "import sphere_plugins, sphere_stylegan2" >/dev/null 2>&1; then
    echo "gpu_check: sphere_plugins is not installed for $python; run 'bash scripts/setup.sh', or pass" \
         "--install DIR with wheels from scripts/offline_wheels.sh" >&2
    exit 2
fi
exec "$python" -m benchmarks.gpu_check "$@"
