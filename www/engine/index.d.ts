// Types of edgellm's JavaScript API (www/engine/index.js).

export type Role = 'system' | 'user' | 'assistant';
export interface Message { role: Role; content: string }

export interface SamplingOptions {
  /** 0 (default) = greedy. */
  temperature?: number;
  /** 0 = off. */
  topK?: number;
  /** 1 = off. */
  topP?: number;
  /** 1 = off; Hugging Face semantics. */
  repetitionPenalty?: number;
  /** Tokens the repetition penalty looks back over (0 = all). */
  repeatLastN?: number;
  /** 0 = off. */
  noRepeatNgramSize?: number;
  /** Whether the penalty and the n-gram ban count the prompt's tokens too (Hugging Face's way;
   *  default false: the prompt holds the sources an answer should copy from). */
  penalizePrompt?: boolean;
  /** [start, factor ≥ 1]: after `start` generated tokens the end-of-turn logits grow by
   *  |logit|·(factor^(n − start) − 1) (Hugging Face's exponential_decay_length_penalty). */
  exponentialDecayLengthPenalty?: [number, number] | null;
  seed?: number;
}

export interface GenerateRequest extends SamplingOptions {
  /** A chat, rendered with the model's template. Give `messages` or `prompt`. */
  messages?: Message[];
  /** Raw text. */
  prompt?: string;
  /** Default 256. */
  maxNewTokens?: number;
  stop?: string[];
  /** What to do when the prompt does not fit: 'error' (default) or 'truncate_start'. */
  overflow?: 'error' | 'truncate_start';
  /** Generate exactly maxNewTokens, through end-of-turn tokens (for benchmarks); it also turns
   *  the repetition guard off. */
  ignoreEos?: boolean;
  /** Keep the prompt prefix already in the KV cache (default true); false prefills it all (benchmarks). */
  reuseCache?: boolean;
  /** Ends the answer when the output starts repeating itself (finishReason 'repetition'); on by
   *  default, false turns it off. minSpan: tokens an exact repeat needs (16; 0 = off);
   *  maxNearPeriod: the longest repeated stretch with one token changed looked for (32; 0 = off). */
  repetitionGuard?: boolean | { minSpan?: number; maxNearPeriod?: number };
  signal?: AbortSignal;
}

export interface InitOptions {
  /** 1: the single-threaded build; more: the threaded one, where it can run (a cross-origin
   *  isolated Web Worker), else the single one. Default: cores up to 4 where threads run, else 1.
   *  The first init/load in a thread decides. */
  threads?: number;
  /** Where the single-threaded .wasm is (URL, bytes or WebAssembly.Module); default beside pkg/edgellm.js. */
  wasm?: string | URL | BufferSource | WebAssembly.Module;
}

/** The wasm build in use and why not the threaded one, if not. */
export interface RuntimeInfo {
  build: 'single' | 'threads' | 'webgpu';
  /** CPU builds: whether the kernels use relaxed SIMD's 8-bit dot product (where the engine has it). */
  simd?: 'relaxed' | 'simd128';
  threads: number;
  fallback: string | null;
  adapter?: string;
}

export interface LoadOptions extends InitOptions {
  /** Ends the load with an AbortError (so does abort()): before it began, the loaded model stays;
   *  after, none is loaded. */
  signal?: AbortSignal;
  /** Context window to serve; default the model's, at most 4096. */
  contextLength?: number;
  /** Chat template preset: 'auto' | 'zephyr' | 'chatml' | 'llama3' | 'mistral' | 'gemma'. */
  template?: string;
  maxMemoryBytes?: number;
  /** 'edgellm' (default): our forward pass and kernels; 'candle': candle's model code, the
   *  reference the fast path is tested against; 'webgpu': the GGUF (llama family) exported to
   *  ONNX graphs in the engine's thread and run through wonnx on WebGPU (its own wasm module). */
  backend?: 'edgellm' | 'candle' | 'webgpu';
  /** backend 'webgpu': the context fixed into the graphs (default 1024) and the shards' weight
   *  storage (default 'int8': 8-bit with a scale per 32 weights, expanded to f32 on load). */
  export?: { context?: number; weights?: 'int8' | 'f32' };
}

export interface LoadTimings { parseMs: number; tokenizerMs: number; weightsMs: number; totalMs: number }

export interface ModelInfo {
  architecture: string;
  name: string;
  fileBytes: number;
  ggufVersion: number;
  parameters: number;
  /** As llama.cpp names the file's type ("Q4_K_M"), or its main tensor type. */
  quantization: string;
  tensorTypes: Record<string, number>;
  /** The context served, and the one the model was trained for. */
  contextLength: number;
  trainedContextLength: number;
  vocabSize: number;
  tokenizer: 'byte_level_bpe' | 'sentence_piece';
  chatTemplate: string;
  bosToken: string;
  eosToken: string;
  estimatedMemoryBytes: number;
  backend: 'edgellm' | 'candle' | 'webgpu';
  loadTimings: LoadTimings & { exportMs?: number };
  runtime: RuntimeInfo;
  /** backend 'webgpu' only (the CPU-only fields above are absent): the adapter, the export. */
  adapter?: string;
  weights?: 'int8' | 'f32';
  shardBytes?: number;
  shards?: number;
  /** Milliseconds spent in each layer shard, then each head shard, since loading. */
  shardMs?: number[];
}

export interface GenerationTimings {
  /** The whole prompt: reusedPromptTokens taken from the KV cache + prefillTokens run. */
  promptTokens: number;
  /** The prompt's first tokens the last generation left in the cache (a chat's system prompt
   *  and earlier turns): not run again. Always 0 on the candle and webgpu backends. */
  reusedPromptTokens: number;
  prefillTokens: number;
  generatedTokens: number;
  tokenizeMs: number;
  prefillMs: number;
  /** prefillTokens / prefillMs. */
  prefillTokS: number;
  timeToFirstTokenMs: number;
  decodeMs: number;
  decodeTokS: number;
  totalMs: number;
}

export interface GenerationResult {
  text: string;
  /** 'repetition': the output started repeating itself (request.repetitionGuard); `text` ends
   *  before the repeats, which streaming had already delivered. */
  finishReason: 'stop' | 'length' | 'context_full' | 'aborted' | 'repetition';
  timings: GenerationTimings;
}

/** Every code an EdgeLLMError can carry: the catalogue ERROR_CODES (www/engine/errors.js), where
 *  each is explained. Kept equal to it by tests/js/errors.test.mjs. */
export type EdgeLLMErrorCode =
  // the Rust core (src/error.rs ErrorCode)
  | 'invalid_gguf' | 'unsupported_tensor_type' | 'unsupported_architecture' | 'missing_metadata'
  | 'too_large' | 'context_overflow' | 'invalid_request' | 'tokenizer_error' | 'template_error'
  | 'inference_error' | 'invalid_weights' | 'invalid_onnx' | 'unsupported_operator'
  | 'unsupported_shape' | 'webgpu_unavailable'
  // the engine (www/engine/)
  | 'not_loaded' | 'not_initialised' | 'busy' | 'worker_crashed' | 'fetch_failed' | 'internal_error'
  // model files in the page (www/app/storage.js)
  | 'integrity_mismatch' | 'download_incomplete'
  // retrieval (www/rag/retrieve.js)
  | 'empty_query' | 'empty_corpus' | 'no_embedder' | 'no_vectors' | 'invalid_settings' | 'invalid_rerank'
  // the prompt (www/rag/prompt.js)
  | 'context_budget'
  // documents the user adds (www/rag/limits.js)
  | 'unsupported_document' | 'document_too_large' | 'too_many_pages' | 'too_many_chunks' | 'empty_document'
  // the HTTP service (www/service/)
  | 'not_found' | 'method_not_allowed' | 'payload_too_large' | 'model_not_found' | 'aborted' | 'queue_full';

export type EdgeLLMErrorOrigin = 'rust' | 'engine' | 'storage' | 'retrieval' | 'prompt' | 'documents' | 'service';

/** One catalogue entry: what happened, and what the user should do. */
export interface EdgeLLMErrorInfo { readonly origin: EdgeLLMErrorOrigin; readonly what: string; readonly action: string }

export declare const ERROR_CODES: Readonly<Record<EdgeLLMErrorCode, EdgeLLMErrorInfo>>;
/** The codes of the Rust core's ErrorCode, set by the wasm modules. */
export declare const RUST_ERROR_CODES: readonly EdgeLLMErrorCode[];
/** The codes only JavaScript creates. */
export declare const JS_ERROR_CODES: readonly EdgeLLMErrorCode[];

/** Errors carry a stable `code`. Errors from the wasm modules are plain Errors named
 *  'EdgeLLMError'; `instanceof EdgeLLMError` holds for them too. Aborts are DOMException 'AbortError'. */
export declare class EdgeLLMError extends Error {
  constructor(code: EdgeLLMErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> });
  name: 'EdgeLLMError';
  code: EdgeLLMErrorCode;
  details?: Record<string, unknown>;
}
/** A new EdgeLLMError; throws a TypeError for a code missing from ERROR_CODES. */
export declare function edgeError(code: EdgeLLMErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }): EdgeLLMError;

export type EmbedderFiles =
  | { config: Uint8Array; weights: Uint8Array; tokenizer: Uint8Array }
  | { onnx: Uint8Array; tokenizer: Uint8Array };
export type MemoryFigures = { wasmBytes: number; jsHeapBytes: number | null };

/** The one engine interface: Engine (this thread) and WorkerEngine (a Web Worker) both have it. */
export interface EngineInterface {
  init(options?: InitOptions): Promise<RuntimeInfo>;
  /** A Blob (a File), or a Response whose Content-Length is known, is read as a stream straight
   *  into wasm memory, never whole in JS memory. */
  load(bytes: Uint8Array | ArrayBuffer | Blob | Response, options?: LoadOptions): Promise<ModelInfo>;
  info(): Promise<ModelInfo>;
  /** Leaving the loop early (break, throw) aborts the generation. */
  stream(request: GenerateRequest): AsyncIterable<string>;
  generate(request: GenerateRequest, onToken?: (piece: string) => void): Promise<GenerationResult>;
  lastResult(): Promise<GenerationResult>;
  /** Stop the generation and the load in progress: they reject with an AbortError. */
  abort(): void;
  tokenize(text: string): Promise<number[]>;
  /** Teacher forcing: next-token logits after each prefix of `tokens` (CPU backend). */
  logitsEach(tokens: number[]): Promise<Float32Array[]>;
  renderChat(messages: Message[]): Promise<string>;
  unload(): Promise<void>;
  memory(): Promise<MemoryFigures>;
  /** BERT safetensors on the CPU, or an ONNX embedder ({ onnx, tokenizer }) on WebGPU; in Node,
   *  Engine.loadEmbedder() without files reads all-MiniLM-L6-v2 from ~/.cache/edgellm. */
  loadEmbedder(files?: EmbedderFiles, options?: { seqLen?: number }): Promise<{ dim: number }>;
  embed(texts: string[]): Promise<Float32Array[]>;
  loadReranker(files: { config: Uint8Array; weights: Uint8Array; tokenizer: Uint8Array }): Promise<null>;
  rerank(query: string, passages: string[]): Promise<number[]>;
}

export declare function initWasm(options?: { source?: string | URL | BufferSource | WebAssembly.Module; threads?: number }): Promise<RuntimeInfo>;
export declare function runtime(): RuntimeInfo | null;
export declare function defaultThreads(): number;
export declare function threadsUnavailableReason(): string | null;

/** The engine on this thread (Node, Deno, workerd, a worker): EngineInterface's methods, and these. */
export interface Engine extends EngineInterface {}
export declare class Engine {
  readonly loaded: boolean;
  /** memory()'s figures without an instance (they are the thread's wasm modules'). */
  static memory(): MemoryFigures;
  static templatePresets(): string[];
}

/** The same interface, each call forwarded to an Engine in a Web Worker. */
export interface WorkerEngine extends EngineInterface {}
export declare class WorkerEngine {
  /**
   * `worker`: makes the engine's Worker (default: this package's worker.js), again for a fresh
   * one after a crash; a Worker itself is accepted but not replaced once it stops. `onCrash`: the
   * worker stopped unexpectedly (crash, wasm trap), after the pending calls rejected with `error`.
   */
  constructor(worker?: (() => Worker) | Worker, options?: { onCrash?: (error: EdgeLLMError) => void });
  /** `transfer: true` moves the bytes to the worker instead of copying them. */
  load(bytes: Uint8Array | ArrayBuffer, options?: LoadOptions & { transfer?: boolean }): Promise<ModelInfo>;
  /** Stop the worker; pending calls reject with worker_crashed, and the next call starts a fresh one. */
  terminate(): void;
}

/** Sentence embeddings (all-MiniLM-L6-v2): unit vectors, cosine = dot product. */
export declare class Embedder {
  /** Bytes of config.json, model.safetensors, tokenizer.json; in Node, omit to read the fetched model. */
  static load(files?: { config: Uint8Array; weights: Uint8Array; tokenizer: Uint8Array }): Promise<Embedder>;
  readonly dim: number;
  embed(texts: string[]): Promise<Float32Array[]>;
  free(): void;
}
/** An ONNX sentence embedder (e.g. paraphrase-MiniLM-L3-v2) on WebGPU, its axes fixed to seqLen. */
export declare class OnnxEmbedder {
  static load(files: { onnx: Uint8Array; tokenizer: Uint8Array }, options?: { seqLen?: number }): Promise<OnnxEmbedder>;
  readonly dim: number;
  embed(texts: string[]): Promise<Float32Array[]>;
  free(): void;
}
/** Whether ONNX models can run here (WebGPU with an adapter), and if not why. */
export declare function webgpuStatus(): Promise<{ available: true; adapter: string } | { available: false; reason: string }>;
export declare function fetchEmbedderFiles(baseUrl: string | URL): Promise<{ config: Uint8Array; weights: Uint8Array; tokenizer: Uint8Array }>;

/** A model's tokenizer from GGUF bytes, without loading weights: synchronous counts. */
/** What a GGUF model is and needs, from the start of its file, before it is loaded or downloaded. */
export interface Inspection {
  info: Omit<ModelInfo, 'loadTimings' | 'runtime'>;
  /** What WebAssembly can give a model here (null natively). */
  memoryLimitBytes: number | null;
  /** Why loading would be refused (too_large), or null. */
  refusal: { code: EdgeLLMErrorCode; message: string } | null;
}

/** Reads a File/Blob, bytes, or `{ url }` (HTTP Range requests); rejects for a file edgellm cannot run. */
export declare function inspectModel(
  source: Blob | Uint8Array | ArrayBuffer | { url: string },
  options?: Pick<LoadOptions, 'contextLength' | 'template' | 'maxMemoryBytes'>,
): Promise<Inspection>;

/** Reads only the start of the file (its metadata and tensor tables), as inspectModel does. */
export declare function loadTokenizer(source: Blob | Uint8Array | ArrayBuffer | { url: string }, options?: { wasm?: LoadOptions['wasm'] }): Promise<{
  encode(text: string): number[];
  count(text: string): number;
  free(): void;
}>;

/** A cross-encoder reranker (BertForSequenceClassification, e.g. ms-marco-MiniLM-L-6-v2). */
export declare class Reranker {
  static load(files: { config: Uint8Array; weights: Uint8Array; tokenizer: Uint8Array }): Promise<Reranker>;
  score(query: string, passages: string[]): Promise<number[]>;
  free(): void;
}
