#!/usr/bin/env bash
# Build the wasm package into www/pkg/ (wasm-bindgen --target web: the same files load in a
# page, a Web Worker, Node >= 20 and edge runtimes).
#   ./build.sh            release build
#   EDGELLM_WASM_OPT=1 ./build.sh   also run wasm-opt -O3 (npm binaryen; ~6 minutes)
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh build
export PATH="${EDGELLM_CACHE:-$HOME/.cache/edgellm}/tools/bin:$PATH"
# Cargo's outputs live in the cache, not in the clone (scripts/target-dir.sh says why).
source scripts/target-dir.sh

# Three builds of the same crate; www/engine/runtime.js picks one at run time.
# - www/pkg: single-threaded, SIMD128; runs everywhere.
# - www/pkg-relaxed: the same plus relaxed SIMD (src/kernels.rs's `relaxed` kernels), for
#   engines that validate it; its own target directory, as its target features differ.
# - www/pkg-threads: relaxed SIMD, shared memory + rayon on Web Workers (wasm-bindgen-rayon),
#   which a page may use only when it is cross-origin isolated. Threads need std rebuilt with
#   atomics, hence nightly and -Z build-std, and their own target directory.
cargo build --release -p edgellm-wasm --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir www/pkg --out-name edgellm \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/edgellm_wasm.wasm"

RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
  cargo build --release -p edgellm-wasm --target wasm32-unknown-unknown --target-dir "$CARGO_TARGET_DIR/relaxed"
wasm-bindgen --target web --out-dir www/pkg-relaxed --out-name edgellm \
  "$CARGO_TARGET_DIR/relaxed/wasm32-unknown-unknown/release/edgellm_wasm.wasm"

RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128,+relaxed-simd \
  -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296 \
  -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size \
  -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base" \
  cargo +nightly build --release -p edgellm-wasm --features threads --target wasm32-unknown-unknown \
  --target-dir "$CARGO_TARGET_DIR/threads" -Z build-std=panic_abort,std
wasm-bindgen --target web --out-dir www/pkg-threads --out-name edgellm \
  "$CARGO_TARGET_DIR/threads/wasm32-unknown-unknown/release/edgellm_wasm.wasm"

# The ONNX backend (onnx/: exporter + wonnx on WebGPU) is its own crate, lock file and module,
# www/pkg-onnx/, loaded only when an ONNX model is chosen: wonnx's wgpu 0.16 needs web-sys held
# at 0.3.64 and its WebGPU bindings, which are behind web-sys's unstable APIs.
(cd onnx && RUSTFLAGS="--cfg=web_sys_unstable_apis -C target-feature=+simd128" \
  cargo build --release --lib --target wasm32-unknown-unknown --target-dir "$CARGO_TARGET_DIR/onnx")
wasm-bindgen --target web --out-dir www/pkg-onnx --out-name edgellm_onnx \
  "$CARGO_TARGET_DIR/onnx/wasm32-unknown-unknown/release/edgellm_onnx.wasm"

# Browser copies of the npm modules the page imports (www/vendor/ is generated, not committed):
# the page has no bundler, and an inline import map would need a CSP exception.
scripts/setup.sh node
mkdir -p www/vendor/pdfjs
cp node_modules/minisearch/dist/es/index.js www/vendor/minisearch.js
cp node_modules/stemmer/index.js www/vendor/stemmer.js
# markdown-it's browser build: one self-contained ES module (its plain ESM entry imports its
# npm dependencies by bare name, which a page cannot resolve without an import map).
cp node_modules/markdown-it/dist/browser/markdown-it.esm.min.mjs www/vendor/markdown-it.js
cp node_modules/pdfjs-dist/build/pdf.min.mjs node_modules/pdfjs-dist/build/pdf.worker.min.mjs www/vendor/pdfjs/
# The benchmark's peer: llama.cpp compiled to WebAssembly.
mkdir -p www/vendor/wllama
cp node_modules/@wllama/wllama/esm/index.js node_modules/@wllama/wllama/esm/wasm/wllama.wasm www/vendor/wllama/

if [ "${EDGELLM_WASM_OPT:-0}" = 1 ]; then
  npx wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    www/pkg/edgellm_bg.wasm -o www/pkg/edgellm_bg.wasm
  npx wasm-opt -O3 --enable-simd --enable-relaxed-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    www/pkg-relaxed/edgellm_bg.wasm -o www/pkg-relaxed/edgellm_bg.wasm
  npx wasm-opt -O3 --enable-simd --enable-relaxed-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-threads \
    www/pkg-threads/edgellm_bg.wasm -o www/pkg-threads/edgellm_bg.wasm
fi
ls -l www/pkg/edgellm_bg.wasm www/pkg-relaxed/edgellm_bg.wasm www/pkg-threads/edgellm_bg.wasm www/pkg-onnx/edgellm_onnx_bg.wasm
