#!/usr/bin/env bash
# The main job: build the wasm package, fetch the default model, answer a question with it in
# WebAssembly (Node), then serve the demo page on http://127.0.0.1:8080/.
#   ./run.sh                 build, answer, serve
#   ./run.sh --no-serve      build and answer only
#   QUESTION="…" ./run.sh    ask something else
set -euo pipefail
cd "$(dirname "$0")"
MODEL_ID=$(python3 -c 'import json; print(json.load(open("models/registry.json"))["default"])')
scripts/setup.sh build node "$MODEL_ID"
./build.sh >/dev/null
node scripts/ask.mjs "$(python3 models/fetch.py --path "$MODEL_ID")" "${QUESTION:-What is the capital of France?}"
if [ "${1:-}" != "--no-serve" ]; then
  exec node scripts/serve.mjs --port "${PORT:-8080}"
fi
