#!/usr/bin/env bash
# Checks that `--features cuda` still compiles, with no GPU: nvcc and the CUDA
# headers come from PyPI (about 350 MB, cached in $CUDA_TOOLKIT_DIR). cudarc
# does not know nvcc 13.5's version string; 13040 is the newest it accepts.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${CUDA_TOOLKIT_DIR:-$HOME/.cache/latent-studio/cuda-toolkit}
if [ ! -x "$dir/nvidia/cu13/bin/nvcc" ]; then
  python3 -m pip install -q --target "$dir" \
    nvidia-cuda-nvcc==13.5.37 "nvidia-cuda-runtime>=13,<14" "nvidia-cuda-cccl>=13,<14"
fi
cu="$dir/nvidia/cu13"
PATH="$cu/bin:$PATH" CUDA_ROOT="$cu" CUDA_PATH="$cu" CUDA_COMPUTE_CAP=90 CUDARC_CUDA_VERSION=13040 \
  cargo check --features cuda
