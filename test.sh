#!/usr/bin/env bash
# Every test: the no-panic lint, the core's fuzz targets briefly, native Rust (real models; the
# ONNX backend on Vulkan), the wasm packages in Node, and in headless Chromium (WebGPU through
# SwiftShader for the ONNX backend).
# Installs what it needs first (wasm target, wasm-bindgen-cli, cargo-fuzz, Chromium, npm packages, models),
# caching tools and models under ~/.cache/edgellm.
#   ./test.sh          the suite CI runs
#   ./test.sh --slow   the same, then the checks too slow for CI: the ONNX backend's native
#                      tests on lavapipe (onnx/tests: ~12 minutes of compiling wgpu and candle
#                      natively a second time, then the exporter's ops and SmolLM2's logits
#                      against candle) and tests/slow/ (the benchmark's ONNX-on-SwiftShader
#                      row, ~15 minutes; the service's 1,000-request load test), and the ONNX
#                      side's fuzz targets (their first build
#                      compiles wgpu instrumented). The ONNX backend stays in the default suite
#                      through its wasm build in Chromium (tests/browser/onnx.test.mjs) and its
#                      lint.
set -euo pipefail
cd "$(dirname "$0")"
slow=0
for arg in "$@"; do
  case "$arg" in
    --slow) slow=1 ;;
    *) echo "usage: ./test.sh [--slow]" >&2; exit 2 ;;
  esac
done
# Each section says how long it took, so a slow one shows in CI's log.
section() {
  [ -n "${section_name:-}" ] && echo "== ${section_name}: $((SECONDS - section_start)) s"
  section_name="$1"; section_start=$SECONDS
  [ -n "$1" ] && echo "== $1"
  return 0
}

source scripts/target-dir.sh

section "setup and build"
scripts/setup.sh build browser node smollm2-135m gemma3-270m minilm-l6 paraphrase-minilm-l3-onnx
./build.sh

section "lint: no unwrap, expect or panic! in the crates that ship to wasm (clippy)"
# The crates' roots deny them outside tests; clippy is what enforces it (its style lints are
# silenced here: only the denied ones fail). Again with relaxed SIMD (its kernels are compiled
# only then) and the onnx crate, each with build.sh's flags.
cargo clippy --release -p edgellm -p edgellm-wasm --lib --target wasm32-unknown-unknown -- -A clippy::all
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" cargo clippy --release -p edgellm -p edgellm-wasm --lib \
  --target wasm32-unknown-unknown --target-dir "$CARGO_TARGET_DIR/relaxed" -- -A clippy::all
(cd onnx && RUSTFLAGS="--cfg=web_sys_unstable_apis -C target-feature=+simd128" \
  cargo clippy --release --lib --target wasm32-unknown-unknown --target-dir "$CARGO_TARGET_DIR/onnx" -- -A clippy::all)

section "fuzz: the core's targets briefly on their seeds and regression inputs (scripts/fuzz.sh)"
scripts/fuzz.sh --seconds 10 core

section "native tests (cargo test)"
cargo test --profile native-tests --workspace

section "SIMD128 kernels (in Node) and relaxed-SIMD ones (in Chromium) against their scalar twins, on wasm32 (wasm-bindgen-test)"
export PATH="${EDGELLM_CACHE:-$HOME/.cache/edgellm}/tools/bin:$PATH"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
cargo test --release --target wasm32-unknown-unknown --test kernels
# The relaxed build's kernels (build.sh's flags and target directory) in headless Chromium:
# Node 20's relaxed SIMD (behind --experimental-wasm-relaxed-simd) gives results that change
# when V8 tiers the code up, so it cannot be the judge.
webdriver=$(mktemp -d)
cat > "$webdriver/webdriver.json" <<JSON
{ "goog:chromeOptions": { "binary": "$(command -v chromium)", "args": ["--headless=new", "--no-sandbox",
  "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--disable-dev-shm-usage", "--user-data-dir=$webdriver/profile"] } }
JSON
WASM_BINDGEN_USE_BROWSER=1 WASM_BINDGEN_TEST_WEBDRIVER_JSON="$webdriver/webdriver.json" CHROMEDRIVER="$(command -v chromedriver)" \
  RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
  cargo test --release --target wasm32-unknown-unknown --target-dir "$CARGO_TARGET_DIR/relaxed" --test kernels

section "wasm package in Node, the HTTP service in workerd, Deno and Node, and the page in headless Chromium (node --test)"
node --test --test-concurrency=1 tests/js/ tests/service/ tests/browser/

if [ "$slow" = 1 ]; then
  section "slow: ONNX backend natively (onnx/: exporter, wonnx on Vulkan — lavapipe when there is no GPU)"
  scripts/setup.sh gpu
  # wgpu's Vulkan loader wants a runtime directory, which a CI shell may not have.
  (cd onnx && XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}" cargo test --release --target-dir "$CARGO_TARGET_DIR/onnx-native")
  section "slow: the ONNX side's fuzz targets (scripts/fuzz.sh onnx)"
  scripts/fuzz.sh --seconds 10 onnx
  section "slow: tests/slow/"
  node --test --test-concurrency=1 tests/slow/
fi
section ""
echo "== all tests passed in $SECONDS s"
