// WorkerEngine: the Engine interface (index.d.ts EngineInterface) with the engine running in a
// Web Worker, so the page never freezes while the model computes. Each method is one protocol.js
// CALL of the Engine method of the same name; only the generation (streamed tokens, aborts) and
// load (transferable bytes) need more than forwarding.

import { Kind, deserializeError } from './protocol.js';
import { edgeError } from './errors.js';
import { abortError } from './scheduling.js';

export class WorkerEngine {
  #worker;
  #nextId = 1;
  #pending = new Map(); // id → { resolve, reject, onToken }
  #running = null; // id of the generation in progress

  constructor(worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => this.#receive(data);
    // A crashed worker answers nothing more: fail every call still waiting instead of hanging.
    const fail = (why) => {
      const error = edgeError('worker_crashed', `the engine worker stopped: ${why}`);
      for (const p of this.#pending.values()) p.reject(error);
      this.#pending.clear();
    };
    worker.onerror = (e) => fail(e.message ?? 'error');
    worker.onmessageerror = () => fail('a message could not be read');
  }

  #receive(msg) {
    const p = this.#pending.get(msg.id);
    if (!p) return;
    if (msg.kind === Kind.TOKEN) return p.onToken?.(msg.text);
    this.#pending.delete(msg.id);
    if (msg.kind === Kind.RESULT) p.resolve(msg.value);
    else p.reject(deserializeError(msg.error));
  }

  #send(kind, fields, { transfer = [], onToken } = {}) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onToken });
      this.#worker.postMessage({ kind, id, ...fields }, transfer);
    });
  }

  #call(method, ...args) {
    return this.#send(Kind.CALL, { method, args });
  }

  /**
   * Choose the wasm build in the worker before anything else runs there: { threads } (default:
   * all cores up to 4 when the page is cross-origin isolated, else 1). Resolves to
   * { build: 'single' | 'threads', threads, fallback }.
   */
  init(options = {}) { return this.#call('init', options); }

  /** Load a GGUF model. The bytes are copied unless `options.transfer` is true. */
  load(bytes, options = {}) {
    const { transfer, ...rest } = options;
    const buffer = bytes instanceof ArrayBuffer ? bytes : bytes.buffer;
    return this.#send(Kind.CALL, { method: 'load', args: [bytes, rest] }, { transfer: transfer ? [buffer] : [] });
  }

  /** Generate to the end; resolves to { text, finishReason, timings }. */
  async generate(request, onToken) {
    const { signal, ...rest } = request ?? {};
    const id = this.#nextId;
    const onAbort = () => this.#worker.postMessage({ kind: Kind.ABORT, target: id });
    if (signal?.aborted) throw abortError();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#running = id;
    try {
      return await this.#send(Kind.GENERATE, { request: rest }, { onToken });
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (this.#running === id) this.#running = null;
    }
  }

  /** The answer as an AsyncIterable of text pieces; leaving the loop early aborts the generation. */
  async *stream(request) {
    const { signal, ...rest } = request ?? {};
    if (signal?.aborted) throw abortError();
    const controller = new AbortController();
    const forward = () => controller.abort();
    signal?.addEventListener('abort', forward, { once: true });
    const queue = [];
    let wake = null;
    let done = false;
    let failure = null;
    const finished = this.generate({ ...rest, signal: controller.signal }, (piece) => { queue.push(piece); wake?.(); })
      .catch((e) => { failure = e; })
      .finally(() => { done = true; wake?.(); });
    try {
      for (;;) {
        if (queue.length) { yield queue.shift(); continue; }
        if (done) break;
        await new Promise((r) => (wake = r));
        wake = null;
      }
      if (failure) throw failure;
    } finally {
      signal?.removeEventListener('abort', forward);
      // The consumer stopped early: end the worker's generation before the next call needs it.
      if (!done) {
        controller.abort();
        await finished;
      }
    }
  }

  /** Stop the generation in progress (its promise rejects with an AbortError). */
  abort() {
    if (this.#running !== null) this.#worker.postMessage({ kind: Kind.ABORT, target: this.#running });
  }

  /** What is loaded (as load() resolved), with figures that change: the ONNX model's shardMs. */
  info() { return this.#call('info'); }

  /** { text, finishReason, timings } of the last generation. */
  lastResult() { return this.#call('lastResult'); }

  tokenize(text) { return this.#call('tokenize', text); }

  /** Teacher forcing: the next-token logits after each prefix of `tokens` (CPU backend). */
  logitsEach(tokens) { return this.#call('logitsEach', tokens); }

  renderChat(messages) { return this.#call('renderChat', messages); }

  unload() { return this.#call('unload'); }

  memory() { return this.#call('memory'); }

  /**
   * Load the sentence-embedding model: bytes of { config, weights, tokenizer } (BERT safetensors,
   * on the CPU) or { onnx, tokenizer } (an ONNX graph on WebGPU; options: { seqLen }).
   */
  loadEmbedder(files, options = {}) { return this.#call('loadEmbedder', files, options); }

  /** One unit-length Float32Array per text. */
  embed(texts) { return this.#call('embed', texts); }

  /** Load a cross-encoder reranker (bytes of config.json, model.safetensors, tokenizer.json). */
  loadReranker(files) { return this.#call('loadReranker', files); }

  /** One relevance logit per passage for `query`. */
  rerank(query, passages) { return this.#call('rerank', query, passages); }

  /** Stop the worker; pending calls reject. */
  terminate() {
    this.#worker.terminate();
    this.#worker.onerror({ message: 'terminated' });
  }
}
