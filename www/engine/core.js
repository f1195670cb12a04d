// The engine on the current thread: wasm module + one model. The same interface as
// WorkerEngine (client.js), which runs this class inside a Web Worker.
//
//   const engine = new Engine();
//   await engine.load(bytes);                       // Uint8Array | ArrayBuffer of a GGUF
//   for await (const piece of engine.stream({ messages })) ...
//   const { text, timings } = await engine.generate({ prompt, maxNewTokens: 32 }, onToken);
//
// Works in windows, workers, Node >= 20 and edge runtimes: it needs WebAssembly and
// `performance`, no DOM.

import { initWasm, runtime, wasm } from './runtime.js';
import { loadOnnxFromGguf, onnxMemoryBytes } from './onnx.js';
import { edgeError } from './errors.js';

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

/** Let other tasks (an abort message, a UI event) run between two tokens. */
export function yieldToEventLoop() {
  if (typeof setImmediate === 'function') return new Promise((r) => setImmediate(r));
  // A MessageChannel task runs after tasks already queued (an abort message) and, unlike a
  // nested setTimeout, is not clamped to 4 ms. scheduler.yield() would not do: its
  // continuation is prioritised over the queued message.
  return new Promise((r) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => { port1.close(); r(); };
    port2.postMessage(null);
  });
}

export function abortError() {
  return new DOMException('the generation was aborted', 'AbortError');
}

const toSnake = (k) => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
const toCamel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

/** Rename the keys of a plain object (deeply) — the JS API is camelCase, the core snake_case. */
function renameKeys(value, rename) {
  if (Array.isArray(value)) return value.map((v) => renameKeys(v, rename));
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [rename(k), renameKeys(v, rename)]));
  }
  return value;
}

function coreRequest(request) {
  const { signal, ...rest } = request ?? {};
  return renameKeys(rest, toSnake);
}

function asBytes(bytes) {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw edgeError('invalid_request', 'load() needs the model file as a Uint8Array or ArrayBuffer');
}

export class Engine {
  /** A WasmModel (CPU) or an OnnxModel (WebGPU): the same methods, nextToken() sync or async. */
  #model = null;
  #onGpu = false;
  #generating = false;

  /**
   * Choose and instantiate the wasm build (see runtime.js) before the first load. options:
   * { threads, wasm (the module source) }. Resolves to { build, threads, fallback }.
   */
  async init({ threads, wasm: source } = {}) {
    return initWasm({ source, threads });
  }

  /**
   * Load a GGUF model from bytes, replacing any loaded one. Options: { contextLength, template,
   * maxMemoryBytes, backend: 'edgellm' | 'candle' | 'webgpu', threads, wasm } (the last two as
   * in init()). 'webgpu' exports the model to ONNX graphs and runs them on the GPU (onnx.js);
   * its options are { template, export: { context, weights: 'int8' | 'f32' } }.
   */
  async load(bytes, options = {}) {
    const { wasm: source, threads, ...rest } = options;
    await this.init({ threads, wasm: source });
    this.unload();
    if (rest.backend === 'webgpu') {
      const { template, export: exportOptions } = rest;
      this.#model = await loadOnnxFromGguf(asBytes(bytes), coreRequest({ template, export: exportOptions }));
      this.#onGpu = true;
    } else {
      this.#model = new (wasm().WasmModel)(asBytes(bytes), coreRequest(rest));
    }
    return this.info();
  }

  /** What is loaded: architecture, name, contextLength, template…, loadTimings and runtime. */
  info() {
    const m = this.#require();
    const info = renameKeys(m.info(), toCamel);
    const where = this.#onGpu ? { build: 'webgpu', threads: 1, adapter: info.adapter, fallback: null } : runtime();
    return { ...info, loadTimings: renameKeys(m.loadTimings(), toCamel), runtime: where };
  }

  /**
   * Stream the answer as text pieces. request: { messages | prompt, maxNewTokens, stop,
   * temperature, topK, topP, repetitionPenalty, noRepeatNgramSize, seed, overflow, signal }.
   */
  async *stream(request) {
    const m = this.#require();
    if (this.#generating) {
      throw edgeError('busy', 'a generation is already running on this engine');
    }
    const signal = request?.signal;
    this.#generating = true;
    try {
      m.start(coreRequest(request));
      for (;;) {
        if (signal?.aborted) {
          m.abort();
          throw abortError();
        }
        const piece = await m.nextToken();
        if (piece === undefined) break;
        if (piece) yield piece;
        await yieldToEventLoop();
      }
    } finally {
      this.#generating = false;
    }
  }

  /** Generate to the end; `onToken(piece)` sees each piece. Resolves to { text, finishReason, timings }. */
  async generate(request, onToken) {
    for await (const piece of this.stream(request)) onToken?.(piece);
    return this.lastResult();
  }

  /** { text, finishReason, timings } of the last generation. */
  lastResult() {
    return renameKeys(this.#require().output(), toCamel);
  }

  /** Stop the running generation after the current token. */
  abort() {
    this.#model?.abort();
  }

  tokenize(text) {
    return Array.from(this.#require().tokenize(text));
  }

  /** The prompt text the model's chat template makes of `messages`. */
  renderChat(messages) {
    return this.#require().renderChat(messages);
  }

  /** Free the model's memory (wasm memory itself never shrinks; freed pages are reused). */
  unload() {
    this.#model?.free();
    this.#model = null;
    this.#onGpu = false;
  }

  get loaded() {
    return this.#model !== null;
  }

  /** Bytes of wasm memory (both modules: the CPU one and the ONNX one); the JS heap where the
   *  runtime reports it. GPU buffers are not counted: WebGPU does not report them. */
  static memory() {
    const jsHeap = globalThis.performance?.memory?.usedJSHeapSize ?? (isNode ? process.memoryUsage().heapUsed : null);
    return { wasmBytes: (runtime() ? wasm().wasmMemoryBytes() : 0) + onnxMemoryBytes(), jsHeapBytes: jsHeap };
  }

  static templatePresets() {
    return wasm().templatePresets();
  }

  #require() {
    if (!this.#model) {
      throw edgeError('not_loaded', 'no model is loaded: call load() first');
    }
    return this.#model;
  }
}

/**
 * A model's tokenizer without its weights, from the GGUF bytes: synchronous token counts on
 * the page's thread (the prompt builder fits sources into the context with it).
 */
export async function loadTokenizer(ggufBytes, options = {}) {
  await initWasm({ source: options.wasm, threads: options.threads });
  const tokenizer = new (wasm().WasmTokenizer)(asBytes(ggufBytes));
  return {
    encode: (text) => Array.from(tokenizer.encode(text)),
    count: (text) => tokenizer.count(text),
    free: () => tokenizer.free(),
  };
}
