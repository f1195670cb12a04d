#!/usr/bin/env bash
# Every test: native Rust (real models), the wasm package in Node, and in headless Chromium.
# Installs what it needs first (wasm target, wasm-bindgen-cli, Chromium, npm packages, models),
# caching tools and models under ~/.cache/edgellm.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh build browser node smollm2-135m gemma3-270m minilm-l6
./build.sh

echo "== native tests (cargo test)"
cargo test --release --workspace

echo "== SIMD128 kernels against their scalar twins, on wasm32 in Node (wasm-bindgen-test)"
export PATH="${EDGELLM_CACHE:-$HOME/.cache/edgellm}/tools/bin:$PATH"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --release --target wasm32-unknown-unknown --test kernels

echo "== wasm package in Node and in headless Chromium (node --test)"
node --test --test-concurrency=1 tests/js/ tests/browser/
