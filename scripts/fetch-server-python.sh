#!/usr/bin/env bash
# The other side of the remote-backend tests, from PyPI into llama.cpp's venv
# (scripts/fetch-models.sh made it): llama-cpp-python's OpenAI-compatible
# server (its [server] extras; llama.cpp itself is already compiled there) and
# the official `openai` Python client, which checks `latent-studio serve`.
set -euo pipefail
venv=$HOME/.cache/latent-studio/llama-venv
marker=$venv/.server-python-1
if [ -f "$marker" ]; then
  exit 0
fi
# Normally scripts/fetch-models.sh made the venv; without it, this compiles llama.cpp (~5 min).
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
CMAKE_ARGS="-DGGML_NATIVE=ON" "$venv/bin/pip" install --quiet --disable-pip-version-check \
  'llama-cpp-python[server]==0.3.36' 'openai==3.63.0'
touch "$marker"
