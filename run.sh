#!/usr/bin/env bash
# The main job: build the wasm package, fetch the default model, answer a question with it in
# WebAssembly (Node), then serve the demo page on http://127.0.0.1:8080/.
#   ./run.sh                            build, answer, serve the page
#   ./run.sh --no-serve                 build and answer only
#   ./run.sh --service workerd|deno|node
#                                       build, index the sample corpus (once), then serve the HTTP
#                                       API (www/service/) on http://127.0.0.1:${PORT:-8787}/
#   QUESTION="…" ./run.sh               ask something else
set -euo pipefail
cd "$(dirname "$0")"
MODEL_ID=$(python3 -c 'import json; print(json.load(open("models/registry.json"))["default"])')
if [ "${1:-}" = "--service" ]; then
  runtime="${2:-workerd}"
  port="${PORT:-8787}"
  cache="${EDGELLM_CACHE:-$HOME/.cache/edgellm}"
  scripts/setup.sh build node "$MODEL_ID" minilm-l6
  ./build.sh >/dev/null
  [ -f "$cache/models/edgellm-index.json" ] || node scripts/build-index.mjs
  mkdir -p "$cache/service"
  case "$runtime" in
    workerd) exec node_modules/.bin/workerd serve www/service/workerd.capnp --directory-path "files=$cache/models" \
      --directory-path "state=$cache/service" --socket-addr "http=127.0.0.1:$port" ;;
    deno) exec node_modules/.bin/deno run --allow-read --allow-write --allow-net=127.0.0.1 --allow-env --allow-sys \
      --no-remote --no-npm www/service/deno.js --port "$port" --model-id "$MODEL_ID" ;;
    node) exec node www/service/node.js --port "$port" --model-id "$MODEL_ID" ;;
    *) echo "usage: ./run.sh --service workerd|deno|node" >&2; exit 2 ;;
  esac
fi
scripts/setup.sh build node "$MODEL_ID"
./build.sh >/dev/null
node scripts/ask.mjs "$(python3 models/fetch.py --path "$MODEL_ID")" "${QUESTION:-What is the capital of France?}"
if [ "${1:-}" != "--no-serve" ]; then
  exec node scripts/serve.mjs --port "${PORT:-8080}"
fi
