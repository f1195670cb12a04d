// The engine on the current thread: the wasm module, one language model, one embedder and one
// reranker. WorkerEngine (client.js) has the same interface and runs this class in a Web Worker.
//
//   const engine = new Engine();
//   await engine.load(bytes);                       // Uint8Array | ArrayBuffer | Blob | Response
//   await engine.loadEmbedder(files);               // then engine.embed(texts), engine.rerank(…)
//   for await (const piece of engine.stream({ messages })) ...
//   const { text, timings } = await engine.generate({ prompt, maxNewTokens: 32 }, onToken);
//
// Works in windows, workers, Node >= 20 and edge runtimes: it needs WebAssembly and
// `performance`, no DOM.

import { initWasm, runtime, wasm } from './runtime.js';
import { loadOnnxFromGguf, onnxMemoryBytes, OnnxEmbedder } from './onnx.js';
import { Embedder, Reranker } from './embedder.js';
import { abortError, yieldToEventLoop } from './scheduling.js';
import { edgeError } from './errors.js';

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

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

const isBlob = (source) => typeof Blob !== 'undefined' && source instanceof Blob;
const isResponse = (source) => typeof Response !== 'undefined' && source instanceof Response;

/** A Response body's length where its headers say it (the Content-Length of a body not encoded), else null. */
function responseLength(response) {
  const encoding = response.headers.get('Content-Encoding');
  const length = Number(response.headers.get('Content-Length') ?? NaN);
  return response.body && (!encoding || encoding === 'identity') && Number.isSafeInteger(length) ? length : null;
}

/** `{ stream, size }` of a source load() reads a chunk at a time: a Blob, or a Response of known length. */
function streamOf(source) {
  if (isBlob(source)) return { stream: source.stream(), size: source.size };
  if (isResponse(source) && responseLength(source) !== null) return { stream: source.body, size: responseLength(source) };
  return null;
}

/** All of a source's bytes at once (a Response of unknown length, or for the ONNX export). */
async function wholeBytes(source) {
  return isBlob(source) || isResponse(source) ? new Uint8Array(await source.arrayBuffer()) : asBytes(source);
}

function asBytes(bytes) {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw edgeError('invalid_request', 'load() needs the model file as a Uint8Array, an ArrayBuffer, a Blob (a File) or a Response');
}

/**
 * A file's bytes read from `stream` straight into wasm memory, a chunk at a time: the file is
 * never whole in JS memory beside its copy in wasm, which read into an ArrayBuffer first it
 * would be, at twice its size, while it loads. Resolves to a ModelBytes of `size` bytes for
 * WasmModel.fromModelBytes; rejects with an AbortError once `aborted()` says so.
 */
async function streamIntoWasm({ stream, size }, aborted) {
  const target = new (wasm().ModelBytes)(size);
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (aborted()) throw abortError('the load');
      target.write(value);
    }
    // A File changed while it was read, or a body cut off, ends short of the size it had.
    if (target.written() !== size) throw edgeError('invalid_request', `reading the model gave ${target.written()} of its ${size} bytes`);
    return target;
  } catch (e) {
    target.free();
    await reader.cancel().catch(() => {});
    throw e;
  }
}

/**
 * Bytes already in JS memory written into wasm memory as a stream's are (a ModelBytes): the
 * header apart from the tensor data, so that it is freed once the model is built.
 */
function bytesIntoWasm(bytes) {
  const target = new (wasm().ModelBytes)(bytes.length);
  try {
    target.write(bytes);
    return target;
  } catch (e) {
    target.free();
    throw e;
  }
}

/** Bytes of wasm memory (both modules: the CPU one and the ONNX one); the JS heap where the
 *  runtime reports it. GPU buffers are not counted: WebGPU does not report them. */
export function memoryUsage() {
  const jsHeap = globalThis.performance?.memory?.usedJSHeapSize ?? (isNode ? process.memoryUsage().heapUsed : null);
  return { wasmBytes: (runtime() ? wasm().wasmMemoryBytes() : 0) + onnxMemoryBytes(), jsHeapBytes: jsHeap };
}

/**
 * The engine: one language model, one sentence embedder and one reranker. Every method is async
 * (or an async iterable), so that WorkerEngine, which forwards each call to this class in a Web
 * Worker, has the same interface (index.d.ts EngineInterface).
 */
export class Engine {
  /** A WasmModel (CPU) or an OnnxModel (WebGPU): the same methods, nextToken() sync or async. */
  #model = null;
  #onGpu = false;
  #generating = false;
  #loads = Promise.resolve(); // the last load asked for: the next one waits for it
  #loading = new Set(); // an AbortController per load asked for and not ended, for abort()
  #embedder = null;
  #reranker = null;

  /**
   * Choose and instantiate the wasm build (see runtime.js) before the first load. options:
   * { threads, wasm (the module source) }. Resolves to { build, threads, fallback }.
   */
  async init({ threads, wasm: source } = {}) {
    return initWasm({ source, threads });
  }

  /**
   * Load a GGUF model from bytes, or from a Blob (a File) or a fetch Response read straight
   * into wasm memory (a Response whose length its headers do not say is read whole first),
   * replacing any loaded one. Options: { contextLength, template,
   * maxMemoryBytes, backend: 'edgellm' | 'candle' | 'webgpu', threads, wasm } (the last two as
   * in init()). 'webgpu' exports the model to ONNX graphs and runs them on the GPU (onnx.js);
   * its options are { template, export: { context, weights: 'int8' | 'f32' } }.
   * `signal` (or abort()) ends the load with an AbortError: one aborted before it began leaves
   * the loaded model in place; one aborted while it ran leaves none (the new model is freed, and
   * the old one was freed before it).
   */
  async load(bytes, options = {}) {
    const loading = new AbortController(); // abort()'s way to this load, waiting or running
    this.#loading.add(loading);
    // One load at a time, in call order: a load waits where an abort can reach it, and two
    // interleaved there would each free the other's model.
    const turn = this.#loads.then(() => this.#load(bytes, options, loading.signal));
    this.#loads = turn.catch(() => {});
    try {
      return await turn;
    } finally {
      this.#loading.delete(loading);
    }
  }

  async #load(bytes, options, abortedByEngine) {
    const { wasm: source, threads, signal, ...rest } = options;
    const aborted = () => signal?.aborted || abortedByEngine.aborted;
    await this.init({ threads, wasm: source });
    // In a worker the abort is a message queued behind this load's: let it land before the old
    // model is freed.
    await yieldToEventLoop();
    if (aborted()) throw abortError('the load');
    if (this.#generating) throw edgeError('busy', 'a generation is running on this engine: abort it before loading another model');
    this.#freeModel();
    const onGpu = rest.backend === 'webgpu';
    let model;
    const streamed = onGpu ? null : streamOf(bytes);
    if (onGpu) {
      const { template, export: exportOptions } = rest;
      model = await loadOnnxFromGguf(await wholeBytes(bytes), coreRequest({ template, export: exportOptions }));
    } else {
      const file = streamed ? await streamIntoWasm(streamed, aborted) : bytesIntoWasm(await wholeBytes(bytes));
      model = wasm().WasmModel.fromModelBytes(file, coreRequest(rest));
    }
    // The wasm call cannot be interrupted: an abort sent while it ran is read now, and the model
    // nobody wants any more is freed rather than left loaded behind an AbortError.
    await yieldToEventLoop();
    if (aborted()) {
      model.free();
      throw abortError('the load');
    }
    this.#model = model;
    this.#onGpu = onGpu;
    return this.info();
  }

  /** What is loaded: architecture, name, contextLength, template…, loadTimings and runtime. */
  async info() {
    const m = this.#require();
    const info = renameKeys(m.info(), toCamel);
    const where = this.#onGpu ? { build: 'webgpu', threads: 1, adapter: info.adapter, fallback: null } : runtime();
    return { ...info, loadTimings: renameKeys(m.loadTimings(), toCamel), runtime: where };
  }

  /**
   * Stream the answer as text pieces. request: { messages | prompt, maxNewTokens, stop,
   * temperature, topK, topP, repetitionPenalty, noRepeatNgramSize, seed, overflow, signal }.
   * Leaving the loop early (`break`, a thrown error) aborts the generation.
   */
  async *stream(request) {
    const m = this.#require();
    if (this.#generating) {
      throw edgeError('busy', 'a generation is already running on this engine');
    }
    const signal = request?.signal;
    this.#generating = true;
    let ended = false;
    try {
      m.start(coreRequest(request));
      for (;;) {
        if (signal?.aborted) throw abortError();
        const piece = await m.nextToken();
        if (piece === undefined) break;
        if (piece) yield piece;
        await yieldToEventLoop();
      }
      ended = true;
    } finally {
      // Aborted, failed, or the consumer stopped reading: the generation ends here, as 'aborted'.
      if (!ended) m.abort();
      this.#generating = false;
    }
  }

  /** Generate to the end; `onToken(piece)` sees each piece. Resolves to { text, finishReason, timings }. */
  async generate(request, onToken) {
    for await (const piece of this.stream(request)) onToken?.(piece);
    return this.lastResult();
  }

  /** { text, finishReason, timings } of the last generation. */
  async lastResult() {
    return renameKeys(this.#require().output(), toCamel);
  }

  /** Stop the running generation after the current token, and the loads asked for and not ended. */
  abort() {
    this.#model?.abort();
    for (const loading of this.#loading) loading.abort();
  }

  async tokenize(text) {
    return Array.from(this.#require().tokenize(text));
  }

  /**
   * Teacher forcing: the next-token logits after each prefix of `tokens`, as one Float32Array
   * per position (vocabulary-sized). Starts a new sequence; for comparing with another runtime.
   */
  async logitsEach(tokens) {
    const m = this.#require();
    if (this.#generating) throw edgeError('busy', 'a generation is already running on this engine');
    if (this.#onGpu) throw edgeError('invalid_request', 'logitsEach runs on the CPU backend');
    const flat = m.logitsEach(Uint32Array.from(tokens));
    const vocab = flat.length / Math.max(tokens.length, 1);
    return Array.from({ length: tokens.length }, (_, i) => flat.subarray(i * vocab, (i + 1) * vocab));
  }

  /** The prompt text the model's chat template makes of `messages`. */
  async renderChat(messages) {
    return this.#require().renderChat(messages);
  }

  /** Free the model's memory (wasm memory itself never shrinks; freed pages are reused). */
  async unload() {
    if (this.#generating) throw edgeError('busy', 'a generation is running on this engine: abort it before unloading');
    this.#freeModel();
  }

  get loaded() {
    return this.#model !== null;
  }

  async memory() {
    return memoryUsage();
  }

  /**
   * Load the sentence-embedding model, replacing any loaded one: bytes of { config, weights,
   * tokenizer } (BERT safetensors, on the CPU) or { onnx, tokenizer } (an ONNX graph on WebGPU;
   * options: { seqLen }). In Node, no files reads all-MiniLM-L6-v2 from ~/.cache/edgellm.
   * Resolves to { dim }.
   */
  async loadEmbedder(files, options = {}) {
    this.#embedder?.free();
    this.#embedder = null;
    this.#embedder = files?.onnx ? await OnnxEmbedder.load(files, options) : await Embedder.load(files);
    return { dim: this.#embedder.dim };
  }

  /** One unit-length Float32Array per text. */
  async embed(texts) {
    if (!this.#embedder) throw edgeError('not_loaded', 'no embedding model is loaded: call loadEmbedder() first');
    return this.#embedder.embed(texts);
  }

  /** Load a cross-encoder reranker (bytes of config.json, model.safetensors, tokenizer.json). */
  async loadReranker(files) {
    this.#reranker?.free();
    this.#reranker = null;
    this.#reranker = await Reranker.load(files);
    return null;
  }

  /** One relevance logit per passage for `query`. */
  async rerank(query, passages) {
    if (!this.#reranker) throw edgeError('not_loaded', 'no reranker is loaded: call loadReranker() first');
    return this.#reranker.score(query, passages);
  }

  /** memory()'s figures without an instance: they are the module's, shared by every engine in the thread. */
  static memory() {
    return memoryUsage();
  }

  static templatePresets() {
    return wasm().templatePresets();
  }

  #freeModel() {
    this.#model?.free();
    this.#model = null;
    this.#onGpu = false;
  }

  #require() {
    if (!this.#model) {
      throw edgeError('not_loaded', 'no model is loaded: call load() first');
    }
    return this.#model;
  }
}

/**
 * A model's tokenizer without its weights, from the start of the GGUF file (`source` as for
 * inspectModel): synchronous token counts on the page's thread (the prompt builder fits sources
 * into the context with it).
 */
export async function loadTokenizer(source, options = {}) {
  await initWasm({ source: options.wasm, threads: options.threads });
  const tokenizer = await withGgufTables(source, (prefix, size) => new (wasm().WasmTokenizer)(prefix, size));
  return {
    encode: (text) => Array.from(tokenizer.encode(text)),
    count: (text) => tokenizer.count(text),
    free: () => tokenizer.free(),
  };
}

/** Bytes read first when describing a GGUF file; doubled while the tables run past them. */
const INSPECT_FIRST_BYTES = 8 * 2 ** 20;

/**
 * What a GGUF model is and needs, before it is loaded or downloaded: its metadata and tensor
 * table are read from the start of the file (a few MB; more while they run past what was read).
 * `source`: a File/Blob (the page's file picker), bytes, or `{ url }` (read with HTTP Range
 * requests; a server that ignores Range sends the whole file, of which only the start is read).
 * Resolves to { info: ModelInfo, memoryLimitBytes, refusal: { code, message } | null }; rejects
 * with an EdgeLLMError when the file is not a model edgellm runs (and says why).
 */
export async function inspectModel(source, options = {}) {
  const { wasm: wasmSource, threads, ...loadOptions } = options;
  await initWasm({ source: wasmSource, threads });
  return withGgufTables(source, (prefix, size) => renameKeys(wasm().inspectGguf(prefix, size, coreRequest(loadOptions)), toCamel));
}

/**
 * `use(prefix, size)` on the first bytes of the GGUF file `source` (see prefixReader), read
 * INSPECT_FIRST_BYTES first and doubled while its metadata and tensor tables run past them.
 */
async function withGgufTables(source, use) {
  const { read, size, close } = await prefixReader(source);
  try {
    for (let want = INSPECT_FIRST_BYTES; ; want *= 2) {
      const prefix = await read(Math.min(want, size));
      try {
        return use(prefix, size);
      } catch (e) {
        // Tables that run past the bytes read: read more, up to the whole file.
        if (!(e.code === 'invalid_gguf' && /truncated/.test(e.message) && prefix.length < size)) throw e;
      }
    }
  } finally {
    await close?.();
  }
}

/** The first n bytes of `chunks` (Uint8Arrays in order) as one array. */
function firstBytes(chunks, n) {
  const out = new Uint8Array(Math.min(n, chunks.reduce((sum, c) => sum + c.length, 0)));
  let at = 0;
  for (const c of chunks) {
    if (at >= out.length) break;
    out.set(c.subarray(0, out.length - at), at);
    at += c.length;
  }
  return out;
}

/** Chunks read from `reader` onto `chunks` until they hold `n` bytes or the stream ends. */
async function readInto(reader, chunks, n) {
  for (let got = chunks.reduce((sum, c) => sum + c.length, 0); got < n;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
  }
}

/**
 * `{ read(n) → the first n bytes of source, size: its size in bytes, close?() }`; a Response's
 * body is read only as far as asked, and close() cancels the rest.
 */
async function prefixReader(source) {
  if (isBlob(source)) {
    return { read: async (n) => new Uint8Array(await source.slice(0, n).arrayBuffer()), size: source.size };
  }
  if (isResponse(source) && responseLength(source) !== null) {
    const reader = source.body.getReader();
    const chunks = [];
    const read = async (n) => {
      await readInto(reader, chunks, n);
      return firstBytes(chunks, n);
    };
    return { read, size: responseLength(source), close: () => reader.cancel().catch(() => {}) };
  }
  if (isResponse(source)) {
    const bytes = await wholeBytes(source);
    return { read: async (n) => bytes.subarray(0, n), size: bytes.length };
  }
  if (source?.url) {
    let length = null;
    const read = async (n) => {
      const response = await fetch(source.url, { headers: { Range: `bytes=0-${n - 1}` } });
      if (!response.ok) throw edgeError('invalid_request', `${source.url}: HTTP ${response.status}`);
      const total = Number(response.headers.get('content-range')?.split('/')[1] ?? response.headers.get('content-length'));
      if (Number.isFinite(total) && total > 0) length = total;
      const chunks = [];
      const reader = response.body.getReader();
      await readInto(reader, chunks, n);
      await reader.cancel().catch(() => {});
      return firstBytes(chunks, n);
    };
    // The first request learns the size; the loop then asks for no more than there is.
    const first = await read(INSPECT_FIRST_BYTES);
    if (length === null) throw edgeError('invalid_request', `${source.url}: the server did not say how large the file is`);
    let cached = first;
    return { read: async (n) => (n <= cached.length ? cached.subarray(0, n) : (cached = await read(n))), size: length };
  }
  const bytes = asBytes(source);
  return { read: async (n) => bytes.subarray(0, n), size: bytes.length };
}
