// WorkerEngine: the Engine interface (index.d.ts EngineInterface) with the engine running in a
// Web Worker, so the page never freezes while the model computes. Each method is one protocol.js
// CALL of the Engine method of the same name; only the generation (streamed tokens, aborts) and
// load (transferable bytes, aborts) need more than forwarding. A worker that stops (it crashed,
// its wasm module trapped, or terminate()) fails every call waiting on it, and the next call
// starts a fresh worker: the engine object outlives its workers.

import { Kind, deserializeError } from './protocol.js';
import { edgeError } from './errors.js';
import { abortError } from './scheduling.js';

/** The engine worker of this package. A function, so that a crashed one can be replaced. */
const startEngineWorker = () => new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });

export class WorkerEngine {
  /** Makes a fresh worker; null when the caller passed a Worker, which cannot be made again. */
  #factory;
  #worker = null; // null after a crash or terminate(), until the next call starts another
  #onCrash;
  #initOptions = null; // the last init()'s, replayed to a fresh worker
  #nextId = 1;
  #pending = new Map(); // id → { resolve, reject, onToken }
  #aborters = new Map(); // id → abort() of a generation or load in progress

  /**
   * `worker`: a function returning a new engine Worker (default: this package's worker.js), called
   * again for a fresh worker after a crash; a Worker is still accepted, but is not replaced when
   * it stops. `onCrash(error)`: told when the worker stops unexpectedly (not on terminate()), once
   * per worker, after every pending call rejected with `error` (worker_crashed).
   */
  constructor(worker = startEngineWorker, { onCrash } = {}) {
    this.#factory = typeof worker === 'function' ? worker : null;
    this.#onCrash = onCrash;
    // Started now rather than on the first call: the worker boots while the page fetches a model.
    this.#attach(this.#factory ? this.#factory() : worker);
  }

  #attach(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => this.#receive(data);
    // A stopped worker answers nothing more: fail every call still waiting instead of hanging.
    worker.onerror = (e) => {
      e.preventDefault?.(); // handled here: not also reported as an error of the page
      this.#stop(e.message || 'it failed to start or threw an uncaught error', true);
    };
    // A lost message is a lost answer to some call, which would then wait forever.
    worker.onmessageerror = () => this.#stop('a message could not be read', true);
  }

  /** The worker to send to: a fresh one after a crash, whose first message replays init(). */
  #ensureWorker() {
    if (this.#worker) return this.#worker;
    if (!this.#factory) {
      throw edgeError('worker_crashed', 'the engine worker stopped, and a WorkerEngine made with a Worker cannot start another: pass it a function that makes one');
    }
    this.#attach(this.#factory());
    // Its failure (a build that cannot start) surfaces again in the call that needs the runtime.
    if (this.#initOptions) this.#call('init', this.#initOptions).catch(() => {});
    return this.#worker;
  }

  /**
   * End the worker: every pending call rejects with worker_crashed, and the next call starts a
   * fresh worker, with nothing loaded. `unexpected`: a crash, which onCrash hears of.
   */
  #stop(why, unexpected) {
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = null;
    worker.onmessage = worker.onerror = worker.onmessageerror = null;
    worker.terminate();
    const error = edgeError('worker_crashed', `the engine worker stopped: ${why}`);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#aborters.clear();
    for (const p of pending) p.reject(error);
    if (unexpected) this.#onCrash?.(error);
  }

  #receive(msg) {
    if (msg.kind === Kind.CRASHED) return this.#stop(msg.reason, true);
    const p = this.#pending.get(msg.id);
    if (!p) return;
    if (msg.kind === Kind.TOKEN) return p.onToken?.(msg.text);
    this.#pending.delete(msg.id);
    if (msg.kind === Kind.RESULT) p.resolve(msg.value);
    else p.reject(deserializeError(msg.error));
  }

  /**
   * One request to the worker. `abortable` (a generation, a load): abort() and `signal` end it
   * in the worker, and the call rejects with the worker's AbortError.
   */
  #send(kind, fields, { transfer = [], onToken, abortable = false, signal, what } = {}) {
    if (signal?.aborted) return Promise.reject(abortError(what));
    let worker;
    try {
      worker = this.#ensureWorker();
    } catch (e) {
      return Promise.reject(e);
    }
    const id = this.#nextId++;
    const abort = () => worker.postMessage({ kind: Kind.ABORT, target: id });
    return new Promise((resolve, reject) => {
      const settled = (settle) => (value) => {
        signal?.removeEventListener('abort', abort);
        this.#aborters.delete(id);
        settle(value);
      };
      this.#pending.set(id, { resolve: settled(resolve), reject: settled(reject), onToken });
      if (abortable) this.#aborters.set(id, abort);
      signal?.addEventListener('abort', abort, { once: true });
      try {
        worker.postMessage({ kind, id, ...fields }, transfer);
      } catch (e) {
        // Arguments that cannot be cloned: this call fails, and nothing waits for its answer.
        this.#pending.delete(id);
        settled(reject)(e);
      }
    });
  }

  #call(method, ...args) {
    return this.#send(Kind.CALL, { method, args });
  }

  /**
   * Choose the wasm build in the worker before anything else runs there: { threads } (default:
   * all cores up to 4 when the page is cross-origin isolated, else 1). Resolves to
   * { build: 'single' | 'threads', threads, fallback }. A fresh worker after a crash gets the
   * same options first, so it runs the build this engine chose.
   */
  init(options = {}) {
    this.#initOptions = options;
    return this.#call('init', options);
  }

  /**
   * Load a GGUF model. The bytes are copied unless `options.transfer` is true; a Blob (a File) is
   * passed as it is, and the worker reads it straight into wasm memory (a Response, which cannot
   * be posted, is passed as its Blob). `options.signal`
   * (or abort()) ends the load with an AbortError: before it began, the model loaded before stays;
   * after, no model is loaded (the one it replaced is already freed). The worker cannot
   * interrupt its wasm call, so the rejection comes when that call returns.
   */
  async load(source, options = {}) {
    const { transfer, signal, ...rest } = options;
    const bytes = typeof Response !== 'undefined' && source instanceof Response ? await source.blob() : source;
    const buffer = bytes instanceof ArrayBuffer ? bytes : bytes?.buffer;
    return this.#send(Kind.CALL, { method: 'load', args: [bytes, rest] }, {
      transfer: transfer && buffer ? [buffer] : [], abortable: true, signal, what: 'the load',
    });
  }

  /** Generate to the end; resolves to { text, finishReason, timings }. */
  generate(request, onToken) {
    const { signal, ...rest } = request ?? {};
    return this.#send(Kind.GENERATE, { request: rest }, { onToken, abortable: true, signal });
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

  /** Stop the generation and any load in progress (their promises reject with an AbortError). */
  abort() {
    for (const abort of this.#aborters.values()) abort();
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

  /**
   * Stop the worker: pending calls reject with worker_crashed, and the next call starts a fresh
   * worker, with nothing loaded (not onCrash: this stop was asked for).
   */
  terminate() {
    this.#stop('terminated', false);
  }
}
