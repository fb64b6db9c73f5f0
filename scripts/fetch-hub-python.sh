#!/usr/bin/env bash
# Python's huggingface_hub (pinned, from PyPI) for tests/hub_cache.rs, which
# checks that the cache we write is the cache it reads, and the other way
# round. Installed into a folder of its own; no network use beyond PyPI.
set -euo pipefail
dest=${LATENT_STUDIO_HUB_PYTHON:-$HOME/.cache/latent-studio/hub-python}
version=2.4.0
if [ -f "$dest/.installed-$version" ]; then
  exit 0
fi
rm -rf "$dest"
python3 -m pip install --quiet --disable-pip-version-check --target "$dest" "huggingface_hub==$version"
touch "$dest/.installed-$version"
