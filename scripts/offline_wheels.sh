#!/usr/bin/env bash
# Download, into DIR, the wheels this project needs beyond what a CUDA PyTorch image usually holds
# (torch, torchvision, numpy, scipy, scikit-learn, pluggy, accelerate, safetensors, timm, matplotlib, tqdm,
# pytest and hypothesis are expected there), for `benchmarks/gpu_check.sh --install DIR` on a machine
# without network access. All of them are pure-Python wheels; versions follow this checkout's .venv when it
# has one, so the GPU machine runs what the tests here ran; and a setuptools recent enough to install this
# checkout (the image's may be older).
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${1:?usage: scripts/offline_wheels.sh DIR}"
packages=(diffusers importlib_metadata clean-fid lpips prdc)
python_bin=python3
[ -x .venv/bin/python ] && python_bin=.venv/bin/python

specs=()
for name in "${packages[@]}"; do
    version=$("$python_bin" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)
    specs+=("$name${version:+==$version}")
done
# The editable install of this checkout needs the setuptools its pyproject.toml names (older ones reject it).
specs+=("setuptools>=77")
mkdir -p "$dir"
"$python_bin" -m pip download --quiet --no-deps --only-binary=:all: -d "$dir" "${specs[@]}"
echo "offline_wheels: ${specs[*]} -> $dir"
