#!/usr/bin/env bash
# Every test: native Rust (real models; the ONNX backend on Vulkan), the wasm packages in Node,
# and in headless Chromium (WebGPU through SwiftShader for the ONNX backend).
# Installs what it needs first (wasm target, wasm-bindgen-cli, Chromium, npm packages, models),
# caching tools and models under ~/.cache/edgellm.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh build browser gpu node smollm2-135m gemma3-270m minilm-l6 paraphrase-minilm-l3-onnx
./build.sh

echo "== native tests (cargo test)"
cargo test --release --workspace

echo "== ONNX backend (onnx/: exporter, wonnx on Vulkan — lavapipe when there is no GPU)"
# wgpu's Vulkan loader wants a runtime directory, which a CI shell may not have.
(cd onnx && XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}" cargo test --release)

echo "== SIMD128 kernels against their scalar twins, on wasm32 in Node (wasm-bindgen-test)"
export PATH="${EDGELLM_CACHE:-$HOME/.cache/edgellm}/tools/bin:$PATH"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --release --target wasm32-unknown-unknown --test kernels

echo "== wasm package in Node and in headless Chromium (node --test)"
node --test --test-concurrency=1 tests/js/ tests/browser/
