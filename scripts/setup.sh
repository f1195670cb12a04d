#!/usr/bin/env bash
# Install what building and testing edgellm needs, once; later runs find it cached.
#   scripts/setup.sh [build] [browser] [gpu] [fuzz] [node] [models...]
# Tools go to ~/.cache/edgellm (never into the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${EDGELLM_CACHE:-$HOME/.cache/edgellm}"
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' wasm/Cargo.toml)
CARGO_FUZZ_VERSION=0.13.2
export PATH="$CACHE/tools/bin:$PATH"

need_build() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
  # The threaded wasm build rebuilds std with atomics: nightly and its sources.
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  rustup component list --toolchain nightly --installed | grep -q '^rust-src' || rustup component add rust-src --toolchain nightly
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
    echo "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
    cargo install --quiet wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --root "$CACHE/tools"
  fi
}

need_browser() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "installing Debian chromium + chromium-driver"
    apt_install chromium chromium-driver
  fi
}

apt_install() {
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

need_gpu() {
  # The ONNX backend's native tests run wonnx on Mesa's software Vulkan (lavapipe) when there
  # is no GPU: the same WebGPU shaders, computed on the CPU.
  if ! ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
    echo "installing Mesa's Vulkan drivers (lavapipe)"
    apt_install mesa-vulkan-drivers
  fi
}

need_fuzz() {
  # cargo-fuzz drives libFuzzer, which needs nightly (-Z sanitizer); scripts/fuzz.sh runs it.
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  if [ "$(cargo-fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION (a minute or two, once)"
    cargo install --quiet cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --root "$CACHE/tools"
  fi
}

need_node() {
  # package-lock.json pins the versions; node_modules is ignored by git.
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

for what in "$@"; do
  case "$what" in
    build) need_build ;;
    browser) need_browser ;;
    gpu) need_gpu ;;
    fuzz) need_fuzz ;;
    node) need_node ;;
    *) python3 models/fetch.py "$what" >/dev/null ;;
  esac
done
