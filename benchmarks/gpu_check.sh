#!/usr/bin/env sh
# The GPU check (benchmarks/gpu_check.py): results/gpu/ in about 8 minutes on one GPU.
# Smoke run without a GPU: benchmarks/gpu_check.sh --device cpu --size tiny --no-compile
cd "$(dirname "$0")/.." && exec python -m benchmarks.gpu_check "$@"
