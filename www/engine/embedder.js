// BERT models for retrieval, through candle in wasm.
// Sentence embeddings (all-MiniLM-L6-v2):
// `embed(texts)` → one unit-length Float32Array per text (cosine similarity = dot product).
//
//   const embedder = await Embedder.load({ config, weights, tokenizer });   // bytes of the three files
//   const [v] = await embedder.embed(['What is life cycle assessment?']);
//
// In Node, `Embedder.load()` with no argument reads the fetched model from ~/.cache/edgellm.

import { yieldToEventLoop } from './scheduling.js';
import { initWasm, wasm } from './runtime.js';
import { edgeError } from './errors.js';

/** The three files of a BERT model (embedder or reranker), by the key load() takes them under. */
export const BERT_FILES = Object.freeze({ config: 'config.json', weights: 'model.safetensors', tokenizer: 'tokenizer.json' });
/** Texts per wasm call: large enough to batch the matrix work, small enough to stay responsive. */
const BATCH = 16;

async function readFromCache() {
  const { readFile } = await import('node:fs/promises');
  const { homedir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = join(process.env.EDGELLM_CACHE ?? join(homedir(), '.cache', 'edgellm'), 'models', 'minilm-l6');
  const entries = await Promise.all(Object.entries(BERT_FILES).map(async ([k, f]) => [k, await readFile(join(dir, f))]));
  return Object.fromEntries(entries);
}

/** Fetch the three files from a base URL (the page serves them under /models/minilm-l6/). */
export async function fetchEmbedderFiles(baseUrl) {
  const entries = await Promise.all(Object.entries(BERT_FILES).map(async ([k, f]) => {
    const res = await fetch(new URL(f, baseUrl));
    if (!res.ok) throw edgeError('fetch_failed', `could not fetch ${f} of the embedding model: HTTP ${res.status}`);
    return [k, new Uint8Array(await res.arrayBuffer())];
  }));
  return Object.fromEntries(entries);
}

export class Embedder {
  #model;

  constructor(model) {
    this.#model = model;
  }

  static async load(files) {
    await initWasm();
    const { config, weights, tokenizer } = files ?? (await readFromCache());
    return new Embedder(new (wasm().WasmEmbedder)(config, weights, tokenizer));
  }

  get dim() {
    return this.#model.dim();
  }

  async embed(texts) {
    const dim = this.dim;
    const out = [];
    for (let i = 0; i < texts.length; i += BATCH) {
      const flat = this.#model.embed(texts.slice(i, i + BATCH));
      for (let j = 0; j < flat.length; j += dim) out.push(flat.slice(j, j + dim));
      if (i + BATCH < texts.length) await yieldToEventLoop();
    }
    return out;
  }

  free() {
    this.#model.free();
  }
}

/** Passages per wasm call when reranking. */
const RERANK_BATCH = 8;

/**
 * A cross-encoder reranker (e.g. ms-marco-MiniLM-L-6-v2, the same three files as the embedder):
 * `score(query, passages)` → one relevance logit per passage, higher is better.
 */
export class Reranker {
  #model;

  constructor(model) {
    this.#model = model;
  }

  static async load({ config, weights, tokenizer }) {
    await initWasm();
    return new Reranker(new (wasm().WasmReranker)(config, weights, tokenizer));
  }

  async score(query, passages) {
    const scores = [];
    for (let i = 0; i < passages.length; i += RERANK_BATCH) {
      scores.push(...this.#model.score(query, passages.slice(i, i + RERANK_BATCH)));
      if (i + RERANK_BATCH < passages.length) await yieldToEventLoop();
    }
    return scores;
  }

  free() {
    this.#model.free();
  }
}
