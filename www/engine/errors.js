// edgellm's one error catalogue: every `code` an edgellm error can carry, what it means and
// what the user should do about it.
//
// Codes come from two places:
//   origin 'rust'  the core's `ErrorCode` (src/error.rs), set by the wasm modules on the Errors
//                  they throw (name 'EdgeLLMError'). This list mirrors that enum exactly
//                  (tests/js/errors.test.mjs parses it).
//   other origins  found in JavaScript before or around the wasm: 'engine' (www/engine/: engine
//                  state, the worker), 'retrieval' (www/rag/retrieve.js), 'prompt' (www/rag/prompt.js),
//                  'service' (www/service/: the HTTP endpoints), 'storage' (www/app/storage.js:
//                  downloading, verifying and caching model files in the page), 'documents'
//                  (www/rag/limits.js: the documents a user adds, in the page or the service,
//                  against their limits).
// Codes are public API: add new ones, never rename old ones. JavaScript creates its errors with
// `edgeError(code, message)`, which refuses a code that is not listed here.
//
// This module imports nothing, on purpose: www/rag/ (pure, its model and embedder injected)
// imports it without pulling in the engine's runtime or any wasm.

/**
 * code → { origin, what, action }: `what` happened, and the `action` the user should take.
 * Grouped by origin; README.md's error table is made from this list.
 */
export const ERROR_CODES = deepFreeze({
  // The Rust core (src/error.rs `ErrorCode`), in the enum's order.
  invalid_gguf: { origin: 'rust', what: 'The file is not a well-formed GGUF model (bad magic or version, truncated, bad offsets).', action: 'Check that the download finished and that it is a .gguf file; fetch it again.' },
  unsupported_tensor_type: { origin: 'rust', what: 'A tensor uses a quantization type edgellm cannot compute with.', action: 'Use another quantization of the model (Q4_0, Q4_1, Q8_0, Q4_K_M, F16 …).' },
  unsupported_architecture: { origin: 'rust', what: 'The model family (general.architecture) has no backend in edgellm.', action: 'Choose a llama-family (TinyLlama, SmolLM2, Llama, Mistral) or gemma3 model.' },
  missing_metadata: { origin: 'rust', what: 'A metadata key the model or its tokenizer needs is absent or has the wrong type.', action: 'The GGUF is incomplete: convert the model again or use another file.' },
  too_large: { origin: 'rust', what: 'The model would not fit in the memory available (wasm32 has a 4 GiB address space).', action: 'Choose a smaller or more quantized model, or raise maxMemoryBytes.' },
  context_overflow: { origin: 'rust', what: "The prompt does not fit in the model's context window.", action: "Shorten the prompt or the history, raise contextLength, or pass overflow: 'truncate_start'." },
  invalid_request: { origin: 'rust', what: 'The request or an option is malformed (bad sampling value, empty prompt, unknown role …).', action: 'Fix the argument the message names.' },
  tokenizer_error: { origin: 'rust', what: 'The tokenizer could not be built, or could not encode or decode the text.', action: "Check the model's tokenizer (GGUF metadata or tokenizer.json); try another file of the model." },
  template_error: { origin: 'rust', what: 'The chat template could not be parsed or rendered.', action: "Pick a template preset with the template option (chatml, zephyr, llama3 …) instead of the model's own." },
  inference_error: { origin: 'rust', what: 'The model failed while computing.', action: 'Retry; if it happens again, report the model and the request.' },
  invalid_weights: { origin: 'rust', what: 'The safetensors weights, config.json or tokenizer.json of a non-GGUF model (embedder, reranker) are unusable.', action: 'Fetch the three files again, all from the same model.' },
  invalid_onnx: { origin: 'rust', what: 'The bytes are not a usable ONNX model (not protobuf, no graph, bad initializer).', action: 'Check the .onnx file, or export the model again.' },
  unsupported_operator: { origin: 'rust', what: 'The ONNX graph uses an operator (or variant) the WebGPU runtime lacks.', action: 'Use the GGUF model on the CPU backend, or an ONNX export without that operator.' },
  unsupported_shape: { origin: 'rust', what: 'An ONNX input has a dynamic dimension that cannot be fixed to a static size.', action: 'Export the model with static input shapes, or set seqLen.' },
  webgpu_unavailable: { origin: 'rust', what: 'WebGPU is missing here (no navigator.gpu, adapter or device), so ONNX models cannot run.', action: 'Use a browser with WebGPU enabled, or the CPU backend (GGUF models).' },

  // The engine (www/engine/): state and the worker.
  not_loaded: { origin: 'engine', what: 'No model (or embedder, or reranker) is loaded for this call.', action: 'Call load() (loadEmbedder(), loadReranker()) first.' },
  not_initialised: { origin: 'engine', what: 'The wasm module was used before it was instantiated.', action: 'Await initWasm() (or engine.init() / load()) first.' },
  busy: { origin: 'engine', what: 'A generation is already running on this engine (or the ONNX model is computing a token).', action: 'Wait for it to end, or abort() it, before starting another.' },
  worker_crashed: { origin: 'engine', what: "The engine's Web Worker stopped (it crashed, ran out of memory, its wasm module trapped on a Rust panic, or it was terminated), failing the calls in flight.", action: 'Load the model (and embedder, reranker) again: the next call starts a fresh worker, with nothing loaded. The demo page does this once by itself.' },
  fetch_failed: { origin: 'engine', what: 'A model file could not be downloaded (an HTTP error).', action: 'Check the URL and the network, then retry.' },
  internal_error: { origin: 'engine', what: 'An unexpected error without a code of its own (a bug).', action: 'Report the message; reload the page to recover.' },

  // Model files in the page (www/app/storage.js): what a download delivered, before it is used or cached.
  integrity_mismatch: { origin: 'storage', what: "A downloaded model file's sha256 is not the one the registry pins: it is not the expected file (changed at its source, or damaged on the way).", action: 'Load it again; if the mismatch repeats, the file at that URL has changed and its registry entry (sha256) must be updated.' },
  download_incomplete: { origin: 'storage', what: 'A download kept stopping before the whole file arrived (the connection dropped, also on every retry), so the partial file was not used.', action: 'Check the network connection, then load the model again.' },

  // Retrieval (www/rag/retrieve.js).
  empty_query: { origin: 'retrieval', what: 'The question is empty.', action: 'Type a question.' },
  empty_corpus: { origin: 'retrieval', what: 'No documents are indexed yet.', action: 'Add a document before asking.' },
  no_embedder: { origin: 'retrieval', what: 'Hybrid or dense retrieval was asked for without an embed(texts) function.', action: "Load the embedding model, or use mode 'lexical'." },
  no_vectors: { origin: 'retrieval', what: 'Hybrid or dense retrieval needs chunk embeddings, and the index has none.', action: "Index the documents with their vectors, or use mode 'lexical'." },
  invalid_settings: { origin: 'retrieval', what: 'A retrieval setting is out of range (topKInitial, topKFinal, weights, rrfK, mode).', action: 'Fix the setting the message names.' },
  invalid_rerank: { origin: 'retrieval', what: 'The reranker did not return one finite score per candidate.', action: 'Fix the rerank function, or load the reranker again.' },

  // The prompt (www/rag/prompt.js).
  context_budget: { origin: 'prompt', what: 'The question and instructions alone exceed the context budget, before any source.', action: "Ask a shorter question, or use a model (or contextLength) with a larger context." },

  // Documents the user adds (www/rag/limits.js, checked by www/app/documents.js, www/rag/pipeline.js and the service).
  unsupported_document: { origin: 'documents', what: 'The file is of a type edgellm cannot read as a document (by its name: .txt, .md, .markdown, .html, .htm, .pdf are read).', action: 'Save or export it as one of those types (plain text, Markdown, HTML or PDF), then add it again.' },
  document_too_large: { origin: 'documents', what: 'The document is larger than edgellm reads (20 MiB for text, Markdown or HTML, 50 MiB for a PDF; DOCUMENT_LIMITS in www/rag/limits.js).', action: 'Split it into smaller files, or add only the part you need.' },
  too_many_pages: { origin: 'documents', what: 'The PDF has more pages than edgellm reads (500; DOCUMENT_LIMITS.maxPdfPages).', action: 'Split the PDF (by chapter, say) and add the parts you need.' },
  too_many_chunks: { origin: 'documents', what: 'Indexing the document would take the index past the passages it holds, all documents together (5,000; DOCUMENT_LIMITS.maxChunks).', action: 'Remove documents you no longer need, add a shorter one, or raise the chunk size.' },
  empty_document: { origin: 'documents', what: 'The document has no text to index (it is empty or only whitespace, or a PDF of scanned images without a text layer).', action: 'Check the file; run OCR on a scanned PDF, or paste its text into a .txt file.' },

  // The HTTP service (www/service/): what a request got wrong, or why it had to wait.
  not_found: { origin: 'service', what: 'No endpoint has this path.', action: 'Use one of the endpoints GET /health lists.' },
  method_not_allowed: { origin: 'service', what: 'The endpoint exists, but not for this HTTP method.', action: 'Use the method the endpoint documents (POST for /v1/*, GET for /health).' },
  payload_too_large: { origin: 'service', what: 'The request body is larger than the service accepts.', action: 'Send fewer or shorter texts, or start the service with a larger --max-body-bytes.' },
  model_not_found: { origin: 'service', what: 'The request names a model this service has not loaded.', action: 'Omit `model`, or use the id GET /health reports.' },
  aborted: { origin: 'service', what: 'The request was abandoned (its client went away) before its answer was complete.', action: 'Nothing, unless you did not mean to: send the request again and keep the connection open.' },
  queue_full: { origin: 'service', what: 'Every generation slot and queue place is taken.', action: 'Retry after the number of seconds the Retry-After header gives.' },
});

/** The codes of the Rust core's `ErrorCode`, in its order. */
export const RUST_ERROR_CODES = Object.freeze(Object.keys(ERROR_CODES).filter((code) => ERROR_CODES[code].origin === 'rust'));

/** The codes only JavaScript creates. */
export const JS_ERROR_CODES = Object.freeze(Object.keys(ERROR_CODES).filter((code) => ERROR_CODES[code].origin !== 'rust'));

/**
 * An error with a stable `code` (a key of ERROR_CODES), optional `cause` and `details`.
 * Errors thrown by the wasm modules are plain `Error`s named 'EdgeLLMError' with a code; they
 * count as instances too, so `e instanceof EdgeLLMError` holds for every edgellm error.
 * Create them with `edgeError(code, message)`, which checks the code.
 */
export class EdgeLLMError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ cause?: unknown, details?: object }} [options]
   */
  constructor(code, message, { cause, details } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'EdgeLLMError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }

  static [Symbol.hasInstance](value) {
    return value instanceof Error && value.name === 'EdgeLLMError' && typeof value.code === 'string';
  }
}

/**
 * A new EdgeLLMError (`throw edgeError('not_loaded', 'no model is loaded: call load() first')`).
 * A code missing from ERROR_CODES throws a TypeError instead, so a typo cannot invent a code.
 */
export function edgeError(code, message, options) {
  if (!Object.hasOwn(ERROR_CODES, code)) {
    throw new TypeError(`edgeError: unknown error code ${JSON.stringify(code)}: add it to ERROR_CODES in www/engine/errors.js`);
  }
  return new EdgeLLMError(code, message, options);
}

function deepFreeze(catalogue) {
  for (const entry of Object.values(catalogue)) Object.freeze(entry);
  return Object.freeze(catalogue);
}
