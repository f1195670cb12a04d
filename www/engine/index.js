// edgellm's JavaScript API. Engine runs the model on the calling thread (workers, Node, edge
// runtimes); WorkerEngine runs the same engine in a Web Worker for pages.
export { Engine, loadTokenizer, inspectModel } from './core.js';
export { initWasm, runtime, defaultThreads, threadsUnavailableReason } from './runtime.js';
export { WorkerEngine } from './client.js';
export { Embedder, Reranker, fetchEmbedderFiles } from './embedder.js';
export { OnnxEmbedder, webgpuStatus } from './onnx.js';
export { EdgeLLMError, ERROR_CODES, RUST_ERROR_CODES, JS_ERROR_CODES, edgeError } from './errors.js';
