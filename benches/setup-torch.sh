#!/usr/bin/env bash
# Creates the PyTorch virtual environment the reference benchmarks use, outside
# the repository (~5 GB: PyPI's Linux torch wheel pulls CUDA runtime wheels too,
# and then runs fine on the CPU).
set -euo pipefail
venv=${TORCH_VENV:-$HOME/.cache/latent-studio/torch-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet "torch==2.*" "safetensors>=0.4" "numpy>=1.26"
echo "$venv"
