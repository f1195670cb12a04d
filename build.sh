#!/usr/bin/env bash
# Build the wasm package into www/pkg/ (wasm-bindgen --target web: the same files load in a
# page, a Web Worker, Node >= 20 and edge runtimes).
#   ./build.sh            release build
#   EDGELLM_WASM_OPT=1 ./build.sh   also run wasm-opt -O3 (npm binaryen; ~6 minutes)
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh build
export PATH="${EDGELLM_CACHE:-$HOME/.cache/edgellm}/tools/bin:$PATH"

cargo build --release -p edgellm-wasm --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir www/pkg --out-name edgellm \
  target/wasm32-unknown-unknown/release/edgellm_wasm.wasm
if [ "${EDGELLM_WASM_OPT:-0}" = 1 ]; then
  scripts/setup.sh node
  npx wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    www/pkg/edgellm_bg.wasm -o www/pkg/edgellm_bg.wasm
fi
ls -l www/pkg/edgellm_bg.wasm
