# The service in workerd:
#   npx workerd serve www/service/workerd.capnp --directory-path files=$HOME/.cache/edgellm/models \
#     --directory-path state=$HOME/.cache/edgellm/service [--socket-addr http=127.0.0.1:8787]
# `files` must hold the model, embedder and index that the text bindings below name; `state`
# (writable) keeps the FAQ answer cache between restarts. Build first (./build.sh): the modules
# below are embedded from www/, the wasm one compiled when workerd starts.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "edgellm", worker = .edgellm),
    (name = "files", disk = (path = "/nonexistent/set-with--directory-path", writable = false)),
    (name = "state", disk = (path = "/nonexistent/set-with--directory-path", writable = true)),
  ],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "edgellm")],
);

const edgellm :Workerd.Worker = (
  # Every module the service imports, named by its path under www/ so relative imports resolve.
  modules = [
    (name = "service/workerd.js", esModule = embed "workerd.js"),
    (name = "service/boot.js", esModule = embed "boot.js"),
    (name = "service/service.js", esModule = embed "service.js"),
    (name = "service/queue.js", esModule = embed "queue.js"),
    (name = "engine/core.js", esModule = embed "../engine/core.js"),
    (name = "engine/runtime.js", esModule = embed "../engine/runtime.js"),
    (name = "engine/onnx.js", esModule = embed "../engine/onnx.js"),
    (name = "engine/embedder.js", esModule = embed "../engine/embedder.js"),
    (name = "engine/scheduling.js", esModule = embed "../engine/scheduling.js"),
    (name = "engine/errors.js", esModule = embed "../engine/errors.js"),
    (name = "rag/index.js", esModule = embed "../rag/index.js"),
    (name = "rag/answer-cache.js", esModule = embed "../rag/answer-cache.js"),
    (name = "rag/vectors.js", esModule = embed "../rag/vectors.js"),
    (name = "rag/retrieve.js", esModule = embed "../rag/retrieve.js"),
    (name = "rag/answer.js", esModule = embed "../rag/answer.js"),
    (name = "rag/pipeline.js", esModule = embed "../rag/pipeline.js"),
    (name = "rag/prompt.js", esModule = embed "../rag/prompt.js"),
    (name = "rag/chunk.js", esModule = embed "../rag/chunk.js"),
    (name = "rag/limits.js", esModule = embed "../rag/limits.js"),
    (name = "rag/cite.js", esModule = embed "../rag/cite.js"),
    (name = "rag/extract.js", esModule = embed "../rag/extract.js"),
    (name = "vendor/minisearch.js", esModule = embed "../vendor/minisearch.js"),
    (name = "vendor/stemmer.js", esModule = embed "../vendor/stemmer.js"),
    (name = "pkg/edgellm.js", esModule = embed "../pkg/edgellm.js"),
    (name = "pkg/edgellm_bg.wasm", wasm = embed "../pkg/edgellm_bg.wasm"),
  ],
  compatibilityDate = "2026-11-01",
  # request.signal aborts when the client goes away, so an abandoned answer stops computing.
  compatibilityFlags = ["enable_request_signal"],
  bindings = [
    (name = "FILES", service = "files"),
    (name = "STATE", service = "state"),
    (name = "MODEL", text = "SmolLM2-135M-Instruct.Q4_1.gguf"),
    (name = "MODEL_ID", text = "smollm2-135m"),
    (name = "EMBEDDER", text = "minilm-l6"),
    (name = "INDEX", text = "edgellm-index.json"),
  ],
);
