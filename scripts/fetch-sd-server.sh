#!/usr/bin/env bash
# stable-diffusion.cpp's A1111-compatible `sd-server`, built from the sources
# inside PyPI's stable-diffusion-cpp-python 0.4.7 sdist (CMake with
# SD_BUILD_EXAMPLES=ON, ~4 minutes on 2 cores): the image server the remote
# image backend is tested against. Needs cmake and g++.
set -euo pipefail
dest=$HOME/.cache/latent-studio/sd-server
version=0.4.7
if [ -x "$dest/bin/sd-server" ] && [ -f "$dest/.built-$version" ]; then
  exit 0
fi
url=https://files.pythonhosted.org/packages/b1/06/300aba9ac36e2166fbe45b4a29039a76f725ef08796f5472caf3e8c4e08d/stable_diffusion_cpp_python-$version.tar.gz
sha=998d1957260dd5ae4e18a8acc0c14b0a8757aaa9f96515197b6d5bbf46df9282
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
curl -sSfL -o "$tmp/sdist.tar.gz" "$url"
echo "$sha  $tmp/sdist.tar.gz" | sha256sum -c --quiet -
tar xzf "$tmp/sdist.tar.gz" -C "$tmp"
src=$tmp/stable_diffusion_cpp_python-$version/vendor/stable-diffusion.cpp
# The compiler's warnings about vendored code go to a log, shown only if the build fails.
build() { "$@" >>"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log" >&2; exit 1; }; }
build cmake -S "$src" -B "$tmp/build" -DSD_BUILD_EXAMPLES=ON -DCMAKE_BUILD_TYPE=Release
build cmake --build "$tmp/build" --target sd-server -j"$(nproc)"
mkdir -p "$dest/bin"
cp "$tmp/build/bin/sd-server" "$dest/bin/sd-server"
touch "$dest/.built-$version"
echo "sd-server: $dest/bin/sd-server"
