#!/usr/bin/env bash
# Retrain the shipped models from scratch (data: scripts/fetch-data.sh).
# Each run checkpoints every epoch; add --resume to continue an interrupted one.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LATENT_STUDIO_BIN:-target/release/latent-studio}
"$bin" train vae --dataset mnist --latent-dim 2 --epochs 30 --out models/digits-2d --name "Digits 2-D" "$@"
"$bin" train vae --dataset fashion --latent-dim 16 --epochs 10 --out models/fashion-16d --name "Fashion 16-D" "$@"
